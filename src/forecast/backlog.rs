//! The forecast's model from the database: the campaigns asked for, their
//! configurations, every unfinished contact with its zone key, due time and
//! attempts so far, the organizations' limits, and the call behaviour of
//! each campaign's history. Everything is read in one read-only
//! transaction (one snapshot; the database refuses any write in it).

use std::collections::HashMap;

use chrono::Duration;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use super::sim::{Behaviour as SimBehaviour, Campaign, Contact, Lengths, Model, Organization};
use super::{Behaviour, Checked, Prepared};
use crate::domain::policy::DialingPolicy;
use crate::domain::schedule::Schedule;
use crate::domain::status::Outcome;
use crate::settings::OutcomeMix;

/// Fewest ended attempts a history must have to be used.
pub const MIN_HISTORY: i64 = 100;
/// Most recorded call lengths sampled per campaign.
const MAX_LENGTHS: i64 = 10_000;

/// Why a forecast cannot be made; names the field at fault.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("campaigns: no campaign `{0}`")]
    UnknownCampaign(String),
    #[error("campaigns: no active campaign to forecast")]
    Nothing,
    #[error("campaigns: campaign `{0}` is closed")]
    Closed(String),
    #[error("the configuration of campaign `{campaign}` does not decode: {detail}")]
    Configuration { campaign: String, detail: String },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The defaults when neither history nor the planner says.
pub const DEFAULT_ANSWER_RATE: f64 = 0.3;
pub const DEFAULT_MEAN_CALL_S: f64 = 60.0;

/// Reads the model. `organization`: the API's caller (only its campaigns);
/// None: the operator's command line (any organization's).
pub async fn prepare(
    pool: &PgPool,
    organization: Option<Uuid>,
    request: &Checked,
    global_limit: u32,
) -> Result<Prepared, Refused> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let mut notes = Vec::new();
    let rows = if request.campaigns.is_empty() {
        sqlx::query(
            "SELECT k.id, k.name, k.status::text AS status, k.priority, k.organization_id,
                    f.schedule, f.dialing_policy
               FROM campaigns k JOIN configurations f ON f.id = k.configuration_id
              WHERE k.status = 'active' AND ($1::uuid IS NULL OR k.organization_id = $1)
              ORDER BY k.priority DESC, k.name",
        )
        .bind(organization)
        .fetch_all(&mut *tx)
        .await?
    } else {
        let mut rows = Vec::new();
        for name in &request.campaigns {
            let id = Uuid::parse_str(name).ok();
            let found = sqlx::query(
                "SELECT k.id, k.name, k.status::text AS status, k.priority, k.organization_id,
                        f.schedule, f.dialing_policy
                   FROM campaigns k JOIN configurations f ON f.id = k.configuration_id
                  WHERE (k.id = $1 OR ($1 IS NULL AND k.external_id = $2))
                    AND ($3::uuid IS NULL OR k.organization_id = $3)
                  ORDER BY k.organization_id",
            )
            .bind(id)
            .bind(name)
            .bind(organization)
            .fetch_all(&mut *tx)
            .await?;
            match found.len() {
                0 => return Err(Refused::UnknownCampaign(name.clone())),
                1 => rows.extend(found),
                _ => {
                    return Err(Refused::UnknownCampaign(format!(
                        "{name}` names campaigns of several organizations: give its id, not `{name}"
                    )))
                }
            }
        }
        rows
    };
    if rows.is_empty() {
        return Err(Refused::Nothing);
    }
    let mut orgs: Vec<Uuid> = Vec::new();
    let mut campaigns = Vec::new();
    let mut ids = Vec::new();
    let mut behaviour = Vec::new();
    let mut campaign_index: HashMap<Uuid, usize> = HashMap::new();
    for row in &rows {
        let id: Uuid = row.try_get("id")?;
        if campaign_index.contains_key(&id) {
            continue;
        }
        let name: String = row.try_get("name")?;
        let status: String = row.try_get("status")?;
        match status.as_str() {
            "closed" => return Err(Refused::Closed(name)),
            "paused" => notes.push(format!(
                "campaign {name} is paused: forecast as if it were started now"
            )),
            _ => {}
        }
        let org: Uuid = row.try_get("organization_id")?;
        let organization = match orgs.iter().position(|&o| o == org) {
            Some(i) => i,
            None => {
                orgs.push(org);
                orgs.len() - 1
            }
        };
        let bad = |detail: String| Refused::Configuration {
            campaign: name.clone(),
            detail,
        };
        let schedule: Schedule =
            serde_json::from_value(row.try_get("schedule")?).map_err(|e| bad(e.to_string()))?;
        let policy: DialingPolicy = serde_json::from_value(row.try_get("dialing_policy")?)
            .map_err(|e| bad(e.to_string()))?;
        let (b, shown) = history(&mut tx, id, org, request).await?;
        campaign_index.insert(id, campaigns.len());
        campaigns.push(Campaign {
            name,
            organization,
            priority: row.try_get("priority")?,
            schedule,
            policy,
            behaviour: b,
        });
        ids.push(Some(id));
        behaviour.push(shown);
    }
    let mut organizations = Vec::new();
    for org in &orgs {
        let (name, limit): (String, i32) =
            sqlx::query_as("SELECT name, concurrency_limit FROM organizations WHERE id = $1")
                .bind(org)
                .fetch_one(&mut *tx)
                .await?;
        organizations.push(Organization {
            name,
            limit: limit.max(0) as u32,
        });
    }
    let campaign_ids: Vec<Uuid> = ids.iter().flatten().copied().collect();
    let rows = sqlx::query(
        "SELECT campaign_id, zone_key, next_attempt_at, attempt_count, next_number_index,
                cardinality(phone_numbers) AS numbers, retired_numbers,
                scheduled_at IS NOT NULL AS scheduled, status::text AS status
           FROM contacts
          WHERE campaign_id = ANY($1) AND status IN ('pending', 'locked', 'in_progress')",
    )
    .bind(&campaign_ids)
    .fetch_all(&mut *tx)
    .await?;
    let mut contacts = Vec::with_capacity(rows.len());
    let mut in_flight = 0u64;
    for row in rows {
        let campaign: Uuid = row.try_get("campaign_id")?;
        let status: String = row.try_get("status")?;
        in_flight += u64::from(status != "pending");
        let retired: Vec<i32> = row.try_get("retired_numbers")?;
        contacts.push(Contact {
            campaign: campaign_index[&campaign],
            zone_key: row.try_get("zone_key")?,
            due: row.try_get("next_attempt_at")?,
            attempts: row.try_get::<i32, _>("attempt_count")?.max(0) as u32,
            number_index: row.try_get::<i32, _>("next_number_index")?.max(0) as usize,
            numbers: row.try_get::<i32, _>("numbers")?.max(1) as usize,
            retired: retired.into_iter().map(|i| i.max(0) as usize).collect(),
            scheduled: row.try_get("scheduled")?,
        });
    }
    if in_flight > 0 {
        notes.push(format!(
            "{in_flight} contacts in a call now are forecast as due at the start"
        ));
    }
    // Organizations outside the forecast with due work now keep their fair
    // share of the global limit busy, as they stand.
    let others: Vec<i32> = sqlx::query_scalar(
        "SELECT d.concurrency_limit FROM organization_due d
          WHERE d.next_due <= $1 AND d.organization_id <> ALL($2)
            AND EXISTS (SELECT 1 FROM contacts c LEFT JOIN campaigns k ON k.id = c.campaign_id
                         WHERE c.organization_id = d.organization_id AND c.status = 'pending'
                           AND c.next_attempt_at <= $1
                           AND (c.campaign_id IS NULL OR k.status = 'active'))",
    )
    .bind(request.start)
    .bind(&orgs)
    .fetch_all(&mut *tx)
    .await?;
    if !others.is_empty() {
        notes.push(format!(
            "{} other organizations have due work now: each is taken to keep its fair share of the global limit busy throughout",
            others.len()
        ));
    }
    if organization.is_none() && request.campaigns.is_empty() {
        notes.push("every active campaign of every organization is forecast".into());
    }
    tx.commit().await?;
    Ok(Prepared {
        model: Model {
            start: request.start,
            horizon: request.horizon,
            lines: 0,
            global_limit,
            organizations,
            campaigns,
            contacts,
            others: others.into_iter().map(|l| l.max(0) as u32).collect(),
            seed: request.seed,
        },
        ids,
        behaviour,
        notes,
    })
}

/// A campaign's call behaviour: the planner's parameters where given, else
/// the campaign's history, else its organization's, else the defaults.
async fn history(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    campaign: Uuid,
    organization: Uuid,
    request: &Checked,
) -> Result<(SimBehaviour, Behaviour), sqlx::Error> {
    let since = request.start - Duration::days(i64::from(request.history_days));
    let mut found = None;
    for (scope, source) in [
        (Some(campaign), "campaign history"),
        (None, "organization history"),
    ] {
        let counts: Vec<(Outcome, i64)> = sqlx::query_as(
            "SELECT outcome, count(*) FROM attempts
              WHERE organization_id = $1 AND ($2::uuid IS NULL OR campaign_id = $2)
                AND ended_at >= $3 AND outcome IS NOT NULL AND outcome <> 'interrupted'
              GROUP BY outcome",
        )
        .bind(organization)
        .bind(scope)
        .bind(since)
        .fetch_all(&mut **tx)
        .await?;
        let total: i64 = counts.iter().map(|c| c.1).sum();
        if total >= MIN_HISTORY {
            let lengths: Vec<f64> = sqlx::query_scalar(
                "SELECT extract(epoch FROM ended_at - created_at)::float8 FROM attempts
                  WHERE organization_id = $1 AND ($2::uuid IS NULL OR campaign_id = $2)
                    AND ended_at >= $3 AND outcome IS NOT NULL AND outcome <> 'interrupted'
                  ORDER BY ended_at DESC LIMIT $4",
            )
            .bind(organization)
            .bind(scope)
            .bind(since)
            .bind(MAX_LENGTHS)
            .fetch_all(&mut **tx)
            .await?;
            found = Some((source, total, counts, lengths));
            break;
        }
    }
    let mix_of = |counts: &[(Outcome, i64)]| {
        let w = |o: Outcome| counts.iter().find(|c| c.0 == o).map_or(0.0, |c| c.1 as f64);
        OutcomeMix {
            no_answer: w(Outcome::NoAnswer),
            busy: w(Outcome::Busy),
            voicemail: w(Outcome::Voicemail),
            rejected: w(Outcome::Rejected),
            invalid_number: w(Outcome::InvalidNumber),
            failed: w(Outcome::Failed),
        }
    };
    let no_answer = OutcomeMix::only_no_answer();
    let (source, attempts, mut answer_rate, mut unanswered, mut lengths): (
        String,
        u64,
        f64,
        OutcomeMix,
        Lengths,
    ) = match found {
        Some((source, total, counts, lengths)) => {
            let completed = counts
                .iter()
                .find(|c| c.0 == Outcome::Completed)
                .map_or(0, |c| c.1);
            let mix = mix_of(&counts);
            let mix = if mix.validate().is_ok() {
                mix
            } else {
                no_answer.clone()
            };
            (
                source.to_string(),
                total as u64,
                completed as f64 / total as f64,
                mix,
                Lengths::Recorded(lengths.into_iter().map(|s| s.max(0.0)).collect()),
            )
        }
        None => (
            "defaults".to_string(),
            0,
            DEFAULT_ANSWER_RATE,
            no_answer.clone(),
            Lengths::Shape {
                mean_s: DEFAULT_MEAN_CALL_S,
                shape: request.call_shape,
            },
        ),
    };
    let given = (request.answer_rate, request.mean_call_s);
    if let Some(r) = given.0 {
        answer_rate = r;
        if unanswered.validate().is_err() {
            unanswered = no_answer;
        }
    }
    if let Some(mean_s) = given.1 {
        lengths = Lengths::Shape {
            mean_s,
            shape: request.call_shape,
        };
    }
    if matches!(&lengths, Lengths::Recorded(v) if v.is_empty()) {
        lengths = Lengths::Shape {
            mean_s: DEFAULT_MEAN_CALL_S,
            shape: request.call_shape,
        };
    }
    let source = match given {
        (Some(_), Some(_)) => "parameters".to_string(),
        (None, None) => source,
        _ => format!("parameters and {source}"),
    };
    let shown = Behaviour {
        source,
        attempts,
        answer_rate,
        mean_call_s: lengths.mean_s(),
    };
    Ok((
        SimBehaviour {
            answer_rate,
            unanswered,
            lengths,
        },
        shown,
    ))
}
