//! LISTEN/NOTIFY: the channels dialerd's triggers and writes announce on,
//! a listener that survives database outages, and the back-off every
//! repeated database task uses while the database cannot be reached.

use std::time::{Duration, Instant};

use sqlx::PgPool;

/// Campaign status changes (a trigger on `campaigns`): the poller reads
/// statuses at once instead of at its next poll.
pub const CAMPAIGN_STATUS: &str = "dialerd_campaign_status";
/// Campaigns whose plan may have changed (triggers on contacts, campaigns
/// and configurations): their plans are re-read at once.
pub const PLAN_CHANGED: &str = "dialerd_plan_changed";
/// A call settled by a status callback, payload `<attempt id> <outcome>`:
/// the instance whose line holds the call frees it.
pub const CALL_ENDED: &str = "dialerd_call_ended";
/// An organization's due bound inserted or lowered (triggers on
/// `organization_due`): contacts may be due sooner than an idle
/// dispatcher sleeps.
pub const DUE: &str = "dialerd_due";

/// A run of failures of one repeated task (a claim, a write, a poll): logged
/// once when it starts and once when it ends, not on every retry, and
/// retried with exponential backoff (`BACKOFF_FIRST` doubling up to
/// `BACKOFF_MAX`) so an outage is not hammered.
#[derive(Debug, Default)]
pub struct Outage {
    since: Option<Instant>,
    failures: u32,
    retry_at: Option<Instant>,
}

pub const BACKOFF_FIRST: Duration = Duration::from_millis(50);
pub const BACKOFF_MAX: Duration = Duration::from_secs(2);

impl Outage {
    pub fn failed(&mut self, task: &'static str, error: &dyn std::fmt::Display) {
        metrics::counter!(crate::monitoring::DB_ERRORS, "task" => task).increment(1);
        let now = Instant::now();
        if self.since.is_none() {
            tracing::error!(task, %error, "failed; retrying with backoff");
            self.since = Some(now);
        }
        let delay = BACKOFF_FIRST
            .saturating_mul(1 << self.failures.min(16))
            .min(BACKOFF_MAX);
        self.failures += 1;
        self.retry_at = Some(now + delay);
    }

    pub fn recovered(&mut self, task: &'static str) {
        self.failures = 0;
        self.retry_at = None;
        if let Some(since) = self.since.take() {
            tracing::info!(
                task,
                after_seconds = since.elapsed().as_secs_f64(),
                "works again"
            );
        }
    }

    /// False while backing off after a failure.
    pub fn may_try(&self) -> bool {
        self.retry_at.is_none_or(|at| Instant::now() >= at)
    }
}

/// LISTENs on `channel` and hands every payload to `each` until it returns
/// false; reconnects a second after the connection drops, logging once per
/// outage under `task`.
pub async fn listen(
    pool: PgPool,
    channel: &'static str,
    task: &'static str,
    mut each: impl FnMut(&str) -> bool,
) {
    let mut outage = Outage::default();
    loop {
        match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(mut listener) => match listener.listen(channel).await {
                Err(e) => outage.failed(task, &e),
                Ok(()) => {
                    outage.recovered(task);
                    while let Ok(Some(notification)) = listener.try_recv().await {
                        if !each(notification.payload()) {
                            return;
                        }
                    }
                }
            },
            Err(e) => outage.failed(task, &e),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
