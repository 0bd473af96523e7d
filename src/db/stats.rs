//! Campaign statistics (SPEC 5, Stats), computed in the database.

use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use super::DbError;
use crate::domain::status::Outcome;

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct ContactCounts {
    pub total: i64,
    pub pending: i64,
    /// Locked plus in progress: contacts with an active call.
    pub in_progress: i64,
    pub completed: i64,
    pub exhausted: i64,
    /// Of the exhausted, those set aside because every number is on a
    /// do-not-call list (no call placed).
    pub suppressed: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AttemptCounts {
    pub total: i64,
    /// Attempts divided by contacts, rounded to 2 decimals; 0 when none.
    pub average_per_contact: f64,
    /// Finished attempts by outcome; every outcome is listed.
    #[schema(value_type = BTreeMap<String, i64>)]
    pub outcomes: BTreeMap<Outcome, i64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CampaignStats {
    pub contacts: ContactCounts,
    pub attempts: AttemptCounts,
    /// Calls of this campaign active now (locked or in progress).
    pub active_calls: i64,
    /// The organization's concurrency limit.
    pub concurrency_limit: i32,
}

/// Stats for one campaign, or for the ad-hoc contacts when `campaign` is None.
pub async fn campaign(
    pool: &PgPool,
    org: Uuid,
    campaign: Option<Uuid>,
) -> Result<CampaignStats, DbError> {
    let contacts: ContactCounts = sqlx::query_as(
        "SELECT count(*) AS total,
                count(*) FILTER (WHERE status = 'pending') AS pending,
                count(*) FILTER (WHERE status IN ('locked', 'in_progress')) AS in_progress,
                count(*) FILTER (WHERE status = 'completed') AS completed,
                count(*) FILTER (WHERE status = 'exhausted') AS exhausted,
                count(*) FILTER (WHERE status = 'exhausted' AND set_aside_reason LIKE 'suppressed%')
                    AS suppressed
           FROM contacts WHERE organization_id = $1 AND campaign_id IS NOT DISTINCT FROM $2",
    )
    .bind(org)
    .bind(campaign)
    .fetch_one(pool)
    .await?;
    let rows: Vec<(Option<Outcome>, i64)> = sqlx::query_as(
        "SELECT outcome, count(*) FROM attempts
          WHERE organization_id = $1 AND campaign_id IS NOT DISTINCT FROM $2
          GROUP BY outcome",
    )
    .bind(org)
    .bind(campaign)
    .fetch_all(pool)
    .await?;
    let concurrency_limit: i32 =
        sqlx::query_scalar("SELECT concurrency_limit FROM organizations WHERE id = $1")
            .bind(org)
            .fetch_one(pool)
            .await?;
    let mut outcomes: BTreeMap<Outcome, i64> = Outcome::ALL.iter().map(|&o| (o, 0)).collect();
    let mut total = 0;
    for (outcome, n) in rows {
        total += n;
        if let Some(o) = outcome {
            outcomes.insert(o, n);
        }
    }
    Ok(CampaignStats {
        active_calls: contacts.in_progress,
        attempts: AttemptCounts {
            total,
            average_per_contact: average(total, contacts.total),
            outcomes,
        },
        contacts,
        concurrency_limit,
    })
}

fn average(attempts: i64, contacts: i64) -> f64 {
    if contacts == 0 {
        return 0.0;
    }
    (attempts as f64 / contacts as f64 * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::average;

    #[test]
    fn the_average_is_rounded_to_two_decimals_and_zero_without_contacts() {
        assert_eq!(average(0, 0), 0.0);
        assert_eq!(average(5, 0), 0.0);
        assert_eq!(average(2, 3), 0.67);
        assert_eq!(average(10, 4), 2.5);
    }
}

/// One campaign's progress, for the demo's live view and summary.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Progress {
    pub name: String,
    pub priority: i32,
    pub total: i64,
    pub pending: i64,
    pub active: i64,
    pub completed: i64,
    pub exhausted: i64,
    pub attempts: i64,
    /// When the campaign's last contact became final, if all are.
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Progress of every campaign of an organization, highest priority first.
pub async fn progress(pool: &PgPool, org: Uuid) -> Result<Vec<Progress>, DbError> {
    Ok(sqlx::query_as(
        "SELECT k.name, k.priority,
                count(c.id) AS total,
                count(c.id) FILTER (WHERE c.status = 'pending') AS pending,
                count(c.id) FILTER (WHERE c.status IN ('locked', 'in_progress')) AS active,
                count(c.id) FILTER (WHERE c.status = 'completed') AS completed,
                count(c.id) FILTER (WHERE c.status = 'exhausted') AS exhausted,
                coalesce(sum(c.attempt_count), 0)::bigint AS attempts,
                CASE WHEN bool_and(c.status IN ('completed', 'exhausted')) THEN max(c.updated_at) END AS finished_at
           FROM campaigns k LEFT JOIN contacts c ON c.campaign_id = k.id
          WHERE k.organization_id = $1
          GROUP BY k.id ORDER BY k.priority DESC, k.id",
    )
    .bind(org)
    .fetch_all(pool)
    .await?)
}

/// Finished attempts of an organization by outcome.
pub async fn outcomes(pool: &PgPool, org: Uuid) -> Result<Vec<(Outcome, i64)>, DbError> {
    Ok(sqlx::query_as(
        "SELECT outcome, count(*) FROM attempts WHERE organization_id = $1 AND outcome IS NOT NULL
          GROUP BY outcome ORDER BY count(*) DESC",
    )
    .bind(org)
    .fetch_all(pool)
    .await?)
}
