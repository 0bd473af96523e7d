//! The root of the engine. Nobody supervises it: when it stops, the engine
//! has stopped, and the daemon exits (systemd restarts it).
//!
//! It supervises the poller, keeper, recorder, dispatcher, the line pool and
//! one campaign actor per active campaign. Poller, keeper and campaign actors
//! are restarted when they fail; a failed line is replaced and its call is
//! recorded as `interrupted`. The recorder and dispatcher hold the calls in
//! flight; if either fails the supervisor stops, and the instance's lease
//! lets another daemon (or this one, restarted) recover its claims. Restarts
//! are capped: past `MAX_RESTARTS` in `RESTART_WINDOW` the supervisor stops.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics::{counter, gauge};
use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};
use uuid::Uuid;

use super::campaign::{Campaign, CampaignMessage};
use super::dispatcher::{Dispatcher, DispatcherMessage};
use super::keeper::{Keeper, KeeperMessage};
use super::line::{Line, LineArgs, LineMessage};
use super::poller::{Poller, PollerMessage};
use super::recorder::{Recorder, RecorderMessage};
use super::{Deps, DrainError, DrainReport, Health, CALL_TIMEOUT};
use crate::db;
use crate::db::recovery::Interruption;
use crate::domain::plan::CampaignPlan;
use crate::monitoring;

const MAX_RESTARTS: usize = 20;
const RESTART_WINDOW: Duration = Duration::from_secs(60);

pub struct Supervisor;

pub struct SupervisorState {
    deps: Deps,
    poller: ActorRef<PollerMessage>,
    keeper: ActorRef<KeeperMessage>,
    recorder: ActorRef<RecorderMessage>,
    dispatcher: ActorRef<DispatcherMessage>,
    lines: Vec<ActorRef<LineMessage>>,
    campaigns: HashMap<Uuid, ActorRef<CampaignMessage>>,
    /// Campaign actors told to stop, whose exit is expected.
    stopping: HashSet<ActorId>,
    restarts: Vec<Instant>,
    drain: Drain,
}

/// Where the engine is in its stop.
enum Drain {
    /// Dialing.
    Running,
    /// No new calls; waiting for the calls in flight, then answering `reply`.
    Draining(RpcReplyPort<Result<DrainReport, DrainError>>),
    /// Every claim released; the engine only waits to be stopped.
    Drained,
}

pub enum SupervisorMessage {
    /// The campaigns that are active now, from the poller.
    ActiveCampaigns(HashSet<Uuid>),
    /// Campaign plans and the zones of their waiting contacts, read in one
    /// batch by the poller: each goes to its campaign actor.
    Plans(Vec<(CampaignPlan, Vec<String>)>),
    /// Stop claiming, wait until `deadline` for calls in flight, write
    /// results, release what is left, and report to `reply`.
    Drain {
        deadline: Duration,
        reply: RpcReplyPort<Result<DrainReport, DrainError>>,
    },
    /// The dispatcher's calls in flight have all ended (`drained`), or the
    /// drain's deadline passed first.
    CallsEnded { drained: bool },
    /// Answer with the line counts if the dispatcher answers within the
    /// duration; no answer at all otherwise.
    Health {
        within: Duration,
        reply: RpcReplyPort<Health>,
    },
}

impl Actor for Supervisor {
    type Msg = SupervisorMessage;
    type State = SupervisorState;
    type Arguments = Deps;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        deps: Deps,
    ) -> Result<Self::State, ActorProcessingErr> {
        let cell = myself.get_cell();
        let (recorder, _) = Actor::spawn_linked(None, Recorder, deps.clone(), cell.clone()).await?;
        let (dispatcher, _) = Actor::spawn_linked(
            None,
            Dispatcher,
            (deps.clone(), recorder.clone()),
            cell.clone(),
        )
        .await?;
        recorder.cast(RecorderMessage::Tell(dispatcher.clone()))?;
        let mut lines = Vec::with_capacity(deps.settings.lines as usize);
        for index in 0..deps.settings.lines as usize {
            lines.push(spawn_line(&deps, index, &dispatcher, &recorder, &cell).await?);
        }
        dispatcher.cast(DispatcherMessage::AddLines(lines.clone()))?;
        let (poller, _) =
            Actor::spawn_linked(None, Poller, (deps.clone(), myself.clone()), cell.clone()).await?;
        let (keeper, _) = Actor::spawn_linked(None, Keeper, deps.clone(), cell).await?;
        Ok(SupervisorState {
            deps,
            poller,
            keeper,
            recorder,
            dispatcher,
            lines,
            campaigns: HashMap::new(),
            stopping: HashSet::new(),
            restarts: Vec::new(),
            drain: Drain::Running,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMessage::ActiveCampaigns(active) if matches!(state.drain, Drain::Running) => {
                sync_campaigns(&myself, state, active).await?;
            }
            SupervisorMessage::ActiveCampaigns(_) => {}
            SupervisorMessage::Plans(plans) => {
                for (plan, zones) in plans {
                    if let Some(actor) = state.campaigns.get(&plan.campaign_id) {
                        let plan = Arc::new(plan);
                        let _ = actor.cast(CampaignMessage::Plan { plan, zones });
                    }
                }
            }
            SupervisorMessage::Health { within, reply } => {
                let busy = state
                    .dispatcher
                    .call(DispatcherMessage::Busy, Some(within))
                    .await;
                if let Ok(ractor::rpc::CallResult::Success(activity)) = busy {
                    let _ = reply.send(Health {
                        busy: activity.busy,
                        plans: activity.plans,
                        cycles: activity.cycles,
                        lines: state.lines.len(),
                        draining: !matches!(state.drain, Drain::Running),
                    });
                }
            }
            SupervisorMessage::Drain { deadline, reply } => match state.drain {
                Drain::Running => {
                    state.drain = Drain::Draining(reply);
                    start_drain(&myself, state, deadline);
                }
                Drain::Draining(_) | Drain::Drained => {
                    let _ = reply.send(Err(DrainError::AlreadyStopping));
                }
            },
            SupervisorMessage::CallsEnded { drained } => {
                if let Drain::Draining(reply) = std::mem::replace(&mut state.drain, Drain::Drained)
                {
                    let _ = reply.send(finish_drain(state, drained).await);
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        evt: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match evt {
            SupervisionEvent::ActorFailed(cell, err) => {
                tracing::error!(actor = %cell.get_id(), error = %err, "actor failed");
                restart(&myself, state, cell).await
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                let id = cell.get_id();
                if state.stopping.remove(&id) || !matches!(state.drain, Drain::Running) {
                    return Ok(());
                }
                tracing::error!(actor = %id, ?reason, "actor stopped unexpectedly");
                restart(&myself, state, cell).await
            }
            _ => Ok(()),
        }
    }

    async fn post_stop(
        &self,
        myself: ActorRef<Self::Msg>,
        _: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        myself
            .stop_children_and_wait(Some("supervisor stopping".into()), Some(CALL_TIMEOUT))
            .await;
        tracing::info!("dialing engine stopped");
        Ok(())
    }
}

async fn spawn_line(
    deps: &Deps,
    index: usize,
    dispatcher: &ActorRef<DispatcherMessage>,
    recorder: &ActorRef<RecorderMessage>,
    supervisor: &ActorCell,
) -> Result<ActorRef<LineMessage>, ActorProcessingErr> {
    let args = LineArgs {
        deps: deps.clone(),
        index,
        dispatcher: dispatcher.clone(),
        recorder: recorder.clone(),
    };
    Ok(Actor::spawn_linked(None, Line, args, supervisor.clone())
        .await?
        .0)
}

/// Starts actors for newly active campaigns and stops those no longer active.
async fn sync_campaigns(
    myself: &ActorRef<SupervisorMessage>,
    state: &mut SupervisorState,
    active: HashSet<Uuid>,
) -> Result<(), ActorProcessingErr> {
    for (id, actor) in state.campaigns.iter() {
        if !active.contains(id) {
            tracing::info!(campaign_id = %id, "campaign no longer active; stopping its actor");
            state.stopping.insert(actor.get_id());
            actor.stop(Some("campaign not active".into()));
        }
    }
    state.campaigns.retain(|id, _| active.contains(id));
    for id in active {
        if !state.campaigns.contains_key(&id) {
            let args = (state.deps.clone(), id, state.dispatcher.clone());
            let (actor, _) = Actor::spawn_linked(None, Campaign, args, myself.get_cell()).await?;
            tracing::info!(campaign_id = %id, "campaign active; started its actor");
            state.campaigns.insert(id, actor);
        }
    }
    gauge!(monitoring::CAMPAIGNS_ACTIVE).set(state.campaigns.len() as f64);
    Ok(())
}

/// Restarts a failed child, within the restart budget.
async fn restart(
    myself: &ActorRef<SupervisorMessage>,
    state: &mut SupervisorState,
    cell: ActorCell,
) -> Result<(), ActorProcessingErr> {
    let now = Instant::now();
    state
        .restarts
        .retain(|t| now.duration_since(*t) < RESTART_WINDOW);
    state.restarts.push(now);
    if state.restarts.len() > MAX_RESTARTS {
        return Err(format!(
            "more than {MAX_RESTARTS} actor restarts in {RESTART_WINDOW:?}; giving up"
        )
        .into());
    }
    let id = cell.get_id();
    let me = myself.get_cell();
    let kind = if let Some((campaign, _)) = state.campaigns.iter().find(|(_, a)| a.get_id() == id) {
        let campaign = *campaign;
        let args = (state.deps.clone(), campaign, state.dispatcher.clone());
        let (actor, _) = Actor::spawn_linked(None, Campaign, args, me).await?;
        state.campaigns.insert(campaign, actor);
        // Its plan comes from the poller, as for a campaign just started.
        let _ = state
            .poller
            .cast(PollerMessage::RefreshPlans(Some(vec![campaign])));
        "campaign"
    } else if let Some(index) = state.lines.iter().position(|l| l.get_id() == id) {
        let line = spawn_line(&state.deps, index, &state.dispatcher, &state.recorder, &me).await?;
        state.lines[index] = line.clone();
        state
            .dispatcher
            .cast(DispatcherMessage::ReplaceLine { index, line })?;
        "line"
    } else if state.poller.get_id() == id {
        state.poller = Actor::spawn_linked(None, Poller, (state.deps.clone(), myself.clone()), me)
            .await?
            .0;
        "poller"
    } else if state.keeper.get_id() == id {
        state.keeper = Actor::spawn_linked(None, Keeper, state.deps.clone(), me)
            .await?
            .0;
        "keeper"
    } else {
        // The dispatcher or the recorder: the calls they held cannot be
        // rebuilt here; stop, and let lease recovery close them.
        return Err(format!("core actor {id} failed; stopping the engine").into());
    };
    counter!(monitoring::ACTOR_RESTARTS, "actor" => kind).increment(1);
    tracing::warn!(actor = %id, kind, "actor restarted");
    Ok(())
}

/// Stops new calls and asks the dispatcher to answer when its last call
/// has ended; `CallsEnded` comes back then, or at the deadline. The
/// supervisor's mailbox stays open meanwhile (health checks, line restarts).
fn start_drain(myself: &ActorRef<SupervisorMessage>, state: &SupervisorState, deadline: Duration) {
    tracing::info!(
        deadline_seconds = deadline.as_secs_f64(),
        "draining: no new calls"
    );
    for campaign in state.campaigns.values() {
        campaign.stop(Some("draining".into()));
    }
    let (dispatcher, me) = (state.dispatcher.clone(), myself.clone());
    tokio::spawn(async move {
        let answer = dispatcher
            .call(DispatcherMessage::Drain, Some(deadline))
            .await;
        let drained = matches!(answer, Ok(ractor::rpc::CallResult::Success(())));
        let _ = me.cast(SupervisorMessage::CallsEnded { drained });
    });
}

/// Once the calls have ended (or the deadline passed): writes the results,
/// stops the lease, releases every claim left, deregisters.
async fn finish_drain(
    state: &mut SupervisorState,
    drained: bool,
) -> Result<DrainReport, DrainError> {
    let deps = &state.deps;
    let _ = state
        .recorder
        .call(RecorderMessage::FlushNow, Some(CALL_TIMEOUT))
        .await;
    // No lease is needed past this point. The keeper stops first, after the
    // beat it may be in: a heartbeat after the deregistration below would
    // find no row and register this instance again.
    let keeper = state.keeper.get_cell();
    if keeper
        .stop_and_wait(Some("draining".into()), Some(CALL_TIMEOUT))
        .await
        .is_err()
    {
        let _ = keeper.kill_and_wait(Some(CALL_TIMEOUT)).await;
    }
    let released = db::recovery::recover(
        &deps.pool,
        &[deps.instance],
        None,
        deps.clock.now(),
        Interruption::OwnerStopped,
    )
    .await
    .map_err(DrainError::Release)?;
    db::instances::deregister(&deps.pool, deps.instance)
        .await
        .map_err(DrainError::Deregister)?;
    // Every result is written and every claim released: a line still in a
    // call has nothing left to save.
    deps.hang_up.cancel();
    tracing::info!(
        drained,
        released = released.released,
        interrupted = released.interrupted,
        "drain finished"
    );
    Ok(DrainReport { drained, released })
}
