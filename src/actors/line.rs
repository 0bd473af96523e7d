//! One line: places one call at a time through the telephony backend, then
//! decides the contact's next state by its campaign's policy, hands the
//! result to the recorder and tells the dispatcher it is free.
//!
//! Supervised by the supervisor. If a line dies mid-call, the supervisor
//! replaces it and the dispatcher records that call as `interrupted`.

use std::sync::Arc;

use metrics::{counter, histogram};
use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::dispatcher::DispatcherMessage;
use super::recorder::RecorderMessage;
use super::Deps;
use crate::domain::call::{self, CallReport, Dialed, Finished};
use crate::domain::plan::CampaignPlan;
use crate::monitoring;
use crate::telephony::{CallBackend, CallEnd, CallRequest};

pub struct Line;

pub struct LineArgs {
    pub deps: Deps,
    pub index: usize,
    pub dispatcher: ActorRef<DispatcherMessage>,
    pub recorder: ActorRef<RecorderMessage>,
}

pub type LineState = LineArgs;

/// A call handed to a line: the request and what deciding its result needs.
#[derive(Debug, Clone)]
pub struct Call {
    pub request: CallRequest,
    pub plan: Arc<CampaignPlan>,
    /// Calls made to the contact, this one included.
    pub attempt_count: u32,
    pub number_index: usize,
    pub number_count: usize,
    pub retired: Vec<usize>,
}

impl Call {
    /// The contact as this call dials it, on `owner`'s claim.
    pub fn dialed(&self, owner: uuid::Uuid) -> Dialed {
        Dialed {
            attempt_id: self.request.attempt_id,
            contact_id: self.request.contact_id,
            owner,
            attempt_count: self.attempt_count,
            number_index: self.number_index,
            number_count: self.number_count,
            retired: self.retired.clone(),
        }
    }

    /// The result of this call ending with `report`, decided by its policy.
    pub fn finish(
        &self,
        owner: uuid::Uuid,
        report: CallReport,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Finished {
        call::finish(&self.plan.policy, &self.dialed(owner), report, now)
    }
}

pub enum LineMessage {
    /// Place this call and report its result. Shared with the dispatcher,
    /// which keeps it while the call lasts.
    Dial(Arc<Call>),
}

impl Actor for Line {
    type Msg = LineMessage;
    type State = LineState;
    type Arguments = LineArgs;

    async fn pre_start(
        &self,
        _: ActorRef<Self::Msg>,
        args: LineArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(args)
    }

    async fn handle(
        &self,
        _: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let LineMessage::Dial(call) = msg;
        let deps = &state.deps;
        tracing::debug!(line = state.index, attempt_id = %call.request.attempt_id, number = %call.request.number.masked(), "dialing");
        let placed = std::time::Instant::now();
        let end = tokio::select! {
            end = deps.telephony.place(&call.request) => end,
            () = deps.hang_up.cancelled() => return Ok(()),
        };
        let outcome = match &end {
            CallEnd::Report(report) => report.outcome,
            CallEnd::Settled(outcome) => *outcome,
        };
        counter!(monitoring::CALLS_FINISHED, "outcome" => outcome.as_str()).increment(1);
        histogram!(monitoring::CALL_DURATION).record(placed.elapsed().as_secs_f64());
        tracing::debug!(line = state.index, attempt_id = %call.request.attempt_id, outcome = outcome.as_str(), "call ended");
        if let CallEnd::Report(report) = end {
            let finished = call.finish(deps.instance, report, deps.clock.now());
            state
                .recorder
                .cast(RecorderMessage::Record(Box::new(finished)))?;
        }
        state
            .dispatcher
            .cast(DispatcherMessage::LineIdle(state.index))?;
        Ok(())
    }
}
