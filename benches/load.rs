//! Load harness: dialerd's engine in this process against a real PostgreSQL,
//! on a database of its own (`dialerd_bench`, dropped and made anew).
//!
//! ```text
//! cargo bench --bench load -- throughput [--contacts 3000000] [--lines 4000] [--warmup 10] [--seconds 60]
//! cargo bench --bench load -- pause [--flips 20] [--polling-only]
//! cargo bench --bench load -- lag [--rate 600] [--seconds 60] [--lines 4000]
//! cargo bench --bench load -- lines [--lines 10000]
//! cargo bench --bench load -- claim [--contacts 1000000]
//! cargo bench --bench load -- seed [--contacts 200000]   # for benches/pgbench.sh
//! cargo bench --bench load -- tenants [--orgs 10000] [--contacts 100000] [--lines 200] [--call-ms 200]
//! cargo bench --bench load -- import [--rows 1000000] [--lines 200] [--call-ms 200]
//! cargo bench --bench load -- dnc [--numbers 10000000] [--contacts 400000] [--lines 4000] [--seconds 15]
//! cargo bench --bench load -- forecast [--contacts 1000000] [--real-contacts 5000] [--lines 40]
//! ```
//!
//! `--url` (or `DATABASE_URL`) names the server; the default is the local
//! one. `-- help` lists the runs, `-- <run> --help` its options. Each run
//! prints one JSON line of figures after its human summary.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dialerd::clock::SystemClock;
use dialerd::settings::Settings;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

#[path = "load/dnc.rs"]
mod dnc;
#[path = "../tests/it/fixtures.rs"]
mod fixtures;
#[path = "load/forecast.rs"]
mod forecast;
#[path = "load/import.rs"]
mod import;
#[path = "load/tenants.rs"]
mod tenants;

use fixtures::{open_gates, with_database};

const DB: &str = "dialerd_bench";

/// `cargo bench --bench load -- <run> [options]`.
#[derive(clap::Parser)]
#[command(
    name = "load",
    about = "dialerd's engine under load, against a real PostgreSQL"
)]
struct Cli {
    /// The PostgreSQL server (its `dialerd_bench` database is made anew).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres",
        global = true
    )]
    url: String,
    #[command(subcommand)]
    run: Run,
}

#[derive(clap::Subcommand)]
enum Run {
    /// Contacts a second in a burn-down of a backlog all due, 0-ms calls.
    Throughput {
        #[arg(long, default_value_t = 3_000_000)]
        contacts: u32,
        /// A 0-ms call frees its line at once, so the lines are only the
        /// calls in flight between claim, attempt write and call.
        #[arg(long, default_value_t = 4000)]
        lines: u32,
        #[arg(long, default_value_t = 10)]
        warmup: u64,
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// From a campaign's status flip to the engine acting on it.
    Pause {
        #[arg(long, default_value_t = 20)]
        flips: u32,
        /// Without NOTIFY: polling alone.
        #[arg(long)]
        polling_only: bool,
    },
    /// Dispatch lag of contacts coming due at a steady rate.
    Lag {
        #[arg(long, default_value_t = 600)]
        rate: u32,
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        #[arg(long, default_value_t = 4000)]
        lines: u32,
    },
    /// Memory of simulated calls held at once in one daemon.
    Lines {
        #[arg(long, default_value_t = 4000)]
        lines: u32,
    },
    /// The claim of 50 contacts with their attempts, on a large table.
    Claim {
        #[arg(long, default_value_t = 1_000_000)]
        contacts: u32,
    },
    /// A CSV import with the engine idle, then while it dials.
    Import {
        #[arg(long, default_value_t = 1_000_000)]
        rows: u32,
        #[arg(long, default_value_t = 200)]
        lines: u32,
        /// The length of every call dialed meanwhile.
        #[arg(long, default_value_t = 200)]
        call_ms: u64,
    },
    /// Do-not-call: load a registry-sized list, claim cost and throughput with it.
    Dnc {
        #[arg(long, default_value_t = 10_000_000)]
        numbers: u32,
        /// The share of each area code's numbers on the list: the registry's
        /// 250 million are about 4% of the 6.4 billion numbers of the NANP's
        /// 800 area codes; 1 lists every number of an area code.
        #[arg(long, default_value_t = 0.04)]
        density: f64,
        #[arg(long, default_value_t = 400_000)]
        contacts: u32,
        #[arg(long, default_value_t = 4000)]
        lines: u32,
        #[arg(long, default_value_t = 15)]
        seconds: u64,
    },
    /// The capacity forecast: its wall time, and its error against the engine.
    Forecast {
        /// Contacts of the timed scenario (a tenth of it is timed too).
        #[arg(long, default_value_t = 1_000_000)]
        contacts: u32,
        /// Contacts the engine dials for the comparison.
        #[arg(long, default_value_t = 5000)]
        real_contacts: u32,
        #[arg(long, default_value_t = 40)]
        lines: u32,
    },
    /// Seeds the bench database for benches/pgbench.sh.
    Seed {
        #[arg(long, default_value_t = 200_000)]
        contacts: u32,
    },
    /// One organization against many: rate, idle cost, lag of new work.
    Tenants {
        /// Organizations the backlog is spread over.
        #[arg(long, default_value_t = 10_000)]
        orgs: u32,
        #[arg(long, default_value_t = 100_000)]
        contacts: u32,
        #[arg(long, default_value_t = 200)]
        lines: u32,
        /// The length of every call.
        #[arg(long, default_value_t = 200)]
        call_ms: u64,
        #[arg(long, default_value_t = 5)]
        warmup: u64,
        #[arg(long, default_value_t = 30)]
        seconds: u64,
    },
}

/// What a run reads of its options; those it has none of keep a default
/// no run reads.
struct Args {
    url: String,
    contacts: u32,
    lines: u32,
    warmup: u64,
    seconds: u64,
    flips: u32,
    polling_only: bool,
    rate: u32,
    orgs: u32,
    call_ms: u64,
    numbers: u32,
    density: f64,
    real_contacts: u32,
}

impl Args {
    fn of(url: String) -> Args {
        Args {
            url,
            contacts: 0,
            lines: 0,
            warmup: 0,
            seconds: 0,
            flips: 0,
            polling_only: false,
            rate: 0,
            orgs: 0,
            call_ms: 0,
            numbers: 0,
            density: 0.0,
            real_contacts: 0,
        }
    }
}

/// A fresh, migrated bench database.
async fn fresh(url: &str) -> anyhow::Result<(PgPool, String)> {
    let mut admin = PgConnection::connect(url).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)"))
        .execute(&mut admin)
        .await?;
    sqlx::query(&format!("CREATE DATABASE {DB}"))
        .execute(&mut admin)
        .await?;
    let url = with_database(url, DB);
    let mut settings = Settings::load(None)?;
    settings.database.url = url.clone();
    settings.database.max_connections = 20;
    let pool = dialerd::app::database(&settings).await?;
    Ok((pool, url))
}

/// One organization with a campaign (around the clock) of `n` due contacts.
async fn seed(pool: &PgPool, n: u32, limit: i32) -> anyhow::Result<Uuid> {
    let org = dialerd::admin::create_org(pool, "bench", limit).await?;
    let body = serde_json::from_value(json!({
        "name": "bench",
        "schedule": {"default_timezone": "America/New_York", "default_windows": [
            {"days": ["mon","tue","wed","thu","fri","sat","sun"], "start": "00:00", "end": "12:00"},
            {"days": ["mon","tue","wed","thu","fri","sat","sun"], "start": "12:00", "end": "00:00"}]},
        "dialing_policy": {"max_attempts": 3, "retry_delay_seconds": 60},
        "agent": {"agent_id": "bench"}
    }))?;
    let config = dialerd::db::configurations::create(pool, org, &body).await?;
    let campaign = dialerd::db::campaigns::create(
        pool,
        org,
        dialerd::db::campaigns::NewCampaign {
            name: "bench".into(),
            configuration_id: config.id,
            priority: 1,
            external_id: None,
            agent: Default::default(),
        },
    )
    .await?;
    // In slices, each well inside the pool's statement timeout.
    for first in (1..=n).step_by(100_000) {
        let last = (first + 99_999).min(n);
        sqlx::query(
        "INSERT INTO contacts (id, organization_id, campaign_id, phone_numbers, next_attempt_at)
         -- Ids shaped like the API's UUIDv7 ones (this moment's milliseconds,
         -- then a sequence): the primary key grows at one end, as it does
         -- when contacts are loaded through the API.
         SELECT (substr(t, 1, 8) || '-' || substr(t, 9, 4) || '-7' || substr(s, 1, 3) || '-8'
                 || substr(s, 4, 3) || '-' || substr(s, 7, 12))::uuid,
                $1, $2, ARRAY['+1415' || lpad(i::text, 7, '0')],
                now() - interval '1 minute' + i * interval '1 microsecond'
           FROM generate_series($3, $4) AS i,
                LATERAL (SELECT lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::int8), 12, '0') AS t,
                                lpad(to_hex(i), 18, '0') AS s) AS v",
        )
        .bind(org)
        .bind(campaign.id)
        .bind(first as i32)
        .bind(last as i32)
        .execute(pool)
        .await?;
    }
    sqlx::query("VACUUM ANALYZE contacts").execute(pool).await?;
    Ok(campaign.id)
}

fn settings(url: &str, lines: u32) -> anyhow::Result<Settings> {
    let mut s = Settings::load(None)?;
    s.database.url = url.to_owned();
    s.dialer.lines = lines;
    s.dialer.global_concurrency_limit = 1_000_000;
    s.telephony.simulated.answer_rate = 1.0;
    s.telephony.simulated.mean_call_ms = 0;
    Ok(s)
}

#[derive(sqlx::FromRow)]
struct Counters {
    commits: i64,
    wal: i64,
    done: i64,
}

async fn counters(pool: &PgPool) -> anyhow::Result<Counters> {
    Ok(sqlx::query_as(
        "SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()) AS commits,
                pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::int8 AS wal,
                (SELECT count(*) FROM attempts WHERE outcome IS NOT NULL) AS done",
    )
    .fetch_one(pool)
    .await?)
}

/// CPU seconds used so far by this process (the engine) and by every
/// PostgreSQL process (backends, background workers, and exited backends
/// the postmaster has reaped), from /proc (ticks of 1/100 s).
fn cpu_seconds() -> (f64, f64) {
    /// Command name, own ticks, and ticks of reaped children.
    fn ticks(path: &std::path::Path) -> Option<(String, u64, u64)> {
        let stat = std::fs::read_to_string(path).ok()?;
        let (head, tail) = stat.rsplit_once(')')?;
        let comm = head.split_once('(')?.1.to_owned();
        // Fields 14-17 of proc_pid_stat(5): utime, stime, cutime, cstime.
        let f: Vec<u64> = tail
            .split_whitespace()
            .skip(11)
            .take(4)
            .filter_map(|v| v.parse().ok())
            .collect();
        (f.len() == 4).then(|| (comm, f[0] + f[1], f[2] + f[3]))
    }
    let engine = ticks("/proc/self/stat".as_ref()).map_or(0, |(_, own, _)| own);
    let postgres: u64 = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| ticks(&e.path().join("stat")))
        .filter(|(comm, _, _)| comm == "postgres")
        .map(|(_, own, children)| own + children)
        .sum();
    (engine as f64 / 100.0, postgres as f64 / 100.0)
}

/// Sum and count of the engine's claim batch and claim duration
/// histograms, from one rendering of its own recorder.
fn claim_histograms(handle: &PrometheusHandle) -> [(f64, f64); 2] {
    let text = handle.render();
    let value = |name: &str, suffix: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}{suffix} ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    [
        dialerd::monitoring::CLAIM_BATCH,
        dialerd::monitoring::CLAIM_DURATION,
    ]
    .map(|name| (value(name, "_sum"), value(name, "_count")))
}

async fn throughput(a: &Args) -> anyhow::Result<()> {
    // Enough for the warm-up and the window (70 s) at 40,000 contacts/s;
    // 2,000,000 ran out inside the window at 29,000/s.
    let contacts = a.contacts;
    let metrics = dialerd::monitoring::install()?;
    let (pool, url) = fresh(&a.url).await?;
    seed(&pool, contacts, 10_000).await?;
    let s = settings(&url, a.lines)?;
    let engine_pool = dialerd::db::connect(&s.database).await?;
    let deps = dialerd::app::engine_deps(&s, engine_pool, Arc::new(SystemClock))?;
    let started = Instant::now();
    let engine = dialerd::actors::Engine::start(deps).await?;
    tokio::time::sleep(Duration::from_secs(a.warmup)).await;
    // pg_stat_database is refreshed per transaction end; a fresh snapshot each read.
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(&pool)
        .await?;
    let before = counters(&pool).await?;
    let [batch_before, claim_before] = claim_histograms(&metrics);
    let cpu_before = cpu_seconds();
    let window = Instant::now();
    tokio::time::sleep(Duration::from_secs(a.seconds)).await;
    let cpu_after = cpu_seconds();
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(&pool)
        .await?;
    let after = counters(&pool).await?;
    let measured = window.elapsed().as_secs_f64();
    let [batch_after, claim_after] = claim_histograms(&metrics);
    let claims = claim_after.1 - claim_before.1;
    let claim_ms = (claim_after.0 - claim_before.0) / claims.max(1.0) * 1000.0;
    let batch = (batch_after.0 - batch_before.0) / (batch_after.1 - batch_before.1).max(1.0);
    let n = (after.done - before.done).max(1) as f64;
    let rate = n / measured;
    let commits = (after.commits - before.commits) as f64 / n;
    let wal = (after.wal - before.wal) as f64 / n;
    // CPU microseconds per contact, and cores busy over the window.
    let engine_us = (cpu_after.0 - cpu_before.0) / n * 1e6;
    let postgres_us = (cpu_after.1 - cpu_before.1) / n * 1e6;
    let cores = (cpu_after.0 - cpu_before.0 + cpu_after.1 - cpu_before.1) / measured;
    anyhow::ensure!(
        after.done < i64::from(contacts),
        "the backlog ran out inside the window: raise --contacts"
    );
    // Until no contact is waiting or claimed: two probes of the partial
    // indexes, not a count (counting the backlog ten times a second took a
    // core of PostgreSQL's two away from the engine). The probes keep to
    // the indexes even when stale statistics would pick a sequential scan.
    loop {
        let mut tx = pool.begin().await?;
        sqlx::query("SET LOCAL enable_seqscan = off")
            .execute(&mut *tx)
            .await?;
        let left: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM contacts WHERE status = 'pending')
                 OR EXISTS (SELECT 1 FROM contacts WHERE status IN ('locked', 'in_progress'))",
        )
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        if !left {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let burn_down = started.elapsed().as_secs_f64();
    engine.stop(Duration::from_secs(10)).await?;
    println!(
        "throughput: {rate:.0} contacts/s over {measured:.1} s after {} s warm-up; \
         {commits:.4} commits and {wal:.0} WAL bytes per contact; \
         {} contacts burned down in {burn_down:.1} s ({} lines); \
         {claims:.0} claims in the window, {claim_ms:.2} ms and {batch:.1} contacts each; \
         CPU per contact {engine_us:.0} µs engine + {postgres_us:.0} µs PostgreSQL \
         ({cores:.2} cores busy)",
        a.warmup, contacts, a.lines
    );
    println!(
        "{}",
        json!({"run": "throughput", "contacts_per_second": rate, "commits_per_contact": commits,
               "wal_bytes_per_contact": wal, "burn_down_seconds": burn_down,
               "contacts": contacts, "lines": a.lines, "window_seconds": measured,
               "claims": claims, "claim_ms_mean": claim_ms, "claim_batch_mean": batch,
               "engine_cpu_us_per_contact": engine_us,
               "postgres_cpu_us_per_contact": postgres_us, "cores_busy": cores})
    );
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn pause(a: &Args) -> anyhow::Result<()> {
    let (pool, url) = fresh(&a.url).await?;
    if a.polling_only {
        sqlx::query("ALTER TABLE campaigns DISABLE TRIGGER campaigns_status_notify")
            .execute(&pool)
            .await?;
    }
    // Calls of 20 ms on 50 lines: a steady stream of claims to stop.
    let campaign = seed(&pool, 300_000, 10_000).await?;
    let mut s = settings(&url, 50)?;
    s.telephony.simulated.mean_call_ms = 20;
    let engine_pool = dialerd::db::connect(&s.database).await?;
    let deps = dialerd::app::engine_deps(&s, engine_pool, Arc::new(SystemClock))?;
    let engine = dialerd::actors::Engine::start(deps).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut latencies = Vec::new();
    for _ in 0..a.flips {
        sqlx::query("UPDATE campaigns SET status = 'paused' WHERE id = $1")
            .bind(campaign)
            .execute(&pool)
            .await?;
        let committed: chrono::DateTime<chrono::Utc> =
            sqlx::query_scalar("SELECT clock_timestamp()")
                .fetch_one(&pool)
                .await?;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let last: Option<chrono::DateTime<chrono::Utc>> =
            sqlx::query_scalar("SELECT max(created_at) FROM attempts WHERE campaign_id = $1")
                .bind(campaign)
                .fetch_one(&pool)
                .await?;
        let ms = last.map_or(0.0, |t| {
            ((t - committed).num_microseconds().unwrap_or(0) as f64 / 1000.0).max(0.0)
        });
        latencies.push(ms);
        sqlx::query("UPDATE campaigns SET status = 'active' WHERE id = $1")
            .bind(campaign)
            .execute(&pool)
            .await?;
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    engine.stop(Duration::from_secs(10)).await?;
    latencies.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    let how = if a.polling_only {
        "polling only"
    } else {
        "NOTIFY"
    };
    println!(
        "pause latency ({how}): p50 {p50:.1} ms, p99 {p99:.1} ms over {} flips",
        a.flips
    );
    println!(
        "{}",
        json!({"run": "pause", "notify": !a.polling_only, "p50_ms": p50, "p99_ms": p99,
               "flips": a.flips, "latencies_ms": latencies})
    );
    Ok(())
}

/// Dispatch lag: contacts fall due at `--rate` per second for `--seconds`;
/// lag is the first attempt's creation minus the contact's due time.
async fn lag(a: &Args) -> anyhow::Result<()> {
    let (pool, url) = fresh(&a.url).await?;
    let n = a.rate * a.seconds as u32;
    let campaign = seed(&pool, n, 10_000).await?;
    // Spread the due times from 15 s from now (time for the vacuum below
    // and the engine's start), one every 1/rate seconds.
    sqlx::query(
        "WITH ordered AS (SELECT id, row_number() OVER (ORDER BY next_attempt_at) AS k FROM contacts)
         UPDATE contacts c SET next_attempt_at = now() + interval '15 seconds' + (o.k - 1) * ($1 * interval '1 microsecond')
           FROM ordered o WHERE c.id = o.id",
    )
    .bind(1e6 / f64::from(a.rate))
    .execute(&pool)
    .await?;
    let spread = Instant::now();
    // The update left a dead version of every row: vacuum it away, as the
    // keeper would, or the first half-minute measures the bloat.
    sqlx::query("VACUUM ANALYZE contacts")
        .execute(&pool)
        .await?;
    let _ = campaign;
    let s = settings(&url, a.lines)?;
    let engine_pool = dialerd::db::connect(&s.database).await?;
    let deps = dialerd::app::engine_deps(&s, engine_pool, Arc::new(SystemClock))?;
    let engine = dialerd::actors::Engine::start(deps).await?;
    // Every contact due, plus time for the last ones' calls.
    tokio::time::sleep(Duration::from_secs(a.seconds + 18).saturating_sub(spread.elapsed())).await;
    engine.stop(Duration::from_secs(10)).await?;
    let lags: Vec<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM a.created_at - c.next_attempt_at)::float8 * 1000
           FROM attempts a JOIN contacts c ON c.id = a.contact_id
          WHERE a.attempt_number = 1 ORDER BY 1",
    )
    .fetch_all(&pool)
    .await?;
    anyhow::ensure!(
        lags.len() as u32 == n,
        "{} of {n} contacts dialed",
        lags.len()
    );
    let (p50, p99, max) = (
        percentile(&lags, 0.5),
        percentile(&lags, 0.99),
        lags[lags.len() - 1],
    );
    println!(
        "dispatch lag at {} contacts/s over {} s ({} lines): p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms",
        a.rate, a.seconds, a.lines
    );
    println!(
        "{}",
        json!({"run": "lag", "rate": a.rate, "lines": a.lines, "contacts": n, "p50_ms": p50, "p99_ms": p99, "max_ms": max})
    );
    Ok(())
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Lines: `--lines` simultaneous long calls in one engine, and resident
/// memory per line (organizations hold at most 10,000 calls each, so the
/// backlog is spread over enough of them).
async fn lines(a: &Args) -> anyhow::Result<()> {
    let (pool, url) = fresh(&a.url).await?;
    let orgs = a.lines.div_ceil(10_000);
    for _ in 0..orgs {
        seed(&pool, a.lines.div_ceil(orgs) + 100, 10_000).await?;
    }
    let mut s = settings(&url, a.lines)?;
    s.telephony.simulated.mean_call_ms = 3_600_000;
    s.telephony.simulated.duration = dialerd::settings::DurationShape::Fixed;
    let engine_pool = dialerd::db::connect(&s.database).await?;
    let deps = dialerd::app::engine_deps(&s, engine_pool, Arc::new(SystemClock))?;
    let baseline = rss_bytes();
    let started = Instant::now();
    let engine = dialerd::actors::Engine::start(deps).await?;
    let mut held = 0;
    while started.elapsed() < Duration::from_secs(300) {
        held = sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM contacts WHERE status = 'in_progress'",
        )
        .fetch_one(&pool)
        .await?;
        if held >= i64::from(a.lines) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let ramp = started.elapsed().as_secs_f64();
    let probe = engine.probe().check(Duration::from_secs(30)).await;
    let rss = rss_bytes();
    let per_line = (rss.saturating_sub(baseline)) as f64 / f64::from(a.lines);
    let stopping = Instant::now();
    let stopped = engine.stop(Duration::ZERO).await;
    println!(
        "stop with {held} calls in flight: {:?} after {:.1} s",
        stopped.map(|r| r.released),
        stopping.elapsed().as_secs_f64()
    );
    println!(
        "lines: {held} simultaneous calls held by {} lines after {ramp:.1} s (engine answers: {}); \
         resident memory {:.0} MiB ({:.0} MiB before the engine), {per_line:.0} bytes per line",
        a.lines,
        probe.is_some(),
        rss as f64 / 1048576.0,
        baseline as f64 / 1048576.0
    );
    println!(
        "{}",
        json!({"run": "lines", "lines": a.lines, "held": held, "ramp_seconds": ramp,
               "rss_bytes": rss, "baseline_rss_bytes": baseline, "bytes_per_line": per_line})
    );
    Ok(())
}

/// Claim cost: the engine's claim of 50 contacts, timed, with `--contacts`
/// in the table of which 100,000 are due and the rest final.
async fn claim(a: &Args) -> anyhow::Result<()> {
    let (pool, url) = fresh(&a.url).await?;
    // Bulk work on a plain connection: the pool's 60 s statement_timeout
    // would stop a 10-million-row insert.
    let mut bulk = PgConnection::connect(&url).await?;
    let contacts = a.contacts;
    let campaign = seed(&pool, 100_000, 10_000).await?;
    let finals = contacts.saturating_sub(100_000);
    sqlx::query(
        "INSERT INTO contacts (id, organization_id, campaign_id, phone_numbers, status, attempt_count,
                               last_outcome, next_attempt_at)
         -- Ordered ids (as UUIDv7 ones would be, written over time): the
         -- primary key grows at one end instead of being rewritten at random,
         -- so ten million rows load in minutes.
         SELECT ('00000000-0000-7000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, k.organization_id, k.id,
                ARRAY['+1212' || lpad(i::text, 7, '0')],
                'completed', 1, 'completed', now() - interval '1 day'
           FROM campaigns k, generate_series(1, $2) AS i WHERE k.id = $1",
    )
    .bind(campaign)
    .bind(finals as i32)
    .execute(&mut bulk)
    .await?;
    sqlx::query("VACUUM ANALYZE contacts")
        .execute(&mut bulk)
        .await?;
    let org: Uuid = sqlx::query_scalar("SELECT organization_id FROM campaigns WHERE id = $1")
        .bind(campaign)
        .fetch_one(&pool)
        .await?;
    let gates = open_gates(&pool, &[(org, campaign)]).await;
    let owner = Uuid::now_v7();
    dialerd::db::instances::register(&pool, owner, 600.0, 1).await?;
    let (mut times, mut claim_times) = (Vec::new(), Vec::new());
    for round in 0..220 {
        let began = Instant::now();
        let batch = dialerd::db::claim::claim(
            &pool,
            owner,
            chrono::Utc::now(),
            &gates,
            50,
            1_000_000,
            |c| {
                let attempt = dialerd::db::claim::NewAttempt {
                    attempt_id: Uuid::now_v7(),
                    phone_number: c.phone_numbers[0].clone(),
                    agent: c.agent,
                    evidence: None,
                };
                Ok((c.id, attempt))
            },
        )
        .await
        .map_err(|f| f.error)?;
        let claimed = began.elapsed().as_secs_f64() * 1000.0;
        let ids = dialerd::db::attempts::start(&pool, owner, &batch.attempts)
            .await
            .map_err(|f| f.error)?;
        let took = began.elapsed().as_secs_f64() * 1000.0;
        anyhow::ensure!(ids.len() == 50, "claimed {}", ids.len());
        // Finish them as the engine would, so the tables keep their shape.
        sqlx::query(
            "WITH closed AS (UPDATE attempts SET outcome = 'completed', ended_at = now()
                              WHERE contact_id = ANY($1) AND outcome IS NULL)
             UPDATE contacts SET status = 'completed', owner_instance = NULL, claimed_at = NULL
              WHERE id = ANY($1)",
        )
        .bind(&ids)
        .execute(&pool)
        .await?;
        if round >= 20 {
            times.push(took);
            claim_times.push(claimed);
        }
    }
    times.sort_by(f64::total_cmp);
    claim_times.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(&times, 0.5), percentile(&times, 0.99));
    let (c50, c99) = (
        percentile(&claim_times, 0.5),
        percentile(&claim_times, 0.99),
    );
    println!(
        "claim of 50 with its attempts, {} contacts in the table ({finals} final): \
         p50 {p50:.2} ms, p99 {p99:.2} ms over {} claims (the claim transaction alone: \
         p50 {c50:.2} ms, p99 {c99:.2} ms)",
        contacts,
        times.len()
    );
    println!(
        "{}",
        json!({"run": "claim", "contacts": contacts, "final": finals, "p50_ms": p50, "p99_ms": p99,
               "claim_only_p50_ms": c50, "claim_only_p99_ms": c99})
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // cargo bench passes --bench to every bench binary.
    let cli = <Cli as clap::Parser>::parse_from(std::env::args().filter(|a| a != "--bench"));
    // The engine's warnings and errors, so a run that goes wrong says why.
    let mut log = Settings::load(None)?.log;
    log.level = "warn".into();
    dialerd::telemetry::init(&log);
    let base = Args::of(cli.url);
    match cli.run {
        Run::Throughput {
            contacts,
            lines,
            warmup,
            seconds,
        } => {
            throughput(&Args {
                contacts,
                lines,
                warmup,
                seconds,
                ..base
            })
            .await
        }
        Run::Pause {
            flips,
            polling_only,
        } => {
            pause(&Args {
                flips,
                polling_only,
                ..base
            })
            .await
        }
        Run::Lag {
            rate,
            seconds,
            lines,
        } => {
            lag(&Args {
                rate,
                seconds,
                lines,
                ..base
            })
            .await
        }
        Run::Lines { lines: n } => lines(&Args { lines: n, ..base }).await,
        Run::Claim { contacts } => claim(&Args { contacts, ..base }).await,
        Run::Tenants {
            orgs,
            contacts,
            lines,
            call_ms,
            warmup,
            seconds,
        } => {
            tenants::run(&Args {
                orgs,
                contacts,
                lines,
                call_ms,
                warmup,
                seconds,
                ..base
            })
            .await
        }
        Run::Import {
            rows,
            lines,
            call_ms,
        } => {
            import::run(&Args {
                contacts: rows,
                lines,
                call_ms,
                ..base
            })
            .await
        }
        Run::Dnc {
            numbers,
            density,
            contacts,
            lines,
            seconds,
        } => {
            anyhow::ensure!(
                density > 0.0 && density <= 1.0,
                "--density is a share: above 0, at most 1"
            );
            dnc::run(&Args {
                numbers,
                density,
                contacts,
                lines,
                seconds,
                ..base
            })
            .await
        }
        Run::Forecast {
            contacts,
            real_contacts,
            lines,
        } => {
            forecast::run(&Args {
                contacts,
                real_contacts,
                lines,
                ..base
            })
            .await
        }
        Run::Seed { contacts } => {
            let (pool, _) = fresh(&base.url).await?;
            let campaign = seed(&pool, contacts, 10_000).await?;
            let org: Uuid =
                sqlx::query_scalar("SELECT organization_id FROM campaigns WHERE id = $1")
                    .bind(campaign)
                    .fetch_one(&pool)
                    .await?;
            println!(
                "{}",
                json!({"run": "seed", "database": DB, "organization_id": org,
                                  "campaign_id": campaign, "contacts": contacts})
            );
            Ok(())
        }
    }
}
