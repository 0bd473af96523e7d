//! The `http` backend: a voice-agent platform places the call.
//!
//! dialerd `POST`s `{base_url}/calls` with the number, the caller number,
//! the resolved agent, the contact's data, the ids and the callback URL,
//! with the attempt id as `Idempotency-Key` (a retried request never starts
//! a second call). A 2xx answer carries the platform's `conversation_id`,
//! stored on the attempt at once; the outcome comes later in a signed status
//! callback, received by any dialerd instance, which settles the attempt in
//! the database and NOTIFYs; this instance's line then frees at once. The
//! line also checks the attempt every `status_check_seconds` (a missed
//! notification), and closes it as `failed` after `max_call_seconds`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::{CallBackend, CallEnd, CallRequest};
use crate::db::calls;
use crate::db::notify::{self, CALL_ENDED};
use crate::domain::call::{CallReport, CallStatus};
use crate::domain::status::Outcome;
use crate::monitoring;
use crate::settings::PlatformSettings;

/// Error codes in a 4xx answer's `error` field that mean the number is unusable.
pub const INVALID_NUMBER_CODES: [&str; 3] =
    ["invalid_number", "unallocated_number", "number_blocked"];

/// How the platform answered a call request.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// The call is under way.
    Started {
        conversation_id: String,
        /// A final status already known at answer time.
        status: Option<CallStatus>,
    },
    /// The call will not happen: this outcome, with a detail.
    Ended(Outcome, String),
    /// Worth another try with the same key; `failed` when tries run out.
    Retry(String),
}

/// The one table from platform answers to outcomes (README, "Voice-agent
/// platform"):
///
/// | answer | result |
/// |---|---|
/// | 2xx with `conversation_id` | call started; outcome from callbacks (or a final `status` in the answer) |
/// | 2xx without `conversation_id` | `failed` |
/// | 4xx with `error` in `INVALID_NUMBER_CODES` | `invalid_number` |
/// | 408, 429, 5xx | retried, then `failed` |
/// | other 4xx | `failed` |
/// | time-out, connection error | retried, then `failed` |
pub fn classify(status: u16, body: &str) -> Answer {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let field = |name: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    match status {
        200..=299 => match field("conversation_id").filter(|c| !c.is_empty()) {
            Some(conversation_id) => Answer::Started {
                conversation_id,
                status: field("status")
                    .and_then(|s| serde_json::from_value(Value::String(s)).ok())
                    .filter(|s: &CallStatus| s.outcome().is_some()),
            },
            None => Answer::Ended(
                Outcome::Failed,
                format!("http {status}: answer without conversation_id"),
            ),
        },
        408 | 429 | 500..=599 => Answer::Retry(format!("http {status}")),
        400..=499 => match field("error") {
            Some(code) if INVALID_NUMBER_CODES.contains(&code.as_str()) => {
                Answer::Ended(Outcome::InvalidNumber, format!("http {status}: {code}"))
            }
            Some(code) => Answer::Ended(Outcome::Failed, format!("http {status}: {code}")),
            None => Answer::Ended(Outcome::Failed, format!("http {status}")),
        },
        _ => Answer::Ended(Outcome::Failed, format!("http {status}: unexpected")),
    }
}

/// The body of a call request (README, "Placing a call"). `metadata` is the
/// contact's `data` exactly as stored, passed through unparsed.
#[derive(Serialize)]
struct CallBody<'a> {
    to: &'a str,
    from: Option<&'a str>,
    agent_id: Option<&'a str>,
    agent_version: Option<&'a str>,
    agent_config: Option<&'a Value>,
    initial_context: Option<&'a str>,
    metadata: &'a RawValue,
    campaign_id: Option<Uuid>,
    contact_id: Uuid,
    attempt_id: Uuid,
    callback_url: String,
}

type Waiting = Arc<Mutex<HashMap<Uuid, oneshot::Sender<Outcome>>>>;

/// Least time between two warnings that the platform is failing.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Whether the platform answers: a run of failed requests (connection
/// errors, time-outs, 408, 429, 5xx) is logged as a WARN when it starts and
/// at most every `WARN_EVERY` while it lasts, with the count so far, and as
/// one INFO when a request gets an answer again.
#[derive(Debug, Default)]
pub struct Reachability {
    failing: Option<Failing>,
}

#[derive(Debug)]
struct Failing {
    since: Instant,
    failures: u64,
    warned_at: Instant,
}

impl Reachability {
    /// Notes one failed request; true when it is time to warn again.
    pub fn failed(&mut self, now: Instant) -> Option<u64> {
        match &mut self.failing {
            None => {
                self.failing = Some(Failing {
                    since: now,
                    failures: 1,
                    warned_at: now,
                });
                Some(1)
            }
            Some(f) => {
                f.failures += 1;
                (now.duration_since(f.warned_at) >= WARN_EVERY).then(|| {
                    f.warned_at = now;
                    f.failures
                })
            }
        }
    }

    /// Notes an answer; `Some((failures, seconds))` when it ends a run of failures.
    pub fn answered(&mut self, now: Instant) -> Option<(u64, f64)> {
        self.failing
            .take()
            .map(|f| (f.failures, now.duration_since(f.since).as_secs_f64()))
    }
}

/// The backend; one per daemon.
pub struct Http {
    client: reqwest::Client,
    settings: PlatformSettings,
    pool: PgPool,
    waiting: Waiting,
    listener: JoinHandle<()>,
    reachability: Mutex<Reachability>,
}

impl Drop for Http {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

/// Removes a line's wait registration however its call ends.
struct Registration<'a>(&'a Waiting, Uuid);

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.0.lock().expect("waiting lock").remove(&self.1);
    }
}

impl Http {
    /// Builds the client and starts listening for calls settled elsewhere.
    pub fn new(settings: PlatformSettings, pool: PgPool) -> Result<Http, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.request_timeout_ms))
            .connect_timeout(Duration::from_millis(settings.request_timeout_ms))
            .build()?;
        let waiting: Waiting = Arc::default();
        let listener = tokio::spawn(listen(pool.clone(), waiting.clone()));
        Ok(Http {
            client,
            settings,
            pool,
            waiting,
            listener,
            reachability: Mutex::default(),
        })
    }

    fn body<'a>(&self, call: &'a CallRequest) -> CallBody<'a> {
        CallBody {
            to: call.number.as_str(),
            from: call.agent.agent_number.as_deref(),
            agent_id: call.agent.agent_id.as_deref(),
            agent_version: call.agent.agent_version.as_deref(),
            agent_config: call.agent.agent_config.as_ref(),
            initial_context: call.agent.initial_context.as_deref(),
            metadata: &call.data,
            campaign_id: call.campaign_id,
            contact_id: call.contact_id,
            attempt_id: call.attempt_id,
            callback_url: format!(
                "{}/telephony/callbacks",
                self.settings.callback_base_url.trim_end_matches('/')
            ),
        }
    }

    /// Posts the call request, retrying what is worth retrying.
    async fn request(&self, call: &CallRequest) -> Answer {
        let url = format!("{}/calls", self.settings.base_url.trim_end_matches('/'));
        let body = self.body(call);
        let mut last = Answer::Retry("no request made".into());
        for attempt in 0..=self.settings.request_retries {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(200) * 2u32.pow(attempt - 1)).await;
            }
            let sent = self
                .client
                .post(&url)
                .bearer_auth(&self.settings.token)
                .header("Idempotency-Key", call.attempt_id.to_string())
                .json(&body)
                .send()
                .await;
            last = match sent {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let text = response.text().await.unwrap_or_default();
                    classify(status, &text)
                }
                Err(e) if e.is_timeout() => Answer::Retry(format!(
                    "timed out after {} ms",
                    self.settings.request_timeout_ms
                )),
                Err(e) => Answer::Retry(format!("connection error: {}", root_cause(&e))),
            };
            let class = match &last {
                Answer::Started { .. } => "started",
                Answer::Ended(Outcome::InvalidNumber, _) => "invalid_number",
                Answer::Ended(..) => "refused",
                Answer::Retry(_) => "retryable_error",
            };
            metrics::counter!(monitoring::PLATFORM_REQUESTS, "result" => class).increment(1);
            self.note_reachability(&last);
            if !matches!(last, Answer::Retry(_)) {
                break;
            }
        }
        last
    }

    /// Logs the start of a run of failed requests, and its end.
    fn note_reachability(&self, answer: &Answer) {
        let now = Instant::now();
        let mut reachability = self.reachability.lock().expect("reachability lock");
        match answer {
            Answer::Retry(error) => {
                if let Some(failures) = reachability.failed(now) {
                    tracing::warn!(
                        failures,
                        %error,
                        base_url = %self.settings.base_url,
                        "the voice-agent platform is failing: call requests get no answer or a retryable error"
                    );
                }
            }
            Answer::Started { .. } | Answer::Ended(..) => {
                if let Some((failures, seconds)) = reachability.answered(now) {
                    tracing::info!(
                        failures,
                        after_seconds = seconds,
                        "the voice-agent platform answers again"
                    );
                }
            }
        }
    }

    /// Waits for the call's final status: a notification, a periodic check
    /// of the attempt, or the `max_call_seconds` limit.
    async fn wait(
        &self,
        call: &CallRequest,
        conversation_id: String,
        mut settled: oneshot::Receiver<Outcome>,
    ) -> CallEnd {
        let limit = tokio::time::sleep(Duration::from_secs(self.settings.max_call_seconds));
        tokio::pin!(limit);
        let mut checks =
            tokio::time::interval(Duration::from_secs(self.settings.status_check_seconds));
        checks.tick().await;
        let mut listening = true;
        loop {
            tokio::select! {
                outcome = &mut settled, if listening => match outcome {
                    Ok(outcome) => return CallEnd::Settled(outcome),
                    Err(_) => listening = false,
                },
                _ = checks.tick() => {
                    if let Ok(Some(outcome)) = calls::outcome(&self.pool, call.attempt_id).await {
                        return CallEnd::Settled(outcome);
                    }
                }
                () = &mut limit => {
                    let detail = format!(
                        "no final status within max_call_seconds ({} s)",
                        self.settings.max_call_seconds
                    );
                    return CallEnd::Report(CallReport {
                        conversation_id: Some(conversation_id),
                        ..CallReport::failed(detail, Utc::now())
                    });
                }
            }
        }
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

impl CallBackend for Http {
    async fn place(&self, call: &CallRequest) -> CallEnd {
        let (tx, rx) = oneshot::channel();
        self.waiting
            .lock()
            .expect("waiting lock")
            .insert(call.attempt_id, tx);
        let _registration = Registration(&self.waiting, call.attempt_id);
        let ended = |outcome, detail, conversation_id| {
            CallEnd::Report(CallReport {
                outcome,
                conversation_id,
                detail: Some(detail),
                answered_at: None,
                ended_at: Utc::now(),
            })
        };
        match self.request(call).await {
            Answer::Ended(outcome, detail) => ended(outcome, detail, None),
            Answer::Retry(detail) => ended(Outcome::Failed, detail, None),
            Answer::Started {
                conversation_id,
                status,
            } => {
                if let Err(e) =
                    calls::set_conversation(&self.pool, call.attempt_id, &conversation_id).await
                {
                    tracing::warn!(attempt_id = %call.attempt_id, error = %e, "cannot store the conversation id yet; it is written with the result");
                }
                match status.and_then(CallStatus::outcome) {
                    Some(outcome) => ended(
                        outcome,
                        status.map_or("", CallStatus::as_str).to_owned(),
                        Some(conversation_id),
                    ),
                    None => self.wait(call, conversation_id, rx).await,
                }
            }
        }
    }
}

/// LISTENs for calls settled by any instance and wakes the line waiting on
/// each one here.
async fn listen(pool: PgPool, waiting: Waiting) {
    notify::listen(pool, CALL_ENDED, "listening for settled calls", |payload| {
        let Some((id, outcome)) = payload.split_once(' ') else {
            return true;
        };
        if let (Ok(id), Some(outcome)) = (id.parse::<Uuid>(), Outcome::parse(outcome)) {
            let waiter = waiting.lock().expect("waiting lock").remove(&id);
            if let Some(tx) = waiter {
                let _ = tx.send(outcome);
            }
        }
        true
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_of_platform_failures_warns_once_then_at_most_every_interval_and_ends_once() {
        let mut r = Reachability::default();
        let t0 = Instant::now();
        assert_eq!(r.failed(t0), Some(1));
        for k in 1..50u64 {
            assert_eq!(r.failed(t0 + Duration::from_millis(100 * k)), None);
        }
        assert_eq!(r.failed(t0 + WARN_EVERY), Some(51));
        assert_eq!(r.failed(t0 + WARN_EVERY + Duration::from_secs(1)), None);
        let (failures, seconds) = r.answered(t0 + WARN_EVERY * 2).unwrap();
        assert_eq!(failures, 52);
        assert!((seconds - (WARN_EVERY * 2).as_secs_f64()).abs() < 1e-9);
        assert_eq!(r.answered(t0 + WARN_EVERY * 3), None);
        assert_eq!(r.failed(t0 + WARN_EVERY * 3), Some(1));
    }

    #[test]
    fn every_answer_class_maps_to_one_result() {
        assert_eq!(
            classify(201, r#"{"conversation_id": "c-1"}"#),
            Answer::Started {
                conversation_id: "c-1".into(),
                status: None
            }
        );
        assert_eq!(
            classify(200, r#"{"conversation_id": "c-1", "status": "busy"}"#),
            Answer::Started {
                conversation_id: "c-1".into(),
                status: Some(CallStatus::Busy)
            }
        );
        assert_eq!(
            classify(200, r#"{"conversation_id": "c-1", "status": "ringing"}"#),
            Answer::Started {
                conversation_id: "c-1".into(),
                status: None
            }
        );
        assert!(matches!(
            classify(200, "{}"),
            Answer::Ended(Outcome::Failed, _)
        ));
        assert!(matches!(
            classify(204, ""),
            Answer::Ended(Outcome::Failed, _)
        ));
        for code in INVALID_NUMBER_CODES {
            let body = format!(r#"{{"error": "{code}"}}"#);
            assert!(matches!(
                classify(422, &body),
                Answer::Ended(Outcome::InvalidNumber, _)
            ));
            assert!(matches!(
                classify(400, &body),
                Answer::Ended(Outcome::InvalidNumber, _)
            ));
        }
        assert!(matches!(
            classify(400, r#"{"error": "bad_agent"}"#),
            Answer::Ended(Outcome::Failed, _)
        ));
        assert!(matches!(
            classify(401, ""),
            Answer::Ended(Outcome::Failed, _)
        ));
        assert!(matches!(
            classify(404, "not json"),
            Answer::Ended(Outcome::Failed, _)
        ));
        for status in [408, 429, 500, 502, 503] {
            assert!(matches!(classify(status, ""), Answer::Retry(_)), "{status}");
        }
    }
}
