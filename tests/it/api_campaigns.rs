use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{detail, TestApp};

#[tokio::test]
async fn a_new_campaign_starts_active_with_priority_one() {
    let app = TestApp::spawn().await;
    let config = app.configuration().await;
    let (status, body) = app
        .post(
            "/campaign/campaigns",
            json!({"name": "Renewals", "configuration_id": config, "agent_id": "renewal-bot", "agent_config": {"tone": "warm"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["status"], "active");
    assert_eq!(body["priority"], 1);
    assert_eq!(body["agent_id"], "renewal-bot");
    assert_eq!(body["agent_config"]["tone"], "warm");
    assert_eq!(body["external_id"], Value::Null);
    assert!(body["created_at"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn campaigns_resolve_by_uuid_first_then_by_external_id() {
    let app = TestApp::spawn().await;
    let a = app.campaign(json!({"external_id": "spring-2026"})).await;
    // B's external_id is A's UUID: the UUID still names A.
    let b = app.campaign(json!({"external_id": a})).await;
    let (status, got) = app.get("/campaign/campaigns/spring-2026").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["id"], a.as_str());
    let (_, got) = app.get(&format!("/campaign/campaigns/{a}")).await;
    assert_eq!(got["id"], a.as_str());
    let (_, got) = app.get(&format!("/campaign/campaigns/{b}")).await;
    assert_eq!(got["id"], b.as_str());
    let (status, body) = app.get("/campaign/campaigns/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(detail(&body), "campaign not found");
}

#[tokio::test]
async fn a_duplicate_external_id_is_a_conflict_and_writes_nothing() {
    let app = TestApp::spawn().await;
    app.campaign(json!({"external_id": "dup"})).await;
    let config = app.configuration().await;
    let (status, body) = app
        .post(
            "/campaign/campaigns",
            json!({"name": "Again", "configuration_id": config, "external_id": "dup"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(detail(&body).contains("external_id"));
    assert_eq!(app.db.count("SELECT count(*) FROM campaigns").await, 1);
}

#[tokio::test]
async fn bad_campaign_bodies_are_refused_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let config = app.configuration().await;
    let cases = [
        (
            json!({"name": "x", "configuration_id": config, "priority": 1_000_000}),
            "priority",
        ),
        (
            json!({"name": "x", "configuration_id": config, "priority": -1}),
            "priority",
        ),
        (
            json!({"name": "x", "configuration_id": config, "priority": "high"}),
            "priority",
        ),
        (
            json!({"name": "x", "configuration_id": config, "status": "paused"}),
            "unknown field",
        ),
        (
            json!({"name": "x", "configuration_id": "3f0c1d52-0000-4000-8000-000000000000"}),
            "configuration_id",
        ),
        (
            json!({"name": "x", "configuration_id": "not-a-uuid"}),
            "configuration_id",
        ),
        (
            json!({"name": "x", "configuration_id": config, "external_id": "default"}),
            "reserved",
        ),
        (
            json!({"name": "x", "configuration_id": config, "external_id": ""}),
            "external_id",
        ),
        (json!({"name": "   ", "configuration_id": config}), "name"),
        (json!({"configuration_id": config}), "name"),
    ];
    for (body, needle) in cases {
        let (status, resp) = app.post("/campaign/campaigns", body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body} -> {resp}");
        assert!(detail(&resp).contains(needle), "{body} -> {resp}");
    }
    let (status, resp) = app.post_raw("/campaign/campaigns", "{\"name\": ").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{resp}");
    assert_eq!(app.db.count("SELECT count(*) FROM campaigns").await, 0);
}

#[tokio::test]
async fn the_campaign_list_pages_by_cursor_and_filters_by_name_and_status() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for name in ["Alpha", "Beta", "alphabet", "Gamma", "Delta"] {
        ids.push(app.campaign(json!({"name": name})).await);
    }
    app.call(
        Method::POST,
        &format!("/campaign/campaigns/{}/pause", ids[3]),
        None,
    )
    .await;
    app.call(
        Method::POST,
        &format!("/campaign/campaigns/{}/close", ids[4]),
        None,
    )
    .await;

    let mut seen = Vec::new();
    let mut path = "/campaign/campaigns?limit=2".to_owned();
    loop {
        let (status, page) = app.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let batch = page["campaigns"].as_array().unwrap();
        assert!(batch.len() <= 2);
        seen.extend(batch.iter().map(|c| c["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/campaign/campaigns?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, ids);

    let names = |page: &Value| -> Vec<String> {
        page["campaigns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, page) = app.get("/campaign/campaigns?name=ALPHA").await;
    assert_eq!(names(&page), ["Alpha", "alphabet"]);
    let (_, page) = app
        .get("/campaign/campaigns?status=paused&status=closed")
        .await;
    assert_eq!(names(&page), ["Gamma", "Delta"]);
    let (_, page) = app.get("/campaign/campaigns?status=active&name=ta").await;
    assert_eq!(names(&page), ["Beta"]);
    let (_, page) = app.get("/campaign/campaigns?name=%25").await;
    assert_eq!(names(&page), Vec::<String>::new());

    for bad in [
        "limit=0",
        "limit=501",
        "limit=ten",
        "cursor=xyz",
        "status=running",
        "sort=name",
        "name=a&name=b",
    ] {
        let (status, body) = app.get(&format!("/campaign/campaigns?{bad}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad} -> {body}");
    }
}

#[tokio::test]
async fn patch_changes_given_fields_clears_nulls_and_moves_contact_priority() {
    let app = TestApp::spawn().await;
    let id = app
        .campaign(json!({"external_id": "ext", "agent_id": "bot"}))
        .await;
    app.post(
        &format!("/campaign/campaigns/{id}/contacts"),
        json!({"contacts": [{"phone_numbers": ["+14155552671"]}]}),
    )
    .await;
    let (status, body) = app
        .patch(
            "/campaign/campaigns/ext",
            json!({"name": "Renamed", "priority": 70, "external_id": null, "agent_id": null}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["name"], "Renamed");
    assert_eq!(body["priority"], 70);
    assert_eq!(body["external_id"], Value::Null);
    assert_eq!(body["agent_id"], Value::Null);
    assert_eq!(
        app.db.count("SELECT priority::bigint FROM contacts").await,
        70
    );

    let cases = [
        (json!({"name": null}), "cannot be null"),
        (json!({"priority": 1_000_000}), "priority"),
        (json!({"status": "closed"}), "unknown field"),
        (
            json!({"configuration_id": "3f0c1d52-0000-4000-8000-000000000000"}),
            "configuration_id",
        ),
    ];
    for (patch, needle) in cases {
        let (status, resp) = app
            .patch(&format!("/campaign/campaigns/{id}"), patch.clone())
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{patch} -> {resp}"
        );
        assert!(detail(&resp).contains(needle), "{patch} -> {resp}");
    }
    let (_, after) = app.get(&format!("/campaign/campaigns/{id}")).await;
    assert_eq!(after["name"], "Renamed");
    assert_eq!(after["status"], "active");
}

async fn lifecycle(app: &TestApp, id: &str, action: &str) -> (StatusCode, Value) {
    app.call(
        Method::POST,
        &format!("/campaign/campaigns/{id}/{action}"),
        None,
    )
    .await
}

#[tokio::test]
async fn lifecycle_calls_take_effect_only_when_their_condition_holds() {
    let app = TestApp::spawn().await;
    let id = app.campaign(json!({"external_id": "life"})).await;
    let steps = [
        ("start", StatusCode::OK, "active"),
        ("pause", StatusCode::OK, "paused"),
        ("pause", StatusCode::BAD_REQUEST, "paused"),
        ("start", StatusCode::OK, "active"),
        ("close", StatusCode::OK, "closed"),
        ("start", StatusCode::BAD_REQUEST, "closed"),
        ("pause", StatusCode::BAD_REQUEST, "closed"),
        ("close", StatusCode::BAD_REQUEST, "closed"),
    ];
    for (action, expected, after) in steps {
        let (status, body) = lifecycle(&app, "life", action).await;
        assert_eq!(status, expected, "{action} -> {body}");
        if status == StatusCode::BAD_REQUEST {
            assert!(detail(&body).contains(after), "{body}");
        }
        let (_, now) = app.get(&format!("/campaign/campaigns/{id}")).await;
        assert_eq!(now["status"], after, "after {action}");
    }
    let (status, _) = lifecycle(&app, "missing", "pause").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_campaign_paused_by_plain_sql_is_seen_paused_by_the_api() {
    let app = TestApp::spawn().await;
    let id = app.campaign(json!({})).await;
    sqlx::query("UPDATE campaigns SET status = 'paused' WHERE id = $1::uuid")
        .bind(&id)
        .execute(&app.db.pool)
        .await
        .unwrap();
    let (_, body) = lifecycle(&app, &id, "pause").await;
    assert!(detail(&body).contains("paused"));
    let (status, body) = lifecycle(&app, &id, "start").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "active");
}

#[tokio::test]
async fn stats_count_contacts_by_bucket_and_attempts_by_outcome() {
    let app = TestApp::spawn().await;
    let id = app.campaign(json!({})).await;
    let numbers: Vec<Value> = (0..3)
        .map(|i| json!({"phone_numbers": [format!("+1415555267{i}")]}))
        .collect();
    app.post(
        &format!("/campaign/campaigns/{id}/contacts"),
        json!({"contacts": numbers}),
    )
    .await;
    let empty = app.get(&format!("/campaign/campaigns/{id}/stats")).await.1;
    assert_eq!(empty["attempts"]["average_per_contact"], 0.0);
    sqlx::query(
        "WITH c AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM contacts)
         UPDATE contacts SET status = (CASE n WHEN 1 THEN 'completed' WHEN 2 THEN 'in_progress' ELSE 'pending' END)::contact_status,
                owner_instance = CASE n WHEN 2 THEN gen_random_uuid() END,
                claimed_at = CASE n WHEN 2 THEN now() END
           FROM c WHERE contacts.id = c.id",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO attempts (id, organization_id, contact_id, campaign_id, attempt_number, phone_number,
                               instance_id, outcome, ended_at)
         SELECT gen_random_uuid(), organization_id, id, campaign_id, 1, phone_numbers[1], gen_random_uuid(),
                'no_answer'::attempt_outcome, now() FROM contacts
         UNION ALL
         SELECT gen_random_uuid(), organization_id, id, campaign_id, 2, phone_numbers[1], gen_random_uuid(),
                'completed'::attempt_outcome, now() FROM contacts WHERE status = 'completed'",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
    let (status, stats) = app.get(&format!("/campaign/campaigns/{id}/stats")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        stats["contacts"],
        json!({"total": 3, "pending": 1, "in_progress": 1, "completed": 1, "exhausted": 0, "suppressed": 0})
    );
    assert_eq!(stats["attempts"]["total"], 4);
    assert_eq!(stats["attempts"]["average_per_contact"], 1.33);
    assert_eq!(stats["attempts"]["outcomes"]["no_answer"], 3);
    assert_eq!(stats["attempts"]["outcomes"]["completed"], 1);
    assert_eq!(stats["attempts"]["outcomes"]["busy"], 0);
    assert_eq!(stats["active_calls"], 1);
    assert_eq!(stats["concurrency_limit"], 10);

    let (status, adhoc) = app.get("/campaign/campaigns/default/stats").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(adhoc["contacts"]["total"], 0);
}
