//! Do-not-call lists at the national registry's scale: `dnc load` of
//! `--numbers` numbers (FTC format, one global list), the claim of 700
//! contacts with their attempts without a list and with that list in
//! force, and the engine's throughput without and with it. Same run, same
//! database; the contacts' numbers are not on the list, so every check is
//! a probe that finds nothing, the common case.
//!
//! ```text
//! cargo bench --bench load -- dnc [--numbers 10000000] [--density 0.04] [--contacts 400000] [--lines 4000] [--seconds 15]
//! ```

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dialerd::clock::SystemClock;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::{fresh, open_gates, percentile, seed, settings, Args};

/// Claims of 700 with their attempts; returns the sorted times in ms of
/// `rounds` after 10 warm-up rounds.
async fn claims(pool: &PgPool, campaign: Uuid, rounds: usize) -> anyhow::Result<Vec<f64>> {
    let org: Uuid = sqlx::query_scalar("SELECT organization_id FROM campaigns WHERE id = $1")
        .bind(campaign)
        .fetch_one(pool)
        .await?;
    let gates = open_gates(pool, &[(org, campaign)]).await;
    let owner = Uuid::now_v7();
    dialerd::db::instances::register(pool, owner, 600.0, 1).await?;
    let mut times = Vec::new();
    for round in 0..rounds + 10 {
        let began = Instant::now();
        let batch = dialerd::db::claim::claim(
            pool,
            owner,
            chrono::Utc::now(),
            &gates,
            700,
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
        let ids = dialerd::db::attempts::start(pool, owner, &batch.attempts)
            .await
            .map_err(|f| f.error)?;
        let took = began.elapsed().as_secs_f64() * 1000.0;
        anyhow::ensure!(ids.len() == 700, "claimed {}", ids.len());
        sqlx::query(
            "WITH closed AS (UPDATE attempts SET outcome = 'completed', ended_at = now()
                              WHERE contact_id = ANY($1) AND outcome IS NULL)
             UPDATE contacts SET status = 'completed', owner_instance = NULL, claimed_at = NULL
              WHERE id = ANY($1)",
        )
        .bind(&ids)
        .execute(pool)
        .await?;
        if round >= 10 {
            times.push(took);
        }
    }
    dialerd::db::instances::deregister(pool, owner).await?;
    times.sort_by(f64::total_cmp);
    Ok(times)
}

/// Every contact due again, no attempt, tables vacuumed.
async fn reset(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM attempts").execute(pool).await?;
    sqlx::query(
        "UPDATE contacts SET status = 'pending', attempt_count = 0, last_outcome = NULL,
                next_attempt_at = now() - interval '1 minute', next_number_index = 0",
    )
    .execute(pool)
    .await?;
    sqlx::query("VACUUM ANALYZE contacts").execute(pool).await?;
    sqlx::query("VACUUM ANALYZE attempts").execute(pool).await?;
    Ok(())
}

/// Contacts finished per second by an engine of `lines` lines with 0-ms
/// calls over `seconds`, after a 5 s warm-up.
async fn throughput(pool: &PgPool, url: &str, lines: u32, seconds: u64) -> anyhow::Result<f64> {
    let s = settings(url, lines)?;
    let engine_pool = dialerd::db::connect(&s.database).await?;
    let deps = dialerd::app::engine_deps(&s, engine_pool, Arc::new(SystemClock))?;
    let engine = dialerd::actors::Engine::start(deps).await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let done = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM attempts WHERE outcome IS NOT NULL")
            .fetch_one(pool)
            .await
    };
    let before = done().await?;
    let window = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let n = done().await? - before;
    let rate = n as f64 / window.elapsed().as_secs_f64();
    engine.stop(Duration::from_secs(10)).await?;
    Ok(rate)
}

/// `n` distinct North American numbers in the registry's format, in order
/// as the registry's files are, about `density` of each area code's 8
/// million (a random gap between one and the next), none in area code 415
/// (the contacts').
fn write_list(path: &std::path::Path, n: u32, density: f64) -> anyhow::Result<()> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(250);
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let (mut area, mut line) = (201u64, 2_000_000u64);
    for _ in 0..n {
        // Geometric gaps: each number listed with probability `density`.
        let gap = if density >= 1.0 {
            1
        } else {
            let u: f64 = rng.random();
            1 + ((1.0 - u).ln() / (1.0 - density).ln()).floor() as u64
        };
        line += gap;
        while line >= 10_000_000 {
            (area, line) = (area + 1, 2_000_000 + line - 10_000_000);
            if area == 415 {
                area += 1;
            }
        }
        writeln!(out, "{area}{line:07}")?;
    }
    out.flush()?;
    Ok(())
}

pub async fn run(a: &Args) -> anyhow::Result<()> {
    let numbers = a.numbers;
    let (pool, url) = fresh(&a.url).await?;
    let campaign = seed(&pool, a.contacts, 10_000).await?;

    let without = claims(&pool, campaign, 100).await?;
    reset(&pool).await?;
    let rate_without = throughput(&pool, &url, a.lines, a.seconds).await?;

    let path = std::env::temp_dir().join("dialerd-bench-dnc.txt");
    write_list(&path, numbers, a.density)?;
    let bytes = std::fs::metadata(&path)?.len();
    let began = Instant::now();
    dialerd::import::dnc::run(
        &pool,
        dialerd::import::dnc::DncLoadArgs {
            list: "registry".into(),
            org: None,
            global: true,
            replace: true,
            allow_empty: false,
            country: None,
            file: path.clone(),
        },
    )
    .await?;
    let load_s = began.elapsed().as_secs_f64();
    std::fs::remove_file(&path)?;
    sqlx::query("VACUUM ANALYZE dnc_blocks")
        .execute(&pool)
        .await?;
    let on_disk: i64 = sqlx::query_scalar("SELECT pg_total_relation_size('dnc_blocks')")
        .fetch_one(&pool)
        .await?;

    reset(&pool).await?;
    let with = claims(&pool, campaign, 100).await?;
    reset(&pool).await?;
    let rate_with = throughput(&pool, &url, a.lines, a.seconds).await?;

    let (w50, w99) = (percentile(&without, 0.5), percentile(&without, 0.99));
    let (l50, l99) = (percentile(&with, 0.5), percentile(&with, 0.99));
    println!(
        "dnc: loaded {numbers} numbers ({:.0} MB of text, {:.0}% of their area codes) in \
         {load_s:.1} s ({:.0} numbers/s), \
         {:.0} MB on disk with its index ({:.1} bytes a number); claim of 700 with attempts: \
         p50 {w50:.1} / p99 {w99:.1} ms without a list, p50 {l50:.1} / p99 {l99:.1} ms with it \
         ({:.2}x at p99); throughput {rate_without:.0} contacts/s without, {rate_with:.0} with \
         ({:.2}x; {} lines, 0-ms calls, {} s windows)",
        bytes as f64 / 1e6,
        a.density * 100.0,
        f64::from(numbers) / load_s,
        on_disk as f64 / 1e6,
        on_disk as f64 / f64::from(numbers),
        l99 / w99,
        rate_with / rate_without,
        a.lines,
        a.seconds
    );
    println!(
        "{}",
        json!({"run": "dnc", "numbers": numbers, "density": a.density, "load_seconds": load_s,
               "numbers_per_second": f64::from(numbers) / load_s, "bytes_on_disk": on_disk,
               "claim_p50_ms_without": w50, "claim_p99_ms_without": w99,
               "claim_p50_ms_with": l50, "claim_p99_ms_with": l99, "claim_p99_ratio": l99 / w99,
               "throughput_without": rate_without, "throughput_with": rate_with,
               "throughput_ratio": rate_with / rate_without})
    );
    Ok(())
}
