//! Writes call results in batches: one statement for up to
//! `dialer.result_batch` results, at most `dialer.result_flush_ms` after a
//! call ends. Supervised by the supervisor; if it dies, the engine stops and
//! the results it held are recovered as `interrupted` through the lease.
//! A failed write keeps the batch and retries it on the next flush.
//!
//! Timer ticks queue up behind a slow write; a tick that comes within the
//! flush interval of the last write is skipped, so under load results
//! gather into full batches instead of one small write per queued tick
//! (which fell ever further behind the calls).

use std::time::{Duration, Instant};

use metrics::counter;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::dispatcher::DispatcherMessage;
use super::Deps;
use crate::db::notify::Outage;
use crate::db::results::record;
use crate::domain::call::Finished;
use crate::monitoring;

pub struct Recorder;

pub struct RecorderState {
    deps: Deps,
    pending: Vec<Finished>,
    outage: Outage,
    /// When the last write ended.
    last_write: Instant,
    /// Told of each write: the slots of the calls written are free.
    dispatcher: Option<ActorRef<DispatcherMessage>>,
}

pub enum RecorderMessage {
    /// A call ended: queue its result.
    Record(Box<Finished>),
    /// Timer, re-armed after each: write whatever is queued.
    Flush,
    /// Write whatever is queued now and answer when done (or failed).
    FlushNow(RpcReplyPort<bool>),
    /// Tell this dispatcher of every write (it is spawned after the recorder).
    Tell(ActorRef<DispatcherMessage>),
}

impl Actor for Recorder {
    type Msg = RecorderMessage;
    type State = RecorderState;
    type Arguments = Deps;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        deps: Deps,
    ) -> Result<Self::State, ActorProcessingErr> {
        myself.send_after(Duration::from_millis(deps.settings.result_flush_ms), || {
            RecorderMessage::Flush
        });
        Ok(RecorderState {
            deps,
            pending: Vec::new(),
            outage: Outage::default(),
            last_write: Instant::now(),
            dispatcher: None,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RecorderMessage::Record(finished) => {
                state.pending.push(*finished);
                if state.pending.len() >= state.deps.settings.result_batch && state.outage.may_try()
                {
                    flush(state).await;
                }
            }
            RecorderMessage::Flush => {
                // A full batch may have been written since the last timer:
                // the next flush is due an interval after that write.
                let interval = Duration::from_millis(state.deps.settings.result_flush_ms);
                let since = state.last_write.elapsed();
                let next = if since < interval {
                    interval - since
                } else {
                    if state.outage.may_try() {
                        flush(state).await;
                    }
                    interval
                };
                myself.send_after(next, || RecorderMessage::Flush);
            }
            RecorderMessage::FlushNow(reply) => {
                flush(state).await;
                let _ = reply.send(state.pending.is_empty());
            }
            RecorderMessage::Tell(dispatcher) => state.dispatcher = Some(dispatcher),
        }
        Ok(())
    }
}

async fn flush(state: &mut RecorderState) {
    while !state.pending.is_empty() {
        let n = state.pending.len().min(state.deps.settings.result_batch);
        match record(&state.deps.pool, &state.pending[..n]).await {
            Ok(applied) => {
                counter!(monitoring::RESULTS_WRITTEN).increment(applied);
                counter!(monitoring::RESULTS_FENCED).increment(n as u64 - applied);
                if applied < n as u64 {
                    tracing::warn!(
                        results = n,
                        applied,
                        "some results arrived after their claim was recovered; ignored"
                    );
                }
                state.pending.drain(..n);
                state.last_write = Instant::now();
                if let Some(dispatcher) = &state.dispatcher {
                    // Gone: the engine is stopping.
                    let _ = dispatcher.cast(DispatcherMessage::Recorded);
                }
                state.outage.recovered("writing call results");
            }
            Err(e) => {
                state.outage.failed("writing call results", &e);
                return;
            }
        }
    }
}
