//! The `http` telephony backend against a small HTTP server playing the
//! voice-agent platform: it records every request and answers as each test
//! needs. Status callbacks are signed here as a platform would sign them.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use axum::routing::post;
use axum::Json;
use dialerd::app::{engine_deps, Running};
use dialerd::clock::SystemClock;
use dialerd::db::calls::FIND_CALLBACK_ATTEMPT;
use dialerd::db::campaigns::{self, NewCampaign};
use dialerd::db::configurations::{self, ConfigurationBody};
use dialerd::db::contacts::{self, NewContact, Scope};
use dialerd::domain::agent::AgentFields;
use dialerd::domain::phone::E164;
use dialerd::settings::{Backend, Settings};
use dialerd::telephony::callback::sign;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use uuid::Uuid;

use crate::helpers::{
    around_the_clock, assert_attempts_accounted, cycles_ran, engine_settings, eventually, TestDb,
};

pub const SECRET: &str = "platform-test-signing-secret";
pub const TOKEN: &str = "platform-test-token";

/// What the fake platform answers to one call request.
#[derive(Clone)]
pub enum Reply {
    /// 201 with a conversation id; the outcome comes by callback.
    Start,
    /// 201 with a conversation id and this final status at once.
    StartFinal(&'static str),
    /// This HTTP status and body.
    Status(u16, Value),
    /// Answer nothing for this long (longer than the request time-out).
    Stall(Duration),
    /// Answer `Start` after this long (within the request time-out).
    Slow(Duration),
}

/// A request the platform received.
#[derive(Clone, Debug)]
pub struct Received {
    /// When the request arrived.
    pub at: std::time::Instant,
    pub idempotency_key: String,
    pub authorization: String,
    pub body: Value,
}

type Script = dyn Fn(&Value) -> Reply + Send + Sync;

pub struct Platform {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Platform {
    pub async fn start(script: impl Fn(&Value) -> Reply + Send + Sync + 'static) -> Platform {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Platform::serve(listener, Arc::new(script))
    }

    pub fn serve(listener: TcpListener, script: Arc<Script>) -> Platform {
        let addr = listener.local_addr().unwrap();
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let log = received.clone();
        let app = axum::Router::new().route(
            "/calls",
            post(move |headers: HeaderMap, Json(body): Json<Value>| {
                let (log, script) = (log.clone(), script.clone());
                async move {
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .map(|v| v.to_str().unwrap().to_owned())
                            .unwrap_or_default()
                    };
                    let n = {
                        let mut log = log.lock().unwrap();
                        log.push(Received {
                            at: std::time::Instant::now(),
                            idempotency_key: header("idempotency-key"),
                            authorization: header("authorization"),
                            body: body.clone(),
                        });
                        log.len() - 1
                    };
                    let conversation = format!("conv-{n}");
                    let (status, body) = match script(&body) {
                        Reply::Start => (201, json!({"conversation_id": conversation})),
                        Reply::StartFinal(status) => (
                            201,
                            json!({"conversation_id": conversation, "status": status}),
                        ),
                        Reply::Status(status, body) => (status, body),
                        Reply::Stall(d) | Reply::Slow(d) => {
                            tokio::time::sleep(d).await;
                            (201, json!({"conversation_id": conversation}))
                        }
                    };
                    (
                        axum::http::StatusCode::from_u16(status).unwrap(),
                        Json(body),
                    )
                }
            }),
        );
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Platform {
            addr,
            received,
            task,
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Engine settings with the http backend pointed at `platform`.
fn platform_settings(db: &TestDb, platform: SocketAddr, lines: u32) -> Settings {
    let mut s = engine_settings(db, lines);
    s.telephony.backend = Backend::Http;
    let h = &mut s.telephony.http;
    h.base_url = format!("http://{platform}");
    h.token = TOKEN.into();
    h.signing_secret = SECRET.into();
    h.callback_base_url = "https://dialerd.example.com/".into();
    h.request_timeout_ms = 300;
    h.request_retries = 1;
    h.max_call_seconds = 60;
    h.status_check_seconds = 60;
    s
}

/// One organization, configuration and campaign with a contact per number.
pub async fn seed(db: &TestDb, numbers: &[&str], max_attempts: u32) -> Uuid {
    let org = dialerd::admin::create_org(&db.pool, "platform", 100)
        .await
        .unwrap();
    let body: ConfigurationBody = serde_json::from_value(json!({
        "name": "c", "schedule": around_the_clock(),
        "dialing_policy": {"max_attempts": max_attempts, "retry_delay_seconds": 1},
        "agent": {"agent_id": "sales-bot", "agent_version": "7", "agent_number": "+14155550100",
                  "agent_config": {"voice": "calm"}, "initial_context": "renewal"}
    }))
    .unwrap();
    let config = configurations::create(&db.pool, org, &body).await.unwrap();
    let campaign = campaigns::create(
        &db.pool,
        org,
        NewCampaign {
            name: "platform".into(),
            configuration_id: config.id,
            priority: 1,
            external_id: None,
            agent: AgentFields::default(),
        },
    )
    .await
    .unwrap();
    let list: Vec<NewContact> = numbers
        .iter()
        .enumerate()
        .map(|(i, n)| NewContact {
            id: None,
            external_id: Some(format!("c{i}")),
            phone_numbers: vec![E164::strict(n).unwrap()],
            data: json!({"name": format!("contact {i}"), "plan": "gold"}),
            timezone: None,
            scheduled_at: None,
            agent: AgentFields {
                agent_version: Some("8".into()),
                ..AgentFields::default()
            },
        })
        .collect();
    contacts::upsert(
        &db.pool,
        org,
        Scope::Campaign {
            id: campaign.id,
            priority: 1,
        },
        &list,
    )
    .await
    .unwrap()
    .unwrap();
    campaign.id
}

/// A dialing daemon in this process: engine plus API (for callbacks).
struct Dialer {
    engine: Option<dialerd::actors::Engine>,
    api: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Dialer {
    /// With `dial` false, only the API runs: a second instance that
    /// receives callbacks.
    async fn start(db: &TestDb, settings: &Settings, dial: bool) -> Dialer {
        let engine = if dial {
            let deps = engine_deps(settings, db.pool.clone(), Arc::new(SystemClock)).unwrap();
            Some(dialerd::actors::Engine::start(deps).await.unwrap())
        } else {
            None
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = Running::start(
            settings,
            db.pool.clone(),
            engine.as_ref().map(|e| e.probe()),
            async {
                let _ = stopped.await;
            },
        )
        .await
        .unwrap();
        Dialer {
            engine,
            api: running.http_addr,
            stop: Some(stop),
        }
    }

    async fn busy(&self) -> usize {
        let probe = self.engine.as_ref().unwrap().probe();
        probe.check(Duration::from_secs(2)).await.unwrap().busy
    }

    async fn stop(mut self) {
        if let Some(engine) = self.engine.take() {
            engine.stop(Duration::from_secs(5)).await.unwrap();
        }
        let _ = self.stop.take().unwrap().send(());
    }
}

/// POSTs `body` to `dialer`'s callback route, signed with `signature`.
async fn callback_with(dialer: &Dialer, body: &str, signature: Option<String>) -> (u16, Value) {
    post_callback(dialer.api, body, signature).await
}

/// POSTs `body` to the callback route at `api`, signed with `signature`.
async fn post_callback(api: SocketAddr, body: &str, signature: Option<String>) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("http://{api}/telephony/callbacks"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(signature) = signature {
        request = request.header("X-Dialerd-Signature", signature);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The signature a platform would send with `body` now.
fn signed_now(body: &str) -> String {
    sign(
        SECRET.as_bytes(),
        chrono::Utc::now().timestamp(),
        body.as_bytes(),
    )
}

/// POSTs `body` to `dialer`'s callback route, signed now with the shared secret.
async fn signed_callback(dialer: &Dialer, body: &str) -> (u16, Value) {
    callback_with(dialer, body, Some(signed_now(body))).await
}

async fn callback(dialer: &Dialer, conversation: &str, status: &str) -> (u16, Value) {
    callback_at(dialer.api, conversation, status).await
}

/// A signed callback of `status` for `conversation` to the API at `api`.
pub async fn callback_at(api: SocketAddr, conversation: &str, status: &str) -> (u16, Value) {
    callback_of(api, conversation, None, status).await
}

/// [`callback_at`], naming the attempt too (as README recommends), so it
/// finds its attempt even when it overtakes the call request's answer.
pub async fn callback_of(
    api: SocketAddr,
    conversation: &str,
    attempt: Option<&str>,
    status: &str,
) -> (u16, Value) {
    let body = json!({
        "conversation_id": conversation, "attempt_id": attempt, "status": status,
        "occurred_at": chrono::Utc::now(), "answered_at": chrono::Utc::now() - chrono::Duration::seconds(30),
        "detail": "callee said yes"
    })
    .to_string();
    post_callback(api, &body, Some(signed_now(&body))).await
}

/// Waits until the daemon has stored the platform's answer naming
/// `conversation`: a platform calls back about a call it has answered.
async fn answered(db: &TestDb, conversation: &str) {
    eventually(10, &format!("{conversation} stored"), || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM attempts WHERE conversation_id = $1")
            .bind(conversation)
            .fetch_one(&db.pool)
            .await
            .unwrap()
            == 1
    })
    .await;
}

async fn attempt_row(db: &TestDb, conversation: &str) -> (Option<String>, Option<String>, bool) {
    sqlx::query_as(
        "SELECT outcome::text, telephony_detail, answered_at IS NOT NULL FROM attempts WHERE conversation_id = $1",
    )
    .bind(conversation)
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_call_request_carries_the_call_and_callbacks_settle_it() {
    let db = TestDb::new().await;
    let platform = Platform::start(|_| Reply::Start).await;
    let campaign = seed(&db, &["+14155550001"], 3).await;
    let settings = platform_settings(&db, platform.addr, 2);
    let dialer = Dialer::start(&db, &settings, true).await;

    eventually(10, "the call request", || async {
        !platform.received().is_empty()
    })
    .await;
    let request = platform.received().remove(0);
    let (attempt_id, contact_id): (Uuid, Uuid) =
        sqlx::query_as("SELECT id, contact_id FROM attempts")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(request.idempotency_key, attempt_id.to_string());
    assert_eq!(request.authorization, format!("Bearer {TOKEN}"));
    assert_eq!(
        request.body,
        json!({
            "to": "+14155550001", "from": "+14155550100",
            "agent_id": "sales-bot", "agent_version": "8", "agent_config": {"voice": "calm"},
            "initial_context": "renewal",
            "metadata": {"name": "contact 0", "plan": "gold"},
            "campaign_id": campaign, "contact_id": contact_id, "attempt_id": attempt_id,
            "callback_url": "https://dialerd.example.com/telephony/callbacks"
        })
    );
    // The conversation id is stored at once, while the call goes on.
    eventually(5, "the conversation id stored", || async {
        db.count(
            "SELECT count(*) FROM attempts WHERE conversation_id = 'conv-0' AND outcome IS NULL",
        )
        .await
            == 1
    })
    .await;
    assert_eq!(dialer.busy().await, 1);

    // Queued and ringing note nothing; in progress without answered_at is
    // answered then.
    for (status, answered) in [("queued", false), ("ringing", false), ("in_progress", true)] {
        let body = json!({"conversation_id": "conv-0", "status": status, "occurred_at": chrono::Utc::now()})
            .to_string();
        let (code, answer) = signed_callback(&dialer, &body).await;
        assert_eq!((code, answer["result"].as_str()), (200, Some("progress")));
        assert_eq!(
            attempt_row(&db, "conv-0").await,
            (None, None, answered),
            "{status}"
        );
    }
    assert_eq!(
        callback(&dialer, "conv-0", "ringing").await.1["result"],
        "progress"
    );
    assert_eq!(
        callback(&dialer, "conv-0", "in_progress").await.1["result"],
        "progress"
    );
    assert_eq!(attempt_row(&db, "conv-0").await, (None, None, true));
    assert_eq!(dialer.busy().await, 1, "progress does not end the call");

    let (status, body) = callback(&dialer, "conv-0", "transferred").await;
    assert_eq!((status, body["result"].as_str()), (200, Some("closed")));
    assert_eq!(
        attempt_row(&db, "conv-0").await,
        (
            Some("completed".into()),
            Some("transferred: callee said yes".into()),
            true
        )
    );
    assert_eq!(
        db.count(
            "SELECT count(*) FROM contacts WHERE status = 'completed' AND owner_instance IS NULL"
        )
        .await,
        1
    );
    eventually(5, "the line freed", || async { dialer.busy().await == 0 }).await;

    // A duplicate, and a late progress status after the final one, change nothing.
    assert_eq!(
        callback(&dialer, "conv-0", "transferred").await.1["result"],
        "duplicate"
    );
    assert_eq!(
        callback(&dialer, "conv-0", "busy").await.1["result"],
        "duplicate"
    );
    assert_eq!(
        callback(&dialer, "conv-0", "ringing").await.1["result"],
        "duplicate"
    );
    assert_eq!(
        attempt_row(&db, "conv-0").await.0.as_deref(),
        Some("completed")
    );
    assert_eq!(callback(&dialer, "conv-unknown", "completed").await.0, 404);
    assert_eq!(platform.received().len(), 1, "one call, never redialed");
    dialer.stop().await;
    assert_attempts_accounted(&db.pool).await;
}

#[tokio::test]
async fn a_failed_call_reported_by_callback_is_retried_by_policy() {
    let db = TestDb::new().await;
    let platform = Platform::start(|_| Reply::Start).await;
    seed(&db, &["+14155550001"], 3).await;
    let dialer = Dialer::start(&db, &platform_settings(&db, platform.addr, 1), true).await;
    eventually(10, "the call request", || async {
        !platform.received().is_empty()
    })
    .await;
    eventually(5, "the conversation id stored", || async {
        db.count("SELECT count(*) FROM attempts WHERE conversation_id = 'conv-0'")
            .await
            == 1
    })
    .await;
    let (status, body) = callback(&dialer, "conv-0", "failed").await;
    assert_eq!((status, body["result"].as_str()), (200, Some("closed")));
    assert_eq!(
        attempt_row(&db, "conv-0").await.0.as_deref(),
        Some("failed")
    );
    // Not final for the contact: it is called again after its retry delay.
    eventually(10, "the retry", || async { platform.received().len() == 2 }).await;
    answered(&db, "conv-1").await;
    assert_eq!(
        db.count(
            "SELECT count(*) FROM attempts a JOIN attempts b ON b.contact_id = a.contact_id
              WHERE a.attempt_number = 1 AND a.outcome = 'failed'
                AND b.attempt_number = 2 AND b.created_at >= a.ended_at + interval '1 second'"
        )
        .await,
        1
    );
    assert_eq!(
        callback(&dialer, "conv-1", "completed").await.1["result"],
        "closed"
    );
    eventually(5, "the line freed", || async { dialer.busy().await == 0 }).await;
    dialer.stop().await;
    assert_attempts_accounted(&db.pool).await;
}

#[tokio::test]
async fn callbacks_without_a_good_fresh_signature_are_refused_and_change_nothing() {
    let db = TestDb::new().await;
    let platform = Platform::start(|_| Reply::Start).await;
    seed(&db, &["+14155550001"], 3).await;
    let dialer = Dialer::start(&db, &platform_settings(&db, platform.addr, 1), true).await;
    eventually(5, "the call started", || async {
        db.count("SELECT count(*) FROM attempts WHERE conversation_id = 'conv-0'")
            .await
            == 1
    })
    .await;

    let body = json!({"conversation_id": "conv-0", "status": "completed", "occurred_at": chrono::Utc::now()})
        .to_string();
    let now = chrono::Utc::now().timestamp();
    let good = sign(SECRET.as_bytes(), now, body.as_bytes());
    let cases = [
        ("missing", None),
        (
            "wrong secret",
            Some(sign(b"not the shared secret", now, body.as_bytes())),
        ),
        ("other body", Some(sign(SECRET.as_bytes(), now, b"{}"))),
        ("garbled", Some("t=abc,v1=xyz".to_owned())),
        (
            "stale",
            Some(sign(SECRET.as_bytes(), now - 301, body.as_bytes())),
        ),
        (
            "from the future",
            // Well past the 300 s window: the server's clock moves on while
            // the cases run, and a loaded machine can take seconds.
            Some(sign(SECRET.as_bytes(), now + 400, body.as_bytes())),
        ),
    ];
    for (what, signature) in cases {
        let (status, answer) = callback_with(&dialer, &body, signature).await;
        assert_eq!(status, 401, "{what}: {answer}");
        assert!(answer["detail"].is_string(), "{what}");
    }
    assert_eq!(attempt_row(&db, "conv-0").await.0, None, "nothing changed");
    // Signed, but not a callback.
    let junk = r#"{"conversation_id": "conv-0", "status": "exploded"}"#;
    let signed = sign(SECRET.as_bytes(), now, junk.as_bytes());
    assert_eq!(callback_with(&dialer, junk, Some(signed)).await.0, 422);
    assert_eq!(attempt_row(&db, "conv-0").await.0, None);

    let (status, answer) = callback_with(&dialer, &body, Some(good)).await;
    assert_eq!((status, answer["result"].as_str()), (200, Some("closed")));
    dialer.stop().await;
}

#[tokio::test]
async fn each_class_of_platform_error_maps_to_its_outcome() {
    let db = TestDb::new().await;
    let platform = Platform::start(|body| match body["to"].as_str().unwrap() {
        "+14155550001" => Reply::Status(422, json!({"error": "invalid_number"})),
        "+14155550002" => Reply::Status(400, json!({"error": "unknown_agent"})),
        "+14155550003" => Reply::Status(503, json!({})),
        "+14155550004" => Reply::Stall(Duration::from_secs(2)),
        "+14155550005" => Reply::Status(200, json!({"accepted": true})),
        "+14155550006" => Reply::StartFinal("busy"),
        other => panic!("unexpected number {other}"),
    })
    .await;
    let numbers = [
        "+14155550001",
        "+14155550002",
        "+14155550003",
        "+14155550004",
        "+14155550005",
        "+14155550006",
    ];
    seed(&db, &numbers, 1).await;
    let dialer = Dialer::start(&db, &platform_settings(&db, platform.addr, 6), true).await;
    eventually(20, "every contact final", || async {
        db.count("SELECT count(*) FROM contacts WHERE status = 'exhausted'")
            .await
            == 6
    })
    .await;
    dialer.stop().await;

    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT phone_number, outcome::text, telephony_detail FROM attempts ORDER BY phone_number",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let expected = [
        ("invalid_number", "http 422: invalid_number"),
        ("failed", "http 400: unknown_agent"),
        ("failed", "http 503"),
        ("failed", "timed out after 300 ms"),
        ("failed", "http 200: answer without conversation_id"),
        ("busy", "busy"),
    ];
    assert_eq!(rows.len(), 6);
    for ((number, outcome, detail), (want, want_detail)) in rows.iter().zip(expected) {
        assert_eq!(
            (outcome.as_str(), detail.as_str()),
            (want, want_detail),
            "{number}"
        );
    }
    // Retried errors were retried once with the same key; the others were not.
    let tries = |number: &str| {
        platform
            .received()
            .into_iter()
            .filter(|r| r.body["to"] == number)
            .map(|r| r.idempotency_key)
            .collect::<Vec<_>>()
    };
    for (number, n) in [
        ("+14155550001", 1),
        ("+14155550002", 1),
        ("+14155550003", 2),
        ("+14155550004", 2),
        ("+14155550005", 1),
        ("+14155550006", 1),
    ] {
        let keys = tries(number);
        assert_eq!(keys.len(), n, "{number}");
        assert!(
            keys.iter().all(|k| k == &keys[0]),
            "{number}: one key per attempt"
        );
    }
    assert_attempts_accounted(&db.pool).await;
}

#[tokio::test]
async fn a_callback_received_by_another_instance_frees_the_line_here() {
    let db = TestDb::new().await;
    let platform = Platform::start(|_| Reply::Start).await;
    seed(&db, &["+14155550001", "+14155550002"], 3).await;
    // status_check_seconds is 60: only the notification can free the line fast.
    let settings = platform_settings(&db, platform.addr, 1);
    let first = Dialer::start(&db, &settings, true).await;
    let second = Dialer::start(&db, &settings, false).await;
    eventually(10, "the first call", || async {
        platform.received().len() == 1
    })
    .await;
    cycles_ran(first.engine.as_ref().unwrap()).await;
    assert_eq!(platform.received().len(), 1, "one line: one call at a time");
    assert_eq!(first.busy().await, 1);

    answered(&db, "conv-0").await;
    assert_eq!(
        callback(&second, "conv-0", "completed").await.1["result"],
        "closed"
    );
    eventually(3, "the freed line placing the next call", || async {
        platform.received().len() == 2
    })
    .await;
    answered(&db, "conv-1").await;
    assert_eq!(
        callback(&second, "conv-1", "unanswered").await.1["result"],
        "closed"
    );
    eventually(3, "the line freed again", || async {
        first.busy().await == 0
    })
    .await;
    first.stop().await;
    second.stop().await;
    let outcomes: Vec<String> =
        sqlx::query_scalar("SELECT outcome::text FROM attempts ORDER BY created_at")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(outcomes, ["completed", "no_answer"]);
}

#[tokio::test]
async fn a_line_whose_call_was_closed_without_a_notification_finds_out_by_reading() {
    let db = TestDb::new().await;
    let platform = Platform::start(|_| Reply::Start).await;
    seed(&db, &["+14155550001", "+14155550002"], 3).await;
    let mut settings = platform_settings(&db, platform.addr, 1);
    settings.telephony.http.status_check_seconds = 1;
    let dialer = Dialer::start(&db, &settings, true).await;
    eventually(10, "the first call", || async {
        platform.received().len() == 1
    })
    .await;
    // The call is closed elsewhere with no NOTIFY (recovery by another
    // instance sends none; a notification can also be lost): only the
    // line's own re-read of its attempt can free it.
    let (instance, contact): (uuid::Uuid, uuid::Uuid) =
        sqlx::query_as("SELECT instance_id, contact_id FROM attempts")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    let done = dialerd::db::recovery::recover(
        &db.pool,
        &[instance],
        Some(&[contact]),
        chrono::Utc::now(),
        dialerd::db::recovery::Interruption::OwnerStopped,
    )
    .await
    .unwrap();
    assert_eq!(done.interrupted, 1);
    eventually(10, "the freed line placing the next call", || async {
        platform.received().len() == 2
    })
    .await;
    dialer.stop().await;
}

#[tokio::test]
async fn a_call_without_a_final_status_is_closed_as_failed_after_the_limit() {
    let db = TestDb::new().await;
    let platform = Platform::start(|_| Reply::Start).await;
    seed(&db, &["+14155550001"], 1).await;
    let mut settings = platform_settings(&db, platform.addr, 1);
    settings.telephony.http.max_call_seconds = 1;
    let dialer = Dialer::start(&db, &settings, true).await;
    eventually(10, "the call closed", || async {
        db.count("SELECT count(*) FROM attempts WHERE outcome IS NOT NULL")
            .await
            == 1
    })
    .await;
    let (outcome, detail, _) = attempt_row(&db, "conv-0").await;
    assert_eq!(outcome.as_deref(), Some("failed"));
    assert_eq!(
        detail.as_deref(),
        Some("no final status within max_call_seconds (1 s)")
    );
    eventually(3, "the line freed", || async { dialer.busy().await == 0 }).await;
    // A final status arriving after that changes nothing.
    assert_eq!(
        callback(&dialer, "conv-0", "completed").await.1["result"],
        "duplicate"
    );
    dialer.stop().await;
    assert_attempts_accounted(&db.pool).await;
}

#[tokio::test]
async fn calls_resume_when_the_platform_comes_back() {
    let db = TestDb::new().await;
    // Reserve a port with nothing listening: the platform is down.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    seed(&db, &["+14155550001", "+14155550002", "+14155550003"], 10).await;
    let dialer = Dialer::start(&db, &platform_settings(&db, port, 3), true).await;
    eventually(10, "calls failing while the platform is down", || async {
        db.count("SELECT count(*) FROM attempts WHERE outcome = 'failed'")
            .await
            >= 3
    })
    .await;
    assert_eq!(
        db.count("SELECT count(*) FROM contacts WHERE status = 'pending'")
            .await
            + db.count("SELECT count(*) FROM contacts WHERE status IN ('locked', 'in_progress')")
                .await,
        3,
        "failed calls are retried by policy"
    );
    let platform = Platform::serve(
        TcpListener::bind(port).await.unwrap(),
        Arc::new(|_: &Value| Reply::StartFinal("completed")),
    );
    eventually(20, "every contact completed", || async {
        db.count("SELECT count(*) FROM contacts WHERE status = 'completed'")
            .await
            == 3
    })
    .await;
    dialer.stop().await;
    let failed_detail: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT telephony_detail FROM attempts WHERE outcome = 'failed'",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(
        failed_detail
            .iter()
            .all(|d| d.starts_with("connection error")),
        "{failed_detail:?}"
    );
    assert_eq!(
        platform.received().len(),
        3,
        "one accepted request per contact"
    );
    assert_attempts_accounted(&db.pool).await;
}

#[tokio::test]
async fn a_callback_that_overtakes_the_call_answer_still_settles_the_call() {
    let db = TestDb::new().await;
    let platform = Platform::start(|_| Reply::Slow(Duration::from_millis(700))).await;
    seed(&db, &["+14155550001"], 3).await;
    let mut settings = platform_settings(&db, platform.addr, 1);
    settings.telephony.http.request_timeout_ms = 5000;
    let dialer = Dialer::start(&db, &settings, true).await;
    eventually(10, "the call request", || async {
        platform.received().len() == 1
    })
    .await;
    let attempt_id = platform.received()[0].body["attempt_id"].clone();
    // The platform has not answered yet: no conversation id is stored.
    let body = json!({
        "conversation_id": "conv-0", "attempt_id": attempt_id, "status": "voicemail",
        "occurred_at": chrono::Utc::now()
    })
    .to_string();
    let (status, answer) = signed_callback(&dialer, &body).await;
    assert_eq!((status, answer["result"].as_str()), (200, Some("closed")));
    eventually(5, "the line freed", || async { dialer.busy().await == 0 }).await;
    dialer.stop().await;
    assert_eq!(
        attempt_row(&db, "conv-0").await.0.as_deref(),
        Some("voicemail")
    );
    assert_eq!(platform.received().len(), 1);
    assert_attempts_accounted(&db.pool).await;
}

#[tokio::test]
async fn the_callback_route_is_off_with_the_simulated_backend() {
    let app = crate::helpers::TestApp::spawn().await;
    let body =
        json!({"conversation_id": "c", "status": "completed", "occurred_at": chrono::Utc::now()})
            .to_string();
    let response = reqwest::Client::new()
        .post(format!("{}/telephony/callbacks", app.base))
        .header("X-Dialerd-Signature", signed_now(&body))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let answer: Value = response.json().await.unwrap();
    assert!(
        answer["detail"].as_str().unwrap().contains("not http"),
        "{answer}"
    );
}

/// A callback finds its attempt through indexes, however many attempts
/// there are: with sequential scans priced out of the planner's choice,
/// the lookup's plan still reads no table end to end. Without
/// `attempts_by_conversation` its only plan was a sequential scan of
/// `attempts` (111-117 ms a callback at 1,500,000 attempts).
#[tokio::test]
async fn a_callback_finds_its_attempt_without_reading_every_attempt() {
    let db = TestDb::new().await;
    let mut conn = db.pool.acquire().await.unwrap();
    sqlx::query("SET enable_seqscan = off")
        .execute(&mut *conn)
        .await
        .unwrap();
    let plan: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN {FIND_CALLBACK_ATTEMPT}"))
        .bind("conversation-1")
        .bind(Some(Uuid::now_v7()))
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    let plan = plan.join("\n");
    assert!(!plan.contains("Seq Scan"), "{plan}");
    assert!(plan.contains("attempts_by_conversation"), "{plan}");
    assert!(plan.contains("attempts_pkey"), "{plan}");
}
