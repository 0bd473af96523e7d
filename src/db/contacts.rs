//! Contacts: upsert in one transaction, lookup, listing with attempts, delete.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;
use sqlx::{PgPool, Postgres, Transaction};
use utoipa::ToSchema;
use uuid::Uuid;

use super::DbError;
use crate::domain::agent::AgentFields;
use crate::domain::explain::Facts;
use crate::domain::phone::E164;
use crate::domain::policy::DialingPolicy;
use crate::domain::schedule::Schedule;
use crate::domain::status::{CampaignStatus, ContactStatus, Outcome};
use crate::domain::timezone::Timezone;

pub use super::attempts::Attempt;

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Contact {
    pub id: Uuid,
    /// Null for ad-hoc contacts (the `default` campaign).
    pub campaign_id: Option<Uuid>,
    pub external_id: Option<String>,
    pub phone_numbers: Vec<String>,
    /// Exactly as PostgreSQL stores it, passed through unparsed, so no
    /// stored value can fail a read.
    #[schema(value_type = Object)]
    pub data: Json<Box<serde_json::value::RawValue>>,
    pub timezone: Option<String>,
    pub scheduled_at: Option<DateTime<Utc>>,
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub agent: AgentFields,
    pub status: ContactStatus,
    pub attempt_count: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_outcome: Option<Outcome>,
    /// Why the dialer set this contact aside (`exhausted` with no call
    /// placed): it cannot be dialed as stored. Null otherwise.
    pub set_aside_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A contact with its calls, as lists and single reads show it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ContactWithAttempts {
    #[serde(flatten)]
    pub contact: Contact,
    pub attempts: Vec<Attempt>,
}

pub(super) const COLUMNS: &str =
    "id, campaign_id, external_id, phone_numbers, data, timezone, scheduled_at, \
     agent_id, agent_version, agent_number, agent_config, initial_context, status, attempt_count, \
     next_attempt_at, last_outcome, set_aside_reason, created_at, updated_at";

/// Where contacts live: a campaign (with its priority) or the ad-hoc set.
#[derive(Debug, Clone, Copy)]
pub enum Scope {
    Campaign { id: Uuid, priority: i32 },
    AdHoc,
}

/// Ad-hoc contacts outrank every campaign (SPEC 4).
pub const AD_HOC_PRIORITY: i32 = 1_000_000;

impl Scope {
    fn campaign_id(self) -> Option<Uuid> {
        match self {
            Scope::Campaign { id, .. } => Some(id),
            Scope::AdHoc => None,
        }
    }

    fn priority(self) -> i32 {
        match self {
            Scope::Campaign { priority, .. } => priority,
            Scope::AdHoc => AD_HOC_PRIORITY,
        }
    }
}

/// A validated contact from an upsert request.
#[derive(Debug)]
pub struct NewContact {
    pub id: Option<Uuid>,
    pub external_id: Option<String>,
    pub phone_numbers: Vec<E164>,
    pub data: serde_json::Value,
    pub timezone: Option<Timezone>,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub agent: AgentFields,
}

#[derive(Debug, Default)]
pub struct Upserted {
    pub created: usize,
    pub updated: usize,
    pub ids: Vec<Uuid>,
}

/// Why an upsert was refused: the request index and the reason.
#[derive(Debug)]
pub struct Refused {
    pub index: usize,
    pub field: &'static str,
    pub reason: String,
}

// The columns an upsert writes, and how an update rewrites an existing row.
pub(super) const WRITE_COLUMNS: &str =
    "phone_numbers, data, timezone, scheduled_at, agent_id, agent_version, \
     agent_number, agent_config, initial_context, number_zones";
/// How an upsert rewrites an existing row `c` from the new values in `{new}`.
pub(super) fn rewrite(new: &str) -> String {
    format!(
        "retired_numbers = CASE WHEN c.phone_numbers = {new}.phone_numbers THEN c.retired_numbers ELSE '{{}}' END,
         next_number_index = CASE WHEN c.phone_numbers = {new}.phone_numbers THEN c.next_number_index ELSE 0 END,
         phone_numbers = {new}.phone_numbers, data = {new}.data, timezone = {new}.timezone,
         scheduled_at = {new}.scheduled_at, agent_id = {new}.agent_id,
         agent_version = {new}.agent_version, agent_number = {new}.agent_number,
         agent_config = {new}.agent_config, initial_context = {new}.initial_context,
         number_zones = {new}.number_zones,
         next_attempt_at = CASE WHEN c.status = 'pending' AND c.attempt_count = 0
                                THEN greatest(c.created_at, {new}.scheduled_at)
                                ELSE c.next_attempt_at END,
         updated_at = now()"
    )
}

/// Upserts every contact in one transaction; the first refusal rolls it all
/// back. Rows are written in one order whatever the request's (ids, then
/// external ids, then new contacts), so concurrent upserts of overlapping
/// contacts wait for each other instead of deadlocking; a deadlock or
/// serialization failure all the same is retried a few times.
pub async fn upsert(
    pool: &PgPool,
    org: Uuid,
    scope: Scope,
    contacts: &[NewContact],
) -> Result<Result<Upserted, Refused>, DbError> {
    super::retrying(|| upsert_once(pool, org, scope, contacts)).await
}

/// The order rows are locked in: by id, then by external id, then the rest.
fn write_order(contacts: &[NewContact]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..contacts.len()).collect();
    order.sort_by(|&a, &b| {
        let key = |c: &NewContact| {
            (
                c.id.is_none(),
                c.id,
                c.external_id.is_none(),
                c.external_id.clone(),
            )
        };
        key(&contacts[a]).cmp(&key(&contacts[b])).then(a.cmp(&b))
    });
    order
}

async fn upsert_once(
    pool: &PgPool,
    org: Uuid,
    scope: Scope,
    contacts: &[NewContact],
) -> Result<Result<Upserted, Refused>, DbError> {
    let mut tx = pool.begin().await?;
    let mut ids = vec![Uuid::nil(); contacts.len()];
    let (mut created, mut updated) = (0, 0);
    for index in write_order(contacts) {
        let contact = &contacts[index];
        let written = match contact.id {
            Some(id) => update_by_id(&mut tx, org, scope, id, contact).await,
            None => insert_or_update(&mut tx, org, scope, contact).await,
        };
        match written {
            Ok(Some((id, fresh))) => {
                ids[index] = id;
                if fresh {
                    created += 1
                } else {
                    updated += 1
                }
            }
            Ok(None) => {
                let reason = "no contact with this id in this campaign".into();
                return Ok(Err(Refused {
                    index,
                    field: "id",
                    reason,
                }));
            }
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                let field = if db.constraint() == Some("contacts_pkey") {
                    "id"
                } else {
                    "external_id"
                };
                let reason = format!("{field} is already used by another contact");
                return Ok(Err(Refused {
                    index,
                    field,
                    reason,
                }));
            }
            Err(e) => return Err(e.into()),
        }
    }
    tx.commit().await?;
    Ok(Ok(Upserted {
        created,
        updated,
        ids,
    }))
}

fn numbers(contact: &NewContact) -> Vec<&str> {
    contact.phone_numbers.iter().map(E164::as_str).collect()
}

async fn update_by_id(
    tx: &mut Transaction<'_, Postgres>,
    org: Uuid,
    scope: Scope,
    id: Uuid,
    contact: &NewContact,
) -> Result<Option<(Uuid, bool)>, sqlx::Error> {
    let sql = format!(
        "UPDATE contacts c SET {}, external_id = COALESCE(n.external_id, c.external_id)
           FROM (SELECT $4::text[] AS phone_numbers, $5::jsonb AS data, $6::text AS timezone,
                        $7::timestamptz AS scheduled_at, $8::text AS agent_id,
                        $9::text AS agent_version, $10::text AS agent_number,
                        $11::jsonb AS agent_config, $12::text AS initial_context,
                        $13::text AS number_zones, $14::text AS external_id) n
          WHERE c.id = $1 AND c.organization_id = $2 AND c.campaign_id IS NOT DISTINCT FROM $3
      RETURNING c.id, false",
        rewrite("n")
    );
    bind_fields(
        sqlx::query_as(&sql)
            .bind(id)
            .bind(org)
            .bind(scope.campaign_id()),
        contact,
    )
    .bind(&contact.external_id)
    .fetch_optional(&mut **tx)
    .await
}

async fn insert_or_update(
    tx: &mut Transaction<'_, Postgres>,
    org: Uuid,
    scope: Scope,
    contact: &NewContact,
) -> Result<Option<(Uuid, bool)>, sqlx::Error> {
    let target = match scope {
        Scope::Campaign { .. } => "(campaign_id, external_id) WHERE campaign_id IS NOT NULL",
        Scope::AdHoc => "(organization_id, external_id) WHERE campaign_id IS NULL",
    };
    let sql = format!(
        "INSERT INTO contacts AS c (id, organization_id, campaign_id, priority, external_id,
                                    next_attempt_at, {WRITE_COLUMNS})
         SELECT $1, $2, $3, $14, $15, greatest(now(), $7), n.*
           FROM (SELECT $4::text[] AS phone_numbers, $5::jsonb AS data, $6::text AS timezone,
                        $7::timestamptz AS scheduled_at, $8::text AS agent_id,
                        $9::text AS agent_version, $10::text AS agent_number,
                        $11::jsonb AS agent_config, $12::text AS initial_context,
                        $13::text AS number_zones) n
         ON CONFLICT {target} DO UPDATE SET {}
      RETURNING c.id, (c.xmax = 0)",
        rewrite("EXCLUDED")
    );
    bind_fields(
        sqlx::query_as(&sql)
            .bind(Uuid::now_v7())
            .bind(org)
            .bind(scope.campaign_id()),
        contact,
    )
    .bind(scope.priority())
    .bind(&contact.external_id)
    .fetch_optional(&mut **tx)
    .await
}

type AsQuery<'q> = sqlx::query::QueryAs<'q, Postgres, (Uuid, bool), sqlx::postgres::PgArguments>;

/// Binds parameters $4 to $13: the fields every upsert writes.
fn bind_fields<'q>(q: AsQuery<'q>, c: &'q NewContact) -> AsQuery<'q> {
    q.bind(numbers(c))
        .bind(Json(&c.data))
        .bind(c.timezone.map(|t| t.name()))
        .bind(c.scheduled_at)
        .bind(&c.agent.agent_id)
        .bind(&c.agent.agent_version)
        .bind(&c.agent.agent_number)
        .bind(c.agent.agent_config.as_ref().map(Json))
        .bind(&c.agent.initial_context)
        .bind(crate::domain::number_zones::stored(&c.phone_numbers))
}

/// Resolves `key` as a UUID first, then as an external_id, within `scope`.
pub async fn resolve(
    pool: &PgPool,
    org: Uuid,
    scope: Scope,
    key: &str,
) -> Result<Option<Contact>, DbError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM contacts
          WHERE organization_id = $1 AND campaign_id IS NOT DISTINCT FROM $2
            AND (id = $3 OR external_id = $4)
          ORDER BY (id = $3) IS TRUE DESC
          LIMIT 1"
    ))
    .bind(org)
    .bind(scope.campaign_id())
    .bind(Uuid::parse_str(key).ok())
    .bind(key)
    .fetch_optional(pool)
    .await?)
}

pub struct ContactPage {
    pub contacts: Vec<Contact>,
    pub total: i64,
}

pub async fn list(
    pool: &PgPool,
    org: Uuid,
    scope: Scope,
    statuses: &[ContactStatus],
    limit: i64,
    offset: i64,
) -> Result<ContactPage, DbError> {
    let statuses: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
    let filter = "organization_id = $1 AND campaign_id IS NOT DISTINCT FROM $2
                  AND (cardinality($3::text[]) = 0 OR status::text = ANY($3))";
    let contacts = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM contacts WHERE {filter} ORDER BY created_at, id LIMIT $4 OFFSET $5"
    ))
    .bind(org)
    .bind(scope.campaign_id())
    .bind(&statuses)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    let total = sqlx::query_scalar(&format!("SELECT count(*) FROM contacts WHERE {filter}"))
        .bind(org)
        .bind(scope.campaign_id())
        .bind(&statuses)
        .fetch_one(pool)
        .await?;
    Ok(ContactPage { contacts, total })
}

/// Why a contact was not deleted.
pub enum DeleteRefused {
    NotFound,
    CallInProgress,
}

/// Deletes a contact and its attempts, unless a call to it is active.
pub async fn delete(
    pool: &PgPool,
    org: Uuid,
    id: Uuid,
) -> Result<Result<(), DeleteRefused>, DbError> {
    let status: Option<ContactStatus> = sqlx::query_scalar(
        "WITH gone AS (
             DELETE FROM contacts
              WHERE organization_id = $1 AND id = $2 AND status NOT IN ('locked', 'in_progress')
          RETURNING status)
         SELECT status FROM gone
         UNION ALL
         SELECT status FROM contacts WHERE organization_id = $1 AND id = $2
         LIMIT 1",
    )
    .bind(org)
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(match status {
        None => Err(DeleteRefused::NotFound),
        Some(ContactStatus::Locked | ContactStatus::InProgress) => {
            Err(DeleteRefused::CallInProgress)
        }
        Some(_) => Ok(()),
    })
}

#[derive(sqlx::FromRow)]
struct FactsRow {
    status: ContactStatus,
    attempt_count: i32,
    next_attempt_at: DateTime<Utc>,
    timezone: Option<String>,
    first_scheduled: bool,
    phone_numbers: Vec<String>,
    retired_numbers: Vec<i32>,
    suppressed: Vec<i32>,
    number_zones: Option<String>,
    set_aside_reason: Option<String>,
    campaign_status: Option<CampaignStatus>,
    schedule: Option<Json<Schedule>>,
    dialing_policy: Option<Json<DialingPolicy>>,
    concurrency_limit: i32,
    organization_active: i64,
    global_active: i64,
}

/// What a claim looks at for contact `id` of `org`, read in one statement:
/// the contact, its campaign and configuration, and the calls in use in
/// its organization and in all (against `global_limit`).
pub async fn explain_facts(
    pool: &PgPool,
    org: Uuid,
    id: Uuid,
    global_limit: u32,
) -> Result<Option<Facts>, DbError> {
    let row: Option<FactsRow> = sqlx::query_as(
        "SELECT c.status, c.attempt_count, c.next_attempt_at, c.timezone,
                c.attempt_count = 0 AND c.scheduled_at IS NOT NULL AS first_scheduled,
                c.phone_numbers, c.retired_numbers, c.set_aside_reason,
                dnc_suppressed(c.phone_numbers, c.organization_id) AS suppressed, c.number_zones,
                k.status AS campaign_status, f.schedule, f.dialing_policy, o.concurrency_limit,
                (SELECT count(*) FROM contacts x WHERE x.organization_id = c.organization_id
                    AND x.status IN ('locked', 'in_progress')) AS organization_active,
                (SELECT count(*) FROM contacts x WHERE x.status IN ('locked', 'in_progress')) AS global_active
           FROM contacts c
           JOIN organizations o ON o.id = c.organization_id
           LEFT JOIN campaigns k ON k.id = c.campaign_id
           LEFT JOIN configurations f ON f.id = k.configuration_id
          WHERE c.id = $1 AND c.organization_id = $2",
    )
    .bind(id)
    .bind(org)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| {
        let (zone, bad_zone) = match r.timezone {
            None => (None, None),
            Some(name) => match name.parse::<Timezone>() {
                Ok(zone) => (Some(zone), None),
                Err(_) => (None, Some(name)),
            },
        };
        let policy = r.dialing_policy.map(|p| p.0).unwrap_or_default();
        Facts {
            status: r.status,
            attempt_count: r.attempt_count.max(0) as u32,
            max_attempts: policy.max_attempts,
            next_attempt_at: r.next_attempt_at,
            campaign: r.campaign_status.zip(r.schedule.map(|s| s.0)),
            zone,
            bad_zone,
            number_zones: r.number_zones,
            first_scheduled: r.first_scheduled,
            phone_numbers: r.phone_numbers,
            retired: r
                .retired_numbers
                .iter()
                .map(|&i| i.max(0) as usize)
                .collect(),
            suppressed: r.suppressed.iter().map(|&i| i.max(0) as usize).collect(),
            set_aside_reason: r.set_aside_reason,
            organization_active: r.organization_active.max(0) as u32,
            organization_limit: r.concurrency_limit.max(0) as u32,
            global_active: r.global_active.max(0) as u32,
            global_limit,
        }
    }))
}
