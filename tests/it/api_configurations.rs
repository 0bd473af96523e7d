use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{detail, TestApp};

#[tokio::test]
async fn a_configuration_is_created_with_defaults_for_the_sections_left_out() {
    let app = TestApp::spawn().await;
    let (status, body) = app
        .post("/campaign/configurations", json!({"name": "Bare"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(body["schedule"]["default_timezone"], "America/New_York");
    assert_eq!(body["schedule"]["default_windows"], json!([]));
    assert_eq!(body["dialing_policy"]["max_attempts"], 3);
    assert_eq!(body["dialing_policy"]["default_country"], json!(null));
    assert_eq!(body["agent"]["agent_id"], json!(null));
}

#[tokio::test]
async fn configurations_are_listed_read_patched_and_deleted() {
    let app = TestApp::spawn().await;
    let id = app.configuration().await;
    let (status, list) = app.get("/campaign/configurations").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["configurations"][0]["id"], id.as_str());

    let (status, got) = app.get(&format!("/campaign/configurations/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["schedule"]["default_windows"][0]["start"], "09:00");

    let (status, patched) = app
        .patch(
            &format!("/campaign/configurations/{id}"),
            json!({"name": "Evenings", "agent": {"agent_id": "sales-bot", "agent_config": {"voice": "alto"}}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["name"], "Evenings");
    assert_eq!(patched["agent"]["agent_config"]["voice"], "alto");
    // Sections not given keep their values.
    assert_eq!(patched["dialing_policy"]["default_country"], "US");
    // A section given replaces the whole section: what it leaves out
    // goes back to its default, nothing of the old section is merged in.
    let (status, patched) = app
        .patch(
            &format!("/campaign/configurations/{id}"),
            json!({"agent": {"agent_version": "7"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["agent"]["agent_version"], "7");
    assert_eq!(patched["agent"]["agent_id"], Value::Null, "{patched}");
    assert_eq!(patched["agent"]["agent_config"], Value::Null, "{patched}");
    assert_eq!(patched["name"], "Evenings");

    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/campaign/configurations/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app.get(&format!("/campaign/configurations/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(detail(&body), "configuration not found");
}

#[tokio::test]
async fn a_configuration_used_by_a_campaign_cannot_be_deleted() {
    let app = TestApp::spawn().await;
    let campaign = app.campaign(json!({})).await;
    let (_, c) = app.get(&format!("/campaign/campaigns/{campaign}")).await;
    let config = c["configuration_id"].as_str().unwrap();
    let (status, body) = app
        .call(
            Method::DELETE,
            &format!("/campaign/configurations/{config}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(detail(&body).contains("used by a campaign"));
    assert_eq!(app.db.count("SELECT count(*) FROM configurations").await, 1);
}

#[tokio::test]
async fn unknown_or_malformed_configuration_ids_are_not_found() {
    let app = TestApp::spawn().await;
    for id in ["00000000-0000-0000-0000-000000000000", "not-a-uuid"] {
        let (status, _) = app.get(&format!("/campaign/configurations/{id}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = app
            .patch(
                &format!("/campaign/configurations/{id}"),
                json!({"name": "x"}),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn bad_schedules_and_policies_are_refused_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let window = |start: &str, end: &str| json!({"days": ["mon"], "start": start, "end": end});
    let cases = [
        (
            json!({"name": "x", "schedule": {"default_windows": [window("09:00", "09:00")]}}),
            "must differ",
        ),
        (
            json!({"name": "x", "schedule": {"default_windows": [window("25:00", "09:00")]}}),
            "HH:MM",
        ),
        (
            json!({"name": "x", "schedule": {"default_windows": [{"days": [], "start": "09:00", "end": "10:00"}]}}),
            "at least one day",
        ),
        (
            json!({"name": "x", "schedule": {"default_windows": [{"days": ["someday"], "start": "09:00", "end": "10:00"}]}}),
            "someday",
        ),
        (
            json!({"name": "x", "schedule": {"default_timezone": "Europe/Atlantis"}}),
            "unknown IANA time zone",
        ),
        (
            json!({"name": "x", "schedule": {"overrides": [{"timezone": "Nowhere/Land", "windows": []}]}}),
            "unknown IANA time zone",
        ),
        (
            json!({"name": "x", "schedule": {"scheduled_windows": [window("10:00", "10:00")]}}),
            "must differ",
        ),
        (
            json!({"name": "x", "dialing_policy": {"max_attempts": 0}}),
            "1 to 50",
        ),
        (
            json!({"name": "x", "dialing_policy": {"max_attempts": 51}}),
            "1 to 50",
        ),
        (
            json!({"name": "x", "dialing_policy": {"retry_delay_seconds": -5}}),
            "retry_delay_seconds",
        ),
        (
            json!({"name": "x", "dialing_policy": {"retry_delays": {"sometimes": 5}}}),
            "sometimes",
        ),
        (
            json!({"name": "x", "dialing_policy": {"default_country": "United States"}}),
            "country",
        ),
        (
            json!({"name": "x", "agent": {"agent_name": "bob"}}),
            "unknown field",
        ),
        (json!({"name": "x", "colour": "blue"}), "unknown field"),
        (json!({"name": ""}), "name"),
        (json!({"schedule": {}}), "name"),
    ];
    for (body, needle) in cases {
        let (status, resp) = app.post("/campaign/configurations", body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body} -> {resp}");
        assert!(detail(&resp).contains(needle), "{body} -> {resp}");
    }
    assert_eq!(app.db.count("SELECT count(*) FROM configurations").await, 0);

    let id = app.configuration().await;
    let (status, _) = app
        .patch(
            &format!("/campaign/configurations/{id}"),
            json!({"schedule": {"default_windows": [window("08:00", "08:00")]}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, after) = app.get(&format!("/campaign/configurations/{id}")).await;
    assert_eq!(after["schedule"]["default_windows"][0]["start"], "09:00");
}

#[tokio::test]
async fn midnight_crossing_windows_and_scheduled_overrides_are_accepted() {
    let app = TestApp::spawn().await;
    let schedule = json!({
        "default_timezone": "Europe/Berlin",
        "default_windows": [{"days": ["fri"], "start": "22:30", "end": "03:30"}],
        "overrides": [{"timezone": "Asia/Tokyo", "windows": [{"days": ["sat", "sun"], "start": "10:00", "end": "12:00"}]}],
        "scheduled_windows": [{"days": ["mon"], "start": "18:00", "end": "20:00"}],
        "scheduled_overrides": [],
        "timezone_inference": "first"
    });
    let (status, body) = app
        .post(
            "/campaign/configurations",
            json!({"name": "Night", "schedule": schedule}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["schedule"], schedule);
}
