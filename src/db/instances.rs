//! Daemon instances: registration, heartbeats (lease renewal), and the list
//! of owners whose lease ran out.

use sqlx::PgPool;
use uuid::Uuid;

use super::DbError;

/// Registers this process as a claiming instance of `lines` lines with a
/// lease of `lease_seconds`.
pub async fn register(
    pool: &PgPool,
    id: Uuid,
    lease_seconds: f64,
    lines: u32,
) -> Result<(), DbError> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    sqlx::query(
        "INSERT INTO dialer_instances (id, hostname, pid, lease_expires_at, lines)
         VALUES ($1, $2, $3, now() + make_interval(secs => $4), $5)",
    )
    .bind(id)
    .bind(host.trim())
    .bind(std::process::id() as i32)
    .bind(lease_seconds)
    .bind(lines as i32)
    .execute(pool)
    .await?;
    Ok(())
}

/// Renews the lease. Returns false when the row is gone: another instance
/// declared this one dead and recovered its claims; it is registered again.
pub async fn heartbeat(
    pool: &PgPool,
    id: Uuid,
    lease_seconds: f64,
    lines: u32,
) -> Result<bool, DbError> {
    let renewed = sqlx::query(
        "UPDATE dialer_instances SET heartbeat_at = now(), lease_expires_at = now() + make_interval(secs => $2)
          WHERE id = $1",
    )
    .bind(id)
    .bind(lease_seconds)
    .execute(pool)
    .await?
    .rows_affected()
        == 1;
    if !renewed {
        register(pool, id, lease_seconds, lines).await?;
    }
    Ok(renewed)
}

/// Owners of claims whose instance is gone or whose lease has expired.
pub async fn dead_owners(pool: &PgPool) -> Result<Vec<Uuid>, DbError> {
    Ok(sqlx::query_scalar(
        "SELECT DISTINCT c.owner_instance FROM contacts c
          WHERE c.status IN ('locked', 'in_progress')
            AND NOT EXISTS (SELECT 1 FROM dialer_instances i
                             WHERE i.id = c.owner_instance AND i.lease_expires_at >= now())",
    )
    .fetch_all(pool)
    .await?)
}

/// Forgets instances whose lease expired and that hold no claim any more.
pub async fn forget_dead(pool: &PgPool) -> Result<u64, DbError> {
    Ok(sqlx::query(
        "DELETE FROM dialer_instances i WHERE i.lease_expires_at < now()
            AND NOT EXISTS (SELECT 1 FROM contacts c WHERE c.owner_instance = i.id
                              AND c.status IN ('locked', 'in_progress'))",
    )
    .execute(pool)
    .await?
    .rows_affected())
}

/// Removes this instance on a clean stop, once its claims are released.
pub async fn deregister(pool: &PgPool, id: Uuid) -> Result<(), DbError> {
    sqlx::query("DELETE FROM dialer_instances WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    Ok(())
}

/// A queue table the keeper vacuums, each on its own interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueTable {
    /// Every claim leaves dead entries in the claim index, which each later
    /// claim steps over until they are vacuumed; with it `organization_due`,
    /// whose rows claims rewrite as they raise bounds and every claim reads.
    Contacts,
    /// One dead row version per call (the open attempt, closed); none is
    /// read by a claim.
    Attempts,
}

impl QueueTable {
    fn vacuum_sql(self) -> &'static str {
        match self {
            QueueTable::Contacts => "VACUUM (ANALYZE) contacts, organization_due",
            QueueTable::Attempts => "VACUUM (ANALYZE) attempts",
        }
    }

    /// Lets one instance at a time vacuum the table.
    fn lock(self) -> i64 {
        match self {
            QueueTable::Contacts => 0x6469_616c_7661,
            QueueTable::Attempts => 0x6469_616c_7662,
        }
    }
}

/// Vacuums and analyzes `table` unless another instance is doing it (on a
/// server where autovacuum is off or slow, dead row versions would pile up).
/// Returns false when another instance held the lock.
pub async fn vacuum(pool: &PgPool, table: QueueTable) -> Result<bool, DbError> {
    let mut conn = pool.acquire().await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(table.lock())
        .fetch_one(&mut *conn)
        .await?;
    if !locked {
        return Ok(false);
    }
    let result = vacuum_table(&mut conn, table).await;
    sqlx::query("RESET statement_timeout")
        .execute(&mut *conn)
        .await?;
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(table.lock())
        .execute(&mut *conn)
        .await?;
    result?;
    Ok(true)
}

async fn vacuum_table(conn: &mut sqlx::PgConnection, table: QueueTable) -> Result<(), sqlx::Error> {
    // A vacuum of a large table may rightly outlast the statement timeout.
    sqlx::query("SET statement_timeout = 0")
        .execute(&mut *conn)
        .await?;
    // Unprepared: VACUUM runs outside any transaction.
    sqlx::query(table.vacuum_sql())
        .persistent(false)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
