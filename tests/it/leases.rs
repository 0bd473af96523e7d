//! A database outage longer than the lease is not a daemon's death: two
//! real daemons on the `http` backend, with calls live on a test platform,
//! cut off from PostgreSQL (through a proxy) past their lease and back.
//! Checked against the platform's own record of calls.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::helpers::{assert_attempts_accounted, eventually, Daemon, Logs, TestDb};
use crate::outage::{host_port, Proxy};
use crate::platform::{callback_at, callback_of, seed, Platform, Reply, SECRET, TOKEN};

const LEASE_SECONDS: u64 = 3;
const LIMIT: usize = 4;

fn numbers() -> Vec<String> {
    (0..8).map(|i| format!("+1415555{i:04}")).collect()
}

/// A daemon of 3 lines reaching PostgreSQL at `database`.
fn start(db: &TestDb, database: &str, platform: SocketAddr) -> (Daemon, Logs) {
    let base = format!("http://{platform}");
    let lease = LEASE_SECONDS.to_string();
    Daemon::logged(
        db,
        &[
            ("DATABASE_URL", database),
            ("DIALERD_DATABASE__ACQUIRE_TIMEOUT_SECONDS", "1"),
            ("DIALERD_DIALER__LINES", "3"),
            ("DIALERD_DIALER__LEASE_SECONDS", &lease),
            ("DIALERD_DIALER__HEARTBEAT_SECONDS", "1"),
            ("DIALERD_TELEPHONY__BACKEND", "http"),
            ("DIALERD_TELEPHONY__HTTP__BASE_URL", &base),
            ("DIALERD_TELEPHONY__HTTP__TOKEN", TOKEN),
            ("DIALERD_TELEPHONY__HTTP__SIGNING_SECRET", SECRET),
            ("DIALERD_TELEPHONY__HTTP__REQUEST_TIMEOUT_MS", "2000"),
        ],
    )
}

async fn api_of(logs: &Logs) -> SocketAddr {
    let event = logs.wait_for(30, "HTTP API listening").await;
    event["http_addr"].as_str().unwrap().parse().unwrap()
}

/// Two daemons, `LIMIT` calls live on the platform, then the database cut
/// off for twice the lease and restored.
struct Scene {
    db: TestDb,
    platform: Platform,
    proxy: Proxy,
    daemons: Vec<(Daemon, SocketAddr)>,
    /// The instance killed during the outage, and its calls then live.
    killed: Option<(Uuid, i64)>,
    restored_at: DateTime<Utc>,
}

impl Scene {
    /// Runs up to the outage's end; `during` runs while the database is cut off.
    /// With `kill_one`, the daemon holding the most calls is SIGKILLed
    /// while the database is away.
    async fn new(kill_one: bool) -> Scene {
        let db = TestDb::new().await;
        let platform = Platform::start(|_| Reply::Start).await;
        let numbers = numbers();
        let numbers: Vec<&str> = numbers.iter().map(String::as_str).collect();
        seed(&db, &numbers, 3).await;
        db.run(&format!(
            "UPDATE organizations SET concurrency_limit = {LIMIT}"
        ))
        .await
        .unwrap();
        let upstream = host_port(&db.url);
        let proxy = Proxy::start(upstream.clone()).await;
        let proxied = db
            .url
            .replacen(&upstream, &format!("127.0.0.1:{}", proxy.port), 1);
        let mut daemons = Vec::new();
        for _ in 0..2 {
            let (daemon, logs) = start(&db, &proxied, platform.addr);
            let api = api_of(&logs).await;
            daemons.push((daemon, api));
        }
        eventually(30, "the organization's limit of calls live", || async {
            db.count("SELECT count(*) FROM attempts WHERE conversation_id IS NOT NULL AND outcome IS NULL")
                .await
                == LIMIT as i64
        })
        .await;
        let busiest: (Uuid, i64, i32) = sqlx::query_as(
            "SELECT a.instance_id, count(*), i.pid FROM attempts a JOIN dialer_instances i ON i.id = a.instance_id
              WHERE a.outcome IS NULL GROUP BY a.instance_id, i.pid ORDER BY 2 DESC LIMIT 1",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();

        proxy.cut();
        let cut_at = Instant::now();
        // While the database is unreachable a callback is refused with 503,
        // so the platform sends it again: never 200.
        let (status, body) = callback_at(daemons[0].1, "conv-0", "ringing").await;
        assert_eq!(status, 503, "{body}");
        let mut killed = None;
        if kill_one {
            let (instance, calls, pid) = busiest;
            let at = daemons
                .iter()
                .position(|(d, _)| d.0.id() as i32 == pid)
                .expect("the busiest instance is one of the daemons");
            let (mut daemon, _) = daemons.remove(at);
            daemon.kill();
            killed = Some((instance, calls));
        }
        // The outage lasts twice the lease.
        while cut_at.elapsed() < Duration::from_secs(2 * LEASE_SECONDS) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        proxy.restore();
        let restored_at: DateTime<Utc> = sqlx::query_scalar("SELECT now()")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        Scene {
            db,
            platform,
            proxy,
            daemons,
            killed,
            restored_at,
        }
    }

    /// Waits until the live daemons have been connected again for more
    /// than a whole lease: past the point where a judge would act.
    async fn past_the_judging_point(&self, instances: usize) {
        let after = self.restored_at + chrono::Duration::seconds(LEASE_SECONDS as i64 + 1);
        eventually(30, "heartbeats a lease after the outage", || async {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM dialer_instances WHERE heartbeat_at > $1",
            )
            .bind(after)
            .fetch_one(&self.db.pool)
            .await
            .unwrap()
                == instances as i64
        })
        .await;
    }

    /// Plays the platform: ends every call it was asked for with a signed
    /// `completed` callback to a live daemon, until every contact is done.
    /// Returns when each call ended, by request index.
    async fn complete_every_call(&self, skip: &[usize]) -> HashMap<usize, Instant> {
        let mut ended = HashMap::new();
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            let received = self.platform.received();
            for (i, request) in received.iter().enumerate() {
                if ended.contains_key(&i) || skip.contains(&i) {
                    continue;
                }
                let api = self.daemons[i % self.daemons.len()].1;
                // The platform calls back at once, maybe before its answer
                // to the request has reached the daemon: it names the attempt.
                let attempt = request.body["attempt_id"].as_str();
                let (status, body) =
                    callback_of(api, &format!("conv-{i}"), attempt, "completed").await;
                assert_eq!(status, 200, "{body}");
                assert_eq!(body["result"], "closed", "call {i}: {body}");
                ended.insert(i, Instant::now());
            }
            let done = self
                .db
                .count("SELECT count(*) FROM contacts WHERE status = 'completed'")
                .await;
            if done == 8 {
                return ended;
            }
            assert!(Instant::now() < until, "contacts left undone: {done} of 8");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

#[tokio::test]
async fn an_outage_longer_than_the_lease_takes_no_live_call_for_dead() {
    let scene = Scene::new(false).await;
    scene.past_the_judging_point(2).await;
    assert_eq!(
        scene
            .db
            .count("SELECT count(*) FROM attempts WHERE outcome = 'interrupted'")
            .await,
        0,
        "no attempt of a live call was closed as interrupted"
    );
    let ended = scene.complete_every_call(&[]).await;

    let received = scene.platform.received();
    assert_eq!(received.len(), 8, "each contact was dialed exactly once");
    let mut keys: Vec<&str> = received
        .iter()
        .map(|r| r.idempotency_key.as_str())
        .collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), 8);
    assert_eq!(
        scene
            .db
            .count("SELECT count(*) FROM attempts WHERE outcome = 'completed'")
            .await,
        8
    );
    // The organization's limit, by an exact sweep of the platform's record:
    // each call is live from its request to its final callback.
    let mut edges: Vec<(Instant, i32)> = Vec::new();
    for (i, r) in received.iter().enumerate() {
        edges.push((r.at, 1));
        edges.push((ended[&i], -1));
    }
    edges.sort_by_key(|&(t, step)| (t, step));
    let (mut live, mut most) = (0, 0);
    for (_, step) in edges {
        live += step;
        most = most.max(live);
    }
    assert_eq!(most, LIMIT as i32, "calls live at once on the platform");
    assert_attempts_accounted(&scene.db.pool).await;
    drop(scene.proxy);
}

#[tokio::test]
async fn a_daemon_really_killed_during_the_outage_has_its_calls_recovered_for_retry() {
    let scene = Scene::new(true).await;
    let (killed, in_flight) = scene.killed.expect("a daemon was killed");
    assert!(in_flight > 0);
    // Its calls are recovered once the survivor has been connected a lease.
    eventually(30, "the killed daemon's calls recovered", || async {
        scene
            .db
            .count("SELECT count(*) FROM attempts WHERE outcome = 'interrupted'")
            .await
            == in_flight
    })
    .await;
    let interrupted: Vec<(Uuid, Uuid)> =
        sqlx::query_as("SELECT id, instance_id FROM attempts WHERE outcome = 'interrupted'")
            .fetch_all(&scene.db.pool)
            .await
            .unwrap();
    assert!(interrupted.iter().all(|(_, owner)| *owner == killed));
    // The platform never ends the killed daemon's calls here (their
    // callbacks would be late); every other call is completed.
    let killed_calls: Vec<usize> = scene
        .platform
        .received()
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            interrupted
                .iter()
                .any(|(id, _)| id.to_string() == r.idempotency_key)
        })
        .map(|(i, _)| i)
        .collect();
    assert_eq!(killed_calls.len() as i64, in_flight);
    scene.complete_every_call(&killed_calls).await;
    // Retried by policy (one second later), never at once.
    assert_eq!(
        scene
            .db
            .count(
                "SELECT count(*) FROM attempts i JOIN attempts n ON n.contact_id = i.contact_id
                    AND n.attempt_number = i.attempt_number + 1
                  WHERE i.outcome = 'interrupted' AND n.created_at >= i.ended_at + interval '1 second'"
            )
            .await,
        in_flight
    );
    assert_eq!(scene.platform.received().len() as i64, 8 + in_flight);
    assert_attempts_accounted(&scene.db.pool).await;
    // The killed daemon's calls went on at the platform; their final
    // callbacks, late, are recorded on their attempts, and leave the
    // contacts to the calls made since.
    for i in &killed_calls {
        let (status, body) = callback_at(scene.daemons[0].1, &format!("conv-{i}"), "busy").await;
        assert_eq!(
            (status, &body["result"]),
            (200, &serde_json::json!("late")),
            "{body}"
        );
    }
    assert_eq!(
        scene
            .db
            .count("SELECT count(*) FROM attempts WHERE outcome = 'busy'")
            .await,
        in_flight
    );
    assert_eq!(
        scene
            .db
            .count("SELECT count(*) FROM contacts WHERE status = 'completed'")
            .await,
        8
    );
    // They really did overlap the calls made since: the limit of a
    // daemon's death while the platform goes on (README, "Crashes").
    assert_eq!(
        scene
            .db
            .count("SELECT count(*) FROM attempts WHERE outcome IS NULL")
            .await,
        0
    );
}
