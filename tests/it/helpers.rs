//! Test fixtures: a fresh database per test, the real app on port 0, and an
//! HTTP client that speaks as one organization's token.

use std::sync::atomic::{AtomicU32, Ordering};

use dialerd::app::Running;
use dialerd::settings::Settings;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};
use uuid::Uuid;

/// The server the tests use: `DATABASE_URL`, or the local PostgreSQL.
pub fn admin_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn with_database(url: &str, name: &str) -> String {
    let (base, _) = url.rsplit_once('/').expect("a database URL has a path");
    format!("{base}/{name}")
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
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .connect(&url)
            .await
            .unwrap();
        dialerd::db::migrate(&pool, &url).await.unwrap();
        TestDb { pool, url, name }
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.pool).await.unwrap()
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
        let db = TestDb::new().await;
        let settings = settings_for(&db);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let running = Running::start(&settings, db.pool.clone(), async {
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
