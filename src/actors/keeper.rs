//! The keeper: renews this instance's lease every `dialer.heartbeat_seconds`,
//! recovers the claims of instances whose lease ran out, and every
//! `dialer.vacuum_seconds` vacuums the queue tables, in a task of its own so
//! a long vacuum never holds up the lease. Supervised by
//! the supervisor, which restarts it when it fails; a database outage only
//! delays it.

use std::time::{Duration, Instant};

use metrics::{counter, gauge};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::task::JoinHandle;

use super::{Deps, Outage};
use crate::db::recovery::Interruption;
use crate::db::{instances, recovery};
use crate::monitoring;

pub struct Keeper;

pub struct KeeperState {
    deps: Deps,
    outage: Outage,
    last_vacuum: Instant,
    vacuum: Option<JoinHandle<()>>,
}

pub enum KeeperMessage {
    /// Heartbeat, then recover dead instances' claims.
    Beat,
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
        myself.send_interval(Duration::from_secs(deps.settings.heartbeat_seconds), || {
            KeeperMessage::Beat
        });
        myself.cast(KeeperMessage::Beat)?;
        Ok(KeeperState {
            deps,
            outage: Outage::default(),
            last_vacuum: Instant::now(),
            vacuum: None,
        })
    }

    async fn handle(
        &self,
        _: ActorRef<Self::Msg>,
        _: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        maybe_vacuum(state);
        match beat(&state.deps).await {
            Ok(()) => state.outage.recovered("heartbeat and recovery"),
            Err(e) => state.outage.failed("heartbeat and recovery", &e),
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(vacuum) = state.vacuum.take() {
            vacuum.abort();
        }
        Ok(())
    }
}

fn maybe_vacuum(state: &mut KeeperState) {
    let every = state.deps.settings.vacuum_seconds;
    if every == 0 || state.last_vacuum.elapsed() < Duration::from_secs(every) {
        return;
    }
    if state.vacuum.as_ref().is_some_and(|v| !v.is_finished()) {
        return;
    }
    state.last_vacuum = Instant::now();
    let pool = state.deps.pool.clone();
    state.vacuum = Some(tokio::spawn(async move {
        let began = Instant::now();
        match instances::vacuum(&pool).await {
            Ok(done) => {
                let took_ms = began.elapsed().as_millis() as u64;
                tracing::debug!(done, took_ms, "vacuumed the queue tables");
            }
            Err(e) => tracing::warn!(error = %e, "cannot vacuum the queue tables"),
        }
    }));
}

async fn beat(deps: &Deps) -> Result<(), crate::db::DbError> {
    let lease = deps.settings.lease_seconds as f64;
    if !instances::heartbeat(&deps.pool, deps.instance, lease).await? {
        tracing::warn!(instance = %deps.instance, "this instance's lease had expired; registered again");
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
    gauge!(monitoring::CONTACTS_DUE).set(crate::db::stats::due_backlog(&deps.pool).await? as f64);
    Ok(())
}
