//! The supervision tree of the dialing engine.
//!
//! ```text
//! Supervisor
//! ├── Poller          campaign statuses (LISTEN/NOTIFY + polling) -> Supervisor
//! ├── Keeper          heartbeat lease, recovery of dead instances' claims
//! ├── Recorder        batched, fenced writes of call results
//! ├── Dispatcher      claims due contacts, starts attempts, hands them to lines
//! ├── Line x N        one call at a time through the telephony backend
//! └── Campaign x M    one per active campaign: its plan and open window gates
//! ```
//!
//! Durable truth is in PostgreSQL: every claim, attempt and result is
//! written there before the next step relies on it, so a crash at any point
//! loses nothing that recovery cannot put right.

pub mod campaign;
pub mod dispatcher;
pub mod keeper;
pub mod line;
pub mod poller;
pub mod recorder;
pub mod supervisor;

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorRef};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::clock::Clock;
use crate::db;
use crate::db::recovery::Recovered;
use crate::settings::DialerSettings;
use crate::telephony::Telephony;
use supervisor::{Supervisor, SupervisorMessage};

/// What every actor of the engine may need.
#[derive(Clone)]
pub struct Deps {
    pub pool: PgPool,
    pub clock: Arc<dyn Clock>,
    pub telephony: Arc<Telephony>,
    pub settings: DialerSettings,
    /// How often the dispatcher recounts the due backlog for its gauges; `None`
    /// when metrics are not served.
    pub backlog_every: Option<Duration>,
    /// This daemon's id as a claim owner.
    pub instance: Uuid,
    /// Cancelled once a drain has released every claim: calls still on the
    /// line are dropped rather than waited for.
    pub hang_up: CancellationToken,
}

/// Bound on every call from one actor to another.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a drain could not finish.
#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    #[error("the engine is already stopping")]
    AlreadyStopping,
    #[error("cannot release this instance's claims: {0}")]
    Release(db::DbError),
    #[error("cannot deregister this instance: {0}")]
    Deregister(db::DbError),
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainReport {
    /// True when every call in flight finished before the deadline.
    pub drained: bool,
    pub released: Recovered,
}

/// What a healthy engine reports of itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Health {
    pub busy: usize,
    pub lines: usize,
    /// Campaigns whose plan the dispatcher holds: those it may claim from.
    pub plans: usize,
    /// Claim cycles begun so far: each claims for the idle lines, if any.
    pub cycles: u64,
    /// Stopping: no new calls are placed, calls in flight are finishing.
    pub draining: bool,
}

/// Asks a running engine whether its supervision tree answers.
#[derive(Clone)]
pub struct Probe(ActorRef<SupervisorMessage>);

impl Probe {
    /// `Some` when the supervisor and the dispatcher both answer within `within`.
    pub async fn check(&self, within: Duration) -> Option<Health> {
        match self
            .0
            .call(
                |reply| SupervisorMessage::Health { within, reply },
                Some(within * 2),
            )
            .await
        {
            Ok(ractor::rpc::CallResult::Success(health)) => Some(health),
            _ => None,
        }
    }
}

/// A running engine.
pub struct Engine {
    supervisor: ActorRef<SupervisorMessage>,
    handle: JoinHandle<()>,
}

impl Engine {
    /// Registers this instance and starts the supervision tree.
    pub async fn start(deps: Deps) -> anyhow::Result<Engine> {
        let lease = deps.settings.lease_seconds as f64;
        db::instances::register(&deps.pool, deps.instance, lease, deps.settings.lines).await?;
        let instance = deps.instance;
        let (supervisor, handle) = Actor::spawn(None, Supervisor, deps).await?;
        tracing::info!(%instance, "dialing engine started");
        Ok(Engine { supervisor, handle })
    }

    /// Stops claiming, lets calls in flight finish until `deadline`, writes
    /// their results, releases whatever is left, then stops every actor.
    pub async fn stop(self, deadline: Duration) -> anyhow::Result<DrainReport> {
        let report = self
            .supervisor
            .call(
                |reply| SupervisorMessage::Drain { deadline, reply },
                Some(deadline + CALL_TIMEOUT * 2),
            )
            .await?;
        let report = match report {
            ractor::rpc::CallResult::Success(r) => r?,
            other => anyhow::bail!("the supervisor did not answer the drain: {other:?}"),
        };
        self.supervisor.stop(Some("shutdown".into()));
        let _ = tokio::time::timeout(CALL_TIMEOUT, self.handle).await;
        Ok(report)
    }

    pub fn probe(&self) -> Probe {
        Probe(self.supervisor.clone())
    }

    /// The supervisor's children as they are now: for fault injection in
    /// tests (a child stopped from outside is restarted like a failed one).
    pub fn actors(&self) -> Vec<ractor::ActorCell> {
        self.supervisor.get_children()
    }

    /// Resolves when the supervision tree has stopped (it failed past its restart budget).
    pub async fn stopped(&mut self) {
        let _ = (&mut self.handle).await;
    }
}
