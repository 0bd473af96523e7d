//! The poller: reads which campaigns are active every `dialer.status_poll_ms`
//! (at most a second) and at once when PostgreSQL NOTIFYs a status change,
//! and tells the supervisor, which starts and stops campaign actors to match.
//! Flips made by any SQL client are seen, since polling is the guarantee.
//! Supervised by the supervisor, which restarts it when it fails.

use std::time::Duration;

use metrics::histogram;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::supervisor::SupervisorMessage;
use super::{Deps, Outage};
use crate::db;
use crate::monitoring;

/// The channel the status trigger notifies.
pub const CHANNEL: &str = "dialerd_campaign_status";

pub struct Poller;

pub struct PollerState {
    deps: Deps,
    supervisor: ActorRef<SupervisorMessage>,
    listener: JoinHandle<()>,
    outage: Outage,
    /// The active campaigns at the last poll; `None` before the first.
    active: Option<Vec<Uuid>>,
}

pub enum PollerMessage {
    /// Read the active campaigns now.
    Poll,
}

impl Actor for Poller {
    type Msg = PollerMessage;
    type State = PollerState;
    type Arguments = (Deps, ActorRef<SupervisorMessage>);

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        (deps, supervisor): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        myself.send_interval(Duration::from_millis(deps.settings.status_poll_ms), || {
            PollerMessage::Poll
        });
        let listener = tokio::spawn(listen(deps.pool.clone(), myself.clone()));
        myself.cast(PollerMessage::Poll)?;
        Ok(PollerState {
            deps,
            supervisor,
            listener,
            outage: Outage::default(),
            active: None,
        })
    }

    async fn handle(
        &self,
        _: ActorRef<Self::Msg>,
        _: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if !state.outage.may_try() {
            return Ok(());
        }
        let known = state.active.as_deref().unwrap_or_default();
        match db::dialer::campaign_statuses(&state.deps.pool, known).await {
            Ok(statuses) => {
                state.outage.recovered("reading campaign statuses");
                let active: Vec<Uuid> =
                    statuses.iter().filter(|s| s.active).map(|s| s.id).collect();
                if let Some(before) = &state.active {
                    let flip = histogram!(monitoring::STATUS_FLIP_DETECTION);
                    for s in &statuses {
                        if s.active != before.contains(&s.id) {
                            flip.record(s.changed_seconds_ago.max(0.0));
                        }
                    }
                }
                state.active = Some(active.clone());
                state
                    .supervisor
                    .cast(SupervisorMessage::ActiveCampaigns(active))?;
            }
            Err(e) => state.outage.failed("reading campaign statuses", &e),
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.listener.abort();
        Ok(())
    }
}

/// LISTENs for status changes and wakes the poller on each one.
async fn listen(pool: sqlx::PgPool, poller: ActorRef<PollerMessage>) {
    super::listen(
        pool,
        CHANNEL,
        "listening for campaign status changes",
        |_| poller.cast(PollerMessage::Poll).is_ok(),
    )
    .await;
}
