//! Do-not-call lists of the caller's organization (and the global lists,
//! read-only): create, list, delete, add and remove numbers in batches,
//! look a number up.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, Auth, CampaignsManage, CampaignsRead};
use super::AppState;
use crate::db::dnc::{self as store, DncList, Listing};
use crate::domain::phone::{list_number, Country, E164};

/// Most numbers one request adds or removes.
pub const MAX_NUMBERS: usize = 10_000;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DncListCreate {
    /// 1 to 200 characters, unique within the organization.
    pub name: String,
    /// ISO 3166 alpha-2 country of numbers given without `+`.
    #[schema(value_type = Option<String>, example = "US")]
    pub default_country: Option<Country>,
}

#[derive(Serialize, ToSchema)]
pub struct DncLists {
    /// The organization's own lists, then the global ones.
    pub lists: Vec<DncList>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DncNumbers {
    /// 1 to 10,000 numbers: E.164, or national with the list's default country.
    pub numbers: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct DncChanged {
    /// Numbers that were not on the list (added) or were (removed).
    pub changed: u64,
    /// The list's version after the change.
    pub version: i64,
    pub size: i64,
}

#[derive(Serialize, ToSchema)]
pub struct DncLookup {
    /// The number in E.164.
    pub number: String,
    /// Lists that apply to the organization and hold it.
    pub lists: Vec<Listing>,
}

/// One of the caller's own lists (a global one is refused: only the
/// installation's operator changes it).
async fn own(state: &AppState, org: Uuid, id: Uuid) -> Result<DncList, ApiError> {
    let list = store::get(&state.pool, org, id)
        .await?
        .ok_or(ApiError::NotFound("do-not-call list"))?;
    if list.global {
        return Err(ApiError::BadState(
            "a global list is changed only by the installation's operator (dialerd dnc load --global)"
                .into(),
        ));
    }
    Ok(list)
}

/// Reads the numbers of a request as integers; all or nothing.
fn numbers(list: &DncList, body: &DncNumbers) -> Result<Vec<i64>, ApiError> {
    let count = body.numbers.len();
    if count == 0 || count > MAX_NUMBERS {
        return Err(ApiError::invalid(
            "numbers",
            format!("must hold 1 to {MAX_NUMBERS} numbers, got {count}"),
        ));
    }
    let country = list
        .default_country
        .as_deref()
        .and_then(|c| Country::parse(c).ok());
    body.numbers
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            list_number(raw, country).map_err(|e| ApiError::invalid(format!("numbers[{i}]"), e))
        })
        .collect()
}

/// Create a do-not-call list of the organization.
#[utoipa::path(post, path = "/campaign/dnc-lists", request_body = DncListCreate, tag = "do-not-call",
    responses((status = 201, body = DncList), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth<CampaignsManage>,
    ApiJson(body): ApiJson<DncListCreate>,
) -> Result<(StatusCode, Json<DncList>), ApiError> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::invalid("name", "must be 1 to 200 characters"));
    }
    let country = body
        .default_country
        .map(|c| serde_json::to_value(c).expect("a country serializes"));
    let country = country.as_ref().and_then(|v| v.as_str());
    let list = store::create(&state.pool, Some(auth.org), name, country).await?;
    Ok((StatusCode::CREATED, Json(list)))
}

/// The organization's do-not-call lists, and the global ones that apply to it.
#[utoipa::path(get, path = "/campaign/dnc-lists", tag = "do-not-call",
    responses((status = 200, body = DncLists)))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth<CampaignsRead>,
) -> Result<Json<DncLists>, ApiError> {
    Ok(Json(DncLists {
        lists: store::lists(&state.pool, auth.org).await?,
    }))
}

/// One list: the organization's own or a global one.
#[utoipa::path(get, path = "/campaign/dnc-lists/{list_id}", tag = "do-not-call",
    params(("list_id" = Uuid, Path)),
    responses((status = 200, body = DncList), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    auth: Auth<CampaignsRead>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<DncList>, ApiError> {
    Ok(Json(
        store::get(&state.pool, auth.org, id)
            .await?
            .ok_or(ApiError::NotFound("do-not-call list"))?,
    ))
}

/// Delete one of the organization's lists and its numbers.
#[utoipa::path(delete, path = "/campaign/dnc-lists/{list_id}", tag = "do-not-call",
    params(("list_id" = Uuid, Path)),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    auth: Auth<CampaignsManage>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    own(&state, auth.org, id).await?;
    if !store::delete(&state.pool, auth.org, id).await? {
        return Err(ApiError::NotFound("do-not-call list"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Add up to 10,000 numbers, all or nothing: once this answers, none of
/// them is dialed for the organization, contacts already queued included.
#[utoipa::path(post, path = "/campaign/dnc-lists/{list_id}/numbers", request_body = DncNumbers, tag = "do-not-call",
    params(("list_id" = Uuid, Path)),
    responses((status = 200, body = DncChanged), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn add(
    State(state): State<AppState>,
    auth: Auth<CampaignsManage>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<DncNumbers>,
) -> Result<Json<DncChanged>, ApiError> {
    let list = own(&state, auth.org, id).await?;
    let numbers = numbers(&list, &body)?;
    let changed = crate::db::retrying(|| store::add(&state.pool, Some(auth.org), id, &numbers))
        .await?
        .ok_or(ApiError::NotFound("do-not-call list"))?;
    changed_answer(&state, auth.org, id, changed).await
}

/// Remove up to 10,000 numbers from a list.
#[utoipa::path(post, path = "/campaign/dnc-lists/{list_id}/numbers/remove", request_body = DncNumbers, tag = "do-not-call",
    params(("list_id" = Uuid, Path)),
    responses((status = 200, body = DncChanged), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn remove(
    State(state): State<AppState>,
    auth: Auth<CampaignsManage>,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<DncNumbers>,
) -> Result<Json<DncChanged>, ApiError> {
    let list = own(&state, auth.org, id).await?;
    let numbers = numbers(&list, &body)?;
    let changed = crate::db::retrying(|| store::remove(&state.pool, Some(auth.org), id, &numbers))
        .await?
        .ok_or(ApiError::NotFound("do-not-call list"))?;
    changed_answer(&state, auth.org, id, changed).await
}

async fn changed_answer(
    state: &AppState,
    org: Uuid,
    id: Uuid,
    changed: u64,
) -> Result<Json<DncChanged>, ApiError> {
    let list = store::get(&state.pool, org, id)
        .await?
        .ok_or(ApiError::NotFound("do-not-call list"))?;
    Ok(Json(DncChanged {
        changed,
        version: list.version,
        size: list.size,
    }))
}

/// Which lists that apply to the organization hold a number (E.164), since when.
#[utoipa::path(get, path = "/campaign/dnc-numbers/{number}", tag = "do-not-call",
    params(("number" = String, Path, description = "E.164, e.g. +14155550123")),
    responses((status = 200, body = DncLookup), (status = 422, body = ErrorBody)))]
pub async fn lookup(
    State(state): State<AppState>,
    auth: Auth<CampaignsRead>,
    ApiPath(number): ApiPath<String>,
) -> Result<Json<DncLookup>, ApiError> {
    let parsed = list_number(&number, None).map_err(|e| ApiError::invalid("number", e))?;
    let lists = store::lookup(&state.pool, auth.org, parsed).await?;
    let number = E164::from_stored(format!("+{parsed}"))
        .map_or_else(|| format!("+{parsed}"), |n| n.as_str().to_owned());
    Ok(Json(DncLookup { number, lists }))
}
