//! Configurations: schedule, dialing policy and default agent, stored as
//! JSON documents that were validated into domain types at the edge.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use super::DbError;
use crate::domain::agent::AgentFields;
use crate::domain::policy::DialingPolicy;
use crate::domain::schedule::Schedule;

/// The writable parts of a configuration.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigurationBody {
    pub name: String,
    pub schedule: Schedule,
    pub dialing_policy: DialingPolicy,
    pub agent: AgentFields,
}

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Configuration {
    pub id: Uuid,
    pub name: String,
    #[sqlx(json)]
    pub schedule: Schedule,
    #[sqlx(json)]
    pub dialing_policy: DialingPolicy,
    #[sqlx(json)]
    pub agent: AgentFields,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, name, schedule, dialing_policy, agent, created_at, updated_at";

pub async fn create(
    pool: &PgPool,
    org: Uuid,
    body: &ConfigurationBody,
) -> Result<Configuration, DbError> {
    Ok(sqlx::query_as(&format!(
        "INSERT INTO configurations (id, organization_id, name, schedule, dialing_policy, agent)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(org)
    .bind(&body.name)
    .bind(Json(&body.schedule))
    .bind(Json(&body.dialing_policy))
    .bind(Json(&body.agent))
    .fetch_one(pool)
    .await?)
}

pub async fn list(pool: &PgPool, org: Uuid) -> Result<Vec<Configuration>, DbError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM configurations WHERE organization_id = $1 ORDER BY id"
    ))
    .bind(org)
    .fetch_all(pool)
    .await?)
}

pub async fn get(pool: &PgPool, org: Uuid, id: Uuid) -> Result<Option<Configuration>, DbError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM configurations WHERE organization_id = $1 AND id = $2"
    ))
    .bind(org)
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

pub async fn replace(
    pool: &PgPool,
    org: Uuid,
    id: Uuid,
    body: &ConfigurationBody,
) -> Result<Option<Configuration>, DbError> {
    Ok(sqlx::query_as(&format!(
        "UPDATE configurations
            SET name = $3, schedule = $4, dialing_policy = $5, agent = $6, updated_at = now()
          WHERE organization_id = $1 AND id = $2
      RETURNING {COLUMNS}"
    ))
    .bind(org)
    .bind(id)
    .bind(&body.name)
    .bind(Json(&body.schedule))
    .bind(Json(&body.dialing_policy))
    .bind(Json(&body.agent))
    .fetch_optional(pool)
    .await?)
}

/// Why a configuration was not deleted.
pub enum DeleteRefused {
    NotFound,
    InUse,
}

pub async fn delete(
    pool: &PgPool,
    org: Uuid,
    id: Uuid,
) -> Result<Result<(), DeleteRefused>, DbError> {
    let result = sqlx::query("DELETE FROM configurations WHERE organization_id = $1 AND id = $2")
        .bind(org)
        .bind(id)
        .execute(pool)
        .await;
    match result {
        Ok(done) if done.rows_affected() == 1 => Ok(Ok(())),
        Ok(_) => Ok(Err(DeleteRefused::NotFound)),
        Err(sqlx::Error::Database(db)) if db.is_foreign_key_violation() => {
            Ok(Err(DeleteRefused::InUse))
        }
        Err(e) => Err(e.into()),
    }
}
