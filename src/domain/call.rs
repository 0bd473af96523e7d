//! The end of a call, and what it means for the contact: how a call went
//! (a [`CallReport`], or a platform's [`Callback`]), and the one decision,
//! [`finish`], that turns the policy, the contact as dialed and the report
//! into the contact's next state. A line whose call ended, the recovery of
//! a dead instance's claims and the platform's callbacks all end a call
//! here; the database stores what this decides.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::policy::{AttemptResult, DialingPolicy, Next};
use super::status::{ContactStatus, Outcome};

/// How a call went.
#[derive(Debug, Clone, PartialEq)]
pub struct CallReport {
    pub outcome: Outcome,
    pub conversation_id: Option<String>,
    /// Telephony detail, e.g. a SIP or HTTP status.
    pub detail: Option<String>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: DateTime<Utc>,
}

impl CallReport {
    /// A call cut off by dialerd itself (its line or its instance stopped),
    /// at `at`, for the reason in `detail`.
    pub fn interrupted(detail: impl Into<String>, at: DateTime<Utc>) -> CallReport {
        CallReport::unanswered(Outcome::Interrupted, detail, at)
    }

    /// A call that could not be placed or got no final status, at `at`.
    pub fn failed(detail: impl Into<String>, at: DateTime<Utc>) -> CallReport {
        CallReport::unanswered(Outcome::Failed, detail, at)
    }

    fn unanswered(outcome: Outcome, detail: impl Into<String>, at: DateTime<Utc>) -> CallReport {
        CallReport {
            outcome,
            conversation_id: None,
            detail: Some(detail.into()),
            answered_at: None,
            ended_at: at,
        }
    }
}

/// A voice-agent platform's call lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    Queued,
    Ringing,
    InProgress,
    Completed,
    Unanswered,
    Busy,
    Voicemail,
    Failed,
    Cancelled,
    Transferred,
}

impl CallStatus {
    /// The SPEC outcome of a final status; `None` while the call goes on.
    ///
    /// | status | outcome |
    /// |---|---|
    /// | `queued`, `ringing`, `in_progress` | not final |
    /// | `completed`, `transferred` | `completed` (finishes the contact) |
    /// | `unanswered` | `no_answer` |
    /// | `busy` | `busy` |
    /// | `voicemail` | `voicemail` |
    /// | `failed`, `cancelled` | `failed` |
    pub fn outcome(self) -> Option<Outcome> {
        match self {
            CallStatus::Queued | CallStatus::Ringing | CallStatus::InProgress => None,
            CallStatus::Completed | CallStatus::Transferred => Some(Outcome::Completed),
            CallStatus::Unanswered => Some(Outcome::NoAnswer),
            CallStatus::Busy => Some(Outcome::Busy),
            CallStatus::Voicemail => Some(Outcome::Voicemail),
            CallStatus::Failed | CallStatus::Cancelled => Some(Outcome::Failed),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Queued => "queued",
            CallStatus::Ringing => "ringing",
            CallStatus::InProgress => "in_progress",
            CallStatus::Completed => "completed",
            CallStatus::Unanswered => "unanswered",
            CallStatus::Busy => "busy",
            CallStatus::Voicemail => "voicemail",
            CallStatus::Failed => "failed",
            CallStatus::Cancelled => "cancelled",
            CallStatus::Transferred => "transferred",
        }
    }
}

/// A status callback's body. Every field is covered by the signature.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Callback {
    /// The platform's id of the call, as answered to the call request.
    pub conversation_id: String,
    /// The attempt id dialerd sent (also the Idempotency-Key); lets a
    /// callback that overtakes the call request's answer find its attempt.
    #[serde(default)]
    pub attempt_id: Option<Uuid>,
    pub status: CallStatus,
    /// When the status happened on the platform.
    pub occurred_at: DateTime<Utc>,
    /// When the callee answered, if they did.
    #[serde(default)]
    pub answered_at: Option<DateTime<Utc>>,
    /// When the call ended (final statuses); `occurred_at` when absent.
    #[serde(default)]
    pub ended_at: Option<DateTime<Utc>>,
    /// Free text kept as the attempt's telephony detail.
    #[serde(default)]
    pub detail: Option<String>,
}

impl Callback {
    /// The call's end as the platform reports it with this final outcome.
    pub fn report(&self, outcome: Outcome) -> CallReport {
        let detail = match &self.detail {
            Some(d) => format!("{}: {d}", self.status.as_str()),
            None => self.status.as_str().to_owned(),
        };
        CallReport {
            outcome,
            conversation_id: Some(self.conversation_id.clone()),
            detail: Some(detail),
            answered_at: self.answered_at,
            ended_at: self.ended_at.unwrap_or(self.occurred_at),
        }
    }
}

/// The contact as it was dialed: the call and its place in the contact's
/// numbers, what deciding the contact's next state needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialed {
    pub attempt_id: Uuid,
    pub contact_id: Uuid,
    /// The instance whose claim the call was.
    pub owner: Uuid,
    /// Calls made to the contact, this one included.
    pub attempt_count: u32,
    /// The number this call dialed.
    pub number_index: usize,
    pub number_count: usize,
    /// Numbers retired before this call.
    pub retired: Vec<usize>,
}

/// A finished call and the contact's next state.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    pub attempt_id: Uuid,
    pub contact_id: Uuid,
    /// The instance whose claim this was: only its claim may be moved on.
    pub owner: Uuid,
    pub outcome: Outcome,
    pub conversation_id: Option<String>,
    pub detail: Option<String>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: DateTime<Utc>,
    pub status: ContactStatus,
    /// Due time of the retry; `None` keeps the current one.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub next_number_index: usize,
    pub retired: Vec<usize>,
}

/// The call `dialed` ended as `report`, at `now`: the contact's next state
/// by `policy` (completed, exhausted, or a retry on which number, when).
pub fn finish(
    policy: &DialingPolicy,
    dialed: &Dialed,
    report: CallReport,
    now: DateTime<Utc>,
) -> Finished {
    let result = AttemptResult {
        outcome: report.outcome,
        attempt_count: dialed.attempt_count,
        number_index: dialed.number_index,
        number_count: dialed.number_count,
        retired: dialed.retired.clone(),
    };
    let (status, next_attempt_at, next_number_index, retired) = match policy.after(&result, now) {
        Next::Completed => (
            ContactStatus::Completed,
            None,
            dialed.number_index,
            dialed.retired.clone(),
        ),
        Next::Exhausted { retired } => {
            (ContactStatus::Exhausted, None, dialed.number_index, retired)
        }
        Next::Retry {
            at,
            number_index,
            retired,
        } => (ContactStatus::Pending, Some(at), number_index, retired),
    };
    Finished {
        attempt_id: dialed.attempt_id,
        contact_id: dialed.contact_id,
        owner: dialed.owner,
        outcome: report.outcome,
        conversation_id: report.conversation_id,
        detail: report.detail,
        answered_at: report.answered_at,
        ended_at: report.ended_at,
        status,
        next_attempt_at,
        next_number_index,
        retired,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    fn dialed(attempt_count: u32, number_index: usize) -> Dialed {
        Dialed {
            attempt_id: Uuid::from_u128(1),
            contact_id: Uuid::from_u128(2),
            owner: Uuid::from_u128(3),
            attempt_count,
            number_index,
            number_count: 2,
            retired: Vec::new(),
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap()
    }

    #[test]
    fn a_completed_call_completes_the_contact_and_keeps_its_number() {
        let policy = DialingPolicy::default();
        let report = CallReport {
            outcome: Outcome::Completed,
            conversation_id: Some("c1".into()),
            detail: None,
            answered_at: Some(now()),
            ended_at: now(),
        };
        let f = finish(&policy, &dialed(1, 1), report, now());
        assert_eq!(f.status, ContactStatus::Completed);
        assert_eq!((f.next_attempt_at, f.next_number_index), (None, 1));
        assert_eq!(f.conversation_id.as_deref(), Some("c1"));
        assert_eq!(
            (f.attempt_id, f.owner),
            (Uuid::from_u128(1), Uuid::from_u128(3))
        );
    }

    #[test]
    fn an_interrupted_call_waits_for_its_retry_on_the_next_number() {
        let policy = DialingPolicy::default();
        let f = finish(
            &policy,
            &dialed(1, 0),
            CallReport::interrupted("the line failed", now()),
            now(),
        );
        assert_eq!(f.outcome, Outcome::Interrupted);
        assert_eq!(f.status, ContactStatus::Pending);
        assert_eq!(
            f.next_attempt_at,
            Some(now() + Duration::seconds(i64::from(policy.retry_delay_seconds)))
        );
        assert_eq!(f.next_number_index, 1);
        assert_eq!(f.detail.as_deref(), Some("the line failed"));
    }

    #[test]
    fn the_last_allowed_attempt_exhausts_the_contact() {
        let policy = DialingPolicy::default();
        let f = finish(
            &policy,
            &dialed(policy.max_attempts, 0),
            CallReport::failed("http 503", now()),
            now(),
        );
        assert_eq!(f.status, ContactStatus::Exhausted);
        assert_eq!(f.next_attempt_at, None);
    }

    #[test]
    fn a_callback_reports_its_status_and_its_times() {
        let callback: Callback = serde_json::from_value(serde_json::json!({
            "conversation_id": "c9", "status": "transferred", "detail": "to sales",
            "occurred_at": "2026-12-01T12:00:05Z", "answered_at": "2026-12-01T11:59:00Z"
        }))
        .unwrap();
        let report = callback.report(Outcome::Completed);
        assert_eq!(report.detail.as_deref(), Some("transferred: to sales"));
        assert_eq!(report.ended_at, now() + Duration::seconds(5));
        assert_eq!(report.conversation_id.as_deref(), Some("c9"));
    }

    #[test]
    fn final_statuses_map_to_outcomes() {
        assert_eq!(CallStatus::Ringing.outcome(), None);
        assert_eq!(CallStatus::InProgress.outcome(), None);
        assert_eq!(CallStatus::Transferred.outcome(), Some(Outcome::Completed));
        assert_eq!(CallStatus::Unanswered.outcome(), Some(Outcome::NoAnswer));
        assert_eq!(CallStatus::Cancelled.outcome(), Some(Outcome::Failed));
    }
}
