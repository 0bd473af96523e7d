//! Do-not-call lists: the lists, their numbers (in blocks of 256, see the
//! `dnc_blocks` migration), and
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

use std::fmt::Write as _;

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
        sqlx::query("DELETE FROM dnc_blocks WHERE list_key = $1")
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
                  JOIN dnc_blocks d ON d.block = dnc_block(dnc_number(p.n)) AND d.list_key = l.key
                                   AND d.generation = l.generation
                 WHERE dnc_member(dnc_number(p.n)) = ANY(d.members)
                   AND ($3::int8[] IS NULL OR dnc_number(p.n) = ANY($3)))",
    )
    .bind(org)
    .bind(key)
    .bind(added)
    .execute(&mut *conn)
    .await?
    .rows_affected())
}

/// The key of list `id` of `org` (None: a global list), its row locked:
/// changes of its numbers, and loads into it, go one at a time.
async fn lock_list(
    conn: &mut PgConnection,
    org: Option<Uuid>,
    id: Uuid,
) -> Result<Option<i32>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT key FROM dnc_lists WHERE id = $1 AND organization_id IS NOT DISTINCT FROM $2
            FOR UPDATE",
    )
    .bind(id)
    .bind(org)
    .fetch_optional(conn)
    .await
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
    // The list first, then the claim lock: the order a load takes them.
    let Some(key) = lock_list(&mut tx, org, id).await? else {
        return Ok(None);
    };
    exclude_claims(&mut tx).await?;
    // The numbers not on the list yet, a row for each block they fall in.
    let added: i64 = sqlx::query_scalar(
        "WITH l AS (SELECT key, generation FROM dnc_lists WHERE key = $2),
              new AS (SELECT DISTINCT n FROM unnest($1::int8[]) n, l
                       WHERE NOT EXISTS (
                           SELECT 1 FROM dnc_blocks d
                            WHERE d.block = dnc_block(n) AND d.list_key = l.key
                              AND d.generation = l.generation AND dnc_member(n) = ANY(d.members))),
              ins AS (INSERT INTO dnc_blocks (block, list_key, generation, members)
                      SELECT dnc_block(n), l.key, l.generation, array_agg(dnc_member(n) ORDER BY n)
                        FROM new, l GROUP BY 1, 2, 3
                      RETURNING cardinality(members) AS n)
         SELECT coalesce(sum(n), 0)::int8 FROM ins",
    )
    .bind(numbers)
    .bind(key)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE dnc_lists SET version = version + 1, size = size + $2, updated_at = now()
          WHERE key = $1",
    )
    .bind(key)
    .bind(added)
    .execute(&mut *tx)
    .await?;
    fence(&mut tx, org, key, Some(numbers)).await?;
    tx.commit().await?;
    Ok(Some(added as u64))
}

/// Removes numbers from list `id` of `org`; returns how many were on it.
/// No claim lock: a removal only lets calls through.
pub async fn remove(
    pool: &PgPool,
    org: Option<Uuid>,
    id: Uuid,
    numbers: &[i64],
) -> Result<Option<u64>, DbError> {
    let mut tx = pool.begin().await?;
    let Some(key) = lock_list(&mut tx, org, id).await? else {
        return Ok(None);
    };
    // Each row of a block holding a removed number keeps the rest of its
    // members, or goes when none is left.
    let removed: i64 = sqlx::query_scalar(
        "WITH l AS (SELECT key, generation FROM dnc_lists WHERE key = $1),
              gone AS (SELECT DISTINCT n FROM unnest($2::int8[]) n),
              hit AS (
                  SELECT d.ctid AS row, cardinality(d.members) AS had,
                         coalesce((SELECT array_agg(m ORDER BY m) FROM unnest(d.members) m
                                    WHERE ((d.block << 8) | m) NOT IN (SELECT n FROM gone)),
                                  '{}') AS kept
                    FROM dnc_blocks d, l
                   WHERE d.list_key = l.key AND d.generation = l.generation
                     AND d.block IN (SELECT dnc_block(n) FROM gone)),
              kept AS (UPDATE dnc_blocks d SET members = h.kept FROM hit h
                        WHERE d.ctid = h.row AND cardinality(h.kept) BETWEEN 1 AND h.had - 1
                       RETURNING h.had - cardinality(h.kept) AS n),
              emptied AS (DELETE FROM dnc_blocks d USING hit h
                           WHERE d.ctid = h.row AND cardinality(h.kept) = 0
                          RETURNING h.had AS n)
         SELECT (coalesce((SELECT sum(n) FROM kept), 0)
                 + coalesce((SELECT sum(n) FROM emptied), 0))::int8",
    )
    .bind(key)
    .bind(numbers)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE dnc_lists SET version = version + 1, size = size - $2, updated_at = now()
          WHERE key = $1",
    )
    .bind(key)
    .bind(removed)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(removed as u64))
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
        "SELECT l.id AS list_id, l.name, l.organization_id IS NULL AS global, d.since AS added_at
           FROM dnc_blocks d JOIN dnc_lists l ON l.key = d.list_key AND l.generation = d.generation
          WHERE d.block = dnc_block($1) AND dnc_member($1) = ANY(d.members)
            AND (l.organization_id = $2 OR l.organization_id IS NULL)
          ORDER BY l.organization_id IS NULL, l.name",
    )
    .bind(number)
    .bind(org)
    .fetch_all(pool)
    .await?)
}

/// A bulk load into a list: the numbers gather in memory (8 bytes each),
/// then are written sorted, a row a block, as a new generation of the list
/// through `COPY`; it replaces the one in force in the same transaction,
/// which takes the claim lock only at its end.
pub struct Load {
    pool: PgPool,
    id: Uuid,
    org: Option<Uuid>,
    numbers: Vec<i64>,
}

/// Bytes of block text sent per `COPY` message.
const COPY_CHUNK: usize = 1 << 22;

impl Load {
    pub fn begin(pool: &PgPool, list: &DncList, org: Option<Uuid>) -> Load {
        Load {
            pool: pool.clone(),
            id: list.id,
            org,
            numbers: Vec::new(),
        }
    }

    pub fn push(&mut self, number: i64) {
        self.numbers.push(number);
    }

    /// Writes the new generation (the numbers pushed, and unless `replace`
    /// the numbers in force, whose rows keep the moment they were listed)
    /// and switches the list to it; returns its size, or None when the
    /// list was deleted meanwhile.
    pub async fn commit(self, replace: bool) -> Result<Option<i64>, DbError> {
        let Load {
            pool,
            id,
            org,
            mut numbers,
        } = self;
        numbers.sort_unstable();
        numbers.dedup();
        let mut tx = pool.begin().await?;
        unbounded(&mut tx).await?;
        // Changes of the list's numbers wait for the load from here.
        let Some(key) = lock_list(&mut tx, org, id).await? else {
            return Ok(None);
        };
        // The generation in force and its size, and the next: past any an
        // earlier load's deletion (after its commit) did not finish.
        let (current, listed, next): (i32, i64, i32) = sqlx::query_as(
            "SELECT generation, size,
                    greatest(generation,
                             (SELECT max(generation) FROM dnc_blocks WHERE list_key = $1)) + 1
               FROM dnc_lists WHERE key = $1",
        )
        .bind(key)
        .fetch_one(&mut *tx)
        .await?;
        let size = if replace {
            copy_blocks(
                &mut tx,
                "COPY dnc_blocks (block, list_key, generation, members) FROM STDIN",
                &format!("{key}\t{next}\t"),
                &numbers,
            )
            .await?;
            numbers.len() as i64
        } else {
            // The rows in force join the new generation as they are, and
            // the file adds the numbers not on them, through a staging table.
            sqlx::query(
                "INSERT INTO dnc_blocks (block, list_key, generation, since, members)
                 SELECT block, list_key, $3, since, members FROM dnc_blocks
                  WHERE list_key = $1 AND generation = $2",
            )
            .bind(key)
            .bind(current)
            .bind(next)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "CREATE TEMPORARY TABLE dnc_staging (block bigint, members smallint[])
                 ON COMMIT DROP",
            )
            .execute(&mut *tx)
            .await?;
            copy_blocks(
                &mut tx,
                "COPY dnc_staging (block, members) FROM STDIN",
                "",
                &numbers,
            )
            .await?;
            let fresh: i64 = sqlx::query_scalar(
                "WITH fresh AS (
                     INSERT INTO dnc_blocks (block, list_key, generation, members)
                     SELECT s.block, $1, $3, f.members
                       FROM dnc_staging s,
                            LATERAL (SELECT array_agg(m ORDER BY m) AS members
                                       FROM unnest(s.members) m
                                      WHERE NOT EXISTS (
                                          SELECT 1 FROM dnc_blocks d
                                           WHERE d.block = s.block AND d.list_key = $1
                                             AND d.generation = $2 AND m = ANY(d.members))) f
                      WHERE f.members IS NOT NULL
                     RETURNING cardinality(members) AS n)
                 SELECT coalesce(sum(n), 0)::int8 FROM fresh",
            )
            .bind(key)
            .bind(current)
            .bind(next)
            .fetch_one(&mut *tx)
            .await?;
            listed + fresh
        };
        exclude_claims(&mut tx).await?;
        sqlx::query(
            "UPDATE dnc_lists SET generation = $2, version = version + 1, size = $3,
                                  updated_at = now()
              WHERE key = $1",
        )
        .bind(key)
        .bind(next)
        .bind(size)
        .execute(&mut *tx)
        .await?;
        fence(&mut tx, org, key, None).await?;
        tx.commit().await?;
        // The generation replaced, and any left by an unfinished deletion.
        let mut tx = pool.begin().await?;
        unbounded(&mut tx).await?;
        sqlx::query("DELETE FROM dnc_blocks WHERE list_key = $1 AND generation <> $2")
            .bind(key)
            .bind(next)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(size))
    }
}

/// Lifts the pool's statement timeout for the rest of the transaction: a
/// load's statements rightly take minutes on a registry of hundreds of
/// millions of numbers; the operator who runs it bounds it.
async fn unbounded(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SET LOCAL statement_timeout = 0")
        .execute(conn)
        .await?;
    Ok(())
}

/// Sends `numbers` (sorted, distinct) through `copy`, a row a block:
/// the block, then `between` (the columns' text before the members), then
/// the members.
async fn copy_blocks(
    conn: &mut PgConnection,
    copy: &str,
    between: &str,
    numbers: &[i64],
) -> Result<(), sqlx::Error> {
    let mut copy = conn.copy_in_raw(copy).await?;
    let mut text = String::with_capacity(COPY_CHUNK + 4096);
    for run in numbers.chunk_by(|a, b| a >> 8 == b >> 8) {
        let _ = write!(text, "{}\t{between}{{", run[0] >> 8);
        for (i, n) in run.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            let _ = write!(text, "{}", n & 255);
        }
        text.push_str("}\n");
        if text.len() >= COPY_CHUNK {
            copy.send(std::mem::take(&mut text).into_bytes()).await?;
            text.reserve(COPY_CHUNK + 4096);
        }
    }
    copy.send(text.into_bytes()).await?;
    copy.finish().await?;
    Ok(())
}
