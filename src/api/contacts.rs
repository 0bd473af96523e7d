//! Contact routes under a campaign, or under `default` for ad-hoc contacts.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::campaigns::{check_external_id, find};
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, Auth, CampaignsManage, CampaignsRead, Query};
use super::AppState;
use crate::db::contacts::{
    self as store, Contact, ContactWithAttempts, DeleteRefused, NewContact, Scope,
};
use crate::db::{attempts, configurations};
use crate::domain::agent::AgentFields;
use crate::domain::explain::Explanation;
use crate::domain::phone::{Country, E164};
use crate::domain::status::{CampaignStatus, ContactStatus};
use crate::domain::timezone::Timezone;

/// Most contacts one upsert request may carry.
pub const MAX_UPSERT: usize = 1000;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactInput {
    /// Updates this contact of the campaign when given.
    pub id: Option<Uuid>,
    /// Upsert key within the campaign.
    pub external_id: Option<String>,
    /// 1 to 10 numbers, tried in order; normalized to E.164.
    pub phone_numbers: Vec<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub data: serde_json::Map<String, serde_json::Value>,
    #[schema(value_type = Option<String>, example = "America/Chicago")]
    pub timezone: Option<Timezone>,
    /// Not dialed before this time.
    pub scheduled_at: Option<DateTime<Utc>>,
    pub agent_id: Option<String>,
    pub agent_version: Option<String>,
    pub agent_number: Option<String>,
    /// A JSON object, or null.
    #[serde(default, deserialize_with = "crate::domain::agent::object_or_null")]
    #[schema(value_type = Option<Object>)]
    pub agent_config: Option<serde_json::Value>,
    pub initial_context: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactsUpsert {
    pub contacts: Vec<ContactInput>,
}

#[derive(Serialize, ToSchema)]
pub struct UpsertResult {
    pub created: usize,
    pub updated: usize,
    /// Ids in request order.
    pub contact_ids: Vec<Uuid>,
}

#[derive(Serialize, ToSchema)]
pub struct ContactList {
    pub contacts: Vec<ContactWithAttempts>,
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

/// The contact set a `{campaign_id}` names, and how its numbers are parsed.
struct Target {
    scope: Scope,
    status: Option<CampaignStatus>,
    country: Option<Country>,
}

async fn target(state: &AppState, org: Uuid, key: &str) -> Result<Target, ApiError> {
    if key == "default" {
        return Ok(Target {
            scope: Scope::AdHoc,
            status: None,
            country: None,
        });
    }
    let campaign = find(state, org, key).await?;
    let configuration = configurations::get(&state.pool, org, campaign.configuration_id)
        .await?
        .ok_or(ApiError::NotFound("configuration"))?;
    Ok(Target {
        scope: Scope::Campaign {
            id: campaign.id,
            priority: campaign.priority,
        },
        status: Some(campaign.status),
        country: configuration.dialing_policy.default_country,
    })
}

fn parse_contact(
    index: usize,
    input: ContactInput,
    target: &Target,
) -> Result<NewContact, ApiError> {
    let field = |name: &str| format!("contacts[{index}].{name}");
    if input.phone_numbers.is_empty() || input.phone_numbers.len() > 10 {
        return Err(ApiError::invalid(
            field("phone_numbers"),
            "must hold 1 to 10 numbers",
        ));
    }
    let mut numbers: Vec<E164> = Vec::with_capacity(input.phone_numbers.len());
    for (i, raw) in input.phone_numbers.iter().enumerate() {
        let parsed = match target.scope {
            Scope::AdHoc => E164::strict(raw),
            Scope::Campaign { .. } => E164::normalize(raw, target.country),
        }
        .map_err(|e| ApiError::invalid(field(&format!("phone_numbers[{i}]")), e))?;
        if let Some(first) = numbers.iter().position(|n| *n == parsed) {
            let reason = format!("repeats phone_numbers[{first}]");
            return Err(ApiError::invalid(
                field(&format!("phone_numbers[{i}]")),
                reason,
            ));
        }
        numbers.push(parsed);
    }
    if let Some(id) = &input.external_id {
        check_external_id(&field("external_id"), id)?;
    }
    Ok(NewContact {
        id: input.id,
        external_id: input.external_id,
        phone_numbers: numbers,
        data: serde_json::Value::Object(input.data),
        timezone: input.timezone,
        scheduled_at: input.scheduled_at,
        agent: AgentFields {
            agent_id: input.agent_id,
            agent_version: input.agent_version,
            agent_number: input.agent_number,
            agent_config: input.agent_config,
            initial_context: input.initial_context,
        },
    })
}

/// Refuses a request that names one contact twice.
fn check_unique_keys(contacts: &[NewContact]) -> Result<(), ApiError> {
    for (i, c) in contacts.iter().enumerate() {
        let earlier = &contacts[..i];
        if c.id.is_some() && earlier.iter().any(|e| e.id == c.id) {
            return Err(ApiError::invalid(
                format!("contacts[{i}].id"),
                "appears twice in the request",
            ));
        }
        if c.external_id.is_some() && earlier.iter().any(|e| e.external_id == c.external_id) {
            return Err(ApiError::invalid(
                format!("contacts[{i}].external_id"),
                "appears twice in the request",
            ));
        }
    }
    Ok(())
}

/// Create or update up to 1000 contacts, matched on `id` or `external_id`; all or nothing.
#[utoipa::path(post, path = "/campaign/campaigns/{campaign_id}/contacts", request_body = ContactsUpsert, tag = "contacts",
    params(("campaign_id" = String, Path, description = "UUID, external_id or `default`")),
    responses((status = 200, body = UpsertResult), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn upsert(
    State(state): State<AppState>,
    auth: Auth<CampaignsManage>,
    ApiPath(key): ApiPath<String>,
    ApiJson(body): ApiJson<ContactsUpsert>,
) -> Result<Json<UpsertResult>, ApiError> {
    let count = body.contacts.len();
    if count == 0 || count > MAX_UPSERT {
        return Err(ApiError::invalid(
            "contacts",
            format!("must hold 1 to {MAX_UPSERT} contacts, got {count}"),
        ));
    }
    let target = target(&state, auth.org, &key).await?;
    if target.status == Some(CampaignStatus::Closed) {
        return Err(ApiError::BadState(
            "campaign is closed; it takes no more contacts".into(),
        ));
    }
    let contacts = body
        .contacts
        .into_iter()
        .enumerate()
        .map(|(i, c)| parse_contact(i, c, &target))
        .collect::<Result<Vec<_>, _>>()?;
    check_unique_keys(&contacts)?;
    let done = store::upsert(&state.pool, auth.org, target.scope, &contacts)
        .await?
        .map_err(|r| ApiError::invalid(format!("contacts[{}].{}", r.index, r.field), r.reason))?;
    tracing::info!(
        created = done.created,
        updated = done.updated,
        "contacts upserted"
    );
    Ok(Json(UpsertResult {
        created: done.created,
        updated: done.updated,
        contact_ids: done.ids,
    }))
}

async fn with_attempts(
    state: &AppState,
    contacts: Vec<Contact>,
) -> Result<Vec<ContactWithAttempts>, ApiError> {
    let ids: Vec<Uuid> = contacts.iter().map(|c| c.id).collect();
    let mut by_contact: HashMap<Uuid, Vec<_>> = HashMap::new();
    for attempt in attempts::for_contacts(&state.pool, &ids).await? {
        by_contact
            .entry(attempt.contact_id)
            .or_default()
            .push(attempt);
    }
    Ok(contacts
        .into_iter()
        .map(|contact| {
            let attempts = by_contact.remove(&contact.id).unwrap_or_default();
            ContactWithAttempts { contact, attempts }
        })
        .collect())
}

/// List a campaign's contacts, each with its attempts.
#[utoipa::path(get, path = "/campaign/campaigns/{campaign_id}/contacts", tag = "contacts",
    params(("campaign_id" = String, Path, description = "UUID, external_id or `default`"),
           ("limit" = Option<i64>, Query, description = "1 to 1000, default 100"),
           ("offset" = Option<i64>, Query, description = "default 0"),
           ("status" = Option<Vec<ContactStatus>>, Query, description = "repeatable")),
    responses((status = 200, body = ContactList), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth<CampaignsRead>,
    ApiPath(key): ApiPath<String>,
    mut query: Query,
) -> Result<Json<ContactList>, ApiError> {
    let limit = query.int("limit", 100, 1, 1000)?;
    let offset = query.int("offset", 0, 0, i64::from(i32::MAX))?;
    let statuses = query.all::<ContactStatus>("status")?;
    query.finish()?;
    let target = target(&state, auth.org, &key).await?;
    let page = store::list(
        &state.pool,
        auth.org,
        target.scope,
        &statuses,
        limit,
        offset,
    )
    .await?;
    let contacts = with_attempts(&state, page.contacts).await?;
    Ok(Json(ContactList {
        contacts,
        total: page.total,
        limit,
        offset,
    }))
}

async fn find_contact(
    state: &AppState,
    org: Uuid,
    campaign: &str,
    key: &str,
) -> Result<Contact, ApiError> {
    let target = target(state, org, campaign).await?;
    store::resolve(&state.pool, org, target.scope, key)
        .await?
        .ok_or(ApiError::NotFound("contact"))
}

/// Read one contact, with its attempts.
#[utoipa::path(get, path = "/campaign/campaigns/{campaign_id}/contacts/{contact_id}", tag = "contacts",
    params(("campaign_id" = String, Path, description = "UUID, external_id or `default`"),
           ("contact_id" = String, Path, description = "UUID or external_id")),
    responses((status = 200, body = ContactWithAttempts), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    auth: Auth<CampaignsRead>,
    ApiPath((campaign, key)): ApiPath<(String, String)>,
) -> Result<Json<ContactWithAttempts>, ApiError> {
    let contact = find_contact(&state, auth.org, &campaign, &key).await?;
    let mut found = with_attempts(&state, vec![contact]).await?;
    Ok(Json(found.remove(0)))
}

/// Why a contact is or is not being called: every gate the claim applies,
/// in its order, passed or failed, with when a failed one passes again
/// where that is known, and the verdict.
#[utoipa::path(get, path = "/campaign/campaigns/{campaign_id}/contacts/{contact_id}/explain", tag = "contacts",
    params(("campaign_id" = String, Path, description = "UUID, external_id or `default`"),
           ("contact_id" = String, Path, description = "UUID or external_id")),
    responses((status = 200, body = Explanation), (status = 404, body = ErrorBody)))]
pub async fn explain(
    State(state): State<AppState>,
    auth: Auth<CampaignsRead>,
    ApiPath((campaign, key)): ApiPath<(String, String)>,
) -> Result<Json<Explanation>, ApiError> {
    let contact = find_contact(&state, auth.org, &campaign, &key).await?;
    let facts = store::explain_facts(&state.pool, auth.org, contact.id, state.global_limit)
        .await?
        .ok_or(ApiError::NotFound("contact"))?;
    Ok(Json(crate::domain::explain::explain(&facts, Utc::now())))
}

/// Delete a contact and its attempts; refused (409) while a call to it is active.
#[utoipa::path(delete, path = "/campaign/campaigns/{campaign_id}/contacts/{contact_id}", tag = "contacts",
    params(("campaign_id" = String, Path, description = "UUID, external_id or `default`"),
           ("contact_id" = String, Path, description = "UUID or external_id")),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    auth: Auth<CampaignsManage>,
    ApiPath((campaign, key)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let contact = find_contact(&state, auth.org, &campaign, &key).await?;
    match crate::db::retrying(|| store::delete(&state.pool, auth.org, contact.id)).await? {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(DeleteRefused::NotFound) => Err(ApiError::NotFound("contact")),
        Err(DeleteRefused::CallInProgress) => Err(ApiError::Conflict(
            "a call to this contact is in progress; delete it once the call ends".into(),
        )),
    }
}
