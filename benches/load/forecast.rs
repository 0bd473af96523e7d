//! The capacity forecast: how long it takes to simulate a backlog of
//! `--contacts` (and a tenth of it) over 7 virtual days, then how far its
//! finish times are from the engine's own dialing a real backlog of
//! `--real-contacts` on `--lines` lines (the forecast-vs-real error).
//!
//! ```text
//! cargo bench --bench load -- forecast [--contacts 1000000] [--real-contacts 5000] [--lines 40]
//! ```
//!
//! The timed scenario: one organization (limit 200) on 200 lines, four
//! campaigns of different priority over four zones (New York, Chicago, Los
//! Angeles, Honolulu), weekday windows 09:00-20:00 and Saturday
//! 10:00-16:00, three attempts an hour apart, answer rate 0.3,
//! exponential calls of 60 s on average: more work than 7 days hold, so
//! every virtual minute of the horizon is simulated.
//!
//! The real run: three campaigns of priority 3, 2 and 1 in New York,
//! Chicago and UTC, the last in a window that opens two to three minutes
//! after the start; three attempts 10 s apart, answer rate 0.5, calls of
//! exactly 1 s, as the simulated backend of the engine in this process
//! places them. Each campaign's error is |forecast - real| / real, both
//! measured from the start.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Duration as Span, Timelike, Utc};
use dialerd::clock::SystemClock;
use dialerd::forecast::{backlog, forecast, scenario, Request};
use dialerd::settings::{DurationShape, OutcomeMix};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::{fresh, settings, Args};

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn request(
    lines: u32,
    answer_rate: Option<f64>,
    mean_call_s: Option<f64>,
    shape: DurationShape,
) -> Request {
    Request {
        campaigns: Vec::new(),
        lines: vec![lines],
        until: None,
        answer_rate,
        mean_call_s,
        call_shape: Some(shape),
        history_days: None,
        horizon_days: Some(7),
        seed: None,
    }
}

/// The timed scenario's file, `contacts` in all.
fn scenario_text(contacts: u64) -> String {
    let zones = [
        "America/New_York",
        "America/Chicago",
        "America/Los_Angeles",
        "Pacific/Honolulu",
    ];
    let campaigns: Vec<_> = (0..4)
        .map(|i| {
            let share = contacts / 4 + u64::from(i == 0) * (contacts % 4);
            json!({
                "name": format!("campaign {}", i + 1),
                "organization": "bench",
                "priority": 4 - i,
                "schedule": {"default_windows": [
                    {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "20:00"},
                    {"days": ["sat"], "start": "10:00", "end": "16:00"}]},
                "dialing_policy": {"max_attempts": 3, "retry_delay_seconds": 3600},
                "answer_rate": 0.3, "mean_call_s": 60, "call_shape": "exponential",
                "contacts": zones.iter().enumerate().map(|(z, zone)| json!({
                    "count": share / 4 + u64::from(z == 0) * (share % 4),
                    "timezone": zone,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        // A Monday morning in New York.
        "start": "2026-12-07T13:00:00Z",
        "global_limit": 1000,
        "organizations": [{"name": "bench", "concurrency_limit": 200}],
        "campaigns": campaigns,
    })
    .to_string()
}

/// Seconds to read the scenario and forecast it, and how far it got.
fn timed(contacts: u64) -> anyhow::Result<(f64, u64, u64)> {
    let text = scenario_text(contacts);
    let began = Instant::now();
    let checked = request(200, None, None, DurationShape::Exponential)
        .check(Utc::now(), 200)
        .map_err(anyhow::Error::msg)?;
    let prepared = scenario::prepare(&text, &checked, 1000).map_err(anyhow::Error::msg)?;
    let answer = forecast(&prepared, &[200], None);
    let seconds = began.elapsed().as_secs_f64();
    let s = &answer.scenarios[0];
    let calls = s.campaigns.iter().map(|c| c.calls).sum();
    let finished = s.campaigns.iter().map(|c| c.completed + c.exhausted).sum();
    Ok((seconds, calls, finished))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The next whole minute at least `secs` seconds from now.
fn minute_after(secs: i64) -> DateTime<Utc> {
    let t = Utc::now() + Span::seconds(secs + 59);
    t.with_second(0).unwrap().with_nanosecond(0).unwrap()
}

async fn campaign(
    pool: &PgPool,
    org: Uuid,
    name: &str,
    priority: i32,
    schedule: serde_json::Value,
) -> anyhow::Result<Uuid> {
    let body = serde_json::from_value(json!({
        "name": name,
        "schedule": schedule,
        "dialing_policy": {"max_attempts": 3, "retry_delay_seconds": 10},
        "agent": {"agent_id": "bench"}
    }))?;
    let config = dialerd::db::configurations::create(pool, org, &body).await?;
    let made = dialerd::db::campaigns::create(
        pool,
        org,
        dialerd::db::campaigns::NewCampaign {
            name: name.into(),
            configuration_id: config.id,
            priority,
            external_id: None,
            agent: Default::default(),
        },
    )
    .await?;
    Ok(made.id)
}

async fn contacts(
    pool: &PgPool,
    org: Uuid,
    campaign: Uuid,
    n: u32,
    base: u32,
    zone: &str,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO contacts (id, organization_id, campaign_id, priority, phone_numbers, timezone,
                               next_attempt_at)
         SELECT gen_random_uuid(), $1, $2, k.priority, ARRAY['+1415' || lpad(($3 + i)::text, 7, '0')],
                $5, now() - interval '1 minute'
           FROM generate_series(1, $4) AS i, campaigns k WHERE k.id = $2",
    )
    .bind(org)
    .bind(campaign)
    .bind(base as i32)
    .bind(n as i32)
    .bind(zone)
    .execute(pool)
    .await?;
    Ok(())
}

/// Forecasts a real backlog, dials it, and compares finish times.
async fn real(a: &Args) -> anyhow::Result<Vec<(String, f64, f64)>> {
    let (pool, url) = fresh(&a.url).await?;
    let org = dialerd::admin::create_org(&pool, "bench", a.lines as i32).await?;
    let around: Vec<_> = ["00:00", "12:00"]
        .iter()
        .zip(["12:00", "00:00"])
        .map(|(s, e)| json!({"days": DAYS, "start": s, "end": e}))
        .collect();
    let around = json!({"default_windows": around});
    let opens = minute_after(120);
    let ends = opens + Span::hours(6);
    let window = json!({"default_windows": [{"days": DAYS,
        "start": format!("{:02}:{:02}", opens.hour(), opens.minute()),
        "end": format!("{:02}:{:02}", ends.hour(), ends.minute())}]});
    let n = a.real_contacts;
    let plan = [
        ("first", 3, around.clone(), n * 2 / 5, "America/New_York"),
        ("second", 2, around, n * 3 / 10, "America/Chicago"),
        ("later", 1, window, n - n * 2 / 5 - n * 3 / 10, "Etc/UTC"),
    ];
    let mut ids = Vec::new();
    for (i, (name, priority, schedule, count, zone)) in plan.into_iter().enumerate() {
        let id = campaign(&pool, org, name, priority, schedule).await?;
        contacts(
            &pool,
            org,
            id,
            count,
            5_000_000 + 1_000_000 * i as u32,
            zone,
        )
        .await?;
        ids.push((name, id));
    }
    let global = 1_000_000;
    let checked = request(a.lines, Some(0.5), Some(1.0), DurationShape::Fixed)
        .check(Utc::now(), a.lines)
        .map_err(anyhow::Error::msg)?;
    let prepared = backlog::prepare(&pool, None, &checked, global).await?;
    let answer = forecast(&prepared, &[a.lines], None);

    let mut s = settings(&url, a.lines)?;
    let sim = &mut s.telephony.simulated;
    sim.answer_rate = 0.5;
    sim.mean_call_ms = 1000;
    sim.duration = DurationShape::Fixed;
    sim.unanswered = OutcomeMix::only_no_answer();
    let began = Utc::now();
    let engine_pool = dialerd::db::connect(&s.database).await?;
    let deps = dialerd::app::engine_deps(&s, engine_pool, Arc::new(SystemClock))?;
    let engine = dialerd::actors::Engine::start(deps).await?;
    loop {
        let left: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM contacts WHERE status NOT IN ('completed', 'exhausted')",
        )
        .fetch_one(&pool)
        .await?;
        if left == 0 {
            break;
        }
        anyhow::ensure!(
            Utc::now() - began < Span::minutes(30),
            "{left} contacts unfinished after 30 minutes"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    engine.stop(Duration::from_secs(10)).await?;

    let mut errors = Vec::new();
    for (name, id) in ids {
        let real: DateTime<Utc> =
            sqlx::query_scalar("SELECT max(ended_at) FROM attempts WHERE campaign_id = $1")
                .bind(id)
                .fetch_one(&pool)
                .await?;
        let forecast_at = answer.scenarios[0]
            .campaigns
            .iter()
            .find(|c| c.id == Some(id))
            .and_then(|c| c.finishes_at)
            .ok_or_else(|| anyhow::anyhow!("{name} not forecast to finish"))?;
        let real_s = (real - began).num_milliseconds() as f64 / 1000.0;
        let forecast_s = (forecast_at - answer.start).num_milliseconds() as f64 / 1000.0;
        errors.push((name.to_owned(), forecast_s, real_s));
    }
    Ok(errors)
}

pub async fn run(a: &Args) -> anyhow::Result<()> {
    let big = u64::from(a.contacts);
    let mut figures = Vec::new();
    for contacts in [big / 10, big] {
        let mut times = Vec::new();
        let mut last = (0, 0);
        for _ in 0..3 {
            let (seconds, calls, finished) = timed(contacts)?;
            times.push(seconds);
            last = (calls, finished);
        }
        let m = median(times.clone());
        println!(
            "forecast of {contacts} contacts over 7 virtual days, 200 lines: median {m:.2} s of 3 \
             ({:?}); {} calls simulated, {} contacts finished",
            times
                .iter()
                .map(|t| (t * 100.0).round() / 100.0)
                .collect::<Vec<_>>(),
            last.0,
            last.1
        );
        figures.push(
            json!({"contacts": contacts, "median_seconds": m, "runs": times,
                            "calls": last.0, "finished": last.1}),
        );
    }
    let compared = real(a).await?;
    let mut worst: f64 = 0.0;
    for (name, forecast_s, real_s) in &compared {
        let error = (forecast_s - real_s).abs() / real_s;
        worst = worst.max(error);
        println!(
            "{name}: forecast finish {forecast_s:.1} s, real {real_s:.1} s: error {:.1}%",
            error * 100.0
        );
    }
    println!(
        "{}",
        json!({"run": "forecast", "timed": figures, "real_contacts": a.real_contacts, "lines": a.lines,
               "compared": compared.iter().map(|(n, f, r)| json!({"campaign": n, "forecast_s": f, "real_s": r,
                   "error": (f - r).abs() / r})).collect::<Vec<_>>(),
               "worst_error": worst})
    );
    Ok(())
}
