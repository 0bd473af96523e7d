//! The real `dialerd` binary on the `http` backend, restarted the way a
//! platform team restarts it: the platform's answers for calls in flight
//! are served through the whole drain, and a failing platform is logged.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{assert_attempts_accounted, eventually, Daemon, Logs, TestDb};
use crate::platform::{callback_at, seed, Platform, Reply, SECRET, TOKEN};

const NUMBERS: [&str; 4] = [
    "+14155550001",
    "+14155550002",
    "+14155550003",
    "+14155550004",
];

/// A daemon of `lines` lines on the `http` backend pointed at `platform`.
fn start(db: &TestDb, platform: SocketAddr, lines: &str, drain_seconds: &str) -> (Daemon, Logs) {
    let base = format!("http://{platform}");
    Daemon::logged(
        db,
        &[
            ("DIALERD_DIALER__LINES", lines),
            ("DIALERD_DIALER__DRAIN_TIMEOUT_SECONDS", drain_seconds),
            ("DIALERD_TELEPHONY__BACKEND", "http"),
            ("DIALERD_TELEPHONY__HTTP__BASE_URL", &base),
            ("DIALERD_TELEPHONY__HTTP__TOKEN", TOKEN),
            ("DIALERD_TELEPHONY__HTTP__SIGNING_SECRET", SECRET),
            ("DIALERD_TELEPHONY__HTTP__REQUEST_TIMEOUT_MS", "2000"),
            ("DIALERD_TELEPHONY__HTTP__REQUEST_RETRIES", "1"),
        ],
    )
}

/// The daemon's API address, from its log.
async fn api_of(logs: &Logs) -> SocketAddr {
    let event = logs.wait_for(30, "HTTP API listening").await;
    event["http_addr"].as_str().unwrap().parse().unwrap()
}

async fn readyz(api: SocketAddr) -> (u16, Value) {
    let response = reqwest::get(format!("http://{api}/readyz")).await.unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

async fn calls_under_way(db: &TestDb, n: i64) {
    eventually(30, "calls under way on the platform", || async {
        db.count(
            "SELECT count(*) FROM attempts WHERE conversation_id IS NOT NULL AND outcome IS NULL",
        )
        .await
            == n
    })
    .await;
}

#[tokio::test]
async fn a_restart_serves_the_platforms_callbacks_until_the_last_call_settles() {
    let db = TestDb::new().await;
    let platform = Platform::start(|_| Reply::Start).await;
    seed(&db, &NUMBERS, 3).await;
    // A drain deadline far beyond what the test waits for: the drain must
    // end when the last call settles.
    let (mut daemon, logs) = start(&db, platform.addr, "4", "120");
    let api = api_of(&logs).await;
    calls_under_way(&db, 4).await;

    daemon.terminate();
    eventually(10, "readyz answering 503 while draining", || async {
        readyz(api).await
            == (
                503,
                json!({"database": true, "dialer": true, "draining": true}),
            )
    })
    .await;
    let drain_began = Instant::now();
    let conversations: Vec<String> = sqlx::query_scalar("SELECT conversation_id FROM attempts")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(conversations.len(), 4);
    for conversation in &conversations {
        let (status, body) = callback_at(api, conversation, "completed").await;
        assert_eq!((status, &body["result"]), (200, &json!("closed")), "{body}");
    }
    let exit = daemon.wait_exit(Duration::from_secs(60)).await;
    assert!(exit.success(), "{exit:?}");
    assert!(
        drain_began.elapsed() < Duration::from_secs(60),
        "the drain waited for its deadline"
    );
    let drained = logs.wait_for(5, "drain finished").await;
    assert_eq!(drained["drained"], true);
    assert_eq!(drained["interrupted"], 0);

    assert_eq!(
        db.count("SELECT count(*) FROM attempts WHERE outcome = 'completed'")
            .await,
        4
    );
    assert_eq!(
        db.count("SELECT count(*) FROM contacts WHERE status = 'completed'")
            .await,
        4
    );
    assert_eq!(platform.received().len(), 4, "no contact is dialed again");
    assert_eq!(db.count("SELECT count(*) FROM dialer_instances").await, 0);
    assert_attempts_accounted(&db.pool).await;
}

#[tokio::test]
async fn a_drain_whose_deadline_passes_first_interrupts_the_calls_and_their_late_answers_count() {
    let db = TestDb::new().await;
    let platform = Platform::start(|_| Reply::Start).await;
    seed(&db, &NUMBERS, 3).await;
    let (mut daemon, logs) = start(&db, platform.addr, "4", "1");
    let api = api_of(&logs).await;
    calls_under_way(&db, 4).await;

    daemon.terminate();
    assert!(daemon.wait_exit(Duration::from_secs(30)).await.success());
    let drained = logs.wait_for(5, "drain finished").await;
    assert_eq!(drained["drained"], false);
    assert_eq!(drained["interrupted"], 4);
    assert_eq!(
        db.count(
            "SELECT count(*) FROM contacts c JOIN attempts a ON a.contact_id = c.id
              WHERE a.outcome = 'interrupted' AND c.status = 'pending' AND c.attempt_count = 1
                AND c.next_attempt_at >= a.ended_at + interval '1 second'"
        )
        .await,
        4,
        "interrupted calls wait for their retry"
    );
    // The listener closed with the drain: the platform's retries go to the
    // next process.
    assert!(reqwest::get(format!("http://{api}/healthz")).await.is_err());
    assert_eq!(platform.received().len(), 4);
    assert_attempts_accounted(&db.pool).await;

    // The calls went on at the platform. Their answers reach the next
    // process: each is recorded as its attempt's outcome and moves its
    // contact on, so a completed call is never made again.
    let next = ApiOnly::start(&db).await;
    for (i, status) in ["completed", "completed", "busy", "unanswered"]
        .iter()
        .enumerate()
    {
        let (code, body) = callback_at(next.addr, &format!("conv-{i}"), status).await;
        assert_eq!((code, &body["result"]), (200, &json!("closed")), "{body}");
    }
    assert_eq!(
        db.count("SELECT count(*) FROM contacts WHERE status = 'completed'")
            .await,
        2
    );
    assert_eq!(
        db.count("SELECT count(*) FROM attempts WHERE outcome = 'interrupted'")
            .await,
        0
    );
    assert_eq!(
        db.count(
            "SELECT count(*) FROM contacts WHERE status = 'pending' AND last_outcome IN ('busy', 'no_answer')"
        )
        .await,
        2,
        "unfinished calls are retried by policy"
    );
    let (code, body) = callback_at(next.addr, "conv-0", "completed").await;
    assert_eq!(
        (code, &body["result"]),
        (200, &json!("duplicate")),
        "{body}"
    );
    assert_attempts_accounted(&db.pool).await;
}

/// The API of a next process, without a dialing engine: it receives callbacks.
struct ApiOnly {
    addr: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl ApiOnly {
    async fn start(db: &TestDb) -> ApiOnly {
        let mut settings = crate::helpers::settings_for(db);
        settings.telephony.backend = dialerd::settings::Backend::Http;
        settings.telephony.http.signing_secret = SECRET.into();
        settings.telephony.http.token = TOKEN.into();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = dialerd::app::Running::start(&settings, db.pool.clone(), None, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
        ApiOnly {
            addr: running.http_addr,
            _stop: stop,
        }
    }
}

#[tokio::test]
async fn a_platform_outage_is_logged_once_when_it_starts_and_once_when_it_ends() {
    let db = TestDb::new().await;
    let down = Arc::new(AtomicBool::new(false));
    let is_down = down.clone();
    let platform = Platform::start(move |_| {
        if is_down.load(Ordering::SeqCst) {
            Reply::Status(503, json!({"error": "maintenance"}))
        } else {
            Reply::StartFinal("unanswered")
        }
    })
    .await;
    // Unanswered calls retried every second keep the lines busy.
    seed(&db, &NUMBERS, 50).await;
    let (_daemon, logs) = start(&db, platform.addr, "4", "5");
    eventually(30, "calls being placed", || async {
        platform.received().len() >= 4
    })
    .await;

    down.store(true, Ordering::SeqCst);
    let failing = logs
        .wait_for(
            20,
            "the voice-agent platform is failing: call requests get no answer or a retryable error",
        )
        .await;
    assert_eq!(failing["level"], "WARN");
    assert_eq!(failing["failures"], 1);
    let outage = Instant::now();
    // The outage lasts five seconds of dialing.
    while outage.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let failed_during = db
        .count("SELECT count(*) FROM attempts WHERE telephony_detail = 'http 503'")
        .await;
    assert!(failed_during >= 2, "dialing went on during the outage");
    down.store(false, Ordering::SeqCst);
    let back = logs
        .wait_for(20, "the voice-agent platform answers again")
        .await;
    assert_eq!(back["level"], "INFO");
    assert!(back["failures"].as_u64().unwrap() >= 2, "{back}");

    assert_eq!(
        logs.events(
            "the voice-agent platform is failing: call requests get no answer or a retryable error"
        )
        .len(),
        1
    );
    assert_eq!(
        logs.events("the voice-agent platform answers again").len(),
        1
    );
}
