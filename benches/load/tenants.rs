//! Many tenants: the same backlog, calls and lines, held by one
//! organization or by thousands; the idle cost of thousands of active
//! campaigns with nothing due; the dispatch lag of work that appears then.
//!
//! ```text
//! cargo bench --bench load -- tenants [--orgs 10000] [--contacts 100000] [--lines 200]
//!                                     [--call-ms 200] [--warmup 5] [--seconds 30]
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use dialerd::clock::SystemClock;
use dialerd::db::contacts::{NewContact, Scope};
use dialerd::domain::agent::AgentFields;
use dialerd::domain::phone::E164;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::{claim_histograms, cpu_seconds, fresh, percentile, rss_bytes, settings, Args};

/// Organization `k`'s id (also its configuration's and campaign's, with
/// another prefix): reproducible, so the phases can name them.
fn id(prefix: &str, k: u32) -> String {
    format!("md5('{prefix}' || {k})::uuid")
}

/// `orgs` organizations, each with one active around-the-clock campaign;
/// the first `stocked` of them hold `per_org` contacts due `due` from now.
async fn seed(
    pool: &PgPool,
    orgs: u32,
    stocked: u32,
    per_org: u32,
    due: &str,
) -> anyhow::Result<()> {
    let body: dialerd::db::configurations::ConfigurationBody = serde_json::from_value(json!({
        "name": "tenant",
        "schedule": {"default_timezone": "America/New_York", "default_windows": [
            {"days": ["mon","tue","wed","thu","fri","sat","sun"], "start": "00:00", "end": "12:00"},
            {"days": ["mon","tue","wed","thu","fri","sat","sun"], "start": "12:00", "end": "00:00"}]},
        "dialing_policy": {"max_attempts": 3, "retry_delay_seconds": 60},
        "agent": {}
    }))?;
    let (org, cfg, cmp) = (id("org", 0), id("cfg", 0), id("cmp", 0));
    let (org, cfg, cmp) = (
        org.replace(" 0)", " k)"),
        cfg.replace(" 0)", " k)"),
        cmp.replace(" 0)", " k)"),
    );
    sqlx::query(&format!(
        "INSERT INTO organizations (id, name, concurrency_limit)
         SELECT {org}, 'tenant ' || k, 10000 FROM generate_series(1, $1) k"
    ))
    .bind(orgs as i32)
    .execute(pool)
    .await?;
    sqlx::query(&format!(
        "INSERT INTO configurations (id, organization_id, name, schedule, dialing_policy, agent)
         SELECT {cfg}, {org}, 'tenant', $2, $3, $4 FROM generate_series(1, $1) k"
    ))
    .bind(orgs as i32)
    .bind(sqlx::types::Json(&body.schedule))
    .bind(sqlx::types::Json(&body.dialing_policy))
    .bind(sqlx::types::Json(&body.agent))
    .execute(pool)
    .await?;
    sqlx::query(&format!(
        "INSERT INTO campaigns (id, organization_id, name, configuration_id)
         SELECT {cmp}, {org}, 'tenant', {cfg} FROM generate_series(1, $1) k"
    ))
    .bind(orgs as i32)
    .execute(pool)
    .await?;
    if per_org > 0 {
        sqlx::query(&format!(
            "INSERT INTO contacts (id, organization_id, campaign_id, phone_numbers, next_attempt_at)
             SELECT gen_random_uuid(), {org}, {cmp}, ARRAY['+1415' || lpad(((k - 1) * $2 + j)::text, 7, '0')],
                    now() + $3::interval
               FROM generate_series(1, $1) k, generate_series(1, $2) j"
        ))
        .bind(stocked as i32)
        .bind(per_org as i32)
        .bind(due)
        .execute(pool)
        .await?;
    }
    sqlx::query("VACUUM ANALYZE").execute(pool).await?;
    Ok(())
}

/// Contacts finished per second over the window, and the cores PostgreSQL
/// and this process used meanwhile, with `engines` daemons on the database.
struct Rate {
    contacts_per_second: f64,
    /// Claims in the window, their mean duration and contacts each.
    claims: f64,
    claim_ms: f64,
    claim_batch: f64,
    postgres_cores: f64,
    engine_cores: f64,
}

async fn finished(pool: &PgPool) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM attempts WHERE outcome IS NOT NULL")
            .fetch_one(pool)
            .await?,
    )
}

async fn engines(url: &str, a: &Args, n: u32) -> anyhow::Result<Vec<dialerd::actors::Engine>> {
    let mut s = settings(url, a.lines / n)?;
    s.telephony.simulated.mean_call_ms = a.call_ms;
    s.telephony.simulated.duration = dialerd::settings::DurationShape::Fixed;
    s.dialer.global_concurrency_limit = a.lines;
    let mut started = Vec::new();
    for _ in 0..n {
        let pool = dialerd::db::connect(&s.database).await?;
        let deps = dialerd::app::engine_deps(&s, pool, Arc::new(SystemClock))?;
        started.push(dialerd::actors::Engine::start(deps).await?);
    }
    Ok(started)
}

async fn rate(a: &Args, orgs: u32, daemons: u32) -> anyhow::Result<Rate> {
    let contacts = a.contacts;
    let (pool, url) = fresh(&a.url).await?;
    seed(&pool, orgs, orgs, contacts / orgs, "-1 minute").await?;
    let metrics = dialerd::monitoring::install()?;
    let running = engines(&url, a, daemons).await?;
    tokio::time::sleep(Duration::from_secs(a.warmup)).await;
    if std::env::var_os("TENANTS_DEBUG").is_some() {
        for _ in 0..10 {
            let (all, open): (i64, i64) = sqlx::query_as(
                "SELECT count(*), count(*) FILTER (WHERE outcome IS NULL) FROM attempts",
            )
            .fetch_one(&pool)
            .await?;
            let claimed: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM contacts WHERE status IN ('locked','in_progress')",
            )
            .fetch_one(&pool)
            .await?;
            eprintln!("daemons {daemons}: attempts {all}, open {open}, claimed {claimed}");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    let (before, cpu_before, window) = (finished(&pool).await?, cpu_seconds(), Instant::now());
    let [batch_before, claim_before] = claim_histograms(&metrics);
    tokio::time::sleep(Duration::from_secs(a.seconds)).await;
    let (after, cpu_after) = (finished(&pool).await?, cpu_seconds());
    let [batch_after, claim_after] = claim_histograms(&metrics);
    let claims = claim_after.1 - claim_before.1;
    let measured = window.elapsed().as_secs_f64();
    anyhow::ensure!(
        after < i64::from(contacts),
        "the backlog ran out inside the window: raise --contacts"
    );
    for engine in running {
        engine.stop(Duration::from_secs(10)).await?;
    }
    if daemons > 1 {
        held_every_limit(&pool, a.lines).await?;
    }
    Ok(Rate {
        contacts_per_second: (after - before) as f64 / measured,
        claims,
        claim_ms: (claim_after.0 - claim_before.0) / claims.max(1.0) * 1000.0,
        claim_batch: (batch_after.0 - batch_before.0) / (batch_after.1 - batch_before.1).max(1.0),
        postgres_cores: (cpu_after.1 - cpu_before.1) / measured,
        engine_cores: (cpu_after.0 - cpu_before.0) / measured,
    })
}

/// No contact dialed twice, and the global limit never exceeded, by an
/// exact sweep of the attempts' start and end times.
async fn held_every_limit(pool: &PgPool, global: u32) -> anyhow::Result<()> {
    let twice: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT contact_id FROM attempts GROUP BY contact_id HAVING count(*) > 1) t",
    )
    .fetch_one(pool)
    .await?;
    anyhow::ensure!(twice == 0, "{twice} contacts were dialed twice");
    let most: i64 = sqlx::query_scalar(
        "SELECT coalesce(max(live), 0) FROM (
             SELECT sum(step) OVER (ORDER BY at, step) AS live FROM (
                 SELECT created_at AS at, 1 AS step FROM attempts
                 UNION ALL SELECT ended_at, -1 FROM attempts WHERE ended_at IS NOT NULL) e) s",
    )
    .fetch_one(pool)
    .await?;
    anyhow::ensure!(
        most <= i64::from(global),
        "{most} calls at once, limit {global}"
    );
    Ok(())
}

/// Lag from commit to call of contacts upserted one at a time, ad hoc
/// (`campaign` None) or into organization k's campaign in a new zone.
async fn upsert_lags(
    pool: &PgPool,
    orgs: u32,
    in_campaign: bool,
    n: u32,
) -> anyhow::Result<Vec<f64>> {
    let zones: Vec<&str> = chrono_tz::TZ_VARIANTS
        .iter()
        .map(|z| z.name())
        .filter(|z| z.contains('/') && !z.starts_with("Etc/"))
        .take(n as usize)
        .collect();
    let mut lags = Vec::new();
    for i in 0..n {
        let k = 1 + (i * 7919) % orgs;
        let (org, campaign): (Uuid, Uuid) = sqlx::query_as(&format!(
            "SELECT {}, {} FROM (SELECT $1::int AS k) v",
            id("org", 0).replace(" 0)", " k)"),
            id("cmp", 0).replace(" 0)", " k)")
        ))
        .bind(k as i32)
        .fetch_one(pool)
        .await?;
        let scope = if in_campaign {
            Scope::Campaign {
                id: campaign,
                priority: 1,
            }
        } else {
            Scope::AdHoc
        };
        let contact = NewContact {
            id: None,
            external_id: Some(format!("lag-{in_campaign}-{i}")),
            phone_numbers: vec![
                E164::strict(&format!("+1212555{i:04}")).map_err(anyhow::Error::msg)?
            ],
            data: json!({}),
            timezone: in_campaign
                .then(|| zones[i as usize % zones.len()].parse().ok())
                .flatten(),
            scheduled_at: None,
            agent: AgentFields::default(),
        };
        let done = dialerd::db::contacts::upsert(pool, org, scope, &[contact])
            .await?
            .map_err(|r| anyhow::anyhow!("refused: {}", r.reason))?;
        let contact_id = done.ids[0];
        let until = Instant::now() + Duration::from_secs(30);
        let lag: f64 = loop {
            let lag: Option<f64> = sqlx::query_scalar(
                "SELECT extract(epoch FROM a.created_at - c.created_at)::float8 * 1000
                   FROM attempts a JOIN contacts c ON c.id = a.contact_id WHERE c.id = $1",
            )
            .bind(contact_id)
            .fetch_optional(pool)
            .await?;
            if let Some(lag) = lag {
                break lag;
            }
            anyhow::ensure!(Instant::now() < until, "contact {i} not dialed within 30 s");
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        lags.push(lag);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    lags.sort_by(f64::total_cmp);
    Ok(lags)
}

pub async fn run(a: &Args) -> anyhow::Result<()> {
    let orgs = a.orgs;
    let contacts = a.contacts;
    let one = rate(a, 1, 1).await?;
    let many = rate(a, orgs, 1).await?;
    let two = rate(a, orgs, 2).await?;
    for (name, r) in [("one", &one), ("many", &many), ("two daemons", &two)] {
        println!(
            "{name}: {:.0} claims, {:.2} ms and {:.1} contacts each",
            r.claims, r.claim_ms, r.claim_batch
        );
    }
    println!(
        "throughput ({} lines, {} ms calls, {contacts} contacts): 1 organization {:.0}/s \
         (PostgreSQL {:.2} cores, engine {:.2}); {orgs} organizations {:.0}/s ({:.2}, {:.2}): \
         {:.2}x; two daemons on {orgs} organizations {:.0}/s, every limit held",
        a.lines,
        a.call_ms,
        one.contacts_per_second,
        one.postgres_cores,
        one.engine_cores,
        many.contacts_per_second,
        many.postgres_cores,
        many.engine_cores,
        many.contacts_per_second / one.contacts_per_second,
        two.contacts_per_second
    );

    // Idle: every organization with an active campaign, half of them with a
    // contact due in 30 days, half empty.
    let (pool, url) = fresh(&a.url).await?;
    seed(&pool, orgs, orgs / 2, 1, "30 days").await?;
    let metrics = dialerd::monitoring::install()?;
    // The gauge still holds the last phase's count.
    metrics::gauge!(dialerd::monitoring::CAMPAIGNS_ACTIVE).set(0.0);
    let rss_before = rss_bytes();
    let started = Instant::now();
    let running = engines(&url, a, 1).await?;
    let until = Instant::now() + Duration::from_secs(300);
    while !metrics
        .render()
        .lines()
        .any(|l| l == format!("{} {}", dialerd::monitoring::CAMPAIGNS_ACTIVE, orgs))
    {
        anyhow::ensure!(
            Instant::now() < until,
            "campaign actors not all up in 300 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let up = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(a.warmup)).await;
    let (cpu_before, window) = (cpu_seconds(), Instant::now());
    tokio::time::sleep(Duration::from_secs(a.seconds)).await;
    let cpu_after = cpu_seconds();
    let measured = window.elapsed().as_secs_f64();
    let rss = rss_bytes();
    let rss_added = rss.saturating_sub(rss_before);
    let idle_postgres = (cpu_after.1 - cpu_before.1) / measured;
    let idle_engine = (cpu_after.0 - cpu_before.0) / measured;
    let ad_hoc = upsert_lags(&pool, orgs, false, 100).await?;
    let new_zone = upsert_lags(&pool, orgs, true, 100).await?;
    for engine in running {
        engine.stop(Duration::from_secs(10)).await?;
    }
    println!(
        "idle with {orgs} organizations and as many active campaigns: PostgreSQL {idle_postgres:.3} cores, \
         engine {idle_engine:.3} cores, process RSS {:.0} MiB (+{:.0} MiB at the engine's start), campaign actors up in {up:.1} s; \
         lag of an ad-hoc contact p50 {:.1} ms p99 {:.1} ms; of a contact in a new zone p50 {:.1} ms p99 {:.1} ms",
        rss as f64 / 1048576.0, rss_added as f64 / 1048576.0,
        percentile(&ad_hoc, 0.5), percentile(&ad_hoc, 0.99),
        percentile(&new_zone, 0.5), percentile(&new_zone, 0.99)
    );
    println!(
        "{}",
        json!({"run": "tenants", "orgs": orgs, "contacts": contacts, "lines": a.lines, "call_ms": a.call_ms,
               "one_org_per_second": one.contacts_per_second, "many_orgs_per_second": many.contacts_per_second,
               "ratio": many.contacts_per_second / one.contacts_per_second,
               "one_org_postgres_cores": one.postgres_cores, "many_orgs_postgres_cores": many.postgres_cores,
               "one_org_engine_cores": one.engine_cores, "many_orgs_engine_cores": many.engine_cores,
               "two_daemons_per_second": two.contacts_per_second,
               "idle_campaigns": orgs, "idle_postgres_cores": idle_postgres, "idle_engine_cores": idle_engine,
               "idle_rss_bytes": rss, "idle_rss_added_bytes": rss_added, "campaign_actors_up_seconds": up,
               "ad_hoc_lag_p50_ms": percentile(&ad_hoc, 0.5), "ad_hoc_lag_p99_ms": percentile(&ad_hoc, 0.99),
               "new_zone_lag_p50_ms": percentile(&new_zone, 0.5), "new_zone_lag_p99_ms": percentile(&new_zone, 0.99)})
    );
    Ok(())
}
