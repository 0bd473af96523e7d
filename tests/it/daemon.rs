//! The real `dialerd` binary: SIGKILL mid-run and restart, two daemons on
//! one database, and SIGTERM draining.

use std::time::Duration;

use dialerd::db::campaigns::{self, NewCampaign};
use dialerd::db::configurations::{self, ConfigurationBody};
use dialerd::db::contacts::{self, NewContact, Scope};
use dialerd::domain::agent::AgentFields;
use dialerd::domain::phone::E164;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{around_the_clock, assert_attempts_accounted, eventually, Daemon, TestDb};
use crate::metrics::{free_port, metric};
use crate::record::{
    assert_calls_have_attempts, assert_no_contact_in_two_calls, attempt_concurrency, Call, CallLog,
};

/// An organization with one around-the-clock campaign of `n` contacts.
pub async fn seed(db: &TestDb, name: &str, limit: i32, n: u32) -> Uuid {
    let org = dialerd::admin::create_org(&db.pool, name, limit)
        .await
        .unwrap();
    let body: ConfigurationBody = serde_json::from_value(json!({
        "name": "c", "schedule": around_the_clock(),
        "dialing_policy": {"max_attempts": 3, "retry_delay_seconds": 1}, "agent": {}
    }))
    .unwrap();
    let config = configurations::create(&db.pool, org, &body).await.unwrap();
    let new = NewCampaign {
        name: name.into(),
        configuration_id: config.id,
        priority: 1,
        external_id: None,
        agent: AgentFields::default(),
    };
    let campaign = campaigns::create(&db.pool, org, new).await.unwrap();
    let all: Vec<NewContact> = (0..n)
        .map(|i| NewContact {
            id: None,
            external_id: Some(format!("{name}-{i}")),
            phone_numbers: vec![
                E164::strict(&format!("+1415555{i:04}")).unwrap(),
                E164::strict(&format!("+1212555{i:04}")).unwrap(),
            ],
            data: json!({}),
            timezone: None,
            scheduled_at: None,
            agent: AgentFields::default(),
        })
        .collect();
    for chunk in all.chunks(1000) {
        contacts::upsert(
            &db.pool,
            org,
            Scope::Campaign {
                id: campaign.id,
                priority: 1,
            },
            chunk,
        )
        .await
        .unwrap()
        .unwrap();
    }
    org
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    db.count(sql).await
}

async fn all_final(db: &TestDb) -> bool {
    count(
        db,
        "SELECT count(*) FROM contacts WHERE status NOT IN ('completed', 'exhausted')",
    )
    .await
        == 0
}

#[tokio::test]
async fn a_daemon_killed_mid_run_loses_nothing_and_dials_no_one_twice_at_once() {
    let db = TestDb::new().await;
    seed(&db, "crash", 40, 600).await;
    let log = CallLog::new();
    let env = [
        ("DIALERD_DIALER__LINES", "30"),
        ("DIALERD_TELEPHONY__SIMULATED__MEAN_CALL_MS", "300"),
        ("DIALERD_TELEPHONY__SIMULATED__ANSWER_RATE", "0.6"),
        ("DIALERD_TELEPHONY__SIMULATED__CALL_LOG", log.path()),
    ];
    let mut first = Daemon::start(&db, &env);
    eventually(30, "calls in flight", || async {
        count(&db, "SELECT count(*) FROM attempts WHERE outcome IS NULL").await >= 10
            && count(
                &db,
                "SELECT count(*) FROM attempts WHERE outcome IS NOT NULL",
            )
            .await
                >= 30
    })
    .await;
    first.kill();
    let killed_at = chrono::Utc::now();
    let in_flight = count(
        &db,
        "SELECT count(*) FROM contacts WHERE status IN ('locked', 'in_progress')",
    )
    .await;
    assert!(in_flight > 0, "the kill should catch calls in flight");

    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut second_env = env.to_vec();
    second_env.push(("DIALERD_METRICS__LISTEN", &listen));
    let mut second = Daemon::start(&db, &second_env);
    eventually(90, "every contact final after the restart", || {
        all_final(&db)
    })
    .await;
    // The claims the second daemon took back from the first, counted.
    let recovered = metric(port, "dialerd_claims_recovered_total", &[]).await;
    second.terminate();
    assert!(second.wait_exit(Duration::from_secs(20)).await.success());

    assert_attempts_accounted(&db.pool).await;
    let interrupted = count(
        &db,
        "SELECT count(*) FROM attempts WHERE outcome = 'interrupted'",
    )
    .await;
    assert!(
        interrupted > 0 && interrupted <= in_flight,
        "interrupted {interrupted}, in flight {in_flight}"
    );
    assert_eq!(
        recovered as i64, in_flight,
        "claims recovered, by the metric"
    );
    // A recovered call is retried after the retry delay, never at once.
    let hasty = count(
        &db,
        "SELECT count(*) FROM attempts i JOIN attempts n ON n.contact_id = i.contact_id
                AND n.attempt_number = i.attempt_number + 1
          WHERE i.outcome = 'interrupted' AND n.created_at < i.ended_at + interval '1 second'",
    )
    .await;
    assert_eq!(hasty, 0);
    assert_eq!(
        count(&db, "SELECT count(DISTINCT instance_id) FROM attempts").await,
        2
    );
    assert_eq!(count(&db, "SELECT count(*) FROM dialer_instances").await, 0);
    // The network's record: no contact in two calls at once (a call the
    // kill cut off lasted until the kill), every call with its attempt,
    // and every attempt with a result from a call the network placed.
    let calls = log.calls();
    assert_no_contact_in_two_calls(&calls, Some(killed_at));
    assert_calls_have_attempts(&db.pool, &calls).await;
    let unplaced = count_placed(&db, &calls, "outcome <> 'interrupted'").await;
    assert_eq!(unplaced, 0, "a result without a call");
}

/// Attempts matching `filter` that the network has no call for.
async fn count_placed(db: &TestDb, calls: &[Call], filter: &str) -> i64 {
    let placed: Vec<Uuid> = calls.iter().map(|c| c.attempt).collect();
    sqlx::query_scalar(&format!(
        "SELECT count(*) FROM attempts WHERE {filter} AND id <> ALL($1)"
    ))
    .bind(&placed)
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn two_daemons_share_a_backlog_within_every_limit() {
    let db = TestDb::new().await;
    let a = seed(&db, "alpha", 6, 400).await;
    let log = CallLog::new();
    let b = seed(&db, "beta", 12, 400).await;
    let env = [
        ("DIALERD_DIALER__LINES", "10"),
        ("DIALERD_DIALER__GLOBAL_CONCURRENCY_LIMIT", "14"),
        ("DIALERD_TELEPHONY__SIMULATED__MEAN_CALL_MS", "40"),
        ("DIALERD_TELEPHONY__SIMULATED__ANSWER_RATE", "0.7"),
        ("DIALERD_TELEPHONY__SIMULATED__CALL_LOG", log.path()),
    ];
    let _one = Daemon::start(&db, &env);
    let _two = Daemon::start(&db, &env);
    eventually(90, "the backlog finished", || all_final(&db)).await;
    // Every limit held at every instant: swept over each attempt's start
    // and end, not sampled.
    let (per_org, max_total) = attempt_concurrency(&db.pool, None).await;
    let (max_a, max_b) = (per_org[&a], per_org[&b]);
    assert!(
        max_a <= 6 && max_b <= 12 && max_total <= 14,
        "a={max_a} b={max_b} total={max_total}"
    );
    assert!(
        max_total >= 10,
        "the daemons should fill the global limit: {max_total}"
    );
    assert_eq!(
        count(&db, "SELECT count(DISTINCT instance_id) FROM attempts").await,
        2,
        "both daemons dialed"
    );
    assert_attempts_accounted(&db.pool).await;
    // The network's record: each attempt placed once, by one daemon, and
    // no contact in two calls at once.
    let calls = log.calls();
    assert_no_contact_in_two_calls(&calls, None);
    assert_calls_have_attempts(&db.pool, &calls).await;
    assert_eq!(
        count_placed(&db, &calls, "true").await,
        0,
        "an attempt never placed"
    );
    assert_eq!(
        calls.len() as i64,
        count(&db, "SELECT count(*) FROM attempts").await
    );
}

#[tokio::test]
async fn sigterm_stops_new_calls_and_lets_calls_in_flight_finish() {
    let db = TestDb::new().await;
    let org = seed(&db, "drain", 50, 40).await;
    // Ad-hoc contacts too: no campaign actor gates them, so only the
    // drain's own stop keeps them from being dialed.
    let ad_hoc: Vec<NewContact> = (0..20)
        .map(|i| NewContact {
            id: None,
            external_id: Some(format!("ad-hoc-{i}")),
            phone_numbers: vec![E164::strict(&format!("+1312555{i:04}")).unwrap()],
            data: json!({}),
            timezone: None,
            scheduled_at: None,
            agent: AgentFields::default(),
        })
        .collect();
    contacts::upsert(&db.pool, org, Scope::AdHoc, &ad_hoc)
        .await
        .unwrap()
        .unwrap();
    let log = CallLog::new();
    let env = [
        ("DIALERD_DIALER__LINES", "8"),
        ("DIALERD_DIALER__DRAIN_TIMEOUT_SECONDS", "20"),
        ("DIALERD_TELEPHONY__SIMULATED__MEAN_CALL_MS", "1500"),
        ("DIALERD_TELEPHONY__SIMULATED__DURATION", "fixed"),
        ("DIALERD_TELEPHONY__SIMULATED__CALL_LOG", log.path()),
    ];
    let mut daemon = Daemon::start(&db, &env);
    eventually(30, "eight calls in flight", || async {
        count(&db, "SELECT count(*) FROM attempts WHERE outcome IS NULL").await == 8
    })
    .await;
    let signalled = chrono::Utc::now();
    daemon.terminate();
    assert!(daemon.wait_exit(Duration::from_secs(20)).await.success());
    // The eight lines were busy until after the signal: a drain that went
    // on claiming would have placed calls when they freed up.
    let calls = log.calls();
    let late: Vec<&Call> = calls.iter().filter(|c| c.placed > signalled).collect();
    assert!(late.is_empty(), "calls placed after SIGTERM: {late:?}");
    assert!(
        calls.len() >= 8 && calls.iter().all(|c| c.ended.is_some()),
        "every call in flight finished: {calls:?}"
    );
    assert_calls_have_attempts(&db.pool, &calls).await;
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM attempts WHERE outcome = 'interrupted'"
        )
        .await,
        0
    );
    // Each call the network placed finished with its result written.
    let done = count(
        &db,
        "SELECT count(*) FROM attempts WHERE outcome IS NOT NULL",
    )
    .await;
    assert_eq!(done as usize, calls.len());
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM contacts WHERE status IN ('locked', 'in_progress')"
        )
        .await,
        0
    );
    assert_eq!(count(&db, "SELECT count(*) FROM dialer_instances").await, 0);
    assert_attempts_accounted(&db.pool).await;
}

#[tokio::test]
async fn sigterm_past_the_drain_timeout_releases_calls_as_interrupted_for_retry() {
    let db = TestDb::new().await;
    seed(&db, "cut", 50, 20).await;
    let env = [
        ("DIALERD_DIALER__LINES", "5"),
        ("DIALERD_DIALER__DRAIN_TIMEOUT_SECONDS", "0"),
        ("DIALERD_TELEPHONY__SIMULATED__MEAN_CALL_MS", "60000"),
        ("DIALERD_TELEPHONY__SIMULATED__DURATION", "fixed"),
    ];
    let mut daemon = Daemon::start(&db, &env);
    eventually(30, "five calls in flight", || async {
        count(&db, "SELECT count(*) FROM attempts WHERE outcome IS NULL").await == 5
    })
    .await;
    daemon.terminate();
    assert!(daemon.wait_exit(Duration::from_secs(15)).await.success());
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM attempts WHERE outcome = 'interrupted'"
        )
        .await,
        5
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM contacts c JOIN attempts a ON a.contact_id = c.id
              WHERE c.status = 'pending' AND c.attempt_count = 1 AND a.outcome = 'interrupted'
                AND c.next_attempt_at >= a.ended_at + interval '1 second'"
        )
        .await,
        5,
        "interrupted contacts wait for their retry"
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM contacts WHERE status IN ('locked', 'in_progress')"
        )
        .await,
        0
    );
    assert_attempts_accounted(&db.pool).await;
}

#[tokio::test]
async fn a_late_result_from_a_daemon_taken_for_dead_is_fenced_and_counted() {
    let db = TestDb::new().await;
    seed(&db, "late", 10, 3).await;
    let (port_a, port_b) = (free_port(), free_port());
    let (listen_a, listen_b) = (format!("127.0.0.1:{port_a}"), format!("127.0.0.1:{port_b}"));
    let mut a = Daemon::start(
        &db,
        &[
            ("DIALERD_DIALER__LINES", "3"),
            ("DIALERD_TELEPHONY__SIMULATED__MEAN_CALL_MS", "4000"),
            ("DIALERD_TELEPHONY__SIMULATED__DURATION", "fixed"),
            ("DIALERD_TELEPHONY__SIMULATED__ANSWER_RATE", "1.0"),
            ("DIALERD_METRICS__LISTEN", &listen_a),
        ],
    );
    eventually(30, "three calls in flight", || async {
        count(&db, "SELECT count(*) FROM attempts WHERE outcome IS NULL").await == 3
    })
    .await;
    let instance_a: Uuid = sqlx::query_scalar("SELECT DISTINCT instance_id FROM attempts")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    // A stops answering (paused longer than its lease) with its calls live.
    a.signal("-STOP");
    let mut b = Daemon::start(
        &db,
        &[
            ("DIALERD_DIALER__LINES", "3"),
            ("DIALERD_TELEPHONY__SIMULATED__MEAN_CALL_MS", "50"),
            ("DIALERD_TELEPHONY__SIMULATED__ANSWER_RATE", "1.0"),
            ("DIALERD_METRICS__LISTEN", &listen_b),
        ],
    );
    eventually(
        30,
        "B took A for dead and finished its contacts",
        || async { all_final(&db).await },
    )
    .await;
    assert_eq!(
        metric(
            port_b,
            "dialerd_claims_recovered_total",
            &[("state", "interrupted")]
        )
        .await,
        3.0
    );
    // A wakes; its calls end and its results come late: fenced, counted.
    a.signal("-CONT");
    eventually(30, "A's late results fenced", || async {
        metric(port_a, "dialerd_results_fenced_total", &[]).await == 3.0
    })
    .await;
    assert_eq!(
        metric(port_a, "dialerd_results_written_total", &[]).await,
        0.0
    );
    let kept: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM attempts WHERE instance_id = $1 AND outcome = 'interrupted'",
    )
    .bind(instance_a)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(kept, 3, "a fenced result changed nothing");
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM contacts WHERE status = 'completed' AND attempt_count = 2"
        )
        .await,
        3
    );
    for daemon in [&mut a, &mut b] {
        daemon.terminate();
        assert!(daemon.wait_exit(Duration::from_secs(20)).await.success());
    }
    assert_attempts_accounted(&db.pool).await;
}
