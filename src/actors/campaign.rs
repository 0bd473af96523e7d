//! One campaign actor per active campaign. It owns the campaign's plan (its
//! configuration's schedule and policy, its agent defaults), re-reads it every
//! `dialer.plan_refresh_seconds`, and every second works out which of its
//! contacts' time zones are inside their calling windows, telling the
//! dispatcher whenever that changes. Supervised by the supervisor, which
//! starts it when the campaign becomes active, stops it when it does not,
//! and restarts it when it fails; when it stops, its gates close.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use uuid::Uuid;

use super::dispatcher::DispatcherMessage;
use super::{Deps, Outage};
use crate::db;
use crate::domain::plan::{CampaignPlan, Gate};

pub struct Campaign;

pub struct CampaignState {
    deps: Deps,
    id: Uuid,
    dispatcher: ActorRef<DispatcherMessage>,
    plan: Option<Arc<CampaignPlan>>,
    zones: Vec<String>,
    sent: Option<(Arc<CampaignPlan>, Vec<Gate>)>,
    outage: Outage,
}

pub enum CampaignMessage {
    /// Re-evaluate the windows at the current time.
    Tick,
    /// Re-read the plan and the zones in use, then re-evaluate.
    Refresh,
}

impl Actor for Campaign {
    type Msg = CampaignMessage;
    type State = CampaignState;
    type Arguments = (Deps, Uuid, ActorRef<DispatcherMessage>);

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        (deps, id, dispatcher): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        myself.send_interval(Duration::from_secs(1), || CampaignMessage::Tick);
        myself.send_interval(
            Duration::from_secs(deps.settings.plan_refresh_seconds),
            || CampaignMessage::Refresh,
        );
        myself.cast(CampaignMessage::Refresh)?;
        Ok(CampaignState {
            deps,
            id,
            dispatcher,
            plan: None,
            zones: Vec::new(),
            sent: None,
            outage: Outage::default(),
        })
    }

    async fn handle(
        &self,
        _: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let CampaignMessage::Refresh = msg {
            refresh(state).await;
        }
        publish(state)
    }

    async fn post_stop(
        &self,
        _: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let _ = state.dispatcher.cast(DispatcherMessage::Unplan(state.id));
        Ok(())
    }
}

async fn refresh(state: &mut CampaignState) {
    let pool = &state.deps.pool;
    match (
        db::dialer::load_plan(pool, state.id).await,
        db::dialer::pending_zones(pool, state.id).await,
    ) {
        (Ok(plan), Ok(zones)) => {
            state.plan = plan.map(Arc::new);
            state.zones = zones;
            state.outage.recovered("refreshing a campaign plan");
        }
        // The last plan is kept meanwhile.
        (Err(e), _) | (_, Err(e)) => state.outage.failed("refreshing a campaign plan", &e),
    }
}

/// Sends the plan and its open gates to the dispatcher when they changed.
fn publish(state: &mut CampaignState) -> Result<(), ActorProcessingErr> {
    let Some(plan) = state.plan.clone() else {
        return Ok(());
    };
    let gates = plan.open_gates(&state.zones, state.deps.clock.now());
    let changed = match &state.sent {
        Some((sent_plan, sent_gates)) => **sent_plan != *plan || *sent_gates != gates,
        None => true,
    };
    if changed {
        tracing::debug!(campaign_id = %state.id, open = gates.len(), "calling windows changed");
        state.sent = Some((plan.clone(), gates.clone()));
        state
            .dispatcher
            .cast(DispatcherMessage::Plan(plan, gates))?;
    }
    Ok(())
}
