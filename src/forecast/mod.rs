//! Capacity planning: when campaigns finish with N lines, and how many
//! lines finish them by a time, from the engine's own rules run over
//! virtual time ([`sim`]) on the real backlog ([`backlog`]) or a scenario
//! file ([`scenario`]). It only reads the database.

pub mod backlog;
pub mod chart;
pub mod command;
pub mod scenario;
pub mod sim;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::settings::DurationShape;

/// Most line counts one forecast sweeps.
pub const MAX_SWEEP: usize = 20;
/// Most lines a scenario may have.
pub const MAX_LINES: u32 = 100_000;

/// What a planner asks; the command line's flags and the API's body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Campaigns by id or external id; none: every active campaign (of the
    /// caller's organization through the API).
    #[serde(default)]
    pub campaigns: Vec<String>,
    /// Line counts to forecast with, 1 to 20 of them, each 1 to 100,000;
    /// none: `dialer.lines`.
    #[serde(default)]
    pub lines: Vec<u32>,
    /// The time the campaigns should be finished by: the answer names the
    /// smallest line count that meets it.
    pub until: Option<DateTime<Utc>>,
    /// Share of calls answered, 0 to 1; set, it replaces the history.
    pub answer_rate: Option<f64>,
    /// Mean call length in seconds; set, it replaces the history.
    pub mean_call_s: Option<f64>,
    /// How call lengths spread around the mean: `exponential` (the
    /// default), `fixed` or `uniform`.
    #[schema(value_type = Option<String>, example = "exponential")]
    pub call_shape: Option<DurationShape>,
    /// Days of attempts the history is read from, 1 to 90 (default 7).
    pub history_days: Option<u32>,
    /// Days of virtual time simulated at most, 1 to 60 (default 7; at
    /// least up to `until`).
    pub horizon_days: Option<u32>,
    /// Seed of the simulated calls (default 1): the same seed, the same answer.
    pub seed: Option<u64>,
}

/// A request checked, with its defaults filled in.
#[derive(Debug, Clone)]
pub struct Checked {
    pub campaigns: Vec<String>,
    pub lines: Vec<u32>,
    pub until: Option<DateTime<Utc>>,
    pub answer_rate: Option<f64>,
    pub mean_call_s: Option<f64>,
    pub call_shape: DurationShape,
    pub history_days: u32,
    pub start: DateTime<Utc>,
    pub horizon: DateTime<Utc>,
    pub seed: u64,
}

impl Request {
    /// Checks every field against `now`; the error names the field.
    pub fn check(self, now: DateTime<Utc>, default_lines: u32) -> Result<Checked, String> {
        let lines = if self.lines.is_empty() {
            vec![default_lines]
        } else {
            self.lines
        };
        if lines.len() > MAX_SWEEP {
            return Err(format!(
                "lines: at most {MAX_SWEEP} line counts, got {}",
                lines.len()
            ));
        }
        if let Some(bad) = lines.iter().find(|&&n| n == 0 || n > MAX_LINES) {
            return Err(format!("lines: each must be 1 to {MAX_LINES}, got {bad}"));
        }
        let mut lines = lines;
        lines.sort_unstable();
        lines.dedup();
        if let Some(until) = self.until {
            if until <= now {
                return Err(format!("until: {until} is not in the future"));
            }
        }
        if let Some(r) = self.answer_rate {
            if !(0.0..=1.0).contains(&r) {
                return Err(format!("answer_rate: must be 0 to 1, got {r}"));
            }
        }
        if let Some(s) = self.mean_call_s {
            if !(s.is_finite() && s > 0.0 && s <= 86_400.0) {
                return Err(format!(
                    "mean_call_s: must be above 0 and at most 86400, got {s}"
                ));
            }
        }
        let history_days = self.history_days.unwrap_or(7);
        if !(1..=90).contains(&history_days) {
            return Err(format!("history_days: must be 1 to 90, got {history_days}"));
        }
        let horizon_days = self.horizon_days.unwrap_or(7);
        if !(1..=60).contains(&horizon_days) {
            return Err(format!("horizon_days: must be 1 to 60, got {horizon_days}"));
        }
        let mut horizon = now + Duration::days(i64::from(horizon_days));
        if let Some(until) = self.until {
            if until > now + Duration::days(60) {
                return Err(format!("until: {until} is more than 60 days ahead"));
            }
            horizon = horizon.max(until);
        }
        let mut campaigns = self.campaigns;
        campaigns.dedup();
        Ok(Checked {
            campaigns,
            lines,
            until: self.until,
            answer_rate: self.answer_rate,
            mean_call_s: self.mean_call_s,
            call_shape: self.call_shape.unwrap_or(DurationShape::Exponential),
            history_days,
            start: now,
            horizon,
            seed: self.seed.unwrap_or(1),
        })
    }
}

/// Where a campaign's call behaviour came from.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Behaviour {
    /// `campaign history`, `organization history`, `parameters`, `defaults` or `scenario`.
    pub source: String,
    /// Ended attempts the history was read from (0 for parameters).
    pub attempts: u64,
    pub answer_rate: f64,
    pub mean_call_s: f64,
}

/// One campaign under one line count.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CampaignForecast {
    pub id: Option<Uuid>,
    pub name: String,
    /// Contacts not finished at the start.
    pub contacts: u64,
    /// When the last is finished; null: not by the horizon.
    pub finishes_at: Option<DateTime<Utc>>,
    pub completed: u64,
    pub exhausted: u64,
    /// Still unfinished when the run stopped.
    pub unfinished: u64,
    pub calls: u64,
    /// Calls per hour from the start to its finish (or the horizon).
    pub calls_per_hour: f64,
}

/// One hour of virtual time.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HourPoint {
    pub start: DateTime<Utc>,
    pub calls: u64,
    /// Mean busy lines over the hour.
    pub busy_lines: f64,
    /// Contacts unfinished at the hour's end.
    pub backlog: u64,
}

/// What held due contacts back, in seconds of virtual time.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WaitSeconds {
    /// Due contacts waited for a free line.
    pub lines: f64,
    /// Due contacts waited for the global limit.
    pub global_limit: f64,
    /// Due contacts waited for their organization's limit with lines free.
    pub organization_limit: f64,
    /// Only contacts outside their calling windows were due.
    pub windows: f64,
    /// Nothing was due: every unfinished contact waited for its due time.
    pub due_times: f64,
}

/// The forecast with one line count.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Scenario {
    pub lines: u32,
    /// Lines the other organizations with due work are taken to hold (their
    /// fair share of the global limit, as they stand).
    pub held_by_others: u32,
    pub campaigns: Vec<CampaignForecast>,
    /// When every campaign is finished; null: not by the horizon.
    pub finishes_at: Option<DateTime<Utc>>,
    /// Whether it finishes by `until` (null when none was asked).
    pub meets_until: Option<bool>,
    /// What bound the pace the most: `lines`, `global limit`,
    /// `organization limit`, `windows`, `due times` or `nothing`.
    pub binding: String,
    pub waits: WaitSeconds,
    pub hours: Vec<HourPoint>,
}

/// The answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Forecast {
    pub start: DateTime<Utc>,
    /// The end of virtual time: a campaign not finished by then is "not by" it.
    pub horizon: DateTime<Utc>,
    pub until: Option<DateTime<Utc>>,
    pub global_limit: u32,
    /// Per campaign, in the order of `scenarios[].campaigns`.
    pub behaviour: Vec<Behaviour>,
    pub scenarios: Vec<Scenario>,
    /// The smallest line count forecast to finish by `until`.
    pub smallest_lines_meeting_until: Option<u32>,
    /// What the forecast assumed.
    pub notes: Vec<String>,
}

/// What a forecast is run on: the model without its line count, the
/// campaigns' names and ids, where their behaviour came from.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub model: sim::Model,
    pub ids: Vec<Option<Uuid>>,
    pub behaviour: Vec<Behaviour>,
    pub notes: Vec<String>,
}

/// Runs the model once per line count and gathers the answer.
pub fn forecast(prepared: &Prepared, lines: &[u32], until: Option<DateTime<Utc>>) -> Forecast {
    let model = &prepared.model;
    let scenarios: Vec<Scenario> = lines
        .iter()
        .map(|&n| {
            let mut m = model.clone();
            m.lines = n;
            scenario(prepared, n, &sim::run(&m), until)
        })
        .collect();
    let smallest = scenarios
        .iter()
        .find(|s| s.meets_until == Some(true))
        .map(|s| s.lines);
    Forecast {
        start: model.start,
        horizon: model.horizon,
        until,
        global_limit: model.global_limit,
        behaviour: prepared.behaviour.clone(),
        scenarios,
        smallest_lines_meeting_until: smallest,
        notes: prepared.notes.clone(),
    }
}

fn scenario(
    prepared: &Prepared,
    lines: u32,
    run: &sim::Run,
    until: Option<DateTime<Utc>>,
) -> Scenario {
    let model = &prepared.model;
    let campaigns: Vec<CampaignForecast> = run
        .campaigns
        .iter()
        .zip(&model.campaigns)
        .zip(&prepared.ids)
        .map(|((r, c), id)| {
            let end = r.finished_at.unwrap_or(run.ended_at);
            let hours = (end - model.start).num_milliseconds() as f64 / 3_600_000.0;
            CampaignForecast {
                id: *id,
                name: c.name.clone(),
                contacts: r.contacts,
                finishes_at: r.finished_at,
                completed: r.completed,
                exhausted: r.exhausted,
                unfinished: r.contacts - r.completed - r.exhausted,
                calls: r.calls,
                calls_per_hour: if hours > 0.0 {
                    r.calls as f64 / hours
                } else {
                    0.0
                },
            }
        })
        .collect();
    let finishes_at = campaigns
        .iter()
        .map(|c| c.finishes_at)
        .try_fold(model.start, |latest, f| f.map(|f| latest.max(f)));
    let w = &run.waits;
    let binding = [
        ("lines", w.lines),
        ("global limit", w.global_limit),
        ("organization limit", w.organization_limit),
        ("windows", w.windows),
        ("due times", w.due_times),
    ]
    .into_iter()
    .filter(|(_, s)| *s > 0.0)
    .max_by(|a, b| a.1.total_cmp(&b.1))
    .map_or("nothing", |(name, _)| name)
    .to_string();
    Scenario {
        lines,
        held_by_others: run.held_by_others,
        campaigns,
        finishes_at,
        meets_until: until.map(|u| finishes_at.is_some_and(|f| f <= u)),
        binding,
        waits: WaitSeconds {
            lines: w.lines,
            global_limit: w.global_limit,
            organization_limit: w.organization_limit,
            windows: w.windows,
            due_times: w.due_times,
        },
        hours: run
            .hours
            .iter()
            .enumerate()
            .map(|(i, h)| HourPoint {
                start: model.start + Duration::hours(i as i64),
                calls: h.calls,
                busy_lines: h.busy_lines,
                backlog: h.backlog,
            })
            .collect(),
    }
}
