//! Campaign routes: create, list, get, patch, lifecycle and stats.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, Auth, CampaignsManage, CampaignsRead, Query};
use super::patch::{present, present_object, required};
use super::AppState;
use crate::db::campaigns::{
    self as store, Campaign, CampaignFilter, CampaignPatch, NewCampaign, Transition,
};
use crate::db::stats::CampaignStats;
use crate::db::{self, configurations};
use crate::domain::agent::AgentFields;
use crate::domain::status::CampaignStatus;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignCreate {
    pub name: String,
    pub configuration_id: Uuid,
    /// 0 to 999999; higher is dialed first.
    #[serde(default = "default_priority")]
    #[schema(default = 1, minimum = 0, maximum = 999999)]
    pub priority: i32,
    pub external_id: Option<String>,
    pub agent_id: Option<String>,
    pub agent_version: Option<String>,
    pub agent_number: Option<String>,
    /// A JSON object, or null.
    #[serde(default, deserialize_with = "crate::domain::agent::object_or_null")]
    #[schema(value_type = Option<Object>)]
    pub agent_config: Option<serde_json::Value>,
    pub initial_context: Option<String>,
}

fn default_priority() -> i32 {
    1
}

/// Fields left out are unchanged; `null` clears a nullable field.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignUpdate {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Uuid>)]
    pub configuration_id: Option<Option<Uuid>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i32>)]
    pub priority: Option<Option<i32>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub external_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub agent_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub agent_version: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub agent_number: Option<Option<String>>,
    #[serde(default, deserialize_with = "present_object")]
    #[schema(value_type = Option<Object>)]
    pub agent_config: Option<Option<serde_json::Value>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub initial_context: Option<Option<String>>,
}

#[derive(Serialize, ToSchema)]
pub struct CampaignList {
    pub campaigns: Vec<Campaign>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

pub(super) fn check_name(name: &str) -> Result<String, ApiError> {
    let trimmed = name.trim();
    if trimmed.is_empty() || trimmed.chars().count() > 200 {
        return Err(ApiError::invalid("name", "must be 1 to 200 characters"));
    }
    Ok(trimmed.to_owned())
}

pub(super) fn check_external_id(field: &str, id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.chars().count() > 200 {
        return Err(ApiError::invalid(field, "must be 1 to 200 characters"));
    }
    Ok(())
}

fn check_campaign_external_id(id: &str) -> Result<(), ApiError> {
    check_external_id("external_id", id)?;
    if id == "default" {
        return Err(ApiError::invalid(
            "external_id",
            "`default` is reserved for ad-hoc contacts",
        ));
    }
    Ok(())
}

fn check_priority(priority: i32) -> Result<i32, ApiError> {
    if !(0..=999_999).contains(&priority) {
        return Err(ApiError::invalid("priority", "must be 0 to 999999"));
    }
    Ok(priority)
}

async fn check_configuration(state: &AppState, org: Uuid, id: Uuid) -> Result<(), ApiError> {
    match configurations::get(&state.pool, org, id).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::invalid(
            "configuration_id",
            "no such configuration",
        )),
    }
}

/// Finds a campaign by UUID or external_id in the caller's organization.
pub(super) async fn find(state: &AppState, org: Uuid, key: &str) -> Result<Campaign, ApiError> {
    store::resolve(&state.pool, org, key)
        .await?
        .ok_or(ApiError::NotFound("campaign"))
}

/// Create a campaign; it starts active.
#[utoipa::path(post, path = "/campaign/campaigns", request_body = CampaignCreate, tag = "campaigns",
    responses((status = 201, body = Campaign), (status = 422, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth<CampaignsManage>,
    ApiJson(body): ApiJson<CampaignCreate>,
) -> Result<(StatusCode, Json<Campaign>), ApiError> {
    let name = check_name(&body.name)?;
    let priority = check_priority(body.priority)?;
    if let Some(id) = &body.external_id {
        check_campaign_external_id(id)?;
    }
    check_configuration(&state, auth.org, body.configuration_id).await?;
    let new = NewCampaign {
        name,
        configuration_id: body.configuration_id,
        priority,
        external_id: body.external_id,
        agent: AgentFields {
            agent_id: body.agent_id,
            agent_version: body.agent_version,
            agent_number: body.agent_number,
            agent_config: body.agent_config,
            initial_context: body.initial_context,
        },
    };
    let campaign = store::create(&state.pool, auth.org, new).await?;
    tracing::info!(campaign_id = %campaign.id, priority, "campaign created");
    Ok((StatusCode::CREATED, Json(campaign)))
}

/// List campaigns, oldest first, a page at a time.
#[utoipa::path(get, path = "/campaign/campaigns", tag = "campaigns",
    params(("limit" = Option<i64>, Query, description = "1 to 500, default 50"),
           ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
           ("name" = Option<String>, Query, description = "case-insensitive substring of the name"),
           ("status" = Option<Vec<CampaignStatus>>, Query, description = "repeatable")),
    responses((status = 200, body = CampaignList), (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth<CampaignsRead>,
    mut query: Query,
) -> Result<Json<CampaignList>, ApiError> {
    let filter = CampaignFilter {
        limit: query.int("limit", 50, 1, 500)?,
        after: query.one::<Uuid>("cursor")?,
        name: query.one::<String>("name")?,
        statuses: query.all::<CampaignStatus>("status")?,
    };
    query.finish()?;
    let mut campaigns = store::list(
        &state.pool,
        auth.org,
        &CampaignFilter {
            limit: filter.limit + 1,
            ..filter
        },
    )
    .await?;
    let next_cursor = if campaigns.len() as i64 > filter.limit {
        campaigns.truncate(filter.limit as usize);
        campaigns.last().map(|c| c.id.to_string())
    } else {
        None
    };
    Ok(Json(CampaignList {
        campaigns,
        next_cursor,
    }))
}

/// Read a campaign by UUID or external_id.
#[utoipa::path(get, path = "/campaign/campaigns/{campaign_id}", tag = "campaigns",
    params(("campaign_id" = String, Path, description = "UUID or external_id")),
    responses((status = 200, body = Campaign), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    auth: Auth<CampaignsRead>,
    ApiPath(key): ApiPath<String>,
) -> Result<Json<Campaign>, ApiError> {
    Ok(Json(find(&state, auth.org, &key).await?))
}

/// Change a campaign's name, configuration, priority, external_id or agent overrides.
#[utoipa::path(patch, path = "/campaign/campaigns/{campaign_id}", request_body = CampaignUpdate, tag = "campaigns",
    params(("campaign_id" = String, Path, description = "UUID or external_id")),
    responses((status = 200, body = Campaign), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn patch(
    State(state): State<AppState>,
    auth: Auth<CampaignsManage>,
    ApiPath(key): ApiPath<String>,
    ApiJson(body): ApiJson<CampaignUpdate>,
) -> Result<Json<Campaign>, ApiError> {
    let campaign = find(&state, auth.org, &key).await?;
    let name = required("name", body.name)?
        .map(|n| check_name(&n))
        .transpose()?;
    let priority = required("priority", body.priority)?
        .map(check_priority)
        .transpose()?;
    let configuration_id = required("configuration_id", body.configuration_id)?;
    if let Some(id) = configuration_id {
        check_configuration(&state, auth.org, id).await?;
    }
    if let Some(Some(id)) = &body.external_id {
        check_campaign_external_id(id)?;
    }
    let patch = CampaignPatch {
        name,
        configuration_id,
        priority,
        external_id: body.external_id,
        agent_id: body.agent_id,
        agent_version: body.agent_version,
        agent_number: body.agent_number,
        agent_config: body.agent_config,
        initial_context: body.initial_context,
    };
    let updated =
        db::retrying(|| store::patch(&state.pool, auth.org, campaign.id, patch.clone())).await?;
    updated.map(Json).ok_or(ApiError::NotFound("campaign"))
}

async fn lifecycle(
    state: &AppState,
    org: Uuid,
    key: &str,
    t: Transition,
) -> Result<Json<Campaign>, ApiError> {
    let campaign = find(state, org, key).await?;
    match db::retrying(|| store::transition(&state.pool, org, campaign.id, t)).await? {
        Some(updated) => {
            tracing::info!(campaign_id = %updated.id, status = updated.status.as_str(), "campaign status changed");
            Ok(Json(updated))
        }
        None => {
            // Re-read: the status may have changed since `find`.
            let now = find(state, org, key).await?;
            Err(ApiError::BadState(format!(
                "campaign is {}; it cannot become {}",
                now.status.as_str(),
                t.target().as_str()
            )))
        }
    }
}

/// Make a campaign active; refused (400) when it is closed.
#[utoipa::path(post, path = "/campaign/campaigns/{campaign_id}/start", tag = "campaigns",
    params(("campaign_id" = String, Path, description = "UUID or external_id")),
    responses((status = 200, body = Campaign), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn start(
    State(state): State<AppState>,
    auth: Auth<CampaignsManage>,
    ApiPath(key): ApiPath<String>,
) -> Result<Json<Campaign>, ApiError> {
    lifecycle(&state, auth.org, &key, Transition::Start).await
}

/// Pause an active campaign; refused (400) unless it is active.
#[utoipa::path(post, path = "/campaign/campaigns/{campaign_id}/pause", tag = "campaigns",
    params(("campaign_id" = String, Path, description = "UUID or external_id")),
    responses((status = 200, body = Campaign), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn pause(
    State(state): State<AppState>,
    auth: Auth<CampaignsManage>,
    ApiPath(key): ApiPath<String>,
) -> Result<Json<Campaign>, ApiError> {
    lifecycle(&state, auth.org, &key, Transition::Pause).await
}

/// Close a campaign for good; refused (400) when already closed.
#[utoipa::path(post, path = "/campaign/campaigns/{campaign_id}/close", tag = "campaigns",
    params(("campaign_id" = String, Path, description = "UUID or external_id")),
    responses((status = 200, body = Campaign), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn close(
    State(state): State<AppState>,
    auth: Auth<CampaignsManage>,
    ApiPath(key): ApiPath<String>,
) -> Result<Json<Campaign>, ApiError> {
    lifecycle(&state, auth.org, &key, Transition::Close).await
}

/// Contacts by status, attempts by outcome, active calls; `default` gives the ad-hoc contacts.
#[utoipa::path(get, path = "/campaign/campaigns/{campaign_id}/stats", tag = "campaigns",
    params(("campaign_id" = String, Path, description = "UUID, external_id or `default`")),
    responses((status = 200, body = CampaignStats), (status = 404, body = ErrorBody)))]
pub async fn stats(
    State(state): State<AppState>,
    auth: Auth<CampaignsRead>,
    ApiPath(key): ApiPath<String>,
) -> Result<Json<CampaignStats>, ApiError> {
    let campaign = match key.as_str() {
        "default" => None,
        _ => Some(find(&state, auth.org, &key).await?.id),
    };
    Ok(Json(
        db::stats::campaign(&state.pool, auth.org, campaign).await?,
    ))
}
