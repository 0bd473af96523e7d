//! Test fixtures: a fresh database per test, the real app on port 0, and an
//! HTTP client that speaks as one organization's token.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use dialerd::app::Running;
use dialerd::settings::Settings;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

pub use crate::fixtures::open_gates;
use crate::fixtures::with_database;

/// The server the tests use: `DATABASE_URL`, or the local PostgreSQL.
pub fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database created for one test and dropped when it ends.
pub struct TestDb {
    pub pool: PgPool,
    pub url: String,
    name: String,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

impl TestDb {
    pub async fn new() -> TestDb {
        let db = TestDb::blank().await;
        dialerd::db::migrate(&db.pool, &db.url).await.unwrap();
        db
    }

    /// A database with nothing in it, not even the migrations.
    pub async fn blank() -> TestDb {
        if std::env::var_os("RUST_LOG").is_some() {
            // Logs of the app under test, for debugging: RUST_LOG=debug cargo test ...
            let log = dialerd::settings::LogSettings {
                level: "info".into(),
                format: dialerd::settings::LogFormat::Human,
            };
            dialerd::telemetry::init(&log);
        }
        let name = format!(
            "dialerd_test_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            &Uuid::new_v4().simple().to_string()[..8]
        );
        let mut admin = PgConnection::connect(&admin_url())
            .await
            .expect("PostgreSQL is reachable");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.unwrap();
        let url = with_database(&admin_url(), &name);
        // The daemon's own pool, with its session settings.
        let pool = dialerd::db::connect(&dialerd::settings::DatabaseSettings {
            url: url.clone(),
            max_connections: 10,
            acquire_timeout_seconds: 30,
        })
        .await
        .unwrap();
        TestDb { pool, url, name }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.pool).await.unwrap()
    }

    /// Runs one statement on its own, for tests that look at its error.
    pub async fn run(&self, sql: &str) -> Result<sqlx::postgres::PgQueryResult, sqlx::Error> {
        sqlx::query(sql).execute(&self.pool).await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // The runtime of the test may be gone; drop the database from a thread of its own.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut admin) = PgConnection::connect(&admin_url()).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut admin)
                        .await;
                }
            });
        })
        .join()
        .unwrap();
    }
}

/// Settings for an app on `db`, listening on a free port.
pub fn settings_for(db: &TestDb) -> Settings {
    let mut settings = Settings::load(None).unwrap();
    settings.database.url = db.url.clone();
    settings.http.listen = "127.0.0.1:0".parse().unwrap();
    settings.metrics.listen = "127.0.0.1:0".parse().unwrap();
    settings
}

/// The real app, serving on port 0, with one organization and a manage token.
pub struct TestApp {
    pub db: TestDb,
    pub base: String,
    pub org: Uuid,
    pub token: String,
    client: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(|_| {}).await
    }

    /// [`TestApp::spawn`] with settings changed by `tune`.
    pub async fn spawn_with(tune: impl FnOnce(&mut Settings)) -> TestApp {
        let db = TestDb::new().await;
        let mut settings = settings_for(&db);
        tune(&mut settings);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let running = Running::start(&settings, db.pool.clone(), None, async {
            let _ = stop_rx.await;
        })
        .await
        .unwrap();
        let org = dialerd::admin::create_org(&db.pool, "Acme", 10)
            .await
            .unwrap();
        let token =
            dialerd::admin::create_token(&db.pool, org, "campaigns:manage,concurrency:manage")
                .await
                .unwrap();
        TestApp {
            base: format!("http://{}", running.http_addr),
            db,
            org,
            token,
            client: reqwest::Client::new(),
            _stop: stop_tx,
        }
    }

    /// A token of a new organization, or of this one, with `scopes`.
    pub async fn token(&self, org: Uuid, scopes: &str) -> String {
        dialerd::admin::create_token(&self.db.pool, org, scopes)
            .await
            .unwrap()
    }

    pub async fn other_org(&self) -> (Uuid, String) {
        let org = dialerd::admin::create_org(&self.db.pool, "Other", 10)
            .await
            .unwrap();
        (
            org,
            self.token(org, "campaigns:manage,concurrency:manage").await,
        )
    }

    /// Sends a request with `token` (None: no Authorization header).
    pub async fn call_as(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(method, format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_as(Some(&self.token.clone()), method, path, body)
            .await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, Some(body)).await
    }

    /// Sends a raw body with a JSON content type.
    pub async fn post_raw(&self, path: &str, body: &str) -> (StatusCode, Value) {
        let resp = self
            .client
            .post(format!("{}{}", self.base, path))
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        (resp.status(), resp.json().await.unwrap())
    }

    /// Creates a configuration dialing US numbers on weekdays, 09:00-17:00.
    pub async fn configuration(&self) -> String {
        let (status, body) = self
            .post(
                "/campaign/configurations",
                json!({
                    "name": "Weekdays",
                    "schedule": {"default_windows": [{"days": ["mon","tue","wed","thu","fri"], "start": "09:00", "end": "17:00"}]},
                    "dialing_policy": {"default_country": "US"}
                }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    /// Creates a campaign with a fresh configuration; returns its id.
    pub async fn campaign(&self, extra: Value) -> String {
        let configuration_id = self.configuration().await;
        let mut body = json!({"name": "Spring drive", "configuration_id": configuration_id});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (status, created) = self.post("/campaign/campaigns", body).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created["id"].as_str().unwrap().to_owned()
    }
}

/// The `detail` of an error body.
pub fn detail(body: &Value) -> &str {
    body["detail"]
        .as_str()
        .unwrap_or_else(|| panic!("no detail in {body}"))
}

/// Settings for an engine in tests: fast timers, zero-length calls that all complete.
pub fn engine_settings(db: &TestDb, lines: u32) -> Settings {
    let mut s = settings_for(db);
    s.dialer.lines = lines;
    s.dialer.claim_interval_ms = 5;
    // Tests that wait for claim cycles (`cycles_ran`) go on at this pace
    // while nothing is due.
    s.dialer.idle_recheck_ms = 20;
    s.dialer.status_poll_ms = 200;
    s.dialer.plan_refresh_seconds = 1;
    s.dialer.heartbeat_seconds = 1;
    s.dialer.lease_seconds = 3;
    s.dialer.result_flush_ms = 5;
    s.telephony.simulated.answer_rate = 1.0;
    s.telephony.simulated.mean_call_ms = 0;
    s
}

/// Starts the dialing engine of `settings` on `db` with `clock`.
pub async fn start_engine(
    db: &TestDb,
    settings: &Settings,
    clock: impl dialerd::clock::Clock,
) -> dialerd::actors::Engine {
    let deps =
        dialerd::app::engine_deps(settings, db.pool.clone(), std::sync::Arc::new(clock)).unwrap();
    dialerd::actors::Engine::start(deps).await.unwrap()
}

/// Waits until the engine's dispatcher holds the plans of `n` campaigns:
/// from then on it claims their due contacts.
pub async fn plans_published(engine: &dialerd::actors::Engine, n: usize) {
    let probe = engine.probe();
    eventually(10, &format!("{n} campaign plans published"), || async {
        let health = probe.check(Duration::from_secs(2)).await;
        health.is_some_and(|h| h.plans >= n)
    })
    .await;
}

/// Waits until the engine has begun two more claim cycles than it had:
/// one cycle that began after the call, at least, has completed, and so
/// saw the database and the clock as they were then.
pub async fn cycles_ran(engine: &dialerd::actors::Engine) {
    let before = cycles(engine).await;
    eventually(10, "two claim cycles run", || async {
        cycles(engine).await >= before + 2
    })
    .await;
}

/// The claim cycles the engine's dispatcher has begun (0 if it does not
/// answer its health probe).
pub async fn cycles(engine: &dialerd::actors::Engine) -> u64 {
    let health = engine.probe().check(Duration::from_secs(2)).await;
    health.map_or(0, |h| h.cycles)
}

/// Waits until `n` sessions of the test database wait on a lock.
pub async fn lock_waits(db: &TestDb, n: i64) {
    eventually(10, "sessions waiting on a lock", || async {
        db.count(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .await
            >= n
    })
    .await;
}

/// Waits up to `secs` seconds for `check` to hold.
pub async fn eventually<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("timed out after {secs} s waiting for {what}");
}

/// The first `day` at least two days from now, at `hh:mm` local time in `zone`.
pub fn upcoming(
    day: chrono::Weekday,
    hh: u32,
    mm: u32,
    zone: chrono_tz::Tz,
) -> chrono::DateTime<chrono::Utc> {
    use chrono::{Datelike, Duration, TimeZone};
    let mut date = chrono::Utc::now().date_naive() + Duration::days(2);
    while date.weekday() != day {
        date += Duration::days(1);
    }
    zone.from_local_datetime(&date.and_hms_opt(hh, mm, 0).unwrap())
        .single()
        .unwrap()
        .with_timezone(&chrono::Utc)
}

/// A schedule open all day, every day, in every zone.
pub fn around_the_clock() -> Value {
    let all = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    json!({"default_windows": [
        {"days": all, "start": "00:00", "end": "12:00"},
        {"days": all, "start": "12:00", "end": "00:00"}
    ]})
}

impl TestApp {
    /// Creates a configuration from `body` (a name is added) and a campaign
    /// using it with `campaign` fields; returns the campaign id.
    pub async fn campaign_with(&self, mut config: Value, campaign: Value) -> String {
        config["name"] = json!("Engine test");
        let (status, created) = self.post("/campaign/configurations", config).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let mut body = json!({"name": "Engine test", "configuration_id": created["id"]});
        body.as_object_mut()
            .unwrap()
            .extend(campaign.as_object().unwrap().clone());
        let (status, made) = self.post("/campaign/campaigns", body).await;
        assert_eq!(status, StatusCode::CREATED, "{made}");
        made["id"].as_str().unwrap().to_owned()
    }

    /// Uploads contacts to a campaign (or `default`), 1000 a request; returns their ids.
    pub async fn contacts(&self, campaign: &str, list: Value) -> Vec<Uuid> {
        let mut ids = Vec::new();
        for chunk in list.as_array().unwrap().chunks(1000) {
            let (status, body) = self
                .post(
                    &format!("/campaign/campaigns/{campaign}/contacts"),
                    json!({"contacts": chunk}),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            ids.extend(
                body["contact_ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().parse::<Uuid>().unwrap()),
            );
        }
        ids
    }

    /// External ids of contacts in the order their calls of the last hour were placed.
    pub async fn dial_order(&self) -> Vec<String> {
        sqlx::query_scalar(
            "SELECT c.external_id FROM attempts a JOIN contacts c ON c.id = a.contact_id
              WHERE a.created_at > now() - interval '1 hour'
              ORDER BY a.created_at, a.id",
        )
        .fetch_all(&self.db.pool)
        .await
        .unwrap()
    }
}

/// Asserts no contact ever had two attempts open at the same time, and
/// that every attempt is closed and counted on its contact.
pub async fn assert_attempts_accounted(pool: &PgPool) {
    let overlaps: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM attempts a JOIN attempts b
            ON a.contact_id = b.contact_id AND a.id < b.id
           AND tstzrange(a.created_at, coalesce(a.ended_at, 'infinity')) && tstzrange(b.created_at, coalesce(b.ended_at, 'infinity'))",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(overlaps, 0, "a contact had overlapping attempts");
    let open: i64 = sqlx::query_scalar("SELECT count(*) FROM attempts WHERE outcome IS NULL")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(open, 0, "attempts left open");
    let miscounted: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM contacts c
          WHERE c.attempt_count <> (SELECT count(*) FROM attempts a WHERE a.contact_id = c.id)
             OR c.attempt_count <> coalesce((SELECT max(attempt_number) FROM attempts a WHERE a.contact_id = c.id), 0)",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(miscounted, 0, "attempt counts disagree with attempts");
    let bad_final: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM contacts c WHERE c.status = 'completed'
            AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.contact_id = c.id AND a.outcome = 'completed')",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(bad_final, 0, "a completed contact without a completed call");
}

/// The test settings of a `dialerd` process on `db`, then `env`.
fn daemon_env(cmd: &mut Command, db: &TestDb, env: &[(&str, &str)]) {
    cmd.env("DATABASE_URL", &db.url)
        .env("DIALERD_HTTP__LISTEN", "127.0.0.1:0")
        .env("DIALERD_METRICS__LISTEN", "127.0.0.1:0")
        .env("DIALERD_DIALER__HEARTBEAT_SECONDS", "1")
        .env("DIALERD_DIALER__LEASE_SECONDS", "2")
        .env("DIALERD_DIALER__PLAN_REFRESH_SECONDS", "1")
        .env("DIALERD_DIALER__CLAIM_INTERVAL_MS", "10")
        .env(
            "RUST_LOG",
            std::env::var("DAEMON_LOG").unwrap_or("warn".into()),
        )
        .stdout(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
}

/// A `dialerd` process with test timers, killed when dropped.
pub struct Daemon(pub Child);

impl Daemon {
    /// `dialerd serve` on `db`, with `env` on top of the test settings.
    pub fn start(db: &TestDb, env: &[(&str, &str)]) -> Daemon {
        Daemon::run(db, &["serve"], env)
    }

    /// `dialerd ARGS...` on `db`, with `env` on top of the test settings.
    pub fn run(db: &TestDb, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dialerd"));
        cmd.args(args);
        daemon_env(&mut cmd, db, env);
        Daemon(cmd.spawn().expect("dialerd starts"))
    }

    pub fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    pub fn terminate(&mut self) {
        self.signal("-TERM");
    }

    /// Sends `signal` (as `kill` spells it: "-TERM", "-STOP"...).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit by itself, yielding to the test's
    /// runtime meanwhile: a proxy or a platform the daemon talks to may run
    /// there, and blocking it would stall the daemon.
    pub async fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let until = Instant::now() + within;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < until,
                "dialerd did not exit within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The JSON log lines of a daemon started with `Daemon::logged`.
#[derive(Clone, Default)]
pub struct Logs(std::sync::Arc<std::sync::Mutex<Vec<Value>>>);

impl Logs {
    /// The events whose message is `message`.
    pub fn events(&self, message: &str) -> Vec<Value> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e["message"] == message)
            .cloned()
            .collect()
    }

    /// The events logged at `level` (e.g. "ERROR").
    pub fn events_at(&self, level: &str) -> Vec<Value> {
        let events = self.0.lock().unwrap();
        events
            .iter()
            .filter(|e| e["level"] == level)
            .cloned()
            .collect()
    }

    /// Waits up to `secs` for an event with `message`; returns the first.
    pub async fn wait_for(&self, secs: u64, message: &str) -> Value {
        eventually(secs, message, || async { !self.events(message).is_empty() }).await;
        self.events(message).remove(0)
    }
}

impl Daemon {
    /// `dialerd serve` logging JSON at info level, its log kept in `Logs`.
    pub fn logged(db: &TestDb, env: &[(&str, &str)]) -> (Daemon, Logs) {
        let mut env = env.to_vec();
        env.extend([("DIALERD_LOG__FORMAT", "json"), ("RUST_LOG", "info")]);
        let mut daemon = Daemon::run_piped(db, &["serve"], &env);
        let stderr = daemon.0.stderr.take().expect("stderr is piped");
        let logs = Logs::default();
        let sink = logs.clone();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                // A line that is not JSON (an error printed at exit) is kept as text.
                let event = serde_json::from_str::<Value>(&line)
                    .unwrap_or_else(|_| json!({"level": "TEXT", "message": line}));
                sink.0.lock().unwrap().push(event);
            }
        });
        (daemon, logs)
    }

    fn run_piped(db: &TestDb, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dialerd"));
        cmd.args(args);
        daemon_env(&mut cmd, db, env);
        cmd.stderr(Stdio::piped());
        Daemon(cmd.spawn().expect("dialerd starts"))
    }
}
