//! A synthetic backlog from a scenario file (JSON), for planning before
//! the contacts exist. Errors name the field by its path.
//!
//! ```json
//! {
//!   "start": "2026-12-07T13:00:00Z",
//!   "global_limit": 200,
//!   "organizations": [{"name": "acme", "concurrency_limit": 50}],
//!   "campaigns": [{
//!     "name": "renewals", "organization": "acme", "priority": 1,
//!     "schedule": {"default_windows": [{"days": ["mon","tue","wed","thu","fri"], "start": "09:00", "end": "17:00"}]},
//!     "dialing_policy": {"max_attempts": 3, "retry_delay_seconds": 3600},
//!     "answer_rate": 0.35, "mean_call_s": 90, "call_shape": "exponential",
//!     "contacts": [
//!       {"count": 50000, "timezone": "America/New_York"},
//!       {"count": 20000, "number": "+18085550100", "due_in_minutes": 60}
//!     ]
//!   }]
//! }
//! ```

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

use super::sim::{Behaviour as SimBehaviour, Campaign, Contact, Lengths, Model, Organization};
use super::{Behaviour, Checked, Prepared};
use crate::domain::number_zones;
use crate::domain::phone::E164;
use crate::domain::policy::DialingPolicy;
use crate::domain::schedule::Schedule;
use crate::domain::timezone::Timezone;
use crate::settings::{DurationShape, OutcomeMix};

/// Most contacts a scenario may describe.
pub const MAX_CONTACTS: u64 = 20_000_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    /// Virtual time starts here (default: now).
    start: Option<DateTime<Utc>>,
    /// Default: `dialer.global_concurrency_limit`.
    global_limit: Option<u32>,
    organizations: Vec<OrgEntry>,
    campaigns: Vec<CampaignEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrgEntry {
    name: String,
    concurrency_limit: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CampaignEntry {
    name: String,
    organization: String,
    #[serde(default = "one")]
    priority: i32,
    schedule: Schedule,
    #[serde(default)]
    dialing_policy: DialingPolicy,
    answer_rate: Option<f64>,
    mean_call_s: Option<f64>,
    call_shape: Option<DurationShape>,
    unanswered: Option<OutcomeMix>,
    contacts: Vec<ContactEntry>,
}

fn one() -> i32 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContactEntry {
    count: u64,
    /// A stated zone; else `number`'s zones; else the default zone.
    timezone: Option<Timezone>,
    number: Option<String>,
    #[serde(default)]
    due_in_minutes: i64,
    #[serde(default)]
    attempts: u32,
    #[serde(default = "one_number")]
    numbers: usize,
    #[serde(default)]
    scheduled: bool,
}

fn one_number() -> usize {
    1
}

/// Reads a scenario; `now` is the start when the file names none. The
/// request's answer rate and call length, where given, replace the file's.
pub fn prepare(text: &str, request: &Checked, default_global: u32) -> Result<Prepared, String> {
    let de = &mut serde_json::Deserializer::from_str(text);
    let file: File = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        format!("scenario: {path}: {}", e.inner())
    })?;
    let start = file.start.unwrap_or(request.start);
    let horizon = start + (request.horizon - request.start);
    if let Some(until) = request.until {
        if until <= start {
            return Err(format!(
                "until: {until} is not after the scenario's start {start}"
            ));
        }
    }
    let global_limit = file.global_limit.unwrap_or(default_global);
    if global_limit == 0 {
        return Err("scenario: global_limit: must be at least 1".into());
    }
    let mut organizations = Vec::new();
    for (i, o) in file.organizations.iter().enumerate() {
        if !(1..=10_000).contains(&o.concurrency_limit) {
            return Err(format!(
                "scenario: organizations[{i}].concurrency_limit: must be 1 to 10000, got {}",
                o.concurrency_limit
            ));
        }
        if file.organizations[..i].iter().any(|p| p.name == o.name) {
            return Err(format!(
                "scenario: organizations[{i}].name: `{}` is named twice",
                o.name
            ));
        }
        organizations.push(Organization {
            name: o.name.clone(),
            limit: o.concurrency_limit,
        });
    }
    if file.campaigns.is_empty() {
        return Err("scenario: campaigns: at least one campaign".into());
    }
    let mut campaigns = Vec::new();
    let mut behaviour = Vec::new();
    let mut contacts = Vec::new();
    let mut total = 0u64;
    for (ci, c) in file.campaigns.into_iter().enumerate() {
        let at = |field: &str| format!("scenario: campaigns[{ci}].{field}");
        let organization = organizations
            .iter()
            .position(|o| o.name == c.organization)
            .ok_or_else(|| {
                format!(
                    "{}: no organization `{}`",
                    at("organization"),
                    c.organization
                )
            })?;
        if !(0..=999_999).contains(&c.priority) {
            return Err(format!(
                "{}: must be 0 to 999999, got {}",
                at("priority"),
                c.priority
            ));
        }
        let answer_rate = request
            .answer_rate
            .or(c.answer_rate)
            .unwrap_or(super::backlog::DEFAULT_ANSWER_RATE);
        if !(0.0..=1.0).contains(&answer_rate) {
            return Err(format!(
                "{}: must be 0 to 1, got {answer_rate}",
                at("answer_rate")
            ));
        }
        let mean_s = request
            .mean_call_s
            .or(c.mean_call_s)
            .unwrap_or(super::backlog::DEFAULT_MEAN_CALL_S);
        if !(mean_s.is_finite() && mean_s > 0.0) {
            return Err(format!(
                "{}: must be above 0, got {mean_s}",
                at("mean_call_s")
            ));
        }
        let unanswered = c.unanswered.unwrap_or_else(OutcomeMix::only_no_answer);
        unanswered
            .validate()
            .map_err(|e| format!("{}: {e}", at("unanswered")))?;
        let shape = c.call_shape.unwrap_or(request.call_shape);
        for (ki, k) in c.contacts.iter().enumerate() {
            let at = |field: &str| format!("scenario: campaigns[{ci}].contacts[{ki}].{field}");
            if k.numbers == 0 || k.numbers > 10 {
                return Err(format!(
                    "{}: must be 1 to 10, got {}",
                    at("numbers"),
                    k.numbers
                ));
            }
            if k.attempts >= c.dialing_policy.max_attempts {
                return Err(format!(
                    "{}: {} leaves no attempt under max_attempts {}",
                    at("attempts"),
                    k.attempts,
                    c.dialing_policy.max_attempts
                ));
            }
            total += k.count;
            if total > MAX_CONTACTS {
                return Err(format!(
                    "{}: more than {MAX_CONTACTS} contacts in all",
                    at("count")
                ));
            }
            let zone_key = match (&k.timezone, &k.number) {
                (Some(z), _) => z.to_string(),
                (None, Some(n)) => {
                    let number = E164::strict(n).map_err(|e| format!("{}: {e}", at("number")))?;
                    number_zones::stored(&[number]).map_or(String::new(), |z| format!("~{z}"))
                }
                (None, None) => String::new(),
            };
            let due = start + Duration::minutes(k.due_in_minutes);
            for _ in 0..k.count {
                contacts.push(Contact {
                    campaign: ci,
                    zone_key: zone_key.clone(),
                    due,
                    attempts: k.attempts,
                    number_index: 0,
                    numbers: k.numbers,
                    retired: Vec::new(),
                    scheduled: k.scheduled,
                });
            }
        }
        behaviour.push(Behaviour {
            source: "scenario".into(),
            attempts: 0,
            answer_rate,
            mean_call_s: mean_s,
        });
        campaigns.push(Campaign {
            name: c.name,
            organization,
            priority: c.priority,
            schedule: c.schedule,
            policy: c.dialing_policy,
            behaviour: SimBehaviour {
                answer_rate,
                unanswered,
                lengths: Lengths::Shape { mean_s, shape },
            },
        });
    }
    let ids = vec![None; campaigns.len()];
    Ok(Prepared {
        model: Model {
            start,
            horizon,
            lines: 0,
            global_limit,
            organizations,
            campaigns,
            contacts,
            others: Vec::new(),
            seed: request.seed,
        },
        ids,
        behaviour,
        notes: Vec::new(),
    })
}
