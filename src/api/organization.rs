//! Organization-wide routes: the time zone list and concurrency settings.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, Auth, CampaignsRead, ConcurrencyManage, ConcurrencyRead};
use super::AppState;
use crate::db::organizations;
use crate::domain::timezone::Timezone;

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConcurrencySettings {
    /// Most simultaneous calls for the organization, 1 to 10000.
    #[schema(minimum = 1, maximum = 10000)]
    pub concurrency_limit: i32,
}

#[derive(Serialize, ToSchema)]
pub struct TimezoneList {
    pub timezones: Vec<&'static str>,
}

/// Every IANA time zone name dialerd accepts.
#[utoipa::path(get, path = "/campaign/timezones", tag = "organization",
    responses((status = 200, body = TimezoneList)))]
pub async fn timezones(_auth: Auth<CampaignsRead>) -> Json<TimezoneList> {
    Json(TimezoneList {
        timezones: Timezone::all_names(),
    })
}

/// The organization's concurrency limit.
#[utoipa::path(get, path = "/campaign/concurrency-settings", tag = "organization",
    responses((status = 200, body = ConcurrencySettings)))]
pub async fn get_concurrency(
    State(state): State<AppState>,
    auth: Auth<ConcurrencyRead>,
) -> Result<Json<ConcurrencySettings>, ApiError> {
    let concurrency_limit = organizations::concurrency_limit(&state.pool, auth.org).await?;
    Ok(Json(ConcurrencySettings { concurrency_limit }))
}

/// Set the organization's concurrency limit.
#[utoipa::path(put, path = "/campaign/concurrency-settings", request_body = ConcurrencySettings, tag = "organization",
    responses((status = 200, body = ConcurrencySettings), (status = 422, body = ErrorBody)))]
pub async fn put_concurrency(
    State(state): State<AppState>,
    auth: Auth<ConcurrencyManage>,
    ApiJson(body): ApiJson<ConcurrencySettings>,
) -> Result<Json<ConcurrencySettings>, ApiError> {
    if !(1..=10_000).contains(&body.concurrency_limit) {
        return Err(ApiError::invalid("concurrency_limit", "must be 1 to 10000"));
    }
    let concurrency_limit =
        organizations::set_concurrency_limit(&state.pool, auth.org, body.concurrency_limit).await?;
    tracing::info!(organization_id = %auth.org, concurrency_limit, "concurrency limit changed");
    Ok(Json(ConcurrencySettings { concurrency_limit }))
}
