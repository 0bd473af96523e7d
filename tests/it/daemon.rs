//! The real `dialerd` binary: SIGKILL mid-run and restart, two daemons on
//! one database, and SIGTERM draining.

use std::time::{Duration, Instant};

use dialerd::db::campaigns::{self, NewCampaign};
use dialerd::db::configurations::{self, ConfigurationBody};
use dialerd::db::contacts::{self, NewContact, Scope};
use dialerd::domain::agent::AgentFields;
use dialerd::domain::phone::E164;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{around_the_clock, assert_attempts_accounted, eventually, Daemon, TestDb};

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
    let env = [
        ("DIALERD_DIALER__LINES", "30"),
        ("DIALERD_TELEPHONY__SIMULATED__MEAN_CALL_MS", "300"),
        ("DIALERD_TELEPHONY__SIMULATED__ANSWER_RATE", "0.6"),
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
    let in_flight = count(
        &db,
        "SELECT count(*) FROM contacts WHERE status IN ('locked', 'in_progress')",
    )
    .await;
    assert!(in_flight > 0, "the kill should catch calls in flight");

    let mut second = Daemon::start(&db, &env);
    eventually(90, "every contact final after the restart", || {
        all_final(&db)
    })
    .await;
    second.terminate();
    assert!(second.wait_exit(Duration::from_secs(20)).success());

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
}

#[tokio::test]
async fn two_daemons_share_a_backlog_within_every_limit() {
    let db = TestDb::new().await;
    let a = seed(&db, "alpha", 6, 400).await;
    let b = seed(&db, "beta", 12, 400).await;
    let env = [
        ("DIALERD_DIALER__LINES", "10"),
        ("DIALERD_DIALER__GLOBAL_CONCURRENCY_LIMIT", "14"),
        ("DIALERD_TELEPHONY__SIMULATED__MEAN_CALL_MS", "40"),
        ("DIALERD_TELEPHONY__SIMULATED__ANSWER_RATE", "0.7"),
    ];
    let _one = Daemon::start(&db, &env);
    let _two = Daemon::start(&db, &env);
    let (mut max_a, mut max_b, mut max_total) = (0, 0, 0);
    let until = Instant::now() + Duration::from_secs(90);
    while !all_final(&db).await {
        assert!(
            Instant::now() < until,
            "the backlog was not finished in time"
        );
        let (na, nb): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE organization_id = $1), count(*) FILTER (WHERE organization_id = $2)
               FROM contacts WHERE status IN ('locked', 'in_progress')",
        )
        .bind(a)
        .bind(b)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        (max_a, max_b, max_total) = (max_a.max(na), max_b.max(nb), max_total.max(na + nb));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
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
}

#[tokio::test]
async fn sigterm_stops_new_calls_and_lets_calls_in_flight_finish() {
    let db = TestDb::new().await;
    seed(&db, "drain", 50, 40).await;
    let env = [
        ("DIALERD_DIALER__LINES", "8"),
        ("DIALERD_DIALER__DRAIN_TIMEOUT_SECONDS", "20"),
        ("DIALERD_TELEPHONY__SIMULATED__MEAN_CALL_MS", "1500"),
        ("DIALERD_TELEPHONY__SIMULATED__DURATION", "fixed"),
    ];
    let mut daemon = Daemon::start(&db, &env);
    eventually(30, "eight calls in flight", || async {
        count(&db, "SELECT count(*) FROM attempts WHERE outcome IS NULL").await == 8
    })
    .await;
    let signalled: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    daemon.terminate();
    assert!(daemon.wait_exit(Duration::from_secs(20)).success());
    let late: i64 = sqlx::query_scalar("SELECT count(*) FROM attempts WHERE created_at > $1")
        .bind(signalled + chrono::Duration::milliseconds(200))
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(late, 0, "no call starts after SIGTERM");
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM attempts WHERE outcome = 'interrupted'"
        )
        .await,
        0
    );
    // The eight calls in flight at SIGTERM finished (more may have started
    // just before the signal on a loaded machine).
    let done = count(
        &db,
        "SELECT count(*) FROM attempts WHERE outcome IS NOT NULL",
    )
    .await;
    assert!(done >= 8, "{done} calls finished");
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
    assert!(daemon.wait_exit(Duration::from_secs(15)).success());
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
