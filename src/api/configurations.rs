//! Configuration routes: create, list, get, patch, delete.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::campaigns::check_name;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, Auth, CampaignsManage, CampaignsRead, Query};
use super::AppState;
use crate::db::configurations::{self as store, Configuration, ConfigurationBody, DeleteRefused};
use crate::domain::agent::AgentFields;
use crate::domain::policy::DialingPolicy;
use crate::domain::schedule::Schedule;

/// A new configuration; sections left out take their documented defaults
/// (an empty schedule makes no calls).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigurationCreate {
    pub name: String,
    #[serde(default = "empty_schedule")]
    pub schedule: Schedule,
    #[serde(default)]
    pub dialing_policy: DialingPolicy,
    #[serde(default)]
    pub agent: AgentFields,
}

fn empty_schedule() -> Schedule {
    serde_json::from_str("{}").expect("the empty schedule is valid")
}

/// Each section given replaces that section whole.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigurationUpdate {
    pub name: Option<String>,
    pub schedule: Option<Schedule>,
    pub dialing_policy: Option<DialingPolicy>,
    pub agent: Option<AgentFields>,
}

#[derive(Serialize, ToSchema)]
pub struct ConfigurationList {
    pub configurations: Vec<Configuration>,
}

/// Configuration ids are UUIDs only; anything else names no configuration.
fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::NotFound("configuration"))
}

/// Create a configuration.
#[utoipa::path(post, path = "/campaign/configurations", request_body = ConfigurationCreate, tag = "configurations",
    responses((status = 201, body = Configuration), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth<CampaignsManage>,
    ApiJson(body): ApiJson<ConfigurationCreate>,
) -> Result<(StatusCode, Json<Configuration>), ApiError> {
    let body = ConfigurationBody {
        name: check_name(&body.name)?,
        schedule: body.schedule,
        dialing_policy: body.dialing_policy,
        agent: body.agent,
    };
    let created = store::create(&state.pool, auth.org, &body).await?;
    tracing::info!(configuration_id = %created.id, "configuration created");
    Ok((StatusCode::CREATED, Json(created)))
}

/// List the organization's configurations, oldest first.
#[utoipa::path(get, path = "/campaign/configurations", tag = "configurations",
    responses((status = 200, body = ConfigurationList)))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth<CampaignsRead>,
    query: Query,
) -> Result<Json<ConfigurationList>, ApiError> {
    query.finish()?;
    Ok(Json(ConfigurationList {
        configurations: store::list(&state.pool, auth.org).await?,
    }))
}

/// Read a configuration.
#[utoipa::path(get, path = "/campaign/configurations/{configuration_id}", tag = "configurations",
    params(("configuration_id" = Uuid, Path)),
    responses((status = 200, body = Configuration), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    auth: Auth<CampaignsRead>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Configuration>, ApiError> {
    let found = store::get(&state.pool, auth.org, parse_id(&id)?).await?;
    found.map(Json).ok_or(ApiError::NotFound("configuration"))
}

/// Replace some sections of a configuration.
#[utoipa::path(patch, path = "/campaign/configurations/{configuration_id}", request_body = ConfigurationUpdate,
    tag = "configurations", params(("configuration_id" = Uuid, Path)),
    responses((status = 200, body = Configuration), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn patch(
    State(state): State<AppState>,
    auth: Auth<CampaignsManage>,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ConfigurationUpdate>,
) -> Result<Json<Configuration>, ApiError> {
    let id = parse_id(&id)?;
    let current = store::get(&state.pool, auth.org, id)
        .await?
        .ok_or(ApiError::NotFound("configuration"))?;
    let merged = ConfigurationBody {
        name: body
            .name
            .map(|n| check_name(&n))
            .transpose()?
            .unwrap_or(current.name),
        schedule: body.schedule.unwrap_or(current.schedule),
        dialing_policy: body.dialing_policy.unwrap_or(current.dialing_policy),
        agent: body.agent.unwrap_or(current.agent),
    };
    let updated = store::replace(&state.pool, auth.org, id, &merged).await?;
    updated.map(Json).ok_or(ApiError::NotFound("configuration"))
}

/// Delete a configuration; refused (409) while a campaign references it.
#[utoipa::path(delete, path = "/campaign/configurations/{configuration_id}", tag = "configurations",
    params(("configuration_id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    auth: Auth<CampaignsManage>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    match store::delete(&state.pool, auth.org, parse_id(&id)?).await? {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(DeleteRefused::NotFound) => Err(ApiError::NotFound("configuration")),
        Err(DeleteRefused::InUse) => Err(ApiError::Conflict(
            "configuration is used by a campaign; move or delete those first".into(),
        )),
    }
}
