//! Calls placed through a voice-agent platform: the conversation id, and
//! status callbacks settled by whichever daemon instance receives them.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::recovery::{claims, decide, Orphan};
use super::results::record;
use super::DbError;
use crate::domain::call::{CallStatus, Callback};
use crate::domain::status::Outcome;

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
    /// The attempt had been closed as `interrupted` (its owner was taken
    /// for dead, or its drain ran out of time) and its contact called
    /// again since: the real outcome is recorded on the attempt, and the
    /// contact is left to its later call.
    Late { attempt_id: Uuid, outcome: Outcome },
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

#[derive(sqlx::FromRow)]
struct Interrupted {
    #[sqlx(flatten)]
    claim: Orphan,
    /// The attempt was closed as `interrupted`, not by a real outcome.
    interrupted: bool,
    /// No call was placed to the contact since: it waits on this attempt's
    /// retry, so the real outcome decides its next state instead.
    latest: bool,
}

/// A final status for an attempt already closed. If the dialer had closed
/// it as `interrupted` while the call went on (recovery, or a drain past
/// its deadline), the platform's outcome is the truth: it replaces
/// `interrupted` on the attempt, and, when the contact has not been called
/// since, decides the contact's next state by its policy as the result
/// would have (a completed call completes the contact, and it is not
/// called again). Any other closed attempt is a duplicate.
async fn amend(
    pool: &PgPool,
    attempt_id: Uuid,
    callback: &Callback,
    outcome: Outcome,
    now: DateTime<Utc>,
) -> Result<Settled, DbError> {
    let mut tx = pool.begin().await?;
    let found: Option<Interrupted> = sqlx::query_as(
        "SELECT c.id, coalesce(c.owner_instance, a.instance_id) AS owner_instance, c.status,
                c.attempt_count, coalesce(array_position(c.phone_numbers, a.phone_number) - 1,
                                          c.next_number_index) AS next_number_index,
                cardinality(c.phone_numbers) AS number_count, c.retired_numbers, f.dialing_policy,
                a.id AS attempt_id, a.outcome = 'interrupted' AS interrupted,
                c.status = 'pending' AND c.attempt_count = a.attempt_number AS latest
           FROM attempts a JOIN contacts c ON c.id = a.contact_id
           LEFT JOIN campaigns k ON k.id = c.campaign_id
           LEFT JOIN configurations f ON f.id = k.configuration_id
          WHERE a.id = $1
            FOR UPDATE OF a, c",
    )
    .bind(attempt_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(found) = found.filter(|f| f.interrupted) else {
        return Ok(Settled::AlreadyFinal);
    };
    let latest = found.latest;
    let finished = decide(found.claim, attempt_id, callback.report(outcome), now);
    sqlx::query(
        "UPDATE attempts SET outcome = $2::attempt_outcome,
                conversation_id = coalesce(conversation_id, $3), telephony_detail = $4,
                answered_at = coalesce($5, answered_at), ended_at = $6
          WHERE id = $1",
    )
    .bind(attempt_id)
    .bind(outcome.as_str())
    .bind(&finished.conversation_id)
    .bind(&finished.detail)
    .bind(finished.answered_at)
    .bind(finished.ended_at)
    .execute(&mut *tx)
    .await?;
    if latest {
        sqlx::query(
            "UPDATE contacts SET status = $2::contact_status,
                    next_attempt_at = coalesce($3, next_attempt_at), next_number_index = $4,
                    retired_numbers = $5, last_outcome = $6::attempt_outcome, updated_at = now()
              WHERE id = $1",
        )
        .bind(finished.contact_id)
        .bind(finished.status.as_str())
        .bind(finished.next_attempt_at)
        .bind(finished.next_number_index as i32)
        .bind(
            finished
                .retired
                .iter()
                .map(|&i| i as i32)
                .collect::<Vec<_>>(),
        )
        .bind(outcome.as_str())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(if latest {
        Settled::Closed {
            attempt_id,
            outcome,
        }
    } else {
        Settled::Late {
            attempt_id,
            outcome,
        }
    })
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
        return match callback.status.outcome() {
            Some(outcome) => amend(pool, found.id, callback, outcome, now).await,
            None => Ok(Settled::AlreadyFinal),
        };
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
    let finished = decide(claim, found.id, callback.report(outcome), now);
    if record(pool, &[finished]).await? == 0 {
        return Ok(Settled::AlreadyFinal);
    }
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(super::notify::CALL_ENDED)
        .bind(format!("{} {}", found.id, outcome.as_str()))
        .execute(pool)
        .await?;
    Ok(Settled::Closed {
        attempt_id: found.id,
        outcome,
    })
}
