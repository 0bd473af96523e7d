//! What the web dashboard shows, read for one organization: campaigns with
//! progress and recent call rates, a campaign's contacts found by external
//! id or number, the daemons and their lines, the limits.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::contacts::{Contact, COLUMNS};
use super::DbError;
use crate::domain::status::CampaignStatus;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CampaignRow {
    pub id: Uuid,
    pub name: String,
    pub external_id: Option<String>,
    pub status: CampaignStatus,
    pub priority: i32,
    pub total: i64,
    pub pending: i64,
    pub active: i64,
    pub completed: i64,
    pub exhausted: i64,
    /// Calls placed in the last minute.
    pub calls_last_minute: i64,
    /// Calls that ended in the last hour, and of them those answered.
    pub ended_last_hour: i64,
    pub answered_last_hour: i64,
}

impl CampaignRow {
    /// Answered calls over ended calls of the last hour, if any ended.
    pub fn answer_rate(&self) -> Option<f64> {
        (self.ended_last_hour > 0)
            .then(|| self.answered_last_hour as f64 / self.ended_last_hour as f64)
    }
}

const CAMPAIGN_ROW: &str = "
    SELECT k.id, k.name, k.external_id, k.status, k.priority,
           c.total, c.pending, c.active, c.completed, c.exhausted,
           a.calls_last_minute, a.ended_last_hour, a.answered_last_hour
      FROM campaigns k
     CROSS JOIN LATERAL (
           SELECT count(*) AS total,
                  count(*) FILTER (WHERE status = 'pending') AS pending,
                  count(*) FILTER (WHERE status IN ('locked', 'in_progress')) AS active,
                  count(*) FILTER (WHERE status = 'completed') AS completed,
                  count(*) FILTER (WHERE status = 'exhausted') AS exhausted
             FROM contacts WHERE campaign_id = k.id) c
     CROSS JOIN LATERAL (
           SELECT count(*) FILTER (WHERE created_at > now() - interval '1 minute') AS calls_last_minute,
                  count(*) FILTER (WHERE ended_at > now() - interval '1 hour') AS ended_last_hour,
                  count(*) FILTER (WHERE ended_at > now() - interval '1 hour'
                                     AND answered_at IS NOT NULL) AS answered_last_hour
             FROM attempts WHERE campaign_id = k.id AND created_at > now() - interval '2 hours') a";

/// The organization's campaigns: open ones first, by priority.
pub async fn campaigns(pool: &PgPool, org: Uuid) -> Result<Vec<CampaignRow>, DbError> {
    Ok(sqlx::query_as(&format!(
        "{CAMPAIGN_ROW} WHERE k.organization_id = $1
          ORDER BY k.status = 'closed', k.priority DESC, k.name, k.id LIMIT 500"
    ))
    .bind(org)
    .fetch_all(pool)
    .await?)
}

pub async fn campaign(pool: &PgPool, org: Uuid, id: Uuid) -> Result<Option<CampaignRow>, DbError> {
    Ok(sqlx::query_as(&format!(
        "{CAMPAIGN_ROW} WHERE k.organization_id = $1 AND k.id = $2"
    ))
    .bind(org)
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

/// Up to `limit` contacts of a campaign: every one, or those whose
/// external id is `external_id` or who hold `number` (E.164).
pub async fn contacts(
    pool: &PgPool,
    org: Uuid,
    campaign: Uuid,
    external_id: Option<&str>,
    number: Option<&str>,
    limit: i64,
) -> Result<Vec<Contact>, DbError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM contacts
          WHERE organization_id = $1 AND campaign_id = $2
            AND (($3::text IS NULL AND $4::text IS NULL)
                 OR external_id = $3 OR $4 = ANY (phone_numbers))
          ORDER BY created_at, id LIMIT $5"
    ))
    .bind(org)
    .bind(campaign)
    .bind(external_id)
    .bind(number)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InstanceRow {
    pub id: Uuid,
    pub hostname: String,
    pub pid: i32,
    pub lines: i32,
    pub started_at: DateTime<Utc>,
    /// Seconds since its last heartbeat renewed its lease.
    pub lease_age_seconds: f64,
    pub lease_expires_at: DateTime<Utc>,
    pub alive: bool,
    /// Its lines busy with a call, of every organization.
    pub busy: i64,
    /// Of those, this organization's calls.
    pub busy_here: i64,
}

/// Every daemon on the database.
pub async fn instances(pool: &PgPool, org: Uuid) -> Result<Vec<InstanceRow>, DbError> {
    Ok(sqlx::query_as(
        "SELECT i.id, i.hostname, i.pid, i.lines, i.started_at,
                extract(epoch FROM now() - i.heartbeat_at)::float8 AS lease_age_seconds,
                i.lease_expires_at, i.lease_expires_at > now() AS alive,
                count(c.id) AS busy,
                count(c.id) FILTER (WHERE c.organization_id = $1) AS busy_here
           FROM dialer_instances i
           LEFT JOIN contacts c ON c.owner_instance = i.id AND c.status IN ('locked', 'in_progress')
          GROUP BY i.id ORDER BY i.started_at, i.id",
    )
    .bind(org)
    .fetch_all(pool)
    .await?)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Limits {
    pub name: String,
    pub concurrency_limit: i32,
    /// This organization's calls now.
    pub active: i64,
    /// Calls of every organization now.
    pub global_active: i64,
}

pub async fn limits(pool: &PgPool, org: Uuid) -> Result<Limits, DbError> {
    Ok(sqlx::query_as(
        "SELECT o.name, o.concurrency_limit,
                (SELECT count(*) FROM contacts c WHERE c.organization_id = o.id
                    AND c.status IN ('locked', 'in_progress')) AS active,
                (SELECT count(*) FROM contacts c
                  WHERE c.status IN ('locked', 'in_progress')) AS global_active
           FROM organizations o WHERE o.id = $1",
    )
    .bind(org)
    .fetch_one(pool)
    .await?)
}
