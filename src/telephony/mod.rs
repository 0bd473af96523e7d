//! The phone network behind one trait. Backends are chosen in settings
//! (`telephony.backend`); this build has the `simulated` one.

pub mod simulated;

use std::future::Future;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::agent::AgentFields;
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
    /// The contact's `data`, handed to the call as custom metadata.
    pub data: serde_json::Value,
}

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

/// A way to place calls. A backend never fails: trouble is a `failed` report.
pub trait CallBackend: Send + Sync + 'static {
    fn place(&self, call: CallRequest) -> impl Future<Output = CallReport> + Send;
}

/// The configured backend.
pub enum Telephony {
    Simulated(simulated::Simulated),
}

impl CallBackend for Telephony {
    async fn place(&self, call: CallRequest) -> CallReport {
        match self {
            Telephony::Simulated(s) => s.place(call).await,
        }
    }
}
