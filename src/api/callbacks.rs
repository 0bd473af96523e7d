//! `POST /telephony/callbacks`: status callbacks from the voice-agent
//! platform (http backend). No bearer token: every request must carry a
//! valid `X-Dialerd-Signature` over its timestamp and raw body; nothing in
//! an unsigned request is read.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use chrono::Utc;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::{json_object, ApiBytes};
use super::AppState;
use crate::db::calls::{settle, Settled};
use crate::domain::call::Callback;
use crate::monitoring;
use crate::telephony::callback::{verify, SIGNATURE_HEADER};

#[derive(Serialize, ToSchema)]
pub struct CallbackResult {
    /// `closed` (a final status ended the attempt and moved its contact
    /// on; also when the dialer had closed it as `interrupted` while the call
    /// went on and the contact was not called since), `progress` (noted),
    /// `late` (the attempt had been closed as `interrupted` and its contact
    /// called again since: the outcome is recorded on the attempt only),
    /// or `duplicate` (the attempt already had its final status; nothing
    /// changed).
    pub result: &'static str,
}

fn count(result: &'static str) {
    metrics::counter!(monitoring::CALLBACKS, "result" => result).increment(1);
}

/// Receive a signed call status from the voice-agent platform.
#[utoipa::path(post, path = "/telephony/callbacks", request_body = Callback, tag = "telephony",
    security(()),
    params(("X-Dialerd-Signature" = String, Header,
        description = "t=<unix seconds>,v1=<hex HMAC-SHA256 of \"<t>.<raw body>\" keyed with telephony.http.signing_secret>")),
    responses((status = 200, body = CallbackResult), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "The database is unreachable: send the callback again later.")))]
pub async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> Result<Json<CallbackResult>, ApiError> {
    let Some(secret) = &state.callback_secret else {
        return Err(ApiError::NotFound(
            "callback route (telephony.backend is not http)",
        ));
    };
    let header = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
    if let Err(e) = verify(secret.as_bytes(), header, &body, Utc::now()) {
        count("rejected");
        tracing::warn!(error = %e, "status callback refused");
        return Err(ApiError::Rejected {
            status: StatusCode::UNAUTHORIZED,
            detail: e.to_string(),
        });
    }
    let callback: Callback = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid("body", format!("bad callback body: {e}")))
        .and_then(json_object)
        .inspect_err(|_| count("rejected"))?;
    let result = match settle(&state.pool, &callback, Utc::now()).await? {
        Settled::Closed {
            attempt_id,
            outcome,
        } => {
            tracing::info!(%attempt_id, outcome = outcome.as_str(), status = callback.status.as_str(), "call settled by callback");
            "closed"
        }
        Settled::Late {
            attempt_id,
            outcome,
        } => {
            tracing::warn!(%attempt_id, outcome = outcome.as_str(), "a call closed as interrupted ended later; its outcome is recorded, and its contact had been called again");
            "late"
        }
        Settled::Progress => "progress",
        Settled::AlreadyFinal => "duplicate",
        Settled::Unknown => {
            count("unknown");
            return Err(ApiError::NotFound("conversation"));
        }
    };
    count(result);
    Ok(Json(CallbackResult { result }))
}
