//! The capacity forecast: bad input named, the database only read, the
//! rules that shape it (windows, limits), and its finish times checked
//! against the real engine dialing the same backlog.

use std::process::Command;
use std::time::Duration;

use chrono::{DateTime, Duration as Span, Timelike, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{
    around_the_clock, detail, engine_settings, eventually, start_engine, TestApp,
};

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// A schedule with one window a day, `hours` long from `start` (UTC
/// wall-clock hh:mm, read in each contact's zone).
fn window_from(start: DateTime<Utc>, hours: u32) -> Value {
    let end = start + Span::hours(i64::from(hours));
    json!({"default_windows": [{
        "days": DAYS,
        "start": format!("{:02}:{:02}", start.hour(), start.minute()),
        "end": format!("{:02}:{:02}", end.hour(), end.minute()),
    }]})
}

/// The next whole minute at least `secs` seconds from now.
fn minute_after(secs: i64) -> DateTime<Utc> {
    let t = Utc::now() + Span::seconds(secs + 59);
    t.with_second(0).unwrap().with_nanosecond(0).unwrap()
}

/// `n` contacts in `zone`, external ids `prefix-i`, numbers from `base`.
fn contacts(prefix: &str, n: u32, base: u32, zone: &str) -> Value {
    (0..n)
        .map(|i| {
            json!({"external_id": format!("{prefix}-{i}"),
                   "phone_numbers": [format!("+1415{:07}", base + i)],
                   "timezone": zone})
        })
        .collect()
}

/// A digest of every row a forecast could touch.
async fn digest(app: &TestApp) -> String {
    sqlx::query_scalar(
        "SELECT concat_ws('/',
            (SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM contacts t),
            (SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM attempts t),
            (SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM campaigns t),
            (SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM organizations t),
            (SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM organization_due t))",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap()
}

fn dialerd_forecast(app: &TestApp, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dialerd"))
        .arg("forecast")
        .args(args)
        .env("DATABASE_URL", &app.db.url)
        .env("RUST_LOG", "warn")
        .output()
        .expect("dialerd runs")
}

fn campaign_of<'a>(scenario: &'a Value, id: &str) -> &'a Value {
    scenario["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("campaign {id} in {scenario}"))
}

fn at(v: &Value) -> DateTime<Utc> {
    v.as_str()
        .unwrap_or_else(|| panic!("a time, got {v}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn bad_input_is_refused_naming_the_field_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let campaign = app
        .campaign_with(
            json!({"schedule": around_the_clock(), "dialing_policy": {"default_country": "US"}}),
            json!({"external_id": "spring"}),
        )
        .await;
    app.contacts(&campaign, contacts("c", 30, 5_550_000, "America/New_York"))
        .await;
    let (_, other) = app.other_org().await;
    let before = digest(&app).await;

    // The API.
    let past = (Utc::now() - Span::hours(1)).to_rfc3339();
    for (body, status, field) in [
        (
            json!({"lines": [0]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "lines:",
        ),
        (
            json!({"lines": [5, 200000]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "lines:",
        ),
        (
            json!({"until": past}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "until:",
        ),
        (
            json!({"horizon_days": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "horizon_days:",
        ),
        (
            json!({"answer_rate": 1.5}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "answer_rate:",
        ),
        (
            json!({"mean_call_s": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "mean_call_s:",
        ),
        (
            json!({"call_shape": "lumpy"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "call_shape",
        ),
        (
            json!({"lines": [3], "surprise": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "surprise",
        ),
        (
            json!({"campaigns": ["nope"]}),
            StatusCode::NOT_FOUND,
            "campaigns: no campaign `nope`",
        ),
    ] {
        let (got, answer) = app.post("/campaign/forecast", body.clone()).await;
        assert_eq!(got, status, "{body} -> {answer}");
        assert!(detail(&answer).contains(field), "{body} -> {answer}");
    }
    // Another organization's campaign is unknown to this one.
    let (got, answer) = app
        .call_as(
            Some(&other),
            Method::POST,
            "/campaign/forecast",
            Some(json!({"campaigns": [campaign]})),
        )
        .await;
    assert_eq!(got, StatusCode::NOT_FOUND, "{answer}");
    assert!(detail(&answer).starts_with("campaigns:"), "{answer}");

    // The command line.
    let dir = std::env::temp_dir().join(format!("dialerd-forecast-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad_scenario = dir.join("bad.json");
    std::fs::write(
        &bad_scenario,
        r#"{"organizations": [{"name": "a", "concurrency_limit": 5}],
            "campaigns": [{"name": "x", "organization": "a", "schedule": {"default_windows": 7}, "contacts": []}]}"#,
    )
    .unwrap();
    let scenario_arg = bad_scenario.to_str().unwrap();
    for (args, field) in [
        (vec!["--campaign", "nope"], "campaigns: no campaign `nope`"),
        (vec!["--lines", "0"], "lines:"),
        (vec!["--until", "2020-01-01T00:00:00Z"], "until:"),
        (
            vec!["--scenario", scenario_arg],
            "scenario: campaigns[0].schedule.default_windows",
        ),
    ] {
        let out = dialerd_forecast(&app, &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(field), "{args:?}: {stderr}");
    }

    // A good forecast on the command line: a table, a chart, JSON.
    let chart = dir.join("plan.svg");
    let until = (Utc::now() + Span::days(1)).to_rfc3339();
    let out = dialerd_forecast(
        &app,
        &[
            "--campaign",
            "spring",
            "--lines",
            "1,5",
            "--until",
            &until,
            "--answer-rate",
            "1",
            "--mean-call-s",
            "60",
            "--call-shape",
            "fixed",
            "--chart",
            chart.to_str().unwrap(),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Engine test"), "{stdout}");
    assert!(
        stdout.contains("smallest line count finishing by"),
        "{stdout}"
    );
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert!(svg.contains("<svg") && svg.contains("polyline"), "{svg}");
    let out = dialerd_forecast(&app, &["--campaign", "spring", "--lines", "5", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["scenarios"][0]["campaigns"][0]["contacts"], 30);
    assert!(!answer["scenarios"][0]["hours"]
        .as_array()
        .unwrap()
        .is_empty());
    std::fs::remove_dir_all(&dir).unwrap();

    assert_eq!(
        digest(&app).await,
        before,
        "a forecast changed the database"
    );
}

#[tokio::test]
async fn windows_shift_the_finish_and_lines_beyond_the_limit_change_nothing() {
    let app = TestApp::spawn().await; // the organization's limit is 10
                                      // One schedule: a window from a minute or two from now for 8 hours,
                                      // read in each contact's zone. In UTC it opens now; six hours west
                                      // (Etc/GMT+6 is UTC-6) it opens six hours later.
    let opens = minute_after(30);
    let config =
        json!({"schedule": window_from(opens, 8), "dialing_policy": {"default_country": "US"}});
    let east = app
        .campaign_with(config.clone(), json!({"name": "east"}))
        .await;
    let west = app.campaign_with(config, json!({"name": "west"})).await;
    app.contacts(&east, contacts("e", 100, 5_550_000, "Etc/UTC"))
        .await;
    app.contacts(&west, contacts("w", 100, 5_560_000, "Etc/GMT+6"))
        .await;
    let params = json!({"answer_rate": 1, "mean_call_s": 60, "call_shape": "fixed"});

    let mut body = params.clone();
    body["campaigns"] = json!([east, west]);
    body["lines"] = json!([10]);
    let (status, answer) = app.post("/campaign/forecast", body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["behaviour"][0]["source"], "parameters");
    let scenario = &answer["scenarios"][0];
    let east_done = at(&campaign_of(scenario, &east)["finishes_at"]);
    let west_done = at(&campaign_of(scenario, &west)["finishes_at"]);
    // 100 one-minute calls on 10 lines: ten minutes after the window opens.
    assert_eq!(east_done, opens + Span::minutes(10), "{scenario}");
    assert_eq!(west_done - east_done, Span::hours(6), "{scenario}");
    assert_eq!(campaign_of(scenario, &west)["completed"], 100);

    // Four times the organization's limit in lines finishes no sooner.
    let mut body = params;
    body["campaigns"] = json!([east]);
    body["lines"] = json!([10, 40]);
    let (status, answer) = app.post("/campaign/forecast", body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let scenarios = answer["scenarios"].as_array().unwrap();
    assert_eq!(scenarios[0]["finishes_at"], scenarios[1]["finishes_at"]);
    assert_eq!(scenarios[1]["lines"], 40);
    assert_eq!(scenarios[1]["binding"], "organization limit", "{answer}");
    assert!(
        scenarios[1]["waits"]["organization_limit"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert_eq!(scenarios[1]["waits"]["lines"], 0.0);
}

/// The forecast against the engine: two campaigns of different priority
/// with retries, the second in a window that opens during the run, one
/// second calls on 20 lines; each campaign's real finish is within 10%
/// of the forecast one.
#[tokio::test]
async fn the_forecast_finish_matches_the_engine_dialing_the_same_backlog() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .call(
            Method::PUT,
            "/campaign/concurrency-settings",
            Some(json!({"concurrency_limit": 20})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let policy = json!({"default_country": "US", "max_attempts": 3, "retry_delay_seconds": 5});
    let first = app
        .campaign_with(
            json!({"schedule": around_the_clock(), "dialing_policy": policy}),
            json!({"name": "first", "priority": 2}),
        )
        .await;
    let opens = minute_after(50);
    let later = app
        .campaign_with(
            json!({"schedule": window_from(opens, 6), "dialing_policy": policy}),
            json!({"name": "later", "priority": 1}),
        )
        .await;
    app.contacts(&first, contacts("f", 400, 5_550_000, "America/New_York"))
        .await;
    app.contacts(&later, contacts("l", 300, 5_560_000, "Etc/UTC"))
        .await;

    let (status, answer) = app
        .post(
            "/campaign/forecast",
            json!({"lines": [20], "answer_rate": 0.5, "mean_call_s": 1, "call_shape": "fixed"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let start = at(&answer["start"]);
    let scenario = &answer["scenarios"][0];

    let mut settings = engine_settings(&app.db, 20);
    let simulated = &mut settings.telephony.simulated;
    simulated.answer_rate = 0.5;
    simulated.mean_call_ms = 1000;
    simulated.duration = dialerd::settings::DurationShape::Fixed;
    simulated.unanswered = dialerd::settings::OutcomeMix::only_no_answer();
    let began = Utc::now();
    let engine = start_engine(&app.db, &settings, dialerd::clock::SystemClock).await;
    eventually(300, "every contact finished", || async {
        app.db
            .count("SELECT count(*) FROM contacts WHERE status NOT IN ('completed', 'exhausted')")
            .await
            == 0
    })
    .await;
    engine.stop(Duration::from_secs(5)).await.unwrap();

    for (id, name) in [(&first, "first"), (&later, "later")] {
        let real: DateTime<Utc> =
            sqlx::query_scalar("SELECT max(ended_at) FROM attempts WHERE campaign_id = $1::uuid")
                .bind(id)
                .fetch_one(&app.db.pool)
                .await
                .unwrap();
        let forecast = at(&campaign_of(scenario, id)["finishes_at"]);
        let real_s = (real - began).num_milliseconds() as f64 / 1000.0;
        let forecast_s = (forecast - start).num_milliseconds() as f64 / 1000.0;
        let error = (forecast_s - real_s).abs() / real_s;
        eprintln!(
            "{name}: forecast {forecast_s:.1} s, real {real_s:.1} s, error {:.1}%",
            error * 100.0
        );
        assert!(
            error <= 0.10,
            "{name}: forecast {forecast_s:.1} s, real {real_s:.1} s ({scenario})"
        );
    }
    // The window held the second campaign back in both.
    let first_call: DateTime<Utc> =
        sqlx::query_scalar("SELECT min(created_at) FROM attempts WHERE campaign_id = $1::uuid")
            .bind(&later)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert!(
        first_call >= opens,
        "called at {first_call}, window opens {opens}"
    );
}
