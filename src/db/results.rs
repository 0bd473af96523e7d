//! Results: a finished call closes its attempt and moves its contact on,
//! fenced by the claim's owner, many results in one statement.

use sqlx::PgPool;

use super::DbError;
use crate::domain::call::Finished;

/// Closes attempts and moves their contacts on, in one statement. A result
/// whose attempt was already closed (its claim was recovered) changes nothing.
/// Returns how many results took effect.
pub async fn record(pool: &PgPool, results: &[Finished]) -> Result<u64, DbError> {
    let retired: Vec<String> = results
        .iter()
        .map(|r| {
            format!(
                "{{{}}}",
                r.retired
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            )
        })
        .collect();
    Ok(sqlx::query(
        "WITH r AS (
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[],
                                  $7::timestamptz[], $8::timestamptz[], $9::text[], $10::timestamptz[],
                                  $11::int[], $12::text[])
                 AS r(attempt_id, contact_id, owner, outcome, conversation_id, detail, answered_at, ended_at,
                      status, next_attempt_at, next_number_index, retired)),
         -- Plans must not hang on the statistics of these queue tables: they
         -- go stale within seconds (a fresh table, a burst of claims), and a
         -- plan that trusts them can scan every active contact once per
         -- result (seconds for a batch). So the rows are found by primary
         -- key only: ended_at IS NULL (the same as outcome IS NULL, by the
         -- table's CHECK) and the owner fence match no partial index.
         closed AS (
             UPDATE attempts a SET outcome = r.outcome::attempt_outcome,
                    conversation_id = coalesce(r.conversation_id, a.conversation_id),
                    telephony_detail = r.detail, answered_at = coalesce(r.answered_at, a.answered_at),
                    ended_at = r.ended_at
               FROM r WHERE a.id = r.attempt_id AND a.ended_at IS NULL
          RETURNING r.*)
         -- An open attempt belongs to an in_progress contact: closing it is
         -- the fence; the owner check keeps a recovered claim's late result out.
         UPDATE contacts c SET status = r.status::contact_status,
                next_attempt_at = coalesce(r.next_attempt_at, c.next_attempt_at),
                next_number_index = r.next_number_index, retired_numbers = r.retired::int[],
                last_outcome = r.outcome::attempt_outcome, owner_instance = NULL, claimed_at = NULL,
                updated_at = now()
           FROM closed r
          WHERE c.id = r.contact_id AND c.owner_instance = r.owner",
    )
    .bind(results.iter().map(|r| r.attempt_id).collect::<Vec<_>>())
    .bind(results.iter().map(|r| r.contact_id).collect::<Vec<_>>())
    .bind(results.iter().map(|r| r.owner).collect::<Vec<_>>())
    .bind(results.iter().map(|r| r.outcome.as_str()).collect::<Vec<_>>())
    .bind(results.iter().map(|r| r.conversation_id.clone()).collect::<Vec<_>>())
    .bind(results.iter().map(|r| r.detail.clone()).collect::<Vec<_>>())
    .bind(results.iter().map(|r| r.answered_at).collect::<Vec<_>>())
    .bind(results.iter().map(|r| r.ended_at).collect::<Vec<_>>())
    .bind(results.iter().map(|r| r.status.as_str()).collect::<Vec<_>>())
    .bind(results.iter().map(|r| r.next_attempt_at).collect::<Vec<_>>())
    .bind(
        results
            .iter()
            .map(|r| r.next_number_index as i32)
            .collect::<Vec<_>>(),
    )
    .bind(&retired)
    .execute(pool)
    .await?
    .rows_affected())
}
