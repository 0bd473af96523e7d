//! One campaign actor per active campaign. It holds the campaign's plan
//! (its configuration's schedule and policy, its agent defaults) and the
//! time zones its waiting contacts use, both handed to it by the poller,
//! which reads every active campaign's plan in one batch every
//! `dialer.plan_refresh_seconds` and a campaign's at once when contacts are
//! added to it. While it has waiting contacts it works out which of their
//! zones are inside their calling windows at each whole minute (the only
//! moments a window opens or closes), telling the dispatcher whenever that
//! changes; with none it does nothing at all.
//! Supervised by the supervisor, which starts it when the campaign becomes
//! active, stops it when it does not, and restarts it when it fails (it
//! then waits for the next plan); when it stops, its gates close.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use uuid::Uuid;

use super::dispatcher::DispatcherMessage;
use super::Deps;
use crate::domain::plan::{CampaignPlan, Gate};

/// When the open gates are next worked out while contacts wait: the next
/// whole minute, when a window may open or close (windows start and end on
/// whole local minutes, and every zone's offset is whole minutes), a
/// millisecond past it so the clock reads the new minute.
fn next_tick(now: DateTime<Utc>) -> DateTime<Utc> {
    let minute = now.timestamp().div_euclid(60) + 1;
    DateTime::from_timestamp(minute * 60, 1_000_000).unwrap_or(now)
}

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
            let clock = &state.deps.clock;
            myself.send_after(clock.until(next_tick(clock.now())), || {
                CampaignMessage::Tick
            });
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn windows_are_worked_out_again_just_past_each_whole_minute() {
        let at = |h, m, s, ms| {
            Utc.with_ymd_and_hms(2026, 12, 2, h, m, s).unwrap() + chrono::Duration::milliseconds(ms)
        };
        assert_eq!(next_tick(at(9, 0, 0, 0)), at(9, 1, 0, 1));
        assert_eq!(next_tick(at(9, 0, 59, 999)), at(9, 1, 0, 1));
        assert_eq!(
            next_tick(at(23, 59, 30, 0)),
            at(0, 0, 0, 1) + chrono::Duration::days(1)
        );
        // Fired a hair early (the tick's real time against the clock): the
        // same minute's end again, not a minute later.
        assert_eq!(next_tick(at(9, 0, 59, 999)), next_tick(at(9, 0, 1, 0)));
    }
}
