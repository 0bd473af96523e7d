//! Organizations (tenants) and their concurrency limit.

use sqlx::PgPool;
use uuid::Uuid;

use super::DbError;

pub async fn create(pool: &PgPool, name: &str, concurrency_limit: i32) -> Result<Uuid, DbError> {
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO organizations (id, name, concurrency_limit) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(name)
        .bind(concurrency_limit)
        .execute(pool)
        .await?;
    Ok(id)
}

pub async fn exists(pool: &PgPool, id: Uuid) -> Result<bool, DbError> {
    Ok(
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM organizations WHERE id = $1)")
            .bind(id)
            .fetch_one(pool)
            .await?,
    )
}

pub async fn concurrency_limit(pool: &PgPool, id: Uuid) -> Result<i32, DbError> {
    Ok(
        sqlx::query_scalar("SELECT concurrency_limit FROM organizations WHERE id = $1")
            .bind(id)
            .fetch_one(pool)
            .await?,
    )
}

pub async fn set_concurrency_limit(pool: &PgPool, id: Uuid, limit: i32) -> Result<i32, DbError> {
    Ok(sqlx::query_scalar(
        "UPDATE organizations SET concurrency_limit = $2, updated_at = now() WHERE id = $1
         RETURNING concurrency_limit",
    )
    .bind(id)
    .bind(limit)
    .fetch_one(pool)
    .await?)
}

/// The id of the organization named `name`, if any (the oldest when several).
pub async fn find_by_name(pool: &PgPool, name: &str) -> Result<Option<Uuid>, DbError> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM organizations WHERE name = $1 ORDER BY created_at LIMIT 1",
    )
    .bind(name)
    .fetch_optional(pool)
    .await?)
}
