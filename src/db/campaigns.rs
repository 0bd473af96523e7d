//! Campaigns: creation, lookup by UUID or external_id, patching, listing and
//! the lifecycle transitions, each a single conditional UPDATE; and what the
//! engine reads of them: their statuses, and the plans it dials them by.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{FromRow, PgPool, Row};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{duplicate, DbError};
use crate::domain::agent::AgentFields;
use crate::domain::plan::CampaignPlan;
use crate::domain::status::CampaignStatus;

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Campaign {
    pub id: Uuid,
    pub external_id: Option<String>,
    pub name: String,
    pub configuration_id: Uuid,
    pub status: CampaignStatus,
    pub priority: i32,
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub agent: AgentFields,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, external_id, name, configuration_id, status, priority, agent_id, \
     agent_version, agent_number, agent_config, initial_context, created_at, updated_at";

/// A validated new campaign.
pub struct NewCampaign {
    pub name: String,
    pub configuration_id: Uuid,
    pub priority: i32,
    pub external_id: Option<String>,
    pub agent: AgentFields,
}

/// A validated partial update: `None` leaves a field as it is; for nullable
/// fields `Some(None)` clears it.
#[derive(Default, Clone)]
pub struct CampaignPatch {
    pub name: Option<String>,
    pub configuration_id: Option<Uuid>,
    pub priority: Option<i32>,
    pub external_id: Option<Option<String>>,
    pub agent_id: Option<Option<String>>,
    pub agent_version: Option<Option<String>>,
    pub agent_number: Option<Option<String>>,
    pub agent_config: Option<Option<serde_json::Value>>,
    pub initial_context: Option<Option<String>>,
}

/// Listing filters; `after` is the cursor (the last id of the previous page).
pub struct CampaignFilter {
    pub name: Option<String>,
    pub statuses: Vec<CampaignStatus>,
    pub after: Option<Uuid>,
    pub limit: i64,
}

const EXTERNAL_ID_KEY: &str = "campaigns_organization_id_external_id_key";

pub async fn create(pool: &PgPool, org: Uuid, new: NewCampaign) -> Result<Campaign, DbError> {
    sqlx::query_as(&format!(
        "INSERT INTO campaigns (id, organization_id, external_id, name, configuration_id, priority,
                                agent_id, agent_version, agent_number, agent_config, initial_context)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(org)
    .bind(&new.external_id)
    .bind(&new.name)
    .bind(new.configuration_id)
    .bind(new.priority)
    .bind(&new.agent.agent_id)
    .bind(&new.agent.agent_version)
    .bind(&new.agent.agent_number)
    .bind(new.agent.agent_config.as_ref().map(Json))
    .bind(&new.agent.initial_context)
    .fetch_one(pool)
    .await
    .map_err(|e| duplicate(e, EXTERNAL_ID_KEY, "campaign", "external_id"))
}

/// Resolves `key` as a UUID first, then as an external_id, within `org`.
pub async fn resolve(pool: &PgPool, org: Uuid, key: &str) -> Result<Option<Campaign>, DbError> {
    let as_uuid = Uuid::parse_str(key).ok();
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM campaigns
          WHERE organization_id = $1 AND (id = $2 OR external_id = $3)
          ORDER BY (id = $2) IS TRUE DESC
          LIMIT 1"
    ))
    .bind(org)
    .bind(as_uuid)
    .bind(key)
    .fetch_optional(pool)
    .await?)
}

pub async fn list(
    pool: &PgPool,
    org: Uuid,
    filter: &CampaignFilter,
) -> Result<Vec<Campaign>, DbError> {
    let pattern = filter.name.as_ref().map(|n| {
        let escaped = n
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        format!("%{escaped}%")
    });
    let statuses: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM campaigns
          WHERE organization_id = $1
            AND ($2::uuid IS NULL OR id > $2)
            AND ($3::text IS NULL OR name ILIKE $3)
            AND (cardinality($4::text[]) = 0 OR status::text = ANY($4))
          ORDER BY id
          LIMIT $5"
    ))
    .bind(org)
    .bind(filter.after)
    .bind(pattern)
    .bind(&statuses)
    .bind(filter.limit)
    .fetch_all(pool)
    .await?)
}

/// Applies a patch; a priority change is copied to the campaign's contacts in
/// the same transaction so the claim order follows it.
pub async fn patch(
    pool: &PgPool,
    org: Uuid,
    id: Uuid,
    p: CampaignPatch,
) -> Result<Option<Campaign>, DbError> {
    let mut tx = pool.begin().await?;
    let updated: Option<Campaign> = sqlx::query_as(&format!(
        "UPDATE campaigns SET
            name = COALESCE($3, name),
            configuration_id = COALESCE($4, configuration_id),
            priority = COALESCE($5, priority),
            external_id = CASE WHEN $6 THEN $7 ELSE external_id END,
            agent_id = CASE WHEN $8 THEN $9 ELSE agent_id END,
            agent_version = CASE WHEN $10 THEN $11 ELSE agent_version END,
            agent_number = CASE WHEN $12 THEN $13 ELSE agent_number END,
            agent_config = CASE WHEN $14 THEN $15 ELSE agent_config END,
            initial_context = CASE WHEN $16 THEN $17 ELSE initial_context END,
            updated_at = now()
          WHERE organization_id = $1 AND id = $2
      RETURNING {COLUMNS}"
    ))
    .bind(org)
    .bind(id)
    .bind(p.name)
    .bind(p.configuration_id)
    .bind(p.priority)
    .bind(p.external_id.is_some())
    .bind(p.external_id.flatten())
    .bind(p.agent_id.is_some())
    .bind(p.agent_id.flatten())
    .bind(p.agent_version.is_some())
    .bind(p.agent_version.flatten())
    .bind(p.agent_number.is_some())
    .bind(p.agent_number.flatten())
    .bind(p.agent_config.is_some())
    .bind(p.agent_config.flatten().map(Json))
    .bind(p.initial_context.is_some())
    .bind(p.initial_context.flatten())
    .fetch_optional(&mut *tx)
    .await
    .map_err(|e| duplicate(e, EXTERNAL_ID_KEY, "campaign", "external_id"))?;
    if let (Some(campaign), Some(priority)) = (&updated, p.priority) {
        sqlx::query("UPDATE contacts SET priority = $2 WHERE campaign_id = $1 AND priority <> $2")
            .bind(campaign.id)
            .bind(priority)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(updated)
}

/// A lifecycle call (SPEC 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Start,
    Pause,
    Close,
}

impl Transition {
    pub fn target(self) -> CampaignStatus {
        match self {
            Transition::Start => CampaignStatus::Active,
            Transition::Pause => CampaignStatus::Paused,
            Transition::Close => CampaignStatus::Closed,
        }
    }

    /// The statuses from which the call takes effect.
    fn allowed_from(self) -> &'static [&'static str] {
        match self {
            Transition::Start => &["active", "paused"],
            Transition::Pause => &["active"],
            Transition::Close => &["active", "paused"],
        }
    }
}

/// Applies `t` in one conditional UPDATE. `Ok(None)` means the campaign
/// exists but its status refused the call.
pub async fn transition(
    pool: &PgPool,
    org: Uuid,
    id: Uuid,
    t: Transition,
) -> Result<Option<Campaign>, DbError> {
    Ok(sqlx::query_as(&format!(
        "UPDATE campaigns SET status = $3, updated_at = now()
          WHERE organization_id = $1 AND id = $2 AND status::text = ANY($4)
      RETURNING {COLUMNS}"
    ))
    .bind(org)
    .bind(id)
    .bind(t.target())
    .bind(t.allowed_from())
    .fetch_optional(pool)
    .await?)
}

/// Deletes every campaign of the organization, with their contacts and attempts.
pub async fn delete_all(pool: &PgPool, org: Uuid) -> Result<u64, DbError> {
    Ok(
        sqlx::query("DELETE FROM campaigns WHERE organization_id = $1")
            .bind(org)
            .execute(pool)
            .await?
            .rows_affected(),
    )
}

/// A campaign's status as the poller sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StatusSeen {
    pub id: Uuid,
    pub active: bool,
    /// Seconds since the status last changed, by the database's clock.
    pub changed_seconds_ago: f64,
}

/// Every active campaign, plus those of `also` whatever their status.
pub async fn statuses(pool: &PgPool, also: &[Uuid]) -> Result<Vec<StatusSeen>, DbError> {
    Ok(sqlx::query_as(
        "SELECT id, status = 'active' AS active,
                extract(epoch FROM clock_timestamp() - status_changed_at)::float8 AS changed_seconds_ago
           FROM campaigns WHERE status = 'active'
         UNION
         SELECT id, status = 'active' AS active,
                extract(epoch FROM clock_timestamp() - status_changed_at)::float8 AS changed_seconds_ago
           FROM campaigns WHERE id = ANY($1)",
    )
    .bind(also)
    .fetch_all(pool)
    .await?)
}

/// A fingerprint of the set of active campaigns: it changes whenever a
/// campaign becomes active or stops being active (each status change
/// stamps `status_changed_at`), so a poll that finds it unchanged need not
/// read the campaigns themselves.
pub async fn active_fingerprint(pool: &PgPool) -> Result<(i64, i64), DbError> {
    Ok(sqlx::query_as(
        "SELECT count(*), coalesce(bit_xor(hashtextextended(id::text || status_changed_at::text, 0)), 0)
           FROM campaigns WHERE status = 'active'",
    )
    .fetch_one(pool)
    .await?)
}

#[derive(sqlx::FromRow)]
struct PlanRow {
    id: Uuid,
    organization_id: Uuid,
    schedule: Json<crate::domain::schedule::Schedule>,
    dialing_policy: Json<crate::domain::policy::DialingPolicy>,
    config_agent: Json<AgentFields>,
    #[sqlx(flatten)]
    campaign_agent: AgentFields,
}

/// The plans of those of `campaign_ids` that are active, each with the
/// distinct stored time zones ("" for none) of its waiting contacts: two
/// statements for any number of campaigns. A campaign whose row does not
/// decode is left out (and logged), never failing the others.
pub async fn load_plans(
    pool: &PgPool,
    campaign_ids: &[Uuid],
) -> Result<Vec<(CampaignPlan, Vec<String>)>, DbError> {
    let rows: Vec<PgRow> = sqlx::query(
        "SELECT k.id, k.organization_id, f.schedule, f.dialing_policy, f.agent AS config_agent,
                k.agent_id, k.agent_version, k.agent_number, k.agent_config, k.initial_context
           FROM campaigns k JOIN configurations f ON f.id = k.configuration_id
          WHERE k.id = ANY($1) AND k.status = 'active'",
    )
    .bind(campaign_ids)
    .fetch_all(pool)
    .await?;
    let mut zones: HashMap<Uuid, Vec<String>> = HashMap::new();
    for (id, zone) in pending_zones(pool, campaign_ids).await? {
        zones.entry(id).or_default().push(zone);
    }
    let mut plans = Vec::with_capacity(rows.len());
    for row in rows {
        match PlanRow::from_row(&row) {
            Ok(r) => plans.push((
                CampaignPlan {
                    campaign_id: r.id,
                    organization_id: r.organization_id,
                    schedule: r.schedule.0,
                    policy: r.dialing_policy.0,
                    agent: r.campaign_agent.or(&r.config_agent.0),
                },
                zones.remove(&r.id).unwrap_or_default(),
            )),
            Err(e) => {
                let id: Option<Uuid> = row.try_get("id").ok();
                tracing::warn!(campaign_id = ?id, error = %e, "a campaign's plan does not decode; it is not dialed");
            }
        }
    }
    Ok(plans)
}

/// The distinct zone keys (`contacts.zone_key`: a stated zone, `~` and the
/// zones of its numbers, or "") of the waiting contacts of each of
/// `campaign_ids`.
///
/// One index probe per zone in `contacts_pending_zones` (each the smallest
/// zone after the last), not a read of every waiting contact (a DISTINCT
/// over a backlog of 800,000 contacts takes hundreds of milliseconds); a
/// campaign with none costs two probes.
async fn pending_zones(
    pool: &PgPool,
    campaign_ids: &[Uuid],
) -> Result<Vec<(Uuid, String)>, DbError> {
    Ok(sqlx::query_as(
        "SELECT k.id, z.zone FROM unnest($1::uuid[]) AS k(id) CROSS JOIN LATERAL (
             WITH RECURSIVE zones(zone) AS (
                 SELECT min(zone_key) FROM contacts WHERE campaign_id = k.id AND status = 'pending'
               UNION ALL
                 SELECT (SELECT min(c.zone_key) FROM contacts c
                          WHERE c.campaign_id = k.id AND c.status = 'pending' AND c.zone_key > z.zone)
                   FROM zones z WHERE z.zone IS NOT NULL)
             SELECT zone FROM zones WHERE zone IS NOT NULL) z",
    )
    .bind(campaign_ids)
    .fetch_all(pool)
    .await?)
}
