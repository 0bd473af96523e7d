//! The dialing engine in-process, against a real PostgreSQL, with an
//! injected clock where time matters.

use std::time::Duration;

use chrono::{Duration as Span, Utc, Weekday};
use dialerd::clock::{ManualClock, SystemClock};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{
    around_the_clock, assert_attempts_accounted, cycles_ran, engine_settings, eventually,
    lock_waits, plans_published, start_engine, upcoming, TestApp, TestDb,
};
use crate::record::{assert_calls_have_attempts, attempt_concurrency, CallLog};

async fn attempts_of(app: &TestApp, external_id: &str) -> Vec<Value> {
    sqlx::query_scalar(
        "SELECT json_build_object('number', a.phone_number, 'outcome', a.outcome, 'agent_id', a.agent_id,
                                  'agent_version', a.agent_version, 'agent_number', a.agent_number,
                                  'initial_context', a.initial_context)
           FROM attempts a JOIN contacts c ON c.id = a.contact_id
          WHERE c.external_id = $1 ORDER BY a.attempt_number",
    )
    .bind(external_id)
    .fetch_all(&app.db.pool)
    .await
    .unwrap()
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    app.db.count(sql).await
}

#[tokio::test]
async fn contacts_are_dialed_by_priority_then_fresh_before_retries_then_oldest_due() {
    let app = TestApp::spawn().await;
    let high = app
        .campaign_with(
            json!({"schedule": around_the_clock()}),
            json!({"priority": 5}),
        )
        .await;
    let low = app
        .campaign_with(
            json!({"schedule": around_the_clock()}),
            json!({"priority": 1}),
        )
        .await;
    let c =
        |id: &str, n: u32| json!({"external_id": id, "phone_numbers": [format!("+1415555{n:04}")]});
    app.contacts(
        &high,
        json!([c("a_retry", 1), c("a_fresh_new", 2), c("a_fresh_old", 3)]),
    )
    .await;
    app.contacts(&low, json!([c("b_fresh", 4), c("b_retry", 5)]))
        .await;
    app.contacts("default", json!([c("adhoc", 6)])).await;
    let t0 = Utc::now() + Span::hours(1);
    for (id, minutes_before, retry) in [
        ("a_retry", 5, true),
        ("a_fresh_new", 2, false),
        ("a_fresh_old", 3, false),
        ("b_fresh", 10, false),
        ("b_retry", 20, true),
        ("adhoc", 1, false),
    ] {
        sqlx::query(
            "UPDATE contacts SET next_attempt_at = $2, attempt_count = $3 WHERE external_id = $1",
        )
        .bind(id)
        .bind(t0 - Span::minutes(minutes_before))
        .bind(i32::from(retry))
        .execute(&app.db.pool)
        .await
        .unwrap();
    }
    // The retries' earlier calls, long over.
    sqlx::query(
        "INSERT INTO attempts (id, organization_id, contact_id, campaign_id, attempt_number, phone_number, instance_id,
                               outcome, created_at, ended_at)
         SELECT gen_random_uuid(), organization_id, id, campaign_id, 1, phone_numbers[1], gen_random_uuid(),
                'no_answer', now() - interval '1 day', now() - interval '1 day'
           FROM contacts WHERE attempt_count = 1",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
    let clock = ManualClock::at(Utc::now());
    let engine = start_engine(&app.db, &engine_settings(&app.db, 1), clock.clone()).await;
    // Both campaigns' plans are in before anything is due.
    plans_published(&engine, 2).await;
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM contacts WHERE status <> 'pending'"
        )
        .await,
        0
    );
    clock.set(t0 + Span::minutes(1));
    eventually(10, "all six dialed", || async {
        count(
            &app,
            "SELECT count(*) FROM contacts WHERE status = 'completed'",
        )
        .await
            == 6
    })
    .await;
    assert_eq!(
        app.dial_order().await,
        [
            "adhoc",
            "a_fresh_old",
            "a_fresh_new",
            "a_retry",
            "b_fresh",
            "b_retry"
        ]
    );
    engine.stop(Duration::from_secs(5)).await.unwrap();
    assert_attempts_accounted(&app.db.pool).await;
}

#[tokio::test]
async fn calling_windows_gate_each_contact_by_its_own_local_time() {
    let app = TestApp::spawn().await;
    let weekdays = ["mon", "tue", "wed", "thu", "fri"];
    let schedule = json!({
        "default_timezone": "America/New_York",
        "default_windows": [{"days": weekdays, "start": "09:00", "end": "17:00"}],
        "overrides": [
            {"timezone": "Europe/Berlin", "windows": [{"days": ["fri"], "start": "22:30", "end": "03:30"}]},
            {"timezone": "Asia/Tokyo", "windows": [{"days": ["sat"], "start": "10:00", "end": "12:00"}]}
        ],
        "scheduled_windows": [{"days": ["fri"], "start": "18:00", "end": "21:00"}],
        // Contacts without a zone use the default one here (their +1 415
        // numbers would say Los Angeles): tests/it/engine.rs's inference
        // test covers zones from numbers.
        "timezone_inference": "off"
    });
    let campaign = app
        .campaign_with(
            json!({"schedule": schedule, "dialing_policy": {"default_country": "US"}}),
            json!({}),
        )
        .await;
    // Saturday 01:00 UTC: Friday 20:00 in New York, 19:00 in Chicago, 17:00 in Los Angeles,
    // Saturday 02:00 in Berlin (Friday's midnight-crossing window), 10:00 in Tokyo.
    let saturday = upcoming(Weekday::Sat, 1, 0, chrono_tz::UTC);
    let scheduled = (saturday - Span::minutes(30)).to_rfc3339();
    let contact = |id: &str, n: u32, tz: Option<&str>| json!({"external_id": id, "phone_numbers": [format!("415555{n:04}")], "timezone": tz});
    let mut ny_scheduled = contact("ny_scheduled", 7, None);
    ny_scheduled["scheduled_at"] = json!(scheduled);
    app.contacts(
        &campaign,
        json!([
            contact("ny", 1, None),
            contact("chicago", 2, Some("America/Chicago")),
            contact("la", 3, Some("America/Los_Angeles")),
            contact("berlin", 4, Some("Europe/Berlin")),
            contact("tokyo", 5, Some("Asia/Tokyo")),
            ny_scheduled,
        ]),
    )
    .await;
    let clock = ManualClock::at(saturday);
    let engine = start_engine(&app.db, &engine_settings(&app.db, 5), clock.clone()).await;
    eventually(10, "the open zones dialed", || async {
        count(&app, "SELECT count(*) FROM attempts").await == 3
    })
    .await;
    // The other zones' windows are shut: claims go on and take nothing.
    cycles_ran(&engine).await;
    let mut dialed = app.dial_order().await;
    dialed.sort();
    assert_eq!(dialed, ["berlin", "ny_scheduled", "tokyo"]);

    // Monday 17:00 UTC: 12:00 in New York, 11:00 in Chicago, 09:00 in Los Angeles.
    clock.set(saturday + Span::days(2) + Span::hours(16));
    eventually(
        10,
        "every contact dialed once its window opened",
        || async {
            count(
                &app,
                "SELECT count(*) FROM contacts WHERE status = 'completed'",
            )
            .await
                == 6
        },
    )
    .await;
    engine.stop(Duration::from_secs(5)).await.unwrap();
}

/// The second Sunday of March of a year whose previous Sunday is still ahead.
fn next_us_dst_start() -> chrono::NaiveDate {
    use chrono::Datelike;
    let today = Utc::now().date_naive();
    (today.year()..)
        .map(|y| {
            let first = chrono::NaiveDate::from_ymd_opt(y, 3, 1).unwrap();
            let to_sunday = (7 - first.weekday().num_days_from_sunday()) % 7;
            first + Span::days(i64::from(to_sunday) + 7)
        })
        .find(|d| *d - Span::days(7) > today + Span::days(1))
        .unwrap()
}

#[tokio::test]
async fn a_contact_without_a_zone_is_called_in_the_zones_of_its_numbers() {
    let app = TestApp::spawn().await;
    let every_day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let schedule = |inference: &str| {
        json!({"schedule": {
            "default_timezone": "America/New_York",
            "default_windows": [{"days": every_day, "start": "09:00", "end": "21:00"}],
            "timezone_inference": inference},
          "dialing_policy": {"default_country": "US"}})
    };
    let strict = app
        .campaign_with(schedule("strict"), json!({"name": "strict"}))
        .await;
    let off = app
        .campaign_with(schedule("off"), json!({"name": "off"}))
        .await;
    let contact = |id: &str, numbers: &[&str], tz: Option<&str>| json!({"external_id": id, "phone_numbers": numbers, "timezone": tz});
    app.contacts(
        &strict,
        json!([
            contact("new_york", &["+12125550101"], None),
            contact("los_angeles", &["+14155550102"], None),
            contact("honolulu", &["+18085550103"], None),
            contact("stated", &["+18085550104"], Some("America/New_York")),
            contact("toll_free", &["+18005550105"], None),
            contact("two_zones", &["+12125550106", "+18085550107"], None),
        ]),
    )
    .await;
    app.contacts(&off, json!([contact("off", &["+18085550108"], None)]))
        .await;
    // Wednesday 15:00 UTC: 10:00 in New York, 07:00 in Los Angeles, 05:00 in Honolulu.
    let wednesday = upcoming(Weekday::Wed, 15, 0, chrono_tz::UTC);
    let clock = ManualClock::at(wednesday);
    let engine = start_engine(&app.db, &engine_settings(&app.db, 5), clock.clone()).await;
    eventually(10, "New York's numbers and zones dialed", || async {
        count(&app, "SELECT count(*) FROM attempts").await == 3
    })
    .await;
    cycles_ran(&engine).await;
    let mut dialed = app.dial_order().await;
    dialed.sort();
    // A stated zone wins over its number's; with inference off, the default zone.
    assert_eq!(dialed, ["new_york", "off", "stated"]);

    // 19:30 UTC: 14:30 in New York, 11:30 in Los Angeles, 09:30 in Honolulu.
    clock.set(wednesday + Span::minutes(270));
    eventually(10, "every zone of the numbers open", || async {
        count(&app, "SELECT count(*) FROM attempts").await == 6
    })
    .await;
    cycles_ran(&engine).await;
    let mut dialed = app.dial_order().await;
    dialed.sort();
    assert_eq!(
        dialed,
        [
            "honolulu",
            "los_angeles",
            "new_york",
            "off",
            "stated",
            "two_zones"
        ]
    );
    // A toll-free number could be anywhere on the plan, Guam to Pago Pago:
    // it waits until the window is open in every one of its zones.
    let (_, why) = app
        .get(&format!(
            "/campaign/campaigns/{strict}/contacts/toll_free/explain"
        ))
        .await;
    let window = why["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["gate"] == "window")
        .unwrap()
        .clone();
    let detail = window["detail"].as_str().unwrap();
    assert!(
        detail.contains("Pacific/Guam") && detail.contains("Pacific/Pago_Pago"),
        "{detail}"
    );
    // 23:30 UTC: 09:30 (Thursday) in Guam, 12:30 in Pago Pago, 20:00 in St John's.
    clock.set(wednesday + Span::minutes(510));
    eventually(10, "the toll-free number dialed", || async {
        count(&app, "SELECT count(*) FROM attempts").await == 7
    })
    .await;
    let (_, two) = app
        .get(&format!("/campaign/campaigns/{strict}/contacts/two_zones"))
        .await;
    let zones: Vec<&str> = two["attempts"][0]["evidence"]["zones"]
        .as_array()
        .unwrap()
        .iter()
        .map(|z| z["zone"].as_str().unwrap())
        .collect();
    assert_eq!(zones, ["America/New_York", "Pacific/Honolulu"]);
    engine.stop(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn windows_follow_the_contacts_clock_across_a_dst_change() {
    let app = TestApp::spawn().await;
    let schedule = json!({"default_timezone": "America/New_York", "default_windows": [{"days": ["sun"], "start": "09:00", "end": "10:00"}], "timezone_inference": "off"});
    let campaign = app
        .campaign_with(json!({"schedule": schedule}), json!({}))
        .await;
    app.contacts(
        &campaign,
        json!([{"external_id": "ny", "phone_numbers": ["+14155550001"]}]),
    )
    .await;
    let dst_day = next_us_dst_start();
    let at_1330_utc = |d: chrono::NaiveDate| d.and_hms_opt(13, 30, 0).unwrap().and_utc();
    // The Sunday before: 13:30 UTC is 08:30 EST, outside 09:00-10:00.
    let clock = ManualClock::at(at_1330_utc(dst_day - Span::days(7)));
    let engine = start_engine(&app.db, &engine_settings(&app.db, 1), clock.clone()).await;
    plans_published(&engine, 1).await;
    cycles_ran(&engine).await;
    assert_eq!(count(&app, "SELECT count(*) FROM attempts").await, 0);
    // On the DST day the same 13:30 UTC is 09:30 EDT: inside the window.
    clock.set(at_1330_utc(dst_day));
    eventually(10, "the contact dialed on the DST day", || async {
        count(&app, "SELECT count(*) FROM attempts").await == 1
    })
    .await;
    engine.stop(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn retries_rotate_numbers_wait_per_outcome_and_exhaust_at_max_attempts() {
    let app = TestApp::spawn().await;
    let config = json!({
        "schedule": around_the_clock(),
        "dialing_policy": {"max_attempts": 4, "retry_delay_seconds": 600, "retry_delays": {"busy": 30}},
        "agent": {"agent_id": "config-bot", "agent_version": "1", "agent_number": "+14155550100", "initial_context": "config context"}
    });
    let campaign = app
        .campaign_with(config, json!({"agent_version": "2"}))
        .await;
    app.contacts(&campaign, json!([{
        "external_id": "multi", "phone_numbers": ["+14155550001", "+14155550002", "+14155550003"], "agent_id": "contact-bot"
    }]))
    .await;
    let mut settings = engine_settings(&app.db, 1);
    settings.telephony.simulated.answer_rate = 0.0;
    settings.telephony.simulated.unanswered.no_answer = 0.0;
    settings.telephony.simulated.unanswered.busy = 1.0;
    let start = Utc::now() + Span::minutes(1);
    let clock = ManualClock::at(start);
    let engine = start_engine(&app.db, &settings, clock.clone()).await;
    for n in 1..=4 {
        eventually(10, &format!("attempt {n}"), || async {
            count(
                &app,
                "SELECT count(*) FROM attempts WHERE outcome IS NOT NULL",
            )
            .await
                == n
                && count(
                    &app,
                    "SELECT count(*) FROM contacts WHERE status IN ('pending', 'exhausted')",
                )
                .await
                    == 1
        })
        .await;
        if n < 4 {
            let due: chrono::DateTime<Utc> =
                sqlx::query_scalar("SELECT next_attempt_at FROM contacts")
                    .fetch_one(&app.db.pool)
                    .await
                    .unwrap();
            let expected = clock_now(&clock) + Span::seconds(30);
            assert!(
                (due - expected).num_milliseconds().abs() < 1,
                "busy waits its own delay: {due} vs {expected}"
            );
            // Not redialed before the delay.
            clock.advance(Span::seconds(29));
            cycles_ran(&engine).await;
            assert_eq!(count(&app, "SELECT count(*) FROM attempts").await, n);
            clock.advance(Span::seconds(1));
        }
    }
    let attempts = attempts_of(&app, "multi").await;
    let numbers: Vec<&str> = attempts
        .iter()
        .map(|a| a["number"].as_str().unwrap())
        .collect();
    assert_eq!(
        numbers,
        [
            "+14155550001",
            "+14155550002",
            "+14155550003",
            "+14155550001"
        ]
    );
    assert!(attempts.iter().all(|a| a["outcome"] == "busy"));
    // Agent: contact's id, campaign's version, configuration's number and context.
    assert_eq!(attempts[0]["agent_id"], "contact-bot");
    assert_eq!(attempts[0]["agent_version"], "2");
    assert_eq!(attempts[0]["agent_number"], "+14155550100");
    assert_eq!(attempts[0]["initial_context"], "config context");
    let (_, contact) = app
        .get(&format!("/campaign/campaigns/{campaign}/contacts/multi"))
        .await;
    assert_eq!(contact["status"], "exhausted");
    assert_eq!(contact["attempt_count"], 4);
    assert_eq!(contact["last_outcome"], "busy");
    engine.stop(Duration::from_secs(5)).await.unwrap();
    assert_attempts_accounted(&app.db.pool).await;
}

fn clock_now(clock: &ManualClock) -> chrono::DateTime<Utc> {
    use dialerd::clock::Clock;
    clock.now()
}

#[tokio::test]
async fn invalid_numbers_are_retired_and_a_contact_out_of_numbers_is_exhausted() {
    let app = TestApp::spawn().await;
    let campaign = app
        .campaign_with(
            json!({"schedule": around_the_clock(), "dialing_policy": {"max_attempts": 5}}),
            json!({}),
        )
        .await;
    app.contacts(
        &campaign,
        json!([{"external_id": "bad", "phone_numbers": ["+14155550001", "+14155550002"]}]),
    )
    .await;
    let mut settings = engine_settings(&app.db, 1);
    settings.telephony.simulated.answer_rate = 0.0;
    settings.telephony.simulated.unanswered.no_answer = 0.0;
    settings.telephony.simulated.unanswered.invalid_number = 1.0;
    let engine = start_engine(&app.db, &settings, SystemClock).await;
    eventually(10, "the contact exhausted", || async {
        count(
            &app,
            "SELECT count(*) FROM contacts WHERE status = 'exhausted'",
        )
        .await
            == 1
    })
    .await;
    let attempts = attempts_of(&app, "bad").await;
    let numbers: Vec<&str> = attempts
        .iter()
        .map(|a| a["number"].as_str().unwrap())
        .collect();
    // Each number is tried once, right away; then none is left, well before max_attempts.
    assert_eq!(numbers, ["+14155550001", "+14155550002"]);
    let retired: Vec<i32> = sqlx::query_scalar("SELECT retired_numbers FROM contacts")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(retired, [0, 1]);
    engine.stop(Duration::from_secs(5)).await.unwrap();
}

async fn lifecycle(app: &TestApp, campaign: &str, action: &str) -> StatusCode {
    app.call(
        Method::POST,
        &format!("/campaign/campaigns/{campaign}/{action}"),
        None,
    )
    .await
    .0
}

/// Waits until the engine holds no claim, and has claimed twice since:
/// a call it were to place wrongly would be placed by then.
async fn stopped_dialing(app: &TestApp, engine: &dialerd::actors::Engine) {
    eventually(10, "no claim held", || async {
        count(
            app,
            "SELECT count(*) FROM contacts WHERE status IN ('locked', 'in_progress')",
        )
        .await
            == 0
    })
    .await;
    cycles_ran(engine).await;
}

/// Asserts, from the network's record, that every call placed after `at`
/// (the commit of a pause or close) had its attempt written before it: it
/// was in the hands of its line already. None was decided after.
async fn assert_no_call_after(app: &TestApp, log: &CallLog, at: chrono::DateTime<Utc>) {
    let late = log.placed_after(at);
    let ids: Vec<Uuid> = late.iter().map(|c| c.attempt).collect();
    let written_before: i64 =
        sqlx::query_scalar("SELECT count(*) FROM attempts WHERE id = ANY($1) AND created_at < $2")
            .bind(&ids)
            .bind(at)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(
        written_before as usize,
        late.len(),
        "a call decided after the pause: {late:?}"
    );
    let written_after_any: i64 =
        sqlx::query_scalar("SELECT count(*) FROM attempts WHERE created_at >= $1")
            .bind(at)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(written_after_any, 0, "an attempt written after the pause");
}

async fn db_now(app: &TestApp) -> chrono::DateTime<Utc> {
    sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn pause_by_api_or_by_sql_stops_new_calls_within_a_second_and_start_resumes() {
    let app = TestApp::spawn().await;
    let campaign = app
        .campaign_with(
            json!({"schedule": around_the_clock(), "dialing_policy": {"default_country": "US"}}),
            json!({}),
        )
        .await;
    let list: Vec<Value> = (0..2000)
        .map(|n| json!({"phone_numbers": [format!("415555{n:04}")]}))
        .collect();
    app.contacts(&campaign, json!(list)).await;
    let mut settings = engine_settings(&app.db, 8);
    settings.telephony.simulated.mean_call_ms = 30;
    let log = CallLog::new();
    settings.telephony.simulated.call_log = log.path().into();
    let engine = start_engine(&app.db, &settings, SystemClock).await;
    let attempts = || async { count(&app, "SELECT count(*) FROM attempts").await };
    eventually(10, "calls under way", || async { attempts().await > 20 }).await;

    assert_eq!(lifecycle(&app, &campaign, "pause").await, StatusCode::OK);
    let paused_at = db_now(&app).await;
    stopped_dialing(&app, &engine).await;
    assert_no_call_after(&app, &log, paused_at).await;
    let frozen = attempts().await;
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM contacts WHERE status IN ('locked', 'in_progress')"
        )
        .await,
        0
    );

    assert_eq!(lifecycle(&app, &campaign, "start").await, StatusCode::OK);
    eventually(10, "calls resumed", || async {
        attempts().await > frozen + 20
    })
    .await;

    sqlx::query("UPDATE campaigns SET status = 'paused' WHERE id = $1::uuid")
        .bind(&campaign)
        .execute(&app.db.pool)
        .await
        .unwrap();
    // Read the time after the commit: a claim whose statement began before the
    // commit legitimately saw the campaign active (clock_timestamp() inside the
    // UPDATE would precede the commit and count it as "after the pause").
    let paused_at = db_now(&app).await;
    stopped_dialing(&app, &engine).await;
    assert_no_call_after(&app, &log, paused_at).await;

    sqlx::query("UPDATE campaigns SET status = 'active' WHERE id = $1::uuid")
        .bind(&campaign)
        .execute(&app.db.pool)
        .await
        .unwrap();
    let resumed = attempts().await;
    eventually(10, "calls resumed after the SQL start", || async {
        attempts().await > resumed + 20
    })
    .await;

    assert_eq!(lifecycle(&app, &campaign, "close").await, StatusCode::OK);
    let closed_at = db_now(&app).await;
    assert_eq!(
        lifecycle(&app, &campaign, "start").await,
        StatusCode::BAD_REQUEST
    );
    stopped_dialing(&app, &engine).await;
    assert_no_call_after(&app, &log, closed_at).await;
    let calls = log.calls();
    assert!(calls.len() as i64 > frozen, "the record holds the calls");
    assert!(calls
        .iter()
        .all(|c| c.campaign.map(|id| id.to_string()) == Some(campaign.clone())));
    assert_calls_have_attempts(&app.db.pool, &log.calls()).await;
    engine.stop(Duration::from_secs(5)).await.unwrap();
    assert_attempts_accounted(&app.db.pool).await;
}

/// Samples active calls (locked or in progress) per organization.
async fn sample_active(app: &TestApp, orgs: [Uuid; 2], for_ms: u64) -> Vec<(i64, i64)> {
    let mut samples = Vec::new();
    let until = std::time::Instant::now() + Duration::from_millis(for_ms);
    while std::time::Instant::now() < until {
        let row: (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE organization_id = $1), count(*) FILTER (WHERE organization_id = $2)
               FROM contacts WHERE status IN ('locked', 'in_progress')",
        )
        .bind(orgs[0])
        .bind(orgs[1])
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
        samples.push(row);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    samples
}

#[tokio::test]
async fn organizations_stay_within_their_limits_and_share_the_global_limit_in_proportion() {
    let mut app = TestApp::spawn().await;
    let (other, other_token) = app.other_org().await;
    sqlx::query(
        "UPDATE organizations SET concurrency_limit = CASE WHEN id = $1 THEN 10 ELSE 20 END",
    )
    .bind(app.org)
    .execute(&app.db.pool)
    .await
    .unwrap();
    let list: Vec<Value> = (0..1500)
        .map(|n| json!({"phone_numbers": [format!("+1415555{n:04}")]}))
        .collect();
    let mine = app
        .campaign_with(json!({"schedule": around_the_clock()}), json!({}))
        .await;
    app.contacts(&mine, json!(list)).await;
    let own_token = std::mem::replace(&mut app.token, other_token);
    let theirs = app
        .campaign_with(json!({"schedule": around_the_clock()}), json!({}))
        .await;
    app.contacts(&theirs, json!(list)).await;
    app.token = own_token;

    let mut settings = engine_settings(&app.db, 40);
    settings.dialer.global_concurrency_limit = 12;
    settings.telephony.simulated.mean_call_ms = 60;
    settings.telephony.simulated.duration = dialerd::settings::DurationShape::Uniform;
    let engine = start_engine(&app.db, &settings, SystemClock).await;
    eventually(10, "both organizations dialing", || async {
        count(&app, "SELECT count(DISTINCT organization_id) FROM attempts").await == 2
    })
    .await;
    let samples = sample_active(&app, [app.org, other], 3000).await;
    // Every limit held at every instant: swept over each attempt's start
    // and end, not sampled.
    let (per_org, total) = attempt_concurrency(&app.db.pool, None).await;
    let (max_a, max_b) = (per_org[&app.org], per_org[&other]);
    assert!(
        max_a <= 10 && max_b <= 20 && total <= 12,
        "a={max_a} b={max_b} total={total}"
    );
    assert_eq!(total, 12, "the global limit is used");
    // Shares of 12 in proportion 10:20 are 4 and 8.
    let mean = |f: fn(&(i64, i64)) -> i64| {
        samples.iter().map(f).sum::<i64>() as f64 / samples.len() as f64
    };
    let (mean_a, mean_b) = (mean(|s| s.0), mean(|s| s.1));
    assert!(
        (3.0..=5.0).contains(&mean_a) && (6.5..=9.0).contains(&mean_b),
        "mean a={mean_a:.2} b={mean_b:.2}"
    );

    // An organization's own limit binds when the global one does not.
    sqlx::query("UPDATE organizations SET concurrency_limit = 3 WHERE id = $1")
        .bind(app.org)
        .execute(&app.db.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE campaigns SET status = 'paused' WHERE organization_id = $1")
        .bind(other)
        .execute(&app.db.pool)
        .await
        .unwrap();
    // Calls placed under the old limit end; from then on the new one holds.
    eventually(10, "the calls over the new limit ended", || async {
        count(
            &app,
            "SELECT count(*) FROM contacts WHERE status IN ('locked', 'in_progress')",
        )
        .await
            <= 3
    })
    .await;
    let limited_at = db_now(&app).await;
    let samples = sample_active(&app, [app.org, other], 1500).await;
    let (per_org, _) = attempt_concurrency(&app.db.pool, Some(limited_at)).await;
    assert!(per_org[&app.org] <= 3, "a={}", per_org[&app.org]);
    // The limit is reached and the slots are kept mostly busy (how full
    // depends on how fast a freed slot is claimed again on a loaded machine).
    let at_limit = samples.iter().filter(|s| s.0 == 3).count();
    let mean_a = samples.iter().map(|s| s.0).sum::<i64>() as f64 / samples.len() as f64;
    assert!(
        at_limit > 0 && mean_a >= 1.5,
        "the limit of 3 is used: {at_limit} of {} samples at 3, mean {mean_a:.2}",
        samples.len()
    );
    engine.stop(Duration::from_secs(5)).await.unwrap();
    assert_attempts_accounted(&app.db.pool).await;
}

#[tokio::test]
async fn readiness_follows_the_database_and_the_dialer_loop() {
    let app = TestApp::spawn().await;
    let (status, body) = app.call_as(None, Method::GET, "/healthz", None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    // An API-only process is ready when its database answers.
    let (status, body) = app.call_as(None, Method::GET, "/readyz", None).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"database": true, "dialer": true, "draining": false})
        )
    );

    let settings = engine_settings(&app.db, 2);
    let engine = start_engine(&app.db, &settings, SystemClock).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = dialerd::app::Running::start(
        &settings,
        app.db.pool.clone(),
        Some(engine.probe()),
        async {
            let _ = stopped.await;
        },
    )
    .await
    .unwrap();
    let readyz = format!("http://{}/readyz", running.http_addr);
    let get = || async { reqwest::get(&readyz).await.unwrap().status() };
    assert_eq!(get().await, StatusCode::OK);
    // A dialer loop stuck on a lock is not ready.
    let mut tx = app.db.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE organization_due IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await
        .unwrap();
    lock_waits(&app.db, 1).await;
    let response = reqwest::get(&readyz).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.json::<Value>().await.unwrap()["dialer"], false);
    tx.rollback().await.unwrap();
    eventually(10, "ready again", || async {
        get().await == StatusCode::OK
    })
    .await;
    let _ = stop.send(());
    running.wait().await.unwrap();
    engine.stop(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn a_stopped_engine_leaves_no_instance_behind_even_mid_heartbeat() {
    let db = TestDb::new().await;
    let mut settings = engine_settings(&db, 1);
    settings.dialer.lease_seconds = 10;
    let engine = start_engine(&db, &settings, SystemClock).await;
    // Every heartbeat now takes 1.5 s between taking its snapshot and
    // updating the row: a stop that deregisters meanwhile must wait for it,
    // or the heartbeat finds its row gone and registers the instance again.
    sqlx::raw_sql(
        "CREATE FUNCTION slow_heartbeat() RETURNS trigger LANGUAGE plpgsql
             AS $$ BEGIN PERFORM pg_sleep(1.5); RETURN NULL; END $$;
         CREATE TRIGGER slow_heartbeat BEFORE UPDATE ON dialer_instances
             FOR EACH STATEMENT EXECUTE FUNCTION slow_heartbeat();",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    eventually(10, "a heartbeat under way", || async {
        db.count(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND query LIKE 'UPDATE dialer_instances%'
                AND wait_event = 'PgSleep'",
        )
        .await
            == 1
    })
    .await;
    engine.stop(Duration::ZERO).await.unwrap();
    assert_eq!(
        db.count("SELECT count(*) FROM dialer_instances").await,
        0,
        "the instance registered again after its stop"
    );
}

/// The value of a counter with `labels` in the process's metrics.
fn counter(name: &str, with: &[(&str, &str)]) -> f64 {
    let text = dialerd::monitoring::install().unwrap().render();
    crate::metrics::total(&crate::metrics::parse(&text), name, with)
}

#[tokio::test]
async fn failed_actors_are_replaced_and_a_line_failing_mid_call_leaves_its_call_interrupted() {
    use dialerd::actors::{campaign::CampaignMessage, keeper::KeeperMessage};
    use dialerd::actors::{line::LineMessage, poller::PollerMessage};
    let app = TestApp::spawn().await;
    let campaign = app
        .campaign_with(
            json!({"schedule": around_the_clock(),
                   "dialing_policy": {"max_attempts": 3, "retry_delay_seconds": 600}}),
            json!({}),
        )
        .await;
    let list: Vec<Value> = (0..3)
        .map(|n| json!({"phone_numbers": [format!("+1415555{n:04}")]}))
        .collect();
    app.contacts(&campaign, json!(list)).await;
    let mut settings = engine_settings(&app.db, 3);
    settings.telephony.simulated.mean_call_ms = 600_000;
    settings.telephony.simulated.duration = dialerd::settings::DurationShape::Fixed;
    let restarts = |actor: &str| counter("dialerd_actor_restarts_total", &[("actor", actor)]);
    let before: Vec<f64> = ["line", "campaign", "poller", "keeper"]
        .iter()
        .map(|a| restarts(a))
        .collect();
    let engine = start_engine(&app.db, &settings, SystemClock).await;
    eventually(10, "three calls in flight", || async {
        count(&app, "SELECT count(*) FROM attempts WHERE outcome IS NULL").await == 3
    })
    .await;
    let of = |kind: fn(&ractor::ActorCell) -> bool| -> Vec<ractor::ActorCell> {
        engine.actors().into_iter().filter(kind).collect()
    };
    let lines = of(|c| c.is_message_type_of::<LineMessage>() == Some(true));
    assert_eq!(lines.len(), 3);
    for line in &lines {
        line.kill();
    }
    // Each call whose line failed is closed as interrupted and waits for
    // its retry; the lines are replaced and dial again.
    eventually(10, "the calls interrupted", || async {
        count(
            &app,
            "SELECT count(*) FROM attempts a JOIN contacts c ON c.id = a.contact_id
              WHERE a.outcome = 'interrupted' AND a.telephony_detail = 'the line placing the call failed'
                AND c.status = 'pending' AND c.next_attempt_at >= a.ended_at + interval '600 seconds'",
        )
        .await
            == 3
    })
    .await;
    let replaced = of(|c| c.is_message_type_of::<LineMessage>() == Some(true));
    assert_eq!(replaced.len(), 3);
    assert!(replaced
        .iter()
        .all(|r| lines.iter().all(|l| l.get_id() != r.get_id())));
    app.contacts("default", json!([{"phone_numbers": ["+14155559999"]}]))
        .await;
    eventually(10, "a replaced line dialing", || async {
        count(&app, "SELECT count(*) FROM attempts WHERE outcome IS NULL").await == 1
    })
    .await;

    // The campaign actor, the poller and the keeper come back and work.
    for cell in of(|c| c.is_message_type_of::<CampaignMessage>() == Some(true)) {
        cell.kill();
    }
    eventually(10, "the campaign's actor replaced", || async {
        of(|c| c.is_message_type_of::<CampaignMessage>() == Some(true)).len() == 1
    })
    .await;
    plans_published(&engine, 1).await;
    let beat = || async {
        sqlx::query_scalar::<_, chrono::DateTime<Utc>>(
            "SELECT max(heartbeat_at) FROM dialer_instances",
        )
        .fetch_one(&app.db.pool)
        .await
        .unwrap()
    };
    for cell in of(|c| {
        c.is_message_type_of::<PollerMessage>() == Some(true)
            || c.is_message_type_of::<KeeperMessage>() == Some(true)
    }) {
        cell.kill();
    }
    let killed_at = db_now(&app).await;
    eventually(10, "a heartbeat from the new keeper", || async {
        beat().await > killed_at
    })
    .await;
    // The new poller notices a pause by SQL: the campaign's actor stops.
    sqlx::query("UPDATE campaigns SET status = 'paused' WHERE id = $1::uuid")
        .bind(&campaign)
        .execute(&app.db.pool)
        .await
        .unwrap();
    eventually(10, "the paused campaign's actor stopped", || async {
        of(|c| c.is_message_type_of::<CampaignMessage>() == Some(true)).is_empty()
    })
    .await;

    let after: Vec<f64> = ["line", "campaign", "poller", "keeper"]
        .iter()
        .map(|a| restarts(a))
        .collect();
    let moved: Vec<f64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    assert!(
        moved[0] >= 3.0 && moved[1] >= 1.0 && moved[2] >= 1.0 && moved[3] >= 1.0,
        "dialerd_actor_restarts_total moved by line, campaign, poller, keeper: {moved:?}"
    );
    engine.stop(Duration::ZERO).await.unwrap();
}
