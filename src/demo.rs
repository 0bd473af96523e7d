//! `dialerd demo`: the main job end to end on the local database. It sets up
//! (or reuses) a demo organization and configuration, replaces the demo
//! campaigns with fresh ones of different priorities holding contacts across
//! several time zones, dials them with the simulated backend while serving
//! the API, shows live progress, and prints a summary once every contact is
//! final.

use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use sqlx::PgPool;
use uuid::Uuid;

use crate::app;
use crate::db::campaigns::{self, NewCampaign};
use crate::db::configurations::{self, ConfigurationBody};
use crate::db::contacts::{self, NewContact, Scope};
use crate::db::instances::QueueTable;
use crate::db::{organizations, stats};
use crate::domain::agent::AgentFields;
use crate::domain::phone::E164;
use crate::settings::Settings;

const ORG_NAME: &str = "dialerd demo";
const CONFIG_NAME: &str = "demo: around the clock";
const ZONES: [Option<&str>; 9] = [
    None,
    Some("America/New_York"),
    Some("America/Chicago"),
    Some("America/Denver"),
    Some("America/Los_Angeles"),
    Some("Europe/London"),
    Some("Europe/Berlin"),
    Some("Asia/Tokyo"),
    Some("Australia/Sydney"),
];

/// What the demo dials.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Contacts to create, shared among three campaigns.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub contacts: u32,
    /// Lines (simultaneous calls) of the demo daemon.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub lines: u32,
    /// Mean simulated call length in milliseconds (0 allowed).
    #[arg(long, default_value_t = 100)]
    pub mean_call_ms: u64,
}

/// Runs the demo to the end; Ctrl-C stops it early, draining like SIGTERM.
pub async fn run(mut settings: Settings, args: DemoArgs) -> anyhow::Result<()> {
    settings.dialer.lines = args.lines;
    settings.dialer.plan_refresh_seconds = 1;
    settings.telephony.simulated.mean_call_ms = args.mean_call_ms;
    let pool = app::database(&settings).await?;
    let (org, token) = setup(&pool, &args).await?;
    // The last run's contacts were just deleted: start from a clean table.
    for table in [QueueTable::Contacts, QueueTable::Attempts] {
        crate::db::instances::vacuum(&pool, table).await?;
    }
    println!(
        "dialerd demo: {} contacts, {} lines, calls of {} ms on average",
        args.contacts, args.lines, args.mean_call_ms
    );
    println!(
        "API on http://{} (token with campaigns:read: {token})",
        settings.http.listen
    );
    let started = Instant::now();
    let watch = watch(&pool, org, args.lines, started);
    let stop = async {
        tokio::select! {
            result = watch => result,
            () = crate::shutdown::signal() => Ok(()),
        }
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    let stop = async move {
        let _ = tx.send(stop.await);
    };
    app::run_until(&settings, pool.clone(), stop).await?;
    rx.await.context("the progress view stopped")??;
    summary(&pool, org, started.elapsed()).await
}

/// Creates or reuses the organization and configuration; replaces the campaigns.
async fn setup(pool: &PgPool, args: &DemoArgs) -> anyhow::Result<(Uuid, String)> {
    let limit = args.lines.min(10_000) as i32;
    let org = match organizations::find_by_name(pool, ORG_NAME).await? {
        Some(id) => id,
        None => organizations::create(pool, ORG_NAME, limit).await?,
    };
    organizations::set_concurrency_limit(pool, org, limit).await?;
    let token = crate::admin::create_token(pool, org, "campaigns:read").await?;
    campaigns::delete_all(pool, org).await?;
    let body: ConfigurationBody = serde_json::from_value(serde_json::json!({
        "name": CONFIG_NAME,
        "schedule": {
            "default_timezone": "America/New_York",
            "default_windows": [
                {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "00:00", "end": "12:00"},
                {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "12:00", "end": "00:00"}
            ]
        },
        "dialing_policy": {"max_attempts": 3, "retry_delay_seconds": 1, "retry_delays": {"busy": 2}, "default_country": "US"},
        "agent": {"agent_id": "demo-agent", "agent_version": "1", "agent_number": "+14155550100"}
    }))?;
    let existing = configurations::list(pool, org)
        .await?
        .into_iter()
        .find(|c| c.name == CONFIG_NAME);
    let configuration = match existing {
        Some(c) => configurations::replace(pool, org, c.id, &body)
            .await?
            .context("demo configuration vanished")?,
        None => configurations::create(pool, org, &body).await?,
    };
    let shares = [
        ("Renewals (priority 100)", 100, 2),
        ("Win-back (priority 10)", 10, 4),
        ("Survey (priority 1)", 1, 4),
    ];
    let mut next = 0u32;
    for (i, (name, priority, tenths)) in shares.into_iter().enumerate() {
        let count = if i == shares.len() - 1 {
            args.contacts - next
        } else {
            args.contacts * tenths / 10
        };
        let campaign = campaigns::create(
            pool,
            org,
            NewCampaign {
                name: name.into(),
                configuration_id: configuration.id,
                priority,
                external_id: Some(format!("demo-{priority}")),
                agent: AgentFields::default(),
            },
        )
        .await?;
        upload(pool, org, campaign.id, priority, next, count).await?;
        next += count;
    }
    Ok((org, token))
}

async fn upload(
    pool: &PgPool,
    org: Uuid,
    campaign: Uuid,
    priority: i32,
    first: u32,
    count: u32,
) -> anyhow::Result<()> {
    let scope = Scope::Campaign {
        id: campaign,
        priority,
    };
    let all: Vec<u32> = (first..first + count).collect();
    for chunk in all.chunks(1000) {
        let batch = chunk
            .iter()
            .map(|&n| {
                let number = |area: u32| {
                    E164::strict(&format!(
                        "+1{area}{:03}{:04}",
                        200 + n / 10_000 % 800,
                        n % 10_000
                    ))
                    .map_err(anyhow::Error::msg)
                };
                let mut numbers = vec![number(415)?];
                if n % 3 == 0 {
                    numbers.push(number(212)?);
                }
                Ok(NewContact {
                    id: None,
                    external_id: Some(format!("demo-{n}")),
                    phone_numbers: numbers,
                    data: serde_json::json!({"customer": n}),
                    timezone: ZONES[n as usize % ZONES.len()]
                        .map(|z| z.parse())
                        .transpose()
                        .map_err(anyhow::Error::msg)?,
                    scheduled_at: None,
                    agent: AgentFields::default(),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        contacts::upsert(pool, org, scope, &batch)
            .await?
            .map_err(|r| anyhow::anyhow!("demo contact {} refused: {}", r.index, r.reason))?;
    }
    Ok(())
}

/// Prints progress every second until no contact is waiting or in a call.
async fn watch(pool: &PgPool, org: Uuid, lines: u32, started: Instant) -> anyhow::Result<()> {
    let mut last_attempts = 0i64;
    let mut last = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let progress = stats::progress(pool, org).await?;
        let sum = |f: fn(&stats::Progress) -> i64| progress.iter().map(f).sum::<i64>();
        let attempts = sum(|p| p.attempts);
        let rate = (attempts - last_attempts) as f64 / last.elapsed().as_secs_f64();
        (last_attempts, last) = (attempts, Instant::now());
        println!(
            "{:>6.1}s  {:>7.0} calls/s  lines busy {:>5}/{lines}  pending {:>7}  completed {:>7}  exhausted {:>6}",
            started.elapsed().as_secs_f64(),
            rate,
            sum(|p| p.active),
            sum(|p| p.pending),
            sum(|p| p.completed),
            sum(|p| p.exhausted),
        );
        if sum(|p| p.pending) + sum(|p| p.active) == 0 {
            return Ok(());
        }
    }
}

async fn summary(pool: &PgPool, org: Uuid, elapsed: Duration) -> anyhow::Result<()> {
    let progress = stats::progress(pool, org).await?;
    let secs = elapsed.as_secs_f64();
    let now = Utc::now();
    println!("\nSummary after {secs:.1} s");
    println!(
        "{:<26} {:>8} {:>10} {:>10} {:>9} {:>12}",
        "campaign", "contacts", "completed", "exhausted", "attempts", "final after"
    );
    for p in &progress {
        let done = p.finished_at.map_or("-".to_owned(), |t| {
            format!("{:.1} s", secs - (now - t).as_seconds_f64())
        });
        println!(
            "{:<26} {:>8} {:>10} {:>10} {:>9} {:>12}",
            p.name, p.total, p.completed, p.exhausted, p.attempts, done
        );
    }
    let outcomes = stats::outcomes(pool, org).await?;
    let list: Vec<String> = outcomes
        .iter()
        .map(|(o, n)| format!("{} {n}", o.as_str()))
        .collect();
    println!("outcomes: {}", list.join(", "));
    let contacts: i64 = progress.iter().map(|p| p.total).sum();
    let attempts: i64 = progress.iter().map(|p| p.attempts).sum();
    println!(
        "{contacts} contacts final in {secs:.1} s: {:.0} contacts/s, {:.0} calls/s",
        contacts as f64 / secs,
        attempts as f64 / secs
    );
    Ok(())
}
