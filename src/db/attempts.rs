//! Attempts: one row per call placed, written just before the call (fenced
//! by the claim and the campaign's status) and read back with their contacts.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use super::claim::{ClaimFailed, NewAttempt};
use super::DbError;
use crate::domain::agent::AgentFields;
use crate::domain::evidence::Evidence;
use crate::domain::status::Outcome;

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Attempt {
    pub id: Uuid,
    pub contact_id: Uuid,
    pub campaign_id: Option<Uuid>,
    pub attempt_number: i32,
    pub phone_number: String,
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub agent: AgentFields,
    pub conversation_id: Option<String>,
    /// Null while the call is still going.
    pub outcome: Option<Outcome>,
    pub telephony_detail: Option<String>,
    /// The dialerd instance that placed the call.
    pub instance_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub answered_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Why the call was allowed, as its claim saw it.
    #[schema(value_type = Option<Evidence>)]
    pub evidence: Option<sqlx::types::Json<Evidence>>,
}

/// Every attempt of the given contacts, oldest first per contact.
pub async fn for_contacts(pool: &PgPool, contact_ids: &[Uuid]) -> Result<Vec<Attempt>, DbError> {
    Ok(sqlx::query_as(
        "SELECT id, contact_id, campaign_id, attempt_number, phone_number, agent_id, agent_version,
                agent_number, agent_config, initial_context, conversation_id, outcome,
                telephony_detail, instance_id, created_at, answered_at, ended_at, evidence
           FROM attempts WHERE contact_id = ANY($1)
          ORDER BY contact_id, attempt_number",
    )
    .bind(contact_ids)
    .fetch_all(pool)
    .await?)
}

/// Writes the open attempts of a committed claim, for the contacts `owner`
/// still holds whose campaign is still active, and returns those contacts:
/// exactly the calls that may be placed. A contact whose claim was
/// recovered meanwhile (this instance was taken for dead) gets no attempt
/// and must not be called; one whose campaign was paused or stopped since
/// the claim gets none either and is the caller's to hand back.
///
/// The contacts are share-locked while their attempts are written, and
/// [`release`] takes them exclusively before it checks for open attempts,
/// so the two never both go ahead. On failure every contact of the batch
/// is to be recovered: none was called, some attempts may have been written.
pub async fn start(
    pool: &PgPool,
    owner: Uuid,
    attempts: &Attempts,
) -> Result<Vec<Uuid>, ClaimFailed> {
    if attempts.ids.is_empty() {
        return Ok(Vec::new());
    }
    let written = attempts.insert(pool, owner).await;
    written.map_err(|e| ClaimFailed {
        error: e.into(),
        maybe_committed: attempts.contacts.clone(),
    })
}

/// The attempts of one claim, column by column.
#[derive(Debug, Default)]
pub struct Attempts {
    ids: Vec<Uuid>,
    pub(super) contacts: Vec<Uuid>,
    organizations: Vec<Uuid>,
    campaigns: Vec<Option<Uuid>>,
    numbers: Vec<i32>,
    epochs: Vec<i32>,
    phones: Vec<String>,
    agent_ids: Vec<Option<String>>,
    agent_versions: Vec<Option<String>>,
    agent_numbers: Vec<Option<String>>,
    agent_configs: Vec<Option<String>>,
    initial_contexts: Vec<Option<String>>,
    evidences: Vec<Option<String>>,
}

impl Attempts {
    pub(super) fn push(
        &mut self,
        contact: Uuid,
        org: Uuid,
        campaign: Option<Uuid>,
        number: i32,
        dnc_epoch: i32,
        a: NewAttempt,
    ) {
        self.ids.push(a.attempt_id);
        self.contacts.push(contact);
        self.organizations.push(org);
        self.campaigns.push(campaign);
        self.numbers.push(number);
        self.epochs.push(dnc_epoch);
        self.phones.push(a.phone_number);
        self.agent_ids.push(a.agent.agent_id);
        self.agent_versions.push(a.agent.agent_version);
        self.agent_numbers.push(a.agent.agent_number);
        self.agent_configs
            .push(a.agent.agent_config.as_ref().map(|v| v.to_string()));
        self.initial_contexts.push(a.agent.initial_context);
        self.evidences.push(
            a.evidence
                .map(|e| serde_json::to_string(&e).expect("evidence serializes")),
        );
    }

    /// Writes the open attempts of the contacts still claimed by `owner` for
    /// this very attempt, whose campaign is still active; returns those
    /// contacts. `created_at` is the moment of writing, just before the
    /// calls are placed. The campaigns are share-locked too, so a pause
    /// either waits for these attempts or is seen by them: no attempt is
    /// written after a pause commits. A contact whose `dnc_epoch` moved
    /// since its claim (a do-not-call change listed one of its numbers)
    /// gets no attempt either, nor does one whose number is listed now.
    async fn insert(&self, pool: &PgPool, owner: Uuid) -> Result<Vec<Uuid>, sqlx::Error> {
        sqlx::query_scalar(
            "WITH live AS (
                 SELECT k.id FROM campaigns k WHERE k.id = ANY($4) AND k.status = 'active'
                    FOR SHARE),
             mine AS (
                 SELECT c.id, c.attempt_count, c.dnc_epoch FROM contacts c
                  WHERE c.id = ANY($2) AND c.status = 'in_progress' AND c.owner_instance = $12
                    AND (c.campaign_id IS NULL OR c.campaign_id IN (SELECT id FROM live))
                    FOR SHARE OF c)
             INSERT INTO attempts (id, contact_id, organization_id, campaign_id, attempt_number, phone_number,
                                   agent_id, agent_version, agent_number, agent_config, initial_context,
                                   instance_id, created_at, evidence)
             SELECT a.id, a.contact_id, a.organization_id, a.campaign_id, a.attempt_number, a.phone,
                    a.agent_id, a.agent_version, a.agent_number, a.agent_config::jsonb, a.initial_context,
                    $12, clock_timestamp(), ($14::text[])[a.ord]::jsonb
               FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::int[], $6::text[], $7::text[],
                           $8::text[], $9::text[], $10::text[], $11::text[])
                 WITH ORDINALITY
                 AS a(id, contact_id, organization_id, campaign_id, attempt_number, phone, agent_id,
                      agent_version, agent_number, agent_config, initial_context, ord)
               JOIN mine ON mine.id = a.contact_id AND mine.attempt_count = a.attempt_number
                        AND mine.dnc_epoch = ($13::int[])[a.ord]
          RETURNING contact_id",
        )
        .bind(&self.ids)
        .bind(&self.contacts)
        .bind(&self.organizations)
        .bind(&self.campaigns)
        .bind(&self.numbers)
        .bind(&self.phones)
        .bind(&self.agent_ids)
        .bind(&self.agent_versions)
        .bind(&self.agent_numbers)
        .bind(&self.agent_configs)
        .bind(&self.initial_contexts)
        .bind(owner)
        .bind(&self.epochs)
        .bind(&self.evidences)
        .fetch_all(pool)
        .await
    }
}
