//! Do-not-call lists: the lists, their numbers (as 8-byte integers), and
//! the one rule that keeps a listed number from being dialed once its
//! addition commits.
//!
//! A claim checks the numbers of the contacts it takes (`dnc_suppressed`)
//! inside its transaction, under the claim lock. Every change that adds
//! numbers takes that same lock, so it waits for a claim in flight and
//! every later claim sees it; and it raises `dnc_epoch` on the contacts
//! claimed already (their check is past) that hold an added number. Their
//! attempt write share-locks each contact and compares `dnc_epoch` with
//! what its claim saw: it either committed before the change (the call
//! was decided first) or sees the raised epoch and writes no attempt, and
//! the contact goes back to wait for a claim that sees the list.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use super::DbError;

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct DncList {
    pub id: Uuid,
    pub name: String,
    /// Global lists apply to every organization; only the operator of the
    /// installation changes them (`dialerd dnc load --global`).
    pub global: bool,
    /// Country of numbers given without a leading `+`.
    pub default_country: Option<String>,
    /// Raised by every change of its numbers.
    pub version: i64,
    /// Numbers on the list.
    pub size: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, name, organization_id IS NULL AS global, default_country, version, size,
                       created_at, updated_at";

/// A list of `org` (None: global).
pub async fn create(
    pool: &PgPool,
    org: Option<Uuid>,
    name: &str,
    default_country: Option<&str>,
) -> Result<DncList, DbError> {
    sqlx::query_as(&format!(
        "INSERT INTO dnc_lists (id, organization_id, name, default_country)
         VALUES ($1, $2, $3, $4) RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(org)
    .bind(name)
    .bind(default_country)
    .fetch_one(pool)
    .await
    .map_err(|e| {
        super::duplicate(
            e,
            "dnc_lists_organization_id_name_key",
            "do-not-call list",
            "name",
        )
    })
}

/// The lists that apply to `org`: its own, then the global ones.
pub async fn lists(pool: &PgPool, org: Uuid) -> Result<Vec<DncList>, DbError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM dnc_lists
          WHERE organization_id = $1 OR organization_id IS NULL
          ORDER BY organization_id IS NULL, name"
    ))
    .bind(org)
    .fetch_all(pool)
    .await?)
}

/// A list that applies to `org` (its own or a global one).
pub async fn get(pool: &PgPool, org: Uuid, id: Uuid) -> Result<Option<DncList>, DbError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM dnc_lists
          WHERE id = $1 AND (organization_id = $2 OR organization_id IS NULL)"
    ))
    .bind(id)
    .bind(org)
    .fetch_optional(pool)
    .await?)
}

/// A list by name: `org`'s, or a global one when `org` is None.
pub async fn by_name(
    pool: &PgPool,
    org: Option<Uuid>,
    name: &str,
) -> Result<Option<DncList>, DbError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM dnc_lists
          WHERE name = $1 AND organization_id IS NOT DISTINCT FROM $2"
    ))
    .bind(name)
    .bind(org)
    .fetch_optional(pool)
    .await?)
}

/// Deletes one of `org`'s own lists and its numbers; false when it has none such.
pub async fn delete(pool: &PgPool, org: Uuid, id: Uuid) -> Result<bool, DbError> {
    let mut tx = pool.begin().await?;
    let key: Option<i32> = sqlx::query_scalar(
        "DELETE FROM dnc_lists WHERE id = $1 AND organization_id = $2 RETURNING key",
    )
    .bind(id)
    .bind(org)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(key) = key {
        sqlx::query("DELETE FROM dnc_numbers WHERE list_key = $1")
            .bind(key)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(key.is_some())
}

/// Takes the claim lock: from here to commit, no claim runs, and every
/// claim after sees this transaction's changes.
async fn exclude_claims(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(super::claim::CLAIM_LOCK)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Raises `dnc_epoch` on the claimed contacts (of `org`, or of any
/// organization for a global list) holding a number listed on `key` now.
async fn fence(
    conn: &mut PgConnection,
    org: Option<Uuid>,
    key: i32,
    added: Option<&[i64]>,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE contacts c SET dnc_epoch = c.dnc_epoch + 1
          WHERE c.status IN ('locked', 'in_progress')
            AND ($1::uuid IS NULL OR c.organization_id = $1)
            AND EXISTS (
                SELECT 1 FROM unnest(c.phone_numbers) p(n)
                  JOIN dnc_lists l ON l.key = $2
                  JOIN dnc_numbers d ON d.number = dnc_number(p.n) AND d.list_key = l.key
                                    AND d.generation = l.generation
                 WHERE $3::int8[] IS NULL OR d.number = ANY($3))",
    )
    .bind(org)
    .bind(key)
    .bind(added)
    .execute(&mut *conn)
    .await?
    .rows_affected())
}

/// Adds numbers to list `id` of `org` (None: a global list); returns how
/// many were not on it. Once this commits, no attempt is written for them.
pub async fn add(
    pool: &PgPool,
    org: Option<Uuid>,
    id: Uuid,
    numbers: &[i64],
) -> Result<Option<u64>, DbError> {
    let mut tx = pool.begin().await?;
    exclude_claims(&mut tx).await?;
    let key: Option<i32> = sqlx::query_scalar(
        "SELECT key FROM dnc_lists WHERE id = $1 AND organization_id IS NOT DISTINCT FROM $2
            FOR UPDATE",
    )
    .bind(id)
    .bind(org)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(key) = key else {
        return Ok(None);
    };
    let added = sqlx::query(
        "INSERT INTO dnc_numbers (number, list_key, generation)
         SELECT DISTINCT n, l.key, l.generation FROM unnest($1::int8[]) n, dnc_lists l
          WHERE l.key = $2
         ON CONFLICT DO NOTHING",
    )
    .bind(numbers)
    .bind(key)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query(
        "UPDATE dnc_lists SET version = version + 1, size = size + $2, updated_at = now()
          WHERE key = $1",
    )
    .bind(key)
    .bind(added as i64)
    .execute(&mut *tx)
    .await?;
    fence(&mut tx, org, key, Some(numbers)).await?;
    tx.commit().await?;
    Ok(Some(added))
}

/// Removes numbers from list `id` of `org`; returns how many were on it.
/// No lock: a removal only lets calls through.
pub async fn remove(
    pool: &PgPool,
    org: Option<Uuid>,
    id: Uuid,
    numbers: &[i64],
) -> Result<Option<u64>, DbError> {
    let mut tx = pool.begin().await?;
    let key: Option<i32> = sqlx::query_scalar(
        "SELECT key FROM dnc_lists WHERE id = $1 AND organization_id IS NOT DISTINCT FROM $2
            FOR UPDATE",
    )
    .bind(id)
    .bind(org)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(key) = key else {
        return Ok(None);
    };
    let removed = sqlx::query(
        "DELETE FROM dnc_numbers d USING dnc_lists l
          WHERE l.key = $1 AND d.list_key = l.key AND d.generation = l.generation
            AND d.number = ANY($2)",
    )
    .bind(key)
    .bind(numbers)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query(
        "UPDATE dnc_lists SET version = version + 1, size = size - $2, updated_at = now()
          WHERE key = $1",
    )
    .bind(key)
    .bind(removed as i64)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(removed))
}

/// A list holding a number, and since when.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Listing {
    pub list_id: Uuid,
    pub name: String,
    pub global: bool,
    pub added_at: DateTime<Utc>,
}

/// The lists that apply to `org` and hold `number`.
pub async fn lookup(pool: &PgPool, org: Uuid, number: i64) -> Result<Vec<Listing>, DbError> {
    Ok(sqlx::query_as(
        "SELECT l.id AS list_id, l.name, l.organization_id IS NULL AS global, d.added_at
           FROM dnc_numbers d JOIN dnc_lists l ON l.key = d.list_key AND l.generation = d.generation
          WHERE d.number = $1 AND (l.organization_id = $2 OR l.organization_id IS NULL)
          ORDER BY l.organization_id IS NULL, l.name",
    )
    .bind(number)
    .bind(org)
    .fetch_all(pool)
    .await?)
}

/// A bulk load into a list: the numbers go to a staging table on one
/// connection, then into a new generation of the list, which replaces the
/// one in force in one short transaction.
pub struct Load {
    conn: sqlx::pool::PoolConnection<sqlx::Postgres>,
    key: i32,
    org: Option<Uuid>,
}

impl Load {
    pub async fn begin(pool: &PgPool, list: &DncList, org: Option<Uuid>) -> Result<Load, DbError> {
        let mut conn = pool.acquire().await?;
        let key: i32 = sqlx::query_scalar("SELECT key FROM dnc_lists WHERE id = $1")
            .bind(list.id)
            .fetch_one(&mut *conn)
            .await?;
        sqlx::query("DROP TABLE IF EXISTS dnc_staging")
            .execute(&mut *conn)
            .await?;
        sqlx::query("CREATE TEMPORARY TABLE dnc_staging (number bigint NOT NULL)")
            .execute(&mut *conn)
            .await?;
        Ok(Load { conn, key, org })
    }

    /// Sends numbers to the staging table.
    pub async fn send(&mut self, numbers: &[i64]) -> Result<(), DbError> {
        let mut text = String::with_capacity(numbers.len() * 12);
        for n in numbers {
            text.push_str(&n.to_string());
            text.push('\n');
        }
        let mut copy = self
            .conn
            .copy_in_raw("COPY dnc_staging (number) FROM STDIN")
            .await?;
        copy.send(text.into_bytes()).await?;
        copy.finish().await?;
        Ok(())
    }

    /// Builds the new generation (the staged numbers, and unless `replace`
    /// the numbers in force, which keep their `added_at`) and switches the
    /// list to it; returns its size.
    pub async fn commit(mut self, replace: bool) -> Result<i64, DbError> {
        let conn = &mut *self.conn;
        // Past every generation there is, the one in force and any a failed
        // load left behind (never in force), by the index's last entry.
        let next: i32 = sqlx::query_scalar(
            "SELECT greatest((SELECT generation FROM dnc_lists WHERE key = $1),
                             (SELECT max(generation) FROM dnc_numbers WHERE list_key = $1)) + 1",
        )
        .bind(self.key)
        .fetch_one(&mut *conn)
        .await?;
        // The new generation is empty and the staged numbers made distinct:
        // a plain insert, in index order.
        let mut size = sqlx::query(
            "INSERT INTO dnc_numbers (number, list_key, generation)
             SELECT DISTINCT number, $1, $2 FROM dnc_staging ORDER BY 1",
        )
        .bind(self.key)
        .bind(next)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if !replace {
            // The numbers in force join it; one also in the file keeps the
            // moment it was first listed.
            let fresh: i64 = sqlx::query_scalar(
                "WITH copied AS (
                     INSERT INTO dnc_numbers (number, list_key, generation, added_at)
                     SELECT d.number, d.list_key, $2, d.added_at
                       FROM dnc_numbers d
                       JOIN dnc_lists l ON l.key = d.list_key AND l.generation = d.generation
                      WHERE d.list_key = $1
                      ORDER BY d.number
                     ON CONFLICT (number, list_key, generation)
                     DO UPDATE SET added_at = excluded.added_at
                     RETURNING xmax = 0 AS fresh)
                 SELECT count(*) FILTER (WHERE fresh) FROM copied",
            )
            .bind(self.key)
            .bind(next)
            .fetch_one(&mut *conn)
            .await?;
            size += fresh as u64;
        }
        let size = size as i64;
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        exclude_claims(&mut tx).await?;
        sqlx::query(
            "UPDATE dnc_lists SET generation = $2, version = version + 1, size = $3,
                                  updated_at = now()
              WHERE key = $1",
        )
        .bind(self.key)
        .bind(next)
        .bind(size)
        .execute(&mut *tx)
        .await?;
        fence(&mut tx, self.org, self.key, None).await?;
        tx.commit().await?;
        // The generation replaced, and any a failed load left behind.
        sqlx::query("DELETE FROM dnc_numbers WHERE list_key = $1 AND generation <> $2")
            .bind(self.key)
            .bind(next)
            .execute(&mut *conn)
            .await?;
        sqlx::query("DROP TABLE dnc_staging")
            .execute(&mut *conn)
            .await?;
        Ok(size)
    }
}
