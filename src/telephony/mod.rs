//! The phone network behind one trait. Backends are chosen in settings
//! (`telephony.backend`): `simulated`, or `http` (a voice-agent platform).

pub mod callback;
pub mod http;
pub mod simulated;

use std::future::Future;

use uuid::Uuid;

use crate::domain::agent::AgentFields;
use crate::domain::call::CallReport;
use crate::domain::phone::E164;
use crate::domain::status::Outcome;

/// Everything a backend needs to place one call.
#[derive(Debug, Clone)]
pub struct CallRequest {
    /// The attempt's id: also the call's idempotency key.
    pub attempt_id: Uuid,
    pub contact_id: Uuid,
    pub campaign_id: Option<Uuid>,
    pub number: E164,
    pub agent: AgentFields,
    /// The contact's `data`, handed to the call as custom metadata, exactly
    /// as stored (never parsed, so any stored value passes through).
    pub data: Box<serde_json::value::RawValue>,
}

/// How a call ended, for the line that placed it.
#[derive(Debug, Clone, PartialEq)]
pub enum CallEnd {
    /// The line records this result.
    Report(CallReport),
    /// The result, with this outcome, is already committed (a status
    /// callback settled it, possibly on another instance): nothing to write.
    Settled(Outcome),
}

/// A way to place calls. A backend never fails: trouble is a `failed` report.
pub trait CallBackend: Send + Sync + 'static {
    fn place(&self, call: &CallRequest) -> impl Future<Output = CallEnd> + Send;
}

/// The configured backend.
// One per daemon, behind an Arc: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum Telephony {
    Simulated(simulated::Simulated),
    Http(http::Http),
}

impl CallBackend for Telephony {
    async fn place(&self, call: &CallRequest) -> CallEnd {
        // Every line's task is as large as the largest future it may await,
        // idle or not: the platform client's (kilobytes) lives on the heap,
        // only while its call does, so 100,000 idle or simulated lines stay small.
        match self {
            Telephony::Simulated(s) => s.place(call).await,
            Telephony::Http(h) => Box::pin(h.place(call)).await,
        }
    }
}
