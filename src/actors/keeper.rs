//! The keeper: renews this instance's lease every `dialer.heartbeat_seconds`,
//! recovers the claims of instances whose lease ran out (once this instance
//! has itself been connected to the database for a whole lease), every
//! `dialer.vacuum_seconds` vacuums `contacts` and `organization_due` (every
//! `dialer.attempts_vacuum_seconds`, `attempts`). The vacuums run in
//! tasks of their own, so neither ever holds up the lease. Supervised by the supervisor, which restarts it when it
//! fails; a database outage only delays it.

use std::future::Future;
use std::time::{Duration, Instant};

use metrics::counter;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::task::JoinHandle;

use super::Deps;
use crate::db::instances::QueueTable;
use crate::db::notify::Outage;
use crate::db::recovery::Interruption;
use crate::db::{instances, recovery};
use crate::monitoring;

pub struct Keeper;

pub struct KeeperState {
    deps: Deps,
    outage: Outage,
    /// Since when every beat has reached the database: set by the first
    /// beat after a failure (or start), cleared by a failure.
    connected_since: Option<Instant>,
    vacuum_contacts: Chore,
    vacuum_attempts: Chore,
}

pub enum KeeperMessage {
    /// Heartbeat, then recover dead instances' claims; re-armed after each.
    Beat,
}

/// Work started on a timer at most every `every`, in a task of its own;
/// never two at once.
pub(super) struct Chore {
    every: Option<Duration>,
    last: Option<Instant>,
    task: Option<JoinHandle<()>>,
}

impl Chore {
    /// `None`: never. `first_now`: on the first beat, else after `every`.
    pub(super) fn new(every: Option<Duration>, first_now: bool) -> Self {
        Chore {
            every,
            last: (!first_now).then(Instant::now),
            task: None,
        }
    }

    pub(super) fn maybe_run<F: Future<Output = ()> + Send + 'static>(
        &mut self,
        work: impl FnOnce() -> F,
    ) {
        let Some(every) = self.every else { return };
        if self.last.is_some_and(|t| t.elapsed() < every)
            || self.task.as_ref().is_some_and(|t| !t.is_finished())
        {
            return;
        }
        self.last = Some(Instant::now());
        self.task = Some(tokio::spawn(work()));
    }

    pub(super) fn abort(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Actor for Keeper {
    type Msg = KeeperMessage;
    type State = KeeperState;
    type Arguments = Deps;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        deps: Deps,
    ) -> Result<Self::State, ActorProcessingErr> {
        // Exposed from the start, at 0, so an alert on its increase sees a series.
        counter!(monitoring::LEASES_LOST).increment(0);
        myself.cast(KeeperMessage::Beat)?;
        let every = |seconds: u64| (seconds > 0).then(|| Duration::from_secs(seconds));
        Ok(KeeperState {
            vacuum_contacts: Chore::new(every(deps.settings.vacuum_seconds), false),
            vacuum_attempts: Chore::new(every(deps.settings.attempts_vacuum_seconds), false),
            deps,
            outage: Outage::default(),
            connected_since: None,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        _: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // The next beat is a heartbeat after this one ends, however long a
        // slow database made it: beats never pile up.
        let every = Duration::from_secs(state.deps.settings.heartbeat_seconds);
        let pool = &state.deps.pool;
        state
            .vacuum_contacts
            .maybe_run(|| vacuum(pool.clone(), QueueTable::Contacts));
        state
            .vacuum_attempts
            .maybe_run(|| vacuum(pool.clone(), QueueTable::Attempts));
        let lease = Duration::from_secs(state.deps.settings.lease_seconds);
        let judge = may_judge(state.connected_since, Instant::now(), lease);
        match beat(&state.deps, judge).await {
            Ok(()) => {
                state.connected_since.get_or_insert_with(Instant::now);
                state.outage.recovered("heartbeat and recovery");
            }
            Err(e) => {
                state.connected_since = None;
                state.outage.failed("heartbeat and recovery", &e);
            }
        }
        myself.send_after(every, || KeeperMessage::Beat);
        Ok(())
    }

    async fn post_stop(
        &self,
        _: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.vacuum_contacts.abort();
        state.vacuum_attempts.abort();
        Ok(())
    }
}

async fn vacuum(pool: sqlx::PgPool, table: QueueTable) {
    let began = Instant::now();
    match instances::vacuum(&pool, table).await {
        Ok(done) => {
            let took_ms = began.elapsed().as_millis() as u64;
            tracing::debug!(?table, done, took_ms, "vacuumed a queue table");
        }
        Err(e) => tracing::warn!(?table, error = %e, "cannot vacuum a queue table"),
    }
}

/// The gauge keeps its last value when the count fails (an outage is
/// already reported by the heartbeat).
/// Whether this instance may judge others dead: only once it has itself
/// reached the database for a whole lease since its last failure (or its
/// start). A lease that ran out while the database could not be reached
/// is no sign of death: every live instance renews its lease within a
/// heartbeat of the database coming back, well inside that lease.
fn may_judge(connected_since: Option<Instant>, now: Instant, lease: Duration) -> bool {
    connected_since.is_some_and(|since| now.duration_since(since) >= lease)
}

/// Renews the lease; when `judge`, recovers the claims of instances whose
/// lease ran out (by the database's clock).
async fn beat(deps: &Deps, judge: bool) -> Result<(), crate::db::DbError> {
    let lease = deps.settings.lease_seconds as f64;
    if !instances::heartbeat(&deps.pool, deps.instance, lease, deps.settings.lines).await? {
        counter!(monitoring::LEASES_LOST).increment(1);
        tracing::warn!(instance = %deps.instance, "this instance's lease had expired; registered again");
    }
    if !judge {
        return Ok(());
    }
    let dead: Vec<_> = instances::dead_owners(&deps.pool)
        .await?
        .into_iter()
        .filter(|id| *id != deps.instance)
        .collect();
    if !dead.is_empty() {
        let done = recovery::recover(
            &deps.pool,
            &dead,
            None,
            deps.clock.now(),
            Interruption::OwnerStopped,
        )
        .await?;
        counter!(monitoring::CLAIMS_RECOVERED, "state" => "released").increment(done.released);
        counter!(monitoring::CLAIMS_RECOVERED, "state" => "interrupted")
            .increment(done.interrupted);
        tracing::warn!(
            instances = dead.len(),
            released = done.released,
            interrupted = done.interrupted,
            "recovered the claims of stopped instances"
        );
    }
    instances::forget_dead(&deps.pool).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    use super::*;

    #[test]
    fn an_instance_judges_others_only_after_a_whole_lease_connected() {
        let lease = Duration::from_secs(10);
        let t0 = Instant::now();
        assert!(!may_judge(None, t0, lease), "never while cut off");
        assert!(
            !may_judge(Some(t0), t0, lease),
            "not on the first beat back"
        );
        assert!(!may_judge(
            Some(t0),
            t0 + lease - Duration::from_millis(1),
            lease
        ));
        assert!(may_judge(Some(t0), t0 + lease, lease));
    }

    /// Starts a chore that counts its runs and takes `busy` to finish.
    fn run(chore: &mut Chore, runs: &Arc<AtomicU32>, busy: Duration) {
        let runs = runs.clone();
        chore.maybe_run(|| async move {
            runs.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(busy).await;
        });
    }

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_chore_runs_at_most_every_interval_and_never_twice_at_once() {
        let runs = Arc::new(AtomicU32::new(0));
        let every = Duration::from_millis(200);

        // First on the first beat: once, not again within the interval.
        let mut chore = Chore::new(Some(every), true);
        run(&mut chore, &runs, Duration::ZERO);
        settle().await;
        run(&mut chore, &runs, Duration::ZERO);
        settle().await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        tokio::time::sleep(every).await;
        run(&mut chore, &runs, Duration::from_secs(3600));
        settle().await;
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        // Past the interval but the last run is still going: not again.
        tokio::time::sleep(every).await;
        run(&mut chore, &runs, Duration::ZERO);
        settle().await;
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        chore.abort();
        settle().await;
        run(&mut chore, &runs, Duration::ZERO);
        settle().await;
        assert_eq!(runs.load(Ordering::SeqCst), 3);

        // Not on the first beat when asked so, and never without an interval.
        let mut later = Chore::new(Some(every), false);
        let mut never = Chore::new(None, true);
        run(&mut later, &runs, Duration::ZERO);
        run(&mut never, &runs, Duration::ZERO);
        settle().await;
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        tokio::time::sleep(every).await;
        run(&mut later, &runs, Duration::ZERO);
        run(&mut never, &runs, Duration::ZERO);
        settle().await;
        assert_eq!(runs.load(Ordering::SeqCst), 4);
    }
}
