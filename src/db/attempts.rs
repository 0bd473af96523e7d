//! Attempts: one row per call placed, read back with their contacts.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use super::DbError;
use crate::domain::agent::AgentFields;
use crate::domain::status::Outcome;

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Attempt {
    pub id: Uuid,
    pub contact_id: Uuid,
    pub campaign_id: Option<Uuid>,
    pub attempt_number: i32,
    pub phone_number: String,
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub agent: AgentFields,
    pub conversation_id: Option<String>,
    /// Null while the call is still going.
    pub outcome: Option<Outcome>,
    pub telephony_detail: Option<String>,
    /// The dialerd instance that placed the call.
    pub instance_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
}

/// Every attempt of the given contacts, oldest first per contact.
pub async fn for_contacts(pool: &PgPool, contact_ids: &[Uuid]) -> Result<Vec<Attempt>, DbError> {
    Ok(sqlx::query_as(
        "SELECT id, contact_id, campaign_id, attempt_number, phone_number, agent_id, agent_version,
                agent_number, agent_config, initial_context, conversation_id, outcome,
                telephony_detail, instance_id, created_at, answered_at, ended_at
           FROM attempts WHERE contact_id = ANY($1)
          ORDER BY contact_id, attempt_number",
    )
    .bind(contact_ids)
    .fetch_all(pool)
    .await?)
}
