//! Every SQL statement of dialerd lives under this module, as typed functions.

pub mod attempts;
pub mod calls;
pub mod campaigns;
pub mod claim;
pub mod configurations;
pub mod contacts;
pub mod dashboard;
pub mod dnc;
pub mod imports;
pub mod instances;
pub mod notify;
pub mod organizations;
pub mod recovery;
pub mod results;
pub mod stats;
pub mod tokens;

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

use crate::settings::DatabaseSettings;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot connect to PostgreSQL at {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("cannot apply migrations to PostgreSQL at {url}: {source}")]
    Migrate {
        url: String,
        source: sqlx::migrate::MigrateError,
    },
    #[error(
        "the database at {url} was made by an earlier, unreleased dialerd (its migration \
         {version} is not this dialerd's): drop it (dropdb) and start again; dialerd makes it anew"
    )]
    Unreleased { url: String, version: i64 },
    #[error("{what} is already used by another {object}")]
    Duplicate {
        object: &'static str,
        what: &'static str,
    },
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
}

impl DbError {
    /// True when the database could not be reached (no connection within
    /// the acquire time-out, a connection lost or refused): the request may
    /// succeed later, unlike a fault.
    pub fn unreachable(&self) -> bool {
        matches!(
            self,
            DbError::Connect { .. }
                | DbError::Sqlx(
                    sqlx::Error::PoolTimedOut
                        | sqlx::Error::PoolClosed
                        | sqlx::Error::Io(_)
                        | sqlx::Error::Tls(_)
                        | sqlx::Error::Protocol(_)
                )
        )
    }
}

/// The URL with any password hidden, for messages.
pub fn redacted(url: &str) -> String {
    match url.parse::<PgConnectOptions>() {
        Ok(_) => match url.split_once('@') {
            Some((head, tail)) => match head.rsplit_once(':') {
                Some((user, _)) if user.contains("//") && !user.ends_with('/') => {
                    format!("{user}:***@{tail}")
                }
                _ => url.to_string(),
            },
            None => url.to_string(),
        },
        Err(_) => url.to_string(),
    }
}

/// Opens the pool, failing fast with the URL named when PostgreSQL is unreachable.
pub async fn connect(settings: &DatabaseSettings) -> Result<PgPool, DbError> {
    let url = redacted(&settings.url);
    let options: PgConnectOptions = settings
        .url
        .parse::<PgConnectOptions>()
        .map_err(|source| DbError::Connect {
            url: url.clone(),
            source,
        })?
        // Every statement is bounded; a longer one is a fault to surface.
        // Every statement is planned for its own parameters: a generic plan
        // cached while the queue tables were small (a fresh database) would
        // keep scanning them long after they have grown. No JIT: every
        // statement here is short, and compiling one costs far more than
        // it saves (50 ms to a second for the claim's count of active
        // calls, whose estimate crosses jit_above_cost).
        .options([
            ("statement_timeout", "60s"),
            ("plan_cache_mode", "force_custom_plan"),
            ("jit", "off"),
        ])
        .log_statements(tracing::log::LevelFilter::Trace)
        .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_secs(2));
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(Duration::from_secs(settings.acquire_timeout_seconds))
        .connect_with(options)
        .await
        .map_err(|source| DbError::Connect { url, source })
}

/// Creates the database the URL names when the server answers that it does
/// not exist. Any other outcome is left for `connect` to report.
pub async fn create_if_missing(url: &str) {
    use sqlx::migrate::MigrateDatabase;
    if let Ok(false) = sqlx::Postgres::database_exists(url).await {
        match sqlx::Postgres::create_database(url).await {
            Ok(()) => tracing::info!(url = %redacted(url), "created the database"),
            Err(e) => {
                tracing::warn!(url = %redacted(url), error = %e, "cannot create the database")
            }
        }
    }
}

/// Applies every pending migration; idempotent.
pub async fn migrate(pool: &PgPool, url: &str) -> Result<(), DbError> {
    MIGRATOR.run(pool).await.map_err(|source| match source {
        sqlx::migrate::MigrateError::VersionMissing(version) => DbError::Unreleased {
            url: redacted(url),
            version,
        },
        source => DbError::Migrate {
            url: redacted(url),
            source,
        },
    })
}

/// Tries of a write that lost a deadlock or a serialization conflict.
const TRIES: u32 = 4;

/// True for errors that a fresh try of the same transaction may not meet:
/// a deadlock (40P01) or a serialization failure (40001).
pub fn transient(error: &DbError) -> bool {
    match error {
        DbError::Sqlx(sqlx::Error::Database(db)) => {
            matches!(db.code().as_deref(), Some("40P01" | "40001"))
        }
        _ => false,
    }
}

/// Runs a whole transaction again (up to `TRIES` times, after a short,
/// growing pause) when it fails with a [`transient`] error, so concurrent
/// API writes never answer 5xx for a conflict the database resolved.
pub async fn retrying<T, F, Fut>(mut write: F) -> Result<T, DbError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, DbError>>,
{
    let mut tried = 1;
    loop {
        match write().await {
            Err(e) if tried < TRIES && transient(&e) => {
                tracing::debug!(error = %e, tried, "write conflicted; trying again");
                let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0] % 20);
                tokio::time::sleep(Duration::from_millis(10 * u64::from(tried) + jitter)).await;
                tried += 1;
            }
            other => return other,
        }
    }
}

/// Turns a unique violation on `constraint` into `DbError::Duplicate`.
pub(crate) fn duplicate(
    err: sqlx::Error,
    constraint: &str,
    object: &'static str,
    what: &'static str,
) -> DbError {
    match &err {
        sqlx::Error::Database(db)
            if db.is_unique_violation() && db.constraint() == Some(constraint) =>
        {
            DbError::Duplicate { object, what }
        }
        _ => DbError::Sqlx(err),
    }
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn passwords_are_hidden_in_urls_shown_to_people() {
        assert_eq!(
            redacted("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redacted("postgres://u@h/db"), "postgres://u@h/db");
    }
}
