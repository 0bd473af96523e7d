//! `POST /campaign/forecast`: the capacity forecast of the caller's
//! campaigns ([`crate::forecast`]). It only reads the database; the
//! simulation runs off the async workers, one at a time per process.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use tokio::sync::Semaphore;

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, Auth, CampaignsRead};
use super::AppState;
use crate::db::DbError;
use crate::forecast::backlog::{self, Refused};
use crate::forecast::{forecast as run_forecast, Forecast, Request};

/// One forecast computes at a time in a process: a sweep over a large
/// backlog takes seconds of a core, and the dialing engine shares them.
/// A forecast whose caller has gone away still holds its permit until it
/// ends, so abandoned requests cannot pile up work either.
#[derive(Clone)]
pub struct Forecasts(Arc<Semaphore>);

impl Default for Forecasts {
    fn default() -> Self {
        Forecasts(Arc::new(Semaphore::new(1)))
    }
}

/// Forecast when the caller's campaigns finish with each line count, from
/// the engine's own rules (windows per callee zone, priority, retries,
/// organization and global limits) run over virtual time on the backlog
/// as it stands, and the smallest line count finishing by `until`. Other
/// organizations' shares of the global limit are taken as they stand.
#[utoipa::path(post, path = "/campaign/forecast", tag = "forecast",
    request_body = Request,
    responses((status = 200, body = Forecast),
              (status = 404, body = ErrorBody, description = "a campaign asked for is not the caller's"),
              (status = 422, body = ErrorBody, description = "a field is out of range; the detail names it"),
              (status = 429, body = ErrorBody, description = "another forecast is running in this process")))]
pub async fn forecast(
    State(state): State<AppState>,
    auth: Auth<CampaignsRead>,
    ApiJson(request): ApiJson<Request>,
) -> Result<Json<Forecast>, ApiError> {
    let checked = request
        .check(Utc::now(), state.lines)
        .map_err(ApiError::Invalid)?;
    let permit = state
        .forecasts
        .0
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::Rejected {
            status: StatusCode::TOO_MANY_REQUESTS,
            detail: "another forecast is running in this process; try again".into(),
        })?;
    let prepared = backlog::prepare(&state.pool, Some(auth.org), &checked, state.global_limit)
        .await
        .map_err(|e| match e {
            Refused::UnknownCampaign(_) => ApiError::Rejected {
                status: StatusCode::NOT_FOUND,
                detail: e.to_string(),
            },
            Refused::Database(e) => ApiError::Internal(DbError::from(e)),
            other => ApiError::Invalid(other.to_string()),
        })?;
    let answer = tokio::task::spawn_blocking(move || {
        let answer = run_forecast(&prepared, &checked.lines, checked.until);
        drop(permit);
        answer
    })
    .await
    .map_err(|e| ApiError::Rejected {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        detail: format!("the forecast failed: {e}"),
    })?;
    Ok(Json(answer))
}
