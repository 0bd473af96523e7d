//! The poller: reads which campaigns are active every `dialer.status_poll_ms`
//! (at most a second) and at once when PostgreSQL NOTIFYs a status change,
//! and tells the supervisor, which starts and stops campaign actors to
//! match. Flips made by any SQL client are seen, since polling is the
//! guarantee. It is also the one reader of campaign plans: those of newly
//! active campaigns at once, every active campaign's in one batch every
//! `dialer.plan_refresh_seconds`, and a campaign's at once when contacts
//! are added to it or it or its configuration is updated (a NOTIFY), all
//! handed to the campaign actors through the supervisor. Supervised by the
//! supervisor, which restarts it when it fails.

use std::collections::HashSet;
use std::time::Duration;

use metrics::histogram;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::supervisor::SupervisorMessage;
use super::Deps;
use crate::db;
use crate::db::notify::{self, Outage};
use crate::monitoring;

pub struct Poller;

pub struct PollerState {
    deps: Deps,
    supervisor: ActorRef<SupervisorMessage>,
    listeners: Vec<JoinHandle<()>>,
    outage: Outage,
    plans_outage: Outage,
    /// The active campaigns at the last poll; `None` before the first.
    active: Option<HashSet<Uuid>>,
    /// Their fingerprint (`db::campaigns::active_fingerprint`).
    fingerprint: Option<(i64, i64)>,
}

pub enum PollerMessage {
    /// Read the active campaigns now.
    Poll,
    /// Read the plans of these campaigns, those of them that are active
    /// (`None`: of every active campaign), and hand them on.
    RefreshPlans(Option<Vec<Uuid>>),
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
        myself.send_interval(
            Duration::from_secs(deps.settings.plan_refresh_seconds),
            || PollerMessage::RefreshPlans(None),
        );
        let listeners = vec![
            tokio::spawn(listen_statuses(deps.pool.clone(), myself.clone())),
            tokio::spawn(listen_contacts(deps.pool.clone(), myself.clone())),
        ];
        myself.cast(PollerMessage::Poll)?;
        Ok(PollerState {
            deps,
            supervisor,
            listeners,
            outage: Outage::default(),
            plans_outage: Outage::default(),
            active: None,
            fingerprint: None,
        })
    }

    async fn handle(
        &self,
        _: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            PollerMessage::Poll => poll(state).await,
            PollerMessage::RefreshPlans(campaigns) => {
                let Some(active) = &state.active else {
                    return Ok(());
                };
                let wanted: Vec<Uuid> = match campaigns {
                    Some(ids) => ids.into_iter().filter(|id| active.contains(id)).collect(),
                    None => active.iter().copied().collect(),
                };
                refresh(state, wanted).await
            }
        }
    }

    async fn post_stop(
        &self,
        _: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.listeners.iter().for_each(JoinHandle::abort);
        Ok(())
    }
}

async fn poll(state: &mut PollerState) -> Result<(), ActorProcessingErr> {
    if !state.outage.may_try() {
        return Ok(());
    }
    // One cheap read when nothing changed, whatever the number of campaigns.
    let fingerprint = match db::campaigns::active_fingerprint(&state.deps.pool).await {
        Ok(f) => f,
        Err(e) => {
            state.outage.failed("reading campaign statuses", &e);
            return Ok(());
        }
    };
    if state.fingerprint == Some(fingerprint) {
        state.outage.recovered("reading campaign statuses");
        return Ok(());
    }
    let known: Vec<Uuid> = state.active.iter().flatten().copied().collect();
    let statuses = match db::campaigns::statuses(&state.deps.pool, &known).await {
        Ok(statuses) => statuses,
        Err(e) => {
            state.outage.failed("reading campaign statuses", &e);
            return Ok(());
        }
    };
    state.fingerprint = Some(fingerprint);
    state.outage.recovered("reading campaign statuses");
    let active: HashSet<Uuid> = statuses.iter().filter(|s| s.active).map(|s| s.id).collect();
    let started: Vec<Uuid> = match &state.active {
        Some(before) => {
            let flip = histogram!(monitoring::STATUS_FLIP_DETECTION);
            for s in &statuses {
                if s.active != before.contains(&s.id) {
                    flip.record(s.changed_seconds_ago.max(0.0));
                }
            }
            active.difference(before).copied().collect()
        }
        None => active.iter().copied().collect(),
    };
    state
        .supervisor
        .cast(SupervisorMessage::ActiveCampaigns(active.clone()))?;
    state.active = Some(active);
    if !started.is_empty() {
        refresh(state, started).await?;
    }
    Ok(())
}

/// Reads the plans of `campaigns` in one batch and hands them on.
async fn refresh(state: &mut PollerState, campaigns: Vec<Uuid>) -> Result<(), ActorProcessingErr> {
    if campaigns.is_empty() {
        return Ok(());
    }
    match db::campaigns::load_plans(&state.deps.pool, &campaigns).await {
        Ok(plans) => {
            state.plans_outage.recovered("reading campaign plans");
            state.supervisor.cast(SupervisorMessage::Plans(plans))?;
        }
        // The campaign actors keep their last plans meanwhile.
        Err(e) => state.plans_outage.failed("reading campaign plans", &e),
    }
    Ok(())
}

/// LISTENs for status changes and wakes the poller on each one.
async fn listen_statuses(pool: sqlx::PgPool, poller: ActorRef<PollerMessage>) {
    notify::listen(
        pool,
        notify::CAMPAIGN_STATUS,
        "listening for campaign status changes",
        |_| poller.cast(PollerMessage::Poll).is_ok(),
    )
    .await;
}

/// LISTENs for campaigns whose plan may have changed (contacts added, the
/// campaign or its configuration updated), and has their plans read at once.
async fn listen_contacts(pool: sqlx::PgPool, poller: ActorRef<PollerMessage>) {
    notify::listen(
        pool,
        notify::PLAN_CHANGED,
        "listening for plan changes",
        |payload| {
            let campaigns = (payload != "*").then(|| {
                payload
                    .split(',')
                    .filter_map(|id| id.parse().ok())
                    .collect()
            });
            poller.cast(PollerMessage::RefreshPlans(campaigns)).is_ok()
        },
    )
    .await;
}
