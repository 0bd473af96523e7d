//! One campaign actor per active campaign. It holds the campaign's plan
//! (its configuration's schedule and policy, its agent defaults) and the
//! time zones its waiting contacts use, both handed to it by the poller,
//! which reads every active campaign's plan in one batch every
//! `dialer.plan_refresh_seconds` and a campaign's at once when contacts are
//! added to it. While it has waiting contacts it works out every second
//! which of their zones are inside their calling windows, telling the
//! dispatcher whenever that changes; with none it does nothing at all.
//! Supervised by the supervisor, which starts it when the campaign becomes
//! active, stops it when it does not, and restarts it when it fails (it
//! then waits for the next plan); when it stops, its gates close.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use uuid::Uuid;

use super::dispatcher::DispatcherMessage;
use super::Deps;
use crate::domain::plan::{CampaignPlan, Gate};

/// How often the open gates are worked out while contacts wait.
const TICK: Duration = Duration::from_secs(1);

pub struct Campaign;

pub struct CampaignState {
    deps: Deps,
    id: Uuid,
    dispatcher: ActorRef<DispatcherMessage>,
    plan: Option<Arc<CampaignPlan>>,
    zones: Vec<String>,
    sent: Option<(Arc<CampaignPlan>, Vec<Gate>)>,
    /// A `Tick` is scheduled.
    ticking: bool,
}

pub enum CampaignMessage {
    /// Re-evaluate the windows at the current time.
    Tick,
    /// The campaign's plan and the zones of its waiting contacts, as read now.
    Plan {
        plan: Arc<CampaignPlan>,
        zones: Vec<String>,
    },
}

impl Actor for Campaign {
    type Msg = CampaignMessage;
    type State = CampaignState;
    type Arguments = (Deps, Uuid, ActorRef<DispatcherMessage>);

    async fn pre_start(
        &self,
        _: ActorRef<Self::Msg>,
        (deps, id, dispatcher): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(CampaignState {
            deps,
            id,
            dispatcher,
            plan: None,
            zones: Vec::new(),
            sent: None,
            ticking: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            CampaignMessage::Tick => state.ticking = false,
            CampaignMessage::Plan { plan, zones } => {
                state.plan = Some(plan);
                state.zones = zones;
            }
        }
        publish(state)?;
        // Windows are evaluated only while contacts wait; re-armed after
        // each run, so ticks never pile up behind a slow one.
        if !state.zones.is_empty() && !state.ticking {
            state.ticking = true;
            myself.send_after(TICK, || CampaignMessage::Tick);
        }
        Ok(())
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
            .cast(DispatcherMessage::Plan { plan, gates })?;
    }
    Ok(())
}
