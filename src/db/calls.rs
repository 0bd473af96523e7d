//! Calls placed through a voice-agent platform: the conversation id, and
//! status callbacks settled by whichever daemon instance receives them.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::dialer::record;
use super::recovery::{claims, decide};
use super::DbError;
use crate::domain::status::Outcome;
use crate::telephony::callback::{CallStatus, Callback};
use crate::telephony::CallReport;

/// The channel on which a settled call is announced: `<attempt id> <outcome>`.
pub const CALL_ENDED: &str = "dialerd_call_ended";

/// Stores the platform's conversation id on a still open attempt.
pub async fn set_conversation(
    pool: &PgPool,
    attempt_id: Uuid,
    conversation_id: &str,
) -> Result<(), DbError> {
    sqlx::query(
        "UPDATE attempts SET conversation_id = $2
          WHERE id = $1 AND outcome IS NULL AND conversation_id IS DISTINCT FROM $2",
    )
    .bind(attempt_id)
    .bind(conversation_id)
    .execute(pool)
    .await?;
    Ok(())
}

/// The outcome of an attempt, once it has one.
pub async fn outcome(pool: &PgPool, attempt_id: Uuid) -> Result<Option<Outcome>, DbError> {
    let outcome: Option<String> =
        sqlx::query_scalar("SELECT outcome::text FROM attempts WHERE id = $1")
            .bind(attempt_id)
            .fetch_optional(pool)
            .await?
            .flatten();
    Ok(outcome.as_deref().and_then(Outcome::parse))
}

/// What a callback did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// A final status closed the attempt and moved its contact on.
    Closed { attempt_id: Uuid, outcome: Outcome },
    /// A progress status was noted on an open attempt.
    Progress,
    /// The attempt already had its final status: nothing changed.
    AlreadyFinal,
    /// No attempt has this conversation (nor the given attempt id).
    Unknown,
}

/// The attempt a callback is about: the one with its conversation id, or
/// else the attempt id it names, if that attempt has no other conversation.
/// `$1` conversation id, `$2` attempt id (may be null). Both arms are index
/// lookups (`attempts_by_conversation`, the primary key), never a read of
/// every attempt.
pub const FIND_CALLBACK_ATTEMPT: &str =
    "SELECT id, contact_id, outcome IS NULL AS open FROM attempts
  WHERE conversation_id = $1
     OR (id = $2 AND (conversation_id IS NULL OR conversation_id = $1))
  ORDER BY conversation_id = $1 DESC NULLS LAST
  LIMIT 1";

#[derive(sqlx::FromRow)]
struct Found {
    id: Uuid,
    contact_id: Uuid,
    open: bool,
}

/// Applies a verified callback. Duplicates and statuses arriving after the
/// final one change nothing; a final status closes the attempt, decides the
/// contact's next state by its policy, and NOTIFYs `CALL_ENDED` so the
/// instance whose line holds the call frees it.
pub async fn settle(
    pool: &PgPool,
    callback: &Callback,
    now: DateTime<Utc>,
) -> Result<Settled, DbError> {
    let found: Option<Found> = sqlx::query_as(FIND_CALLBACK_ATTEMPT)
        .bind(&callback.conversation_id)
        .bind(callback.attempt_id)
        .fetch_optional(pool)
        .await?;
    let Some(found) = found else {
        return Ok(Settled::Unknown);
    };
    if !found.open {
        return Ok(Settled::AlreadyFinal);
    }
    let Some(outcome) = callback.status.outcome() else {
        sqlx::query(
            "UPDATE attempts SET conversation_id = coalesce(conversation_id, $2),
                    answered_at = coalesce(answered_at, $3)
              WHERE id = $1 AND outcome IS NULL",
        )
        .bind(found.id)
        .bind(&callback.conversation_id)
        .bind(
            callback
                .answered_at
                .or((callback.status == CallStatus::InProgress).then_some(callback.occurred_at)),
        )
        .execute(pool)
        .await?;
        return Ok(Settled::Progress);
    };
    let claim = claims(pool, None, Some(&[found.contact_id]))
        .await?
        .into_iter()
        .find(|c| c.attempt_id == Some(found.id));
    let Some(claim) = claim else {
        // Closed meanwhile (by recovery, or a concurrent duplicate).
        return Ok(Settled::AlreadyFinal);
    };
    let detail = match &callback.detail {
        Some(d) => format!("{}: {d}", callback.status.as_str()),
        None => callback.status.as_str().to_owned(),
    };
    let report = CallReport {
        outcome,
        conversation_id: Some(callback.conversation_id.clone()),
        detail: Some(detail),
        answered_at: callback.answered_at,
        ended_at: callback.ended_at.unwrap_or(callback.occurred_at),
    };
    let finished = decide(claim, found.id, report, now);
    if record(pool, &[finished]).await? == 0 {
        return Ok(Settled::AlreadyFinal);
    }
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CALL_ENDED)
        .bind(format!("{} {}", found.id, outcome.as_str()))
        .execute(pool)
        .await?;
    Ok(Settled::Closed {
        attempt_id: found.id,
        outcome,
    })
}
