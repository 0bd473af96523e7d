//! `dialerd forecast`: the forecast on the command line, as a table, JSON
//! or an SVG chart. It only reads the database.

use std::fmt::Write as _;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::Args;

use super::{backlog, chart, forecast, scenario, Forecast, Request};
use crate::settings::{DurationShape, Settings};

#[derive(Debug, Args)]
pub struct ForecastArgs {
    /// A campaign by id or external id; repeat for several. None: every active campaign.
    #[arg(long = "campaign", value_name = "ID")]
    pub campaigns: Vec<String>,
    /// Lines, or a comma-separated list of counts to compare (default: dialer.lines).
    #[arg(long, value_delimiter = ',', value_name = "N[,N...]")]
    pub lines: Vec<u32>,
    /// Finish by this time (RFC 3339): names the smallest line count that does.
    #[arg(long, value_name = "TIME")]
    pub until: Option<DateTime<Utc>>,
    /// Share of calls answered, 0 to 1 (replaces the history).
    #[arg(long)]
    pub answer_rate: Option<f64>,
    /// Mean call length in seconds (replaces the history).
    #[arg(long)]
    pub mean_call_s: Option<f64>,
    /// exponential (default), fixed or uniform.
    #[arg(long, value_parser = shape)]
    pub call_shape: Option<DurationShape>,
    /// Days of attempts the history is read from (default 7).
    #[arg(long)]
    pub history_days: Option<u32>,
    /// Days of virtual time at most (default 7).
    #[arg(long)]
    pub horizon_days: Option<u32>,
    /// Seed of the simulated calls (default 1).
    #[arg(long)]
    pub seed: Option<u64>,
    /// A scenario file (JSON) instead of the database's backlog.
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// Write an SVG chart of busy lines and backlog over time here.
    #[arg(long, value_name = "FILE.svg")]
    pub chart: Option<PathBuf>,
    /// Print the whole answer as JSON (the API's), hourly series included.
    #[arg(long)]
    pub json: bool,
}

fn shape(s: &str) -> Result<DurationShape, String> {
    match s {
        "exponential" => Ok(DurationShape::Exponential),
        "fixed" => Ok(DurationShape::Fixed),
        "uniform" => Ok(DurationShape::Uniform),
        _ => Err(format!(
            "unknown call shape `{s}` (exponential, fixed, uniform)"
        )),
    }
}

impl ForecastArgs {
    fn request(&self) -> Request {
        Request {
            campaigns: self.campaigns.clone(),
            lines: self.lines.clone(),
            until: self.until,
            answer_rate: self.answer_rate,
            mean_call_s: self.mean_call_s,
            call_shape: self.call_shape,
            history_days: self.history_days,
            horizon_days: self.horizon_days,
            seed: self.seed,
        }
    }
}

/// Runs the command: the scenario file, or the database's backlog.
pub async fn run(settings: &Settings, args: ForecastArgs) -> anyhow::Result<()> {
    let dialer = &settings.dialer;
    let checked = args
        .request()
        .check(Utc::now(), dialer.lines)
        .map_err(anyhow::Error::msg)?;
    let prepared = match &args.scenario {
        Some(path) => {
            if !args.campaigns.is_empty() {
                anyhow::bail!("--campaign: not with --scenario (the file names its campaigns)");
            }
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("scenario {}: {e}", path.display()))?;
            scenario::prepare(&text, &checked, dialer.global_concurrency_limit)
                .map_err(anyhow::Error::msg)?
        }
        None => {
            let pool = crate::db::connect(&settings.database).await?;
            backlog::prepare(&pool, None, &checked, dialer.global_concurrency_limit).await?
        }
    };
    let answer = forecast(&prepared, &checked.lines, checked.until);
    if let Some(path) = &args.chart {
        chart::write(&answer, path).map_err(anyhow::Error::msg)?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        print!("{}", table(&answer));
    }
    Ok(())
}

fn when(t: Option<DateTime<Utc>>, horizon: DateTime<Utc>) -> String {
    match t {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        None => format!("not by {}", horizon.format("%Y-%m-%d %H:%M UTC")),
    }
}

/// The answer as text: behaviour, then per line count each campaign.
pub fn table(f: &Forecast) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "forecast from {} (global limit {})",
        f.start.format("%Y-%m-%d %H:%M:%S UTC"),
        f.global_limit
    );
    let names: Vec<&str> = f
        .scenarios
        .first()
        .map(|s| s.campaigns.iter().map(|c| c.name.as_str()).collect())
        .unwrap_or_default();
    for (name, b) in names.iter().zip(&f.behaviour) {
        let _ = writeln!(
            out,
            "  {name}: calls from {} ({} attempts): answer rate {:.2}, mean call {:.1} s",
            b.source, b.attempts, b.answer_rate, b.mean_call_s
        );
    }
    for note in &f.notes {
        let _ = writeln!(out, "  note: {note}");
    }
    for s in &f.scenarios {
        let _ = writeln!(
            out,
            "\n{} lines{}: all finished {}; bound by {}",
            s.lines,
            if s.held_by_others > 0 {
                format!(" ({} held by other organizations)", s.held_by_others)
            } else {
                String::new()
            },
            when(s.finishes_at, f.horizon),
            s.binding
        );
        for c in &s.campaigns {
            let _ = writeln!(
                out,
                "  {:<30} {:>9} contacts  finishes {:<27} completed {:>9}  exhausted {:>9}  unfinished {:>9}  {:>9.0} calls/h",
                c.name,
                c.contacts,
                when(c.finishes_at, f.horizon),
                c.completed,
                c.exhausted,
                c.unfinished,
                c.calls_per_hour
            );
        }
    }
    if f.scenarios.len() > 1 {
        let _ = writeln!(out, "\n{:>8}  finishes", "lines");
        for s in &f.scenarios {
            let _ = writeln!(out, "{:>8}  {}", s.lines, when(s.finishes_at, f.horizon));
        }
    }
    if let Some(until) = f.until {
        let _ = match f.smallest_lines_meeting_until {
            Some(n) => writeln!(out, "\nsmallest line count finishing by {until}: {n}"),
            None => writeln!(out, "\nno line count tried finishes by {until}"),
        };
    }
    out
}
