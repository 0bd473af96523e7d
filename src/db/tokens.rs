//! API tokens: only their SHA-256 is stored.

use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use super::DbError;
use crate::domain::scope::Scope;

/// The organization and scopes a presented token grants, if any.
pub struct Grant {
    pub organization_id: Uuid,
    pub scopes: Vec<Scope>,
}

pub fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

pub async fn create(
    pool: &PgPool,
    organization_id: Uuid,
    token: &str,
    scopes: &[Scope],
) -> Result<Uuid, DbError> {
    let id = Uuid::now_v7();
    let names: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
    sqlx::query("INSERT INTO api_tokens (id, organization_id, token_sha256, scopes) VALUES ($1, $2, $3, $4)")
        .bind(id)
        .bind(organization_id)
        .bind(hash(token))
        .bind(&names)
        .execute(pool)
        .await?;
    Ok(id)
}

pub async fn lookup(pool: &PgPool, token: &str) -> Result<Option<Grant>, DbError> {
    let row: Option<(Uuid, Vec<String>)> =
        sqlx::query_as("SELECT organization_id, scopes FROM api_tokens WHERE token_sha256 = $1")
            .bind(hash(token))
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|(organization_id, names)| Grant {
        organization_id,
        // The table's CHECK admits only known scope names.
        scopes: names.iter().filter_map(|n| n.parse().ok()).collect(),
    }))
}
