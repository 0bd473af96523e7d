//! Recovery of claims whose owner is gone (SPEC 4): claimed contacts with
//! no open attempt (no call was placed for them) go back to `pending` with
//! no attempt counted; those with an open attempt get it closed as
//! `interrupted` and follow the retry policy, so they are never redialed at
//! once. The same path releases this instance's own claims when it stops.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::PgPool;
use uuid::Uuid;

use super::claim::release;
use super::results::record;
use super::DbError;
use crate::domain::call::{self, CallReport, Dialed, Finished};
use crate::domain::policy::DialingPolicy;
use crate::domain::status::ContactStatus;

/// A claimed contact with what deciding its next state needs.
#[derive(sqlx::FromRow)]
pub(crate) struct Orphan {
    id: Uuid,
    owner_instance: Uuid,
    status: ContactStatus,
    attempt_count: i32,
    next_number_index: i32,
    number_count: i32,
    retired_numbers: Vec<i32>,
    dialing_policy: Option<Json<DialingPolicy>>,
    pub(crate) attempt_id: Option<Uuid>,
}

/// What a recovery did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recovered {
    /// Claimed contacts with no open attempt put back to `pending`.
    pub released: u64,
    /// Contacts whose open attempt was closed as `interrupted`.
    pub interrupted: u64,
}

/// Why an open attempt is being closed as `interrupted`; its detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interruption {
    /// The owner stopped (crashed, or drained past its deadline) mid-call.
    OwnerStopped,
    /// The attempt was written but its call never placed: the write's
    /// confirmation was lost, so the dialer could not rely on it.
    NeverPlaced,
}

impl Interruption {
    pub fn detail(self) -> &'static str {
        match self {
            Interruption::OwnerStopped => "the dialer instance stopped during the call",
            Interruption::NeverPlaced => {
                "the call was not placed: the dialer could not confirm its attempt was written"
            }
        }
    }
}

/// Recovers every claim held by `owners` as of `now`, or only those of the
/// listed contacts; open attempts are closed as interrupted for `why`.
pub async fn recover(
    pool: &PgPool,
    owners: &[Uuid],
    contacts: Option<&[Uuid]>,
    now: DateTime<Utc>,
    why: Interruption,
) -> Result<Recovered, DbError> {
    if owners.is_empty() {
        return Ok(Recovered::default());
    }
    let orphans = claims(pool, Some(owners), contacts).await?;
    let mut done = Recovered::default();
    let mut finished = Vec::new();
    let mut unplaced: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    for orphan in orphans {
        match (orphan.status, orphan.attempt_id) {
            (ContactStatus::InProgress, Some(attempt_id)) => {
                let report = CallReport::interrupted(why.detail(), now);
                finished.push(decide(orphan, attempt_id, report, now))
            }
            // A claim with no open attempt never placed a call.
            _ => unplaced
                .entry(orphan.owner_instance)
                .or_default()
                .push(orphan.id),
        }
    }
    for (owner, contacts) in unplaced {
        done.released += release(pool, owner, &contacts).await?;
    }
    if !finished.is_empty() {
        done.interrupted = record(pool, &finished).await?;
    }
    Ok(done)
}

/// Claims held by `owners` (any owner when `None`), of the listed contacts
/// only when `contacts` is given, with their open attempt if any.
pub(crate) async fn claims(
    pool: &PgPool,
    owners: Option<&[Uuid]>,
    contacts: Option<&[Uuid]>,
) -> Result<Vec<Orphan>, DbError> {
    Ok(sqlx::query_as(
        "SELECT c.id, c.owner_instance, c.status, c.attempt_count, c.next_number_index,
                cardinality(c.phone_numbers) AS number_count, c.retired_numbers, f.dialing_policy,
                a.id AS attempt_id
           FROM contacts c
           LEFT JOIN campaigns k ON k.id = c.campaign_id
           LEFT JOIN configurations f ON f.id = k.configuration_id
           LEFT JOIN attempts a ON a.contact_id = c.id AND a.outcome IS NULL
          WHERE c.status IN ('locked', 'in_progress')
            AND ($1::uuid[] IS NULL OR c.owner_instance = ANY($1))
            AND ($2::uuid[] IS NULL OR c.id = ANY($2))",
    )
    .bind(owners)
    .bind(contacts)
    .fetch_all(pool)
    .await?)
}

/// The result of `attempt_id` ending as `report`, decided by the contact's
/// policy as stored in the database.
pub(crate) fn decide(
    orphan: Orphan,
    attempt_id: Uuid,
    report: CallReport,
    now: DateTime<Utc>,
) -> Finished {
    let policy = orphan.dialing_policy.map(|p| p.0).unwrap_or_default();
    let dialed = Dialed {
        attempt_id,
        contact_id: orphan.id,
        owner: orphan.owner_instance,
        attempt_count: orphan.attempt_count.max(0) as u32,
        number_index: orphan.next_number_index.max(0) as usize,
        number_count: orphan.number_count.max(1) as usize,
        retired: orphan
            .retired_numbers
            .iter()
            .map(|&i| i.max(0) as usize)
            .collect(),
    };
    call::finish(&policy, &dialed, report, now)
}
