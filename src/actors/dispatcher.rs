//! The dispatcher: whenever lines are idle it claims due contacts (every
//! gate checked in the claim), resolves each call's number and agent from
//! its campaign's plan, sets a line aside for each call, and has a task of
//! its own write the attempts; once they are committed it hands each call
//! to its line. The next claim does not wait for the attempts. With
//! nothing due anywhere it sleeps until the earliest moment something may
//! be (NOTIFY `dialerd_due` wakes it sooner); with the global limit reached
//! it claims again as soon as the recorder writes results. Supervised
//! by the supervisor; if it dies the engine stops (it holds which line has
//! which call) and lease recovery closes those calls.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics::{counter, gauge, histogram};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use uuid::Uuid;

use super::keeper::Chore;
use super::line::{Call, LineMessage};
use super::recorder::RecorderMessage;
use super::Deps;
use crate::db::attempts;
use crate::db::claim::{self, ClaimFailed, Claimed, NewAttempt, NoCall, OpenGates};
use crate::db::notify::Outage;
use crate::db::recovery::{recover, Interruption};
use crate::domain::call::CallReport;
use crate::domain::evidence;
use crate::domain::phone::E164;
use crate::domain::plan::{CampaignPlan, Gate};
use crate::monitoring;
use crate::telephony::CallRequest;

pub struct Dispatcher;

pub struct DispatcherState {
    deps: Deps,
    recorder: ActorRef<RecorderMessage>,
    lines: Vec<ActorRef<LineMessage>>,
    /// Idle line indexes: lines neither in `busy` nor set aside for a call
    /// whose attempt is being written (`starting`).
    idle: Vec<usize>,
    busy: HashMap<usize, Arc<Call>>,
    /// Lines set aside for claimed calls whose attempts are being written.
    starting: usize,
    plans: HashMap<Uuid, Arc<CampaignPlan>>,
    /// The gates open now of every campaign in `plans`.
    gates: OpenGates,
    claiming: bool,
    /// The last claim found work: more is likely due, so freed lines claim
    /// at once instead of waiting for the timer.
    hungry: bool,
    /// The last claim was cut short by the global limit: the results the
    /// recorder writes free slots for it, so each write wakes a claim.
    capped: bool,
    /// The last claim found nothing due anywhere before this: timer ticks
    /// claim nothing until then (at most `dialer.idle_recheck_ms` on), and
    /// a NOTIFY that work is due sooner (`Due`) ends it.
    quiet_until: Option<Instant>,
    /// LISTENs for `Due`; stopped with the dispatcher.
    listener: tokio::task::JoinHandle<()>,
    /// A `Wake` is queued.
    woken: bool,
    last_cycle: Option<Instant>,
    /// Contacts whose claim may have committed with no call placed (the
    /// commit's answer was lost): recovered on the next cycle.
    stranded: Vec<Uuid>,
    outage: Outage,
    /// Draining: answered once no call is in flight or starting.
    drain: Option<RpcReplyPort<()>>,
    /// Claim cycles begun: each looks for idle lines and claims for them.
    cycles: u64,
    /// Recounts the due backlog, and what of it the open gates let through,
    /// for the gauges (every `metrics.backlog_seconds`, when metrics are on).
    backlog: Chore,
}

/// What the dispatcher is doing, as the health probe reads it.
#[derive(Debug, Clone, Copy)]
pub struct Activity {
    /// Lines with a call in flight or being started.
    pub busy: usize,
    /// Campaigns whose plan it holds.
    pub plans: usize,
    /// Claim cycles begun.
    pub cycles: u64,
}

pub enum DispatcherMessage {
    /// Timer, re-armed after each: claim for idle lines unless a cycle ran
    /// within the interval, or the last found nothing due before
    /// `quiet_until`.
    Tick,
    /// Lines freed while more work is due, or slots freed while the global
    /// limit held claims back: claim for every line idle by the time this
    /// is handled. At most one is queued, so lines that free up while a
    /// cycle waits on the database are claimed for together.
    Wake,
    /// The recorder wrote results: their calls' slots are free.
    Recorded,
    /// A statement made work due sooner than the dispatcher sleeps (NOTIFY
    /// `db::notify::DUE`): claim now.
    Due,
    /// The line pool, once spawned.
    AddLines(Vec<ActorRef<LineMessage>>),
    /// A line was replaced after failing; its call, if any, was interrupted.
    ReplaceLine {
        index: usize,
        line: ActorRef<LineMessage>,
    },
    /// A line finished its call.
    LineIdle(usize),
    /// The attempts of a claim were written (`Ok`: the contacts that may be
    /// called) or not (`Err`: every contact of it is to be recovered).
    Started {
        calls: Vec<(usize, Call)>,
        written: Result<Vec<Uuid>, ClaimFailed>,
    },
    /// A campaign's plan and the gates open now.
    Plan {
        plan: Arc<CampaignPlan>,
        gates: Vec<Gate>,
    },
    /// A campaign stopped being active.
    Unplan(Uuid),
    /// Claim nothing more, and answer once the last call in flight has
    /// ended (at once when none is).
    Drain(RpcReplyPort<()>),
    /// What it is doing, for the health probe.
    Busy(RpcReplyPort<Activity>),
}

impl Actor for Dispatcher {
    type Msg = DispatcherMessage;
    type State = DispatcherState;
    type Arguments = (Deps, ActorRef<RecorderMessage>);

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        (deps, recorder): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        myself.send_after(
            Duration::from_millis(deps.settings.claim_interval_ms),
            || DispatcherMessage::Tick,
        );
        let listener = tokio::spawn(listen_due(deps.pool.clone(), myself.clone()));
        let backlog = Chore::new(deps.backlog_every, true);
        Ok(DispatcherState {
            deps,
            recorder,
            lines: Vec::new(),
            idle: Vec::new(),
            busy: HashMap::new(),
            starting: 0,
            plans: HashMap::new(),
            gates: OpenGates::default(),
            claiming: true,
            hungry: false,
            capped: false,
            quiet_until: None,
            listener,
            woken: false,
            last_cycle: None,
            stranded: Vec::new(),
            outage: Outage::default(),
            drain: None,
            cycles: 0,
            backlog,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.listener.abort();
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            DispatcherMessage::Tick => {
                // The gates are copied only when a recount starts.
                let (deps, gates) = (&state.deps, &state.gates);
                state.backlog.maybe_run(|| {
                    count_backlog(deps.pool.clone(), deps.clock.now(), gates.clone())
                });
                // A cycle a freed line asked for may have run since the
                // last tick: the next one is due an interval after it.
                let interval = Duration::from_millis(state.deps.settings.claim_interval_ms);
                let since = state.last_cycle.map(|t| t.elapsed());
                let quiet = state.quiet_until.is_some_and(|t| Instant::now() < t);
                let next = match since {
                    Some(since) if since < interval && !state.hungry => interval - since,
                    _ if quiet && !state.hungry => interval,
                    _ => {
                        cycle(&myself, state).await;
                        interval
                    }
                };
                myself.send_after(next, || DispatcherMessage::Tick);
            }
            DispatcherMessage::Wake => {
                state.woken = false;
                if state.hungry || state.capped {
                    cycle(&myself, state).await;
                }
            }
            DispatcherMessage::Due => {
                if state.quiet_until.take().is_some() {
                    cycle(&myself, state).await;
                }
            }
            DispatcherMessage::Recorded => {
                if state.capped && state.claiming && !state.idle.is_empty() {
                    wake(&myself, state);
                }
            }
            DispatcherMessage::AddLines(lines) => {
                state
                    .idle
                    .extend(state.lines.len()..state.lines.len() + lines.len());
                state.lines.extend(lines);
                gauge!(monitoring::LINES).set(state.lines.len() as f64);
            }
            DispatcherMessage::ReplaceLine { index, line } => {
                state.lines[index] = line;
                if let Some(call) = state.busy.remove(&index) {
                    interrupted(state, call)?;
                    free_line(&myself, state, index);
                }
            }
            DispatcherMessage::LineIdle(index) => {
                if state.busy.remove(&index).is_some() {
                    free_line(&myself, state, index);
                }
            }
            DispatcherMessage::Started { calls, written } => {
                started(&myself, state, calls, written);
            }
            DispatcherMessage::Plan { plan, gates } => {
                state
                    .gates
                    .set(plan.organization_id, plan.campaign_id, &gates);
                state.plans.insert(plan.campaign_id, plan);
            }
            DispatcherMessage::Unplan(campaign) => {
                state.gates.remove(campaign);
                state.plans.remove(&campaign);
            }
            DispatcherMessage::Drain(reply) => {
                state.claiming = false;
                state.drain = Some(reply);
                answer_drain(state);
            }
            DispatcherMessage::Busy(reply) => {
                let _ = reply.send(Activity {
                    busy: state.busy.len() + state.starting,
                    plans: state.plans.len(),
                    cycles: state.cycles,
                });
            }
        }
        Ok(())
    }
}

fn free_line(myself: &ActorRef<DispatcherMessage>, state: &mut DispatcherState, index: usize) {
    state.idle.push(index);
    gauge!(monitoring::LINES_BUSY).set(state.busy.len() as f64);
    if state.hungry && state.claiming {
        wake(myself, state);
    }
    answer_drain(state);
}

/// Answers a drain once nothing is in flight: the last call ended.
fn answer_drain(state: &mut DispatcherState) {
    if state.busy.is_empty() && state.starting == 0 {
        if let Some(reply) = state.drain.take() {
            let _ = reply.send(());
        }
    }
}

fn wake(myself: &ActorRef<DispatcherMessage>, state: &mut DispatcherState) {
    if !state.woken {
        state.woken = myself.cast(DispatcherMessage::Wake).is_ok();
    }
}

/// Records a call whose line died as `interrupted`, decided by its policy.
fn interrupted(state: &DispatcherState, call: Arc<Call>) -> Result<(), ActorProcessingErr> {
    let now = state.deps.clock.now();
    let report = CallReport::interrupted("the line placing the call failed", now);
    let finished = call.finish(state.deps.instance, report, now);
    state
        .recorder
        .cast(RecorderMessage::Record(Box::new(finished)))?;
    Ok(())
}

/// One claim cycle: claim, start attempts, hand calls to lines.
async fn cycle(myself: &ActorRef<DispatcherMessage>, state: &mut DispatcherState) {
    state.last_cycle = Some(Instant::now());
    if !state.claiming || !state.outage.may_try() {
        return;
    }
    state.cycles += 1;
    if !state.stranded.is_empty() {
        let stranded = std::mem::take(&mut state.stranded);
        let deps = &state.deps;
        if let Err(e) = recover(
            &deps.pool,
            &[deps.instance],
            Some(&stranded),
            deps.clock.now(),
            Interruption::NeverPlaced,
        )
        .await
        {
            state.stranded = stranded;
            return failing(state, &e);
        }
    }
    let want = state.idle.len() as u32;
    if want == 0 {
        return;
    }
    let deps = &state.deps;
    let began = Instant::now();
    let now = deps.clock.now();
    let plans = &state.plans;
    let lag = histogram!(monitoring::DISPATCH_LAG);
    let batch = match claim::claim(
        &deps.pool,
        deps.instance,
        now,
        &state.gates,
        want,
        deps.settings.global_concurrency_limit,
        |c| {
            lag.record(
                ((now - c.next_attempt_at)
                    .num_microseconds()
                    .unwrap_or(i64::MAX) as f64
                    / 1e6)
                    .max(0.0),
            );
            call_for(plans, c, now)
        },
    )
    .await
    {
        Ok(batch) => batch,
        Err(failed) => {
            state.stranded.extend(failed.maybe_committed);
            return failing(state, &failed.error);
        }
    };
    histogram!(monitoring::CLAIM_DURATION).record(began.elapsed().as_secs_f64());
    state.outage.recovered("claiming");
    let claim::Batch {
        calls,
        attempts,
        set_aside,
        capped,
        quiet_until,
        ..
    } = batch;
    state.capped = capped;
    state.quiet_until = quiet_until.map(|until| {
        let recheck = Duration::from_millis(state.deps.settings.idle_recheck_ms);
        Instant::now() + (until - now).to_std().unwrap_or_default().min(recheck)
    });
    for (contact_id, reason) in set_aside {
        tracing::warn!(%contact_id, reason, "contact set aside: it cannot be dialed as stored");
        counter!(monitoring::CONTACTS_SET_ASIDE).increment(1);
    }
    // Work was found: more is likely due, and when a limit capped this claim
    // each call that ends frees a slot for it.
    state.hungry = !calls.is_empty();
    // A claim that got all it asked for may have left due work behind.
    let full = calls.len() as u32 == want;
    if calls.is_empty() {
        return;
    }
    histogram!(monitoring::CLAIM_BATCH).record(calls.len() as f64);
    let mut lined = Vec::with_capacity(calls.len());
    for call in calls {
        match state.idle.pop() {
            Some(index) => lined.push((index, call)),
            // Cannot happen: the claim asked for one contact per idle line.
            // Its claim is recovered when this instance stops.
            None => tracing::error!("a call was claimed with no idle line"),
        }
    }
    state.starting += lined.len();
    let (pool, owner, me) = (state.deps.pool.clone(), state.deps.instance, myself.clone());
    tokio::spawn(async move {
        let began = Instant::now();
        let written = attempts::start(&pool, owner, &attempts).await;
        histogram!(monitoring::ATTEMPTS_WRITE).record(began.elapsed().as_secs_f64());
        // The dispatcher stopped: lease recovery takes the claims back.
        let _ = me.cast(DispatcherMessage::Started {
            calls: lined,
            written,
        });
    });
    if full && !state.idle.is_empty() {
        wake(myself, state);
    }
}

/// Places the calls whose attempts were written; gives the other lines back.
fn started(
    myself: &ActorRef<DispatcherMessage>,
    state: &mut DispatcherState,
    calls: Vec<(usize, Call)>,
    written: Result<Vec<Uuid>, ClaimFailed>,
) {
    state.starting -= calls.len();
    // `None`: the write failed, and every contact is already listed for
    // recovery by the next cycle, after the outage's backoff.
    let written: Option<HashSet<Uuid>> = match written {
        Ok(contacts) => Some(contacts.into_iter().collect()),
        Err(failed) => {
            state.stranded.extend(failed.maybe_committed);
            failing(state, &failed.error);
            None
        }
    };
    // Past the drain's deadline every claim was recovered: nothing more is placed.
    let placing = !state.deps.hang_up.is_cancelled();
    for (index, call) in calls {
        let contact = call.request.contact_id;
        match &written {
            Some(w) if placing && w.contains(&contact) => dial(state, index, call),
            other => {
                // Its campaign stopped since the claim, or its claim was
                // taken back: the next cycle hands it back if it is still
                // this instance's.
                if other.is_some() {
                    state.stranded.push(contact);
                }
                free_line(myself, state, index);
            }
        }
    }
}

fn failing(state: &mut DispatcherState, error: &crate::db::DbError) {
    state.hungry = false;
    state.capped = false;
    state.quiet_until = None;
    state.outage.failed("claiming", error);
}

/// The call for a claimed contact and its attempt; `NotNow` when its
/// campaign's plan is not loaded here, `SetAside` when none of its stored
/// numbers can be dialed.
fn call_for(
    plans: &HashMap<Uuid, Arc<CampaignPlan>>,
    mut c: Claimed,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(Call, NewAttempt), NoCall> {
    let plan = match c.campaign_id {
        None => Arc::new(CampaignPlan::ad_hoc(c.organization_id)),
        Some(id) => plans.get(&id).ok_or(NoCall::NotNow)?.clone(),
    };
    let retired: Vec<usize> = c
        .retired_numbers
        .iter()
        .map(|&i| i.max(0) as usize)
        .collect();
    let suppressed: Vec<usize> = c.suppressed.iter().map(|&i| i.max(0) as usize).collect();
    let count = c.phone_numbers.len();
    let start = (c.next_number_index.max(0) as usize) % count.max(1);
    let usable = |i: &usize| !retired.contains(i) && !suppressed.contains(i);
    let index = (0..count)
        .map(|k| (start + k) % count)
        .filter(usable)
        .find_map(|i| E164::from_stored(c.phone_numbers[i].clone()).map(|n| (i, n)));
    let Some((index, number)) = index else {
        return Err(NoCall::SetAside(if suppressed.is_empty() {
            "no usable phone number".into()
        } else {
            format!(
                "{}: {} of its {count} numbers on a do-not-call list, none other usable",
                crate::domain::status::SUPPRESSED,
                suppressed.len()
            )
        }));
    };
    // The claim let it through: its first attempt with `scheduled_at` is
    // gated by the scheduled windows, every other by the usual ones.
    let evidence = evidence::record(
        c.campaign_id.map(|_| &plan.schedule),
        c.timezone.as_deref().and_then(|z| z.parse().ok()),
        c.number_zones.as_deref(),
        c.attempt_count == 1 && c.scheduled_at.is_some(),
        now,
        std::mem::take(&mut c.dnc_lists),
    );
    let call = Call {
        request: CallRequest {
            attempt_id: Uuid::now_v7(),
            contact_id: c.id,
            campaign_id: c.campaign_id,
            number,
            agent: c.agent.or(&plan.agent),
            data: c.data.0,
        },
        plan,
        attempt_count: c.attempt_count.max(1) as u32,
        number_index: index,
        number_count: count,
        retired,
    };
    let attempt = NewAttempt {
        attempt_id: call.request.attempt_id,
        phone_number: call.request.number.as_str().to_owned(),
        agent: call.request.agent.clone(),
        evidence: Some(evidence),
    };
    Ok((call, attempt))
}

fn dial(state: &mut DispatcherState, index: usize, call: Call) {
    let call = Arc::new(call);
    state.busy.insert(index, call.clone());
    counter!(monitoring::CALLS_PLACED).increment(1);
    gauge!(monitoring::LINES_BUSY).set(state.busy.len() as f64);
    if let Err(e) = state.lines[index].cast(LineMessage::Dial(call)) {
        tracing::error!(line = index, error = %e, "cannot hand a call to its line");
    }
}

/// LISTENs for due bounds lowered and tells the dispatcher of each.
async fn listen_due(pool: sqlx::PgPool, dispatcher: ActorRef<DispatcherMessage>) {
    crate::db::notify::listen(
        pool,
        crate::db::notify::DUE,
        "listening for work falling due",
        |_| dispatcher.cast(DispatcherMessage::Due).is_ok(),
    )
    .await;
}

/// Sets the backlog gauges: due contacts, and those a claim could take.
async fn count_backlog(pool: sqlx::PgPool, now: chrono::DateTime<chrono::Utc>, gates: OpenGates) {
    match claim::backlog(&pool, now, &gates).await {
        Ok(b) => {
            gauge!(monitoring::CONTACTS_DUE).set(b.due as f64);
            gauge!(monitoring::CONTACTS_CALLABLE).set(b.callable as f64);
        }
        Err(e) => tracing::debug!(error = %e, "cannot count the due backlog"),
    }
}
