//! The poller: reads which campaigns are active every `dialer.status_poll_ms`
//! (at most a second) and at once when PostgreSQL NOTIFYs a status change,
//! and tells the supervisor, which starts and stops campaign actors to match.
//! Flips made by any SQL client are seen, since polling is the guarantee.
//! Supervised by the supervisor, which restarts it when it fails.

use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use sqlx::postgres::PgListener;
use tokio::task::JoinHandle;

use super::supervisor::SupervisorMessage;
use super::{Deps, Outage};
use crate::db;

/// The channel the status trigger notifies.
pub const CHANNEL: &str = "dialerd_campaign_status";

pub struct Poller;

pub struct PollerState {
    deps: Deps,
    supervisor: ActorRef<SupervisorMessage>,
    listener: JoinHandle<()>,
    outage: Outage,
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
        })
    }

    async fn handle(
        &self,
        _: ActorRef<Self::Msg>,
        _: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match db::dialer::active_campaigns(&state.deps.pool).await {
            Ok(active) => {
                state.outage.recovered("reading campaign statuses");
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

/// LISTENs for status changes and wakes the poller on each one; reconnects
/// after a pause when the connection drops.
async fn listen(pool: sqlx::PgPool, poller: ActorRef<PollerMessage>) {
    loop {
        match PgListener::connect_with(&pool).await {
            Ok(mut listener) => {
                if let Err(e) = listener.listen(CHANNEL).await {
                    tracing::warn!(error = %e, "cannot LISTEN for campaign status changes");
                } else {
                    while listener.try_recv().await.ok().flatten().is_some() {
                        if poller.cast(PollerMessage::Poll).is_err() {
                            return;
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot LISTEN for campaign status changes"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
