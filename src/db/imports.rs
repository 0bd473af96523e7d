//! Bulk imports: the import's record, and a chunk of validated rows loaded
//! through `COPY` into a staging table and merged into `contacts` in one
//! statement, in the transaction that also records the chunk's counts and
//! refused rows.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use super::contacts::NewContact;
use super::DbError;

/// How long an import stays `running` without its importer renewing it;
/// the importer renews it every `LEASE / 5`.
pub const LEASE: Duration = Duration::from_secs(10);

/// Most refused rows an import's error report lists; `refused` counts all.
pub const MAX_LISTED_ERRORS: i64 = 100_000;

/// What an interrupted import says: its process stopped mid-way.
const INTERRUPTED: &str = "interrupted: the importing process stopped before the end; \
     the counts are what it had committed";

/// An import as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Import {
    pub id: Uuid,
    pub campaign_id: Uuid,
    /// `api`, or the file the command line read.
    pub source: String,
    pub all_or_nothing: bool,
    /// CSV column -> contact field, as applied.
    #[schema(value_type = Object)]
    pub mapping: Json<BTreeMap<String, String>>,
    /// `running`, `completed` or `failed`.
    pub state: String,
    /// Why a failed import stopped.
    pub failure: Option<String>,
    /// Data rows read and committed (created + updated + refused), or, in
    /// an all-or-nothing import before it commits, read so far.
    pub rows_read: i64,
    pub created: i64,
    pub updated: i64,
    /// Rows refused; the error report lists them (the first 100,000).
    pub refused: i64,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// The columns of `Import`, a running import past its lease read as failed.
fn columns() -> String {
    format!(
        "id, campaign_id, source, all_or_nothing, mapping,
         CASE WHEN state = 'running' AND alive_until < now() THEN 'failed' ELSE state END AS state,
         CASE WHEN state = 'running' AND alive_until < now() THEN '{INTERRUPTED}' ELSE failure END
             AS failure,
         rows_read, created, updated, refused, started_at, finished_at"
    )
}

/// A new import of `source` into `campaign`.
pub struct NewImport<'a> {
    pub id: Uuid,
    pub org: Uuid,
    pub campaign: Uuid,
    pub source: &'a str,
    pub all_or_nothing: bool,
    pub mapping: BTreeMap<String, String>,
}

pub async fn create(pool: &PgPool, new: &NewImport<'_>) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO imports (id, organization_id, campaign_id, source, all_or_nothing, mapping,
                              alive_until)
         VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7))",
    )
    .bind(new.id)
    .bind(new.org)
    .bind(new.campaign)
    .bind(new.source)
    .bind(new.all_or_nothing)
    .bind(Json(&new.mapping))
    .bind(LEASE.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(())
}

/// Keeps a running import alive for another lease.
pub async fn renew(pool: &PgPool, id: Uuid) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE imports SET alive_until = now() + make_interval(secs => $2)
          WHERE id = $1 AND state = 'running'",
    )
    .bind(id)
    .bind(LEASE.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(())
}

/// Where a chunk goes, read in its transaction.
pub struct Target {
    pub org: Uuid,
    pub campaign: Uuid,
}

/// Why a chunk was not loaded.
#[derive(Debug, thiserror::Error)]
pub enum ChunkRefused {
    #[error("the campaign was closed during the import; it takes no more contacts")]
    Closed,
    #[error("the campaign was deleted during the import")]
    Gone,
}

/// Loads validated rows into the campaign: `COPY` into a temporary staging
/// table, then one `INSERT ... ON CONFLICT` that creates new external ids
/// and updates known ones exactly as the upsert does. The rows must not
/// repeat an external id. Returns (created, updated).
pub async fn load(
    conn: &mut PgConnection,
    target: &Target,
    rows: &[NewContact],
) -> Result<Result<(u64, u64), ChunkRefused>, DbError> {
    let campaign: Option<(crate::domain::status::CampaignStatus, i32)> = sqlx::query_as(
        "SELECT status, priority FROM campaigns WHERE id = $1 AND organization_id = $2",
    )
    .bind(target.campaign)
    .bind(target.org)
    .fetch_optional(&mut *conn)
    .await?;
    let priority = match campaign {
        None => return Ok(Err(ChunkRefused::Gone)),
        Some((crate::domain::status::CampaignStatus::Closed, _)) => {
            return Ok(Err(ChunkRefused::Closed))
        }
        Some((_, priority)) => priority,
    };
    if rows.is_empty() {
        return Ok(Ok((0, 0)));
    }
    sqlx::query(
        "CREATE TEMPORARY TABLE IF NOT EXISTS import_rows (
             id uuid, external_id text, phone_numbers text[], data jsonb, timezone text,
             scheduled_at timestamptz, agent_id text, agent_version text, agent_number text,
             agent_config jsonb, initial_context text, number_zones text) ON COMMIT DELETE ROWS",
    )
    .execute(&mut *conn)
    .await?;
    // An all-or-nothing import loads every chunk in one transaction.
    sqlx::query("TRUNCATE import_rows")
        .execute(&mut *conn)
        .await?;
    let mut copy = conn
        .copy_in_raw(
            "COPY import_rows (id, external_id, phone_numbers, data, timezone, scheduled_at,
                              agent_id, agent_version, agent_number, agent_config, initial_context,
                              number_zones)
             FROM STDIN",
        )
        .await?;
    copy.send(copy_text(rows)).await?;
    copy.finish().await?;
    let (created, updated): (i64, i64) = sqlx::query_as(&format!(
        "WITH merged AS (
             INSERT INTO contacts AS c (id, organization_id, campaign_id, priority, external_id,
                                        next_attempt_at, {columns})
             SELECT s.id, $1, $2, $3, s.external_id, greatest(now(), s.scheduled_at),
                    s.phone_numbers, s.data, s.timezone, s.scheduled_at, s.agent_id,
                    s.agent_version, s.agent_number, s.agent_config, s.initial_context,
                    s.number_zones
               FROM import_rows s
              ORDER BY s.external_id NULLS LAST
             ON CONFLICT (campaign_id, external_id) WHERE campaign_id IS NOT NULL
             DO UPDATE SET {rewrite}
             RETURNING c.xmax = 0 AS fresh)
         SELECT count(*) FILTER (WHERE fresh), count(*) FILTER (WHERE NOT fresh) FROM merged",
        columns = super::contacts::WRITE_COLUMNS,
        rewrite = super::contacts::rewrite("EXCLUDED"),
    ))
    .bind(target.org)
    .bind(target.campaign)
    .bind(priority)
    .fetch_one(&mut *conn)
    .await?;
    Ok(Ok((created as u64, updated as u64)))
}

/// The rows in `COPY`'s text format: tab-separated, `\N` for null.
fn copy_text(rows: &[NewContact]) -> Vec<u8> {
    fn text(out: &mut String, value: &str) {
        for ch in value.chars() {
            match ch {
                '\\' => out.push_str("\\\\"),
                '\t' => out.push_str("\\t"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                c => out.push(c),
            }
        }
    }
    fn opt(out: &mut String, value: Option<&str>) {
        out.push('\t');
        match value {
            Some(v) => text(out, v),
            None => out.push_str("\\N"),
        }
    }
    let mut out = String::with_capacity(rows.len() * 160);
    for row in rows {
        let id = row.id.unwrap_or_else(Uuid::now_v7);
        let _ = write!(out, "{id}");
        opt(&mut out, row.external_id.as_deref());
        // E.164 numbers need no quoting inside an array literal.
        out.push_str("\t{");
        for (i, n) in row.phone_numbers.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(n.as_str());
        }
        out.push('}');
        opt(&mut out, Some(&row.data.to_string()));
        opt(&mut out, row.timezone.map(|t| t.name()));
        opt(
            &mut out,
            row.scheduled_at.map(|t| t.to_rfc3339()).as_deref(),
        );
        opt(&mut out, row.agent.agent_id.as_deref());
        opt(&mut out, row.agent.agent_version.as_deref());
        opt(&mut out, row.agent.agent_number.as_deref());
        opt(
            &mut out,
            row.agent
                .agent_config
                .as_ref()
                .map(|c| c.to_string())
                .as_deref(),
        );
        opt(&mut out, row.agent.initial_context.as_deref());
        opt(
            &mut out,
            crate::domain::number_zones::stored(&row.phone_numbers).as_deref(),
        );
        out.push('\n');
    }
    out.into_bytes()
}

/// A refused row of the error report.
#[derive(Debug, Clone)]
pub struct RowError {
    pub line: u64,
    pub column: Option<String>,
    pub reason: String,
}

/// Adds a chunk's counts and refused rows to the import (in the chunk's
/// transaction, so both say what was committed).
pub async fn record(
    conn: &mut PgConnection,
    id: Uuid,
    read: u64,
    created: u64,
    updated: u64,
    errors: &[RowError],
) -> Result<(), DbError> {
    let listed: i64 = sqlx::query_scalar(
        "UPDATE imports SET rows_read = rows_read + $2, created = created + $3,
                            updated = updated + $4, refused = refused + $5
          WHERE id = $1
      RETURNING refused - $5",
    )
    .bind(id)
    .bind(read as i64)
    .bind(created as i64)
    .bind(updated as i64)
    .bind(errors.len() as i64)
    .fetch_one(&mut *conn)
    .await?;
    let room = (MAX_LISTED_ERRORS - listed).clamp(0, errors.len() as i64) as usize;
    if room > 0 {
        let errors = &errors[..room];
        let lines: Vec<i64> = errors.iter().map(|e| e.line as i64).collect();
        let columns: Vec<Option<&str>> = errors.iter().map(|e| e.column.as_deref()).collect();
        let reasons: Vec<&str> = errors.iter().map(|e| e.reason.as_str()).collect();
        sqlx::query(
            "INSERT INTO import_errors (import_id, line, column_name, reason)
             SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[])",
        )
        .bind(id)
        .bind(&lines)
        .bind(&columns)
        .bind(&reasons)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Sets how many rows an all-or-nothing import has read (outside its
/// transaction, for progress).
pub async fn progress(pool: &PgPool, id: Uuid, read: u64) -> Result<(), DbError> {
    sqlx::query("UPDATE imports SET rows_read = $2 WHERE id = $1")
        .bind(id)
        .bind(read as i64)
        .execute(pool)
        .await?;
    Ok(())
}

/// Ends an import: `completed`, or `failed` with why.
pub async fn finish(pool: &PgPool, id: Uuid, failure: Option<&str>) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE imports SET state = CASE WHEN $2::text IS NULL THEN 'completed' ELSE 'failed' END,
                            failure = $2, finished_at = now()
          WHERE id = $1",
    )
    .bind(id)
    .bind(failure)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn get(pool: &PgPool, org: Uuid, id: Uuid) -> Result<Option<Import>, DbError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {} FROM imports WHERE id = $1 AND organization_id = $2",
        columns()
    ))
    .bind(id)
    .bind(org)
    .fetch_optional(pool)
    .await?)
}

/// A campaign's imports, newest first.
pub async fn list(
    pool: &PgPool,
    org: Uuid,
    campaign: Uuid,
    limit: i64,
) -> Result<Vec<Import>, DbError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {} FROM imports WHERE campaign_id = $1 AND organization_id = $2
          ORDER BY started_at DESC, id DESC LIMIT $3",
        columns()
    ))
    .bind(campaign)
    .bind(org)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// The error report of an import, in line order.
pub async fn errors(pool: &PgPool, id: Uuid) -> Result<Vec<RowError>, DbError> {
    let rows: Vec<(i64, Option<String>, String)> = sqlx::query_as(
        "SELECT line, column_name, reason FROM import_errors WHERE import_id = $1 ORDER BY line",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(line, column, reason)| RowError {
            line: line.max(0) as u64,
            column,
            reason,
        })
        .collect())
}

/// The organizations with a campaign whose id or external id is `key`
/// (for the command line, which speaks for no one organization).
pub async fn organizations_naming(pool: &PgPool, key: &str) -> Result<Vec<Uuid>, DbError> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT organization_id FROM campaigns WHERE id = $1 OR external_id = $2",
    )
    .bind(Uuid::parse_str(key).ok())
    .bind(key)
    .fetch_all(pool)
    .await?)
}
