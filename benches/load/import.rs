//! Bulk import: a CSV file of `--rows` rows (two numbers, an external id,
//! a zone, two data columns) loaded into a campaign, first with the engine
//! idle (the baseline), then into another campaign of the same
//! organization while the engine dials a backlog on `--lines` lines with
//! `--call-ms` calls. The import runs the code `dialerd import` runs.
//!
//! ```text
//! cargo bench --bench load -- import [--rows 1000000] [--lines 200] [--call-ms 200]
//! ```

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dialerd::clock::SystemClock;
use dialerd::db::imports::NewImport;
use dialerd::import::{Job, Outcome};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::{cpu_seconds, fresh, seed, settings, Args};

/// Writes the file: valid US numbers, every row a new external id.
fn write_file(path: &std::path::Path, rows: u32) -> anyhow::Result<u64> {
    const AREAS: [u32; 10] = [212, 415, 646, 718, 917, 310, 312, 617, 202, 305];
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "phone,phone_2,external_id,timezone,first_name,city")?;
    for i in 0..rows {
        let area = AREAS[(i as usize / 10_000) % AREAS.len()];
        let exchange = 200 + (i / 100_000) % 700;
        writeln!(
            out,
            "({area}) {exchange}-{:04},+1415555{:04},crm-{i},America/New_York,Name {i},\"City, {}\"",
            i % 10_000,
            (i * 7) % 10_000,
            i % 100
        )?;
    }
    out.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

/// A second campaign in the organization of `like`, same configuration.
async fn sibling(pool: &PgPool, like: Uuid, name: &str) -> anyhow::Result<(Uuid, Uuid)> {
    let (org, config): (Uuid, Uuid) =
        sqlx::query_as("SELECT organization_id, configuration_id FROM campaigns WHERE id = $1")
            .bind(like)
            .fetch_one(pool)
            .await?;
    let campaign = dialerd::db::campaigns::create(
        pool,
        org,
        dialerd::db::campaigns::NewCampaign {
            name: name.into(),
            configuration_id: config,
            priority: 1,
            external_id: None,
            agent: Default::default(),
        },
    )
    .await?;
    Ok((org, campaign.id))
}

/// Imports `path` into `campaign`; returns (seconds, rows created).
async fn import(
    pool: &PgPool,
    org: Uuid,
    campaign: Uuid,
    path: &std::path::Path,
) -> anyhow::Result<(f64, u64)> {
    let source = dialerd::import::open(path, &[]).map_err(anyhow::Error::msg)?;
    let job = Job {
        id: Uuid::now_v7(),
        org,
        campaign,
        country: Some(dialerd::domain::phone::Country::parse("US").map_err(anyhow::Error::msg)?),
        all_or_nothing: false,
    };
    dialerd::db::imports::create(
        pool,
        &NewImport {
            id: job.id,
            org,
            campaign,
            source: "bench",
            all_or_nothing: false,
            mapping: source.columns.applied(),
        },
    )
    .await?;
    let began = Instant::now();
    let cancel = tokio_util::sync::CancellationToken::new();
    let outcome = dialerd::import::run(pool, &job, source, &cancel, |_| {}).await?;
    let seconds = began.elapsed().as_secs_f64();
    match outcome {
        Outcome::Completed(p) => Ok((seconds, p.created)),
        Outcome::Failed(_, why) => anyhow::bail!("the import failed: {why}"),
    }
}

async fn calls_done(pool: &PgPool) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM attempts WHERE outcome IS NOT NULL")
            .fetch_one(pool)
            .await?,
    )
}

pub async fn run(a: &Args) -> anyhow::Result<()> {
    let path = std::env::temp_dir().join("dialerd-bench-import.csv");
    let bytes = write_file(&path, a.contacts)?;
    let (pool, url) = fresh(&a.url).await?;
    // The backlog the engine dials during the second import.
    let dialed = seed(&pool, 300_000, 10_000).await?;
    let (org, idle_target) = sibling(&pool, dialed, "import, engine idle").await?;
    let (_, busy_target) = sibling(&pool, dialed, "import, engine dialing").await?;
    sqlx::query("UPDATE campaigns SET status = 'paused' WHERE id = $1")
        .bind(dialed)
        .execute(&pool)
        .await?;
    let (idle_s, idle_rows) = import(&pool, org, idle_target, &path).await?;
    // Dialing: the backlog's campaign and the second target active (its
    // rows are dialed as their chunks commit), the engine on `lines` lines.
    sqlx::query("UPDATE campaigns SET status = CASE id WHEN $1 THEN 'active' ELSE 'paused' END::campaign_status WHERE id IN ($1, $2)")
        .bind(dialed)
        .bind(idle_target)
        .execute(&pool)
        .await?;
    let mut s = settings(&url, a.lines)?;
    s.telephony.simulated.mean_call_ms = a.call_ms;
    let engine_pool = dialerd::db::connect(&s.database).await?;
    let deps = dialerd::app::engine_deps(&s, engine_pool, Arc::new(SystemClock))?;
    let engine = dialerd::actors::Engine::start(deps).await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let calls_before = calls_done(&pool).await?;
    let cpu_before = cpu_seconds();
    let (busy_s, busy_rows) = import(&pool, org, busy_target, &path).await?;
    let cpu_after = cpu_seconds();
    let calls = calls_done(&pool).await? - calls_before;
    // The same window again with no import: the dialing rate it displaced.
    let quiet_before = calls_done(&pool).await?;
    let quiet = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(busy_s.min(30.0))).await;
    let quiet_rate =
        (calls_done(&pool).await? - quiet_before) as f64 / quiet.elapsed().as_secs_f64();
    engine.stop(Duration::from_secs(10)).await?;
    std::fs::remove_file(&path)?;
    anyhow::ensure!(
        idle_rows == u64::from(a.contacts) && busy_rows == u64::from(a.contacts),
        "rows created: {idle_rows} and {busy_rows} of {}",
        a.contacts
    );
    let busy_rate = calls as f64 / busy_s;
    println!(
        "import: {} rows ({:.1} MB) in {idle_s:.1} s with the engine idle ({:.0} rows/s), \
         {busy_s:.1} s while it dialed ({:.0} rows/s; {:.2}x the idle time); \
         {calls} calls in that time ({busy_rate:.0}/s, against {quiet_rate:.0}/s without an import, \
         {} lines, {} ms calls); CPU during it: {:.1} s this process, {:.1} s PostgreSQL",
        a.contacts,
        bytes as f64 / 1e6,
        f64::from(a.contacts) / idle_s,
        f64::from(a.contacts) / busy_s,
        busy_s / idle_s,
        a.lines,
        a.call_ms,
        cpu_after.0 - cpu_before.0,
        cpu_after.1 - cpu_before.1,
    );
    println!(
        "{}",
        json!({"run": "import", "rows": a.contacts, "bytes": bytes,
               "idle_seconds": idle_s, "dialing_seconds": busy_s, "ratio": busy_s / idle_s,
               "calls_during": calls, "calls_per_second_during": busy_rate,
               "calls_per_second_without": quiet_rate, "lines": a.lines, "call_ms": a.call_ms})
    );
    Ok(())
}
