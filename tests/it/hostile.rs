//! The API as a hostile or careless client uses it, and rows written behind
//! its back: no input makes it answer 5xx, no stored value stops another
//! organization's dialing, every error is `{"detail"}`.

use std::time::Duration;

use dialerd::clock::SystemClock;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{
    around_the_clock, assert_attempts_accounted, detail, engine_settings, eventually, start_engine,
    TestApp,
};

/// The largest finite double, the value that once halted every claim.
const EXTREME: f64 = 1.797_693_134_862_315_7e308;

#[tokio::test]
async fn an_extreme_number_is_stored_and_read_back_exactly_while_every_organization_dials() {
    let app = TestApp::spawn().await;
    let (_, other) = app.other_org().await;
    let settings = engine_settings(&app.db, 4);
    let engine = start_engine(&app.db, &settings, SystemClock).await;

    let body = r#"{"contacts":[{"phone_numbers":["+13125550100"],"data":{"x":1.7976931348623157e308,"tiny":5e-324,"big":18446744073709551615}}]}"#;
    let (status, made) = app
        .post_raw("/campaign/campaigns/default/contacts", body)
        .await;
    assert_eq!(status, StatusCode::OK, "{made}");
    let id = made["contact_ids"][0].as_str().unwrap().to_owned();
    // Another organization's contact, added a moment later, is dialed.
    let (status, theirs) = app
        .call_as(
            Some(&other),
            Method::POST,
            "/campaign/campaigns/default/contacts",
            Some(json!({"contacts": [{"phone_numbers": ["+13125550101"]}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{theirs}");
    eventually(20, "both ad-hoc contacts completed", || async {
        app.db
            .count("SELECT count(*) FROM contacts WHERE status = 'completed'")
            .await
            == 2
    })
    .await;
    let (status, read) = app
        .get(&format!("/campaign/campaigns/default/contacts/{id}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["data"]["x"].as_f64(), Some(EXTREME));
    assert_eq!(read["data"]["tiny"].as_f64(), Some(5e-324));
    assert_eq!(read["data"]["big"].as_u64(), Some(u64::MAX));

    // The same value in agent_config, of a configuration and a campaign.
    let (status, config) = app
        .post_raw(
            "/campaign/configurations",
            r#"{"name":"x","agent":{"agent_config":{"x":1.7976931348623157e308}}}"#,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{config}");
    let campaign = format!(
        r#"{{"name":"x","configuration_id":"{}","agent_config":{{"x":1.7976931348623157e308}}}}"#,
        config["id"].as_str().unwrap()
    );
    let (status, made) = app.post_raw("/campaign/campaigns", &campaign).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let (status, list) = app.get("/campaign/campaigns").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(
        list["campaigns"][0]["agent_config"]["x"].as_f64(),
        Some(EXTREME)
    );
    let (status, read) = app
        .get(&format!(
            "/campaign/configurations/{}",
            config["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["agent"]["agent_config"]["x"].as_f64(), Some(EXTREME));
    // A number past what a double holds is refused, and nothing is written.
    let (status, refused) = app
        .post_raw(
            "/campaign/campaigns/default/contacts",
            r#"{"contacts":[{"phone_numbers":["+13125550102"],"data":{"x":1e400}}]}"#,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert!(
        detail(&refused).contains("number out of range"),
        "{refused}"
    );
    assert_eq!(app.db.count("SELECT count(*) FROM contacts").await, 2);
    engine.stop(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn parallel_overlapping_upserts_all_succeed_and_store_each_external_id_once() {
    let app = TestApp::spawn().await;
    app.campaign(json!({"external_id": "race"})).await;
    let ids: Vec<String> = (0..30).map(|i| format!("c{i:02}")).collect();
    let requests = (0..20).map(|r| {
        let mut order = ids.clone();
        // Each request in an order of its own.
        order.rotate_left(r * 7 % 30);
        if r % 2 == 1 {
            order.reverse();
        }
        let list: Vec<Value> = order
            .iter()
            .enumerate()
            .map(|(k, id)| json!({"external_id": id, "phone_numbers": [format!("+1415555{:04}", k)], "data": {"r": r}}))
            .collect();
        let app = &app;
        async move {
            app.post(
                "/campaign/campaigns/race/contacts",
                json!({ "contacts": list }),
            )
            .await
        }
    });
    let answers = join_all(requests).await;
    for (status, body) in &answers {
        assert_eq!(*status, StatusCode::OK, "{body}");
    }
    assert_eq!(
        app.db
            .count("SELECT count(DISTINCT external_id) FROM contacts")
            .await,
        30
    );
    assert_eq!(app.db.count("SELECT count(*) FROM contacts").await, 30);
    let created: i64 = answers
        .iter()
        .map(|(_, b)| b["created"].as_i64().unwrap())
        .sum();
    assert_eq!(created, 30, "each external id created exactly once");
}

/// Runs the futures side by side and collects their outputs in order.
async fn join_all<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in futures.iter_mut().enumerate() {
            if outputs[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => outputs[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(Option::unwrap).collect()
}

#[tokio::test]
async fn a_nul_character_anywhere_is_refused_with_422_naming_where() {
    let app = TestApp::spawn().await;
    let config = app.configuration().await;
    let campaign = app.campaign(json!({"external_id": "nul"})).await;
    let nul = "a\u{0}b";
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "/campaign/campaigns",
            json!({"name": nul, "configuration_id": config}),
            "name",
        ),
        (
            "/campaign/campaigns",
            json!({"name": "x", "configuration_id": config, "external_id": nul}),
            "external_id",
        ),
        (
            "/campaign/campaigns",
            json!({"name": "x", "configuration_id": config, "agent_config": {"k": nul}}),
            "agent_config.k",
        ),
        ("/campaign/configurations", json!({"name": nul}), "name"),
        (
            "/campaign/campaigns/nul/contacts",
            json!({"contacts": [{"phone_numbers": ["+14155550100"], "data": {nul: 1}}]}),
            "contacts[0].data.a\\u0000b",
        ),
        (
            "/campaign/campaigns/nul/contacts",
            json!({"contacts": [{"phone_numbers": ["+14155550100"], "data": {"k": [nul]}}]}),
            "contacts[0].data.k[0]",
        ),
        (
            "/campaign/campaigns/nul/contacts",
            json!({"contacts": [{"phone_numbers": ["+14155550100"], "external_id": nul}]}),
            "contacts[0].external_id",
        ),
    ];
    for (path, body, field) in cases {
        let (status, answer) = app.post(path, body.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path} {body}: {answer}"
        );
        assert!(
            detail(&answer).starts_with(&format!("{field}: contains a NUL")),
            "{answer}"
        );
    }
    let (status, answer) = app
        .patch(
            &format!("/campaign/campaigns/{campaign}"),
            json!({"name": nul}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    for path in ["/campaign/campaigns/%00", "/campaign/campaigns?name=a%00b"] {
        let (status, answer) = app.get(path).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {answer}");
        assert!(detail(&answer).contains("NUL"), "{answer}");
    }
    assert_eq!(app.db.count("SELECT count(*) FROM campaigns").await, 1);
    assert_eq!(app.db.count("SELECT count(*) FROM contacts").await, 0);
    assert_eq!(app.db.count("SELECT count(*) FROM configurations").await, 2);
}

#[tokio::test]
async fn malformed_requests_get_json_errors_and_change_nothing() {
    let app = TestApp::spawn().await;
    // Invalid UTF-8 in a path.
    let (status, answer) = app.get("/campaign/campaigns/%FF%FE").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(detail(&answer).contains("UTF-8"), "{answer}");
    // A JSON array where an object is documented.
    let resp = reqwest::Client::new()
        .put(format!("{}/campaign/concurrency-settings", app.base))
        .bearer_auth(&app.token)
        .header("content-type", "application/json")
        .body("[50]")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(detail(&answer), "body: must be a JSON object");
    let (_, limit) = app.get("/campaign/concurrency-settings").await;
    assert_eq!(limit["concurrency_limit"], 10, "the limit is unchanged");
    // agent_config must be an object.
    let config = app.configuration().await;
    let (status, answer) = app
        .post(
            "/campaign/campaigns",
            json!({"name": "x", "configuration_id": config, "agent_config": [1, 2]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(detail(&answer).starts_with("agent_config:"), "{answer}");
    // Wrong content type, a body too large, a path of the wrong shape.
    let resp = reqwest::Client::new()
        .post(format!("{}/campaign/configurations", app.base))
        .bearer_auth(&app.token)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(resp.json::<Value>().await.unwrap()["detail"].is_string());
    let (status, answer) = app
        .call(Method::DELETE, "/campaign/configurations/not-a-uuid", None)
        .await;
    assert!(status.is_client_error(), "{status}");
    assert!(answer["detail"].is_string(), "{answer}");
    assert_eq!(app.db.count("SELECT count(*) FROM campaigns").await, 0);
}

#[tokio::test]
async fn rows_that_cannot_be_dialed_as_stored_are_set_aside_and_the_rest_are_dialed() {
    let app = TestApp::spawn().await;
    let campaign = app
        .campaign_with(json!({"schedule": around_the_clock()}), json!({}))
        .await;
    let list: Vec<Value> = (0..20)
        .map(|i| json!({"external_id": format!("ok{i}"), "phone_numbers": [format!("+1415555{i:04}")]}))
        .chain((0..2).map(|i| json!({"external_id": format!("bad{i}"), "phone_numbers": ["+14155559999"]})))
        .collect();
    app.contacts(&campaign, json!(list)).await;
    // Written behind the API's back, as a bad migration or manual SQL could.
    app.db
        .run("UPDATE contacts SET data = '{\"x\": 1e400}' WHERE external_id = 'bad0'")
        .await
        .unwrap();
    app.db
        .run("UPDATE contacts SET phone_numbers = '{not-a-number}' WHERE external_id = 'bad1'")
        .await
        .unwrap();
    let settings = engine_settings(&app.db, 4);
    let engine = start_engine(&app.db, &settings, SystemClock).await;
    eventually(30, "every contact final", || async {
        app.db
            .count("SELECT count(*) FROM contacts WHERE status IN ('pending', 'locked', 'in_progress')")
            .await
            == 0
    })
    .await;
    engine.stop(Duration::from_secs(5)).await.unwrap();
    // The row with a number past a double's range is read losslessly and dialed.
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM contacts WHERE status = 'completed'")
            .await,
        21
    );
    let (status, bad) = app
        .get(&format!("/campaign/campaigns/{campaign}/contacts/bad1"))
        .await;
    assert_eq!(status, StatusCode::OK, "{bad}");
    assert_eq!(bad["status"], "exhausted");
    assert_eq!(bad["attempt_count"], 0);
    assert_eq!(bad["set_aside_reason"], "no usable phone number");
    let (status, odd) = app
        .get(&format!("/campaign/campaigns/{campaign}/contacts/bad0"))
        .await;
    assert_eq!(status, StatusCode::OK, "{odd}");
    // Exactly as PostgreSQL keeps it, past what this client's parser
    // holds: the helper hands back the raw text.
    let text = odd.as_str().expect("the raw answer");
    assert!(
        text.contains(&format!(r#""x": 1{}"#, "0".repeat(400))),
        "{text}"
    );
    assert!(text.contains(r#""status":"completed""#), "{text}");
    let (status, list) = app
        .get(&format!(
            "/campaign/campaigns/{campaign}/contacts?limit=100"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert!(list
        .as_str()
        .expect("the raw answer")
        .contains(r#""total":22"#));
    assert_attempts_accounted(&app.db.pool).await;
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413_and_a_request_past_its_deadline_503() {
    let app = TestApp::spawn_with(|s| {
        s.http.max_body_bytes = 4096;
        s.http.request_timeout_seconds = 1;
    })
    .await;
    let campaign = app.campaign(json!({})).await;
    let path = format!("/campaign/campaigns/{campaign}/contacts");
    let big: Vec<Value> = (0..200)
        .map(|n| json!({"phone_numbers": [format!("+1415555{n:04}")]}))
        .collect();
    let body = json!({"contacts": big}).to_string();
    assert!(body.len() > 4096);
    let (status, answer) = app.post_raw(&path, &body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert!(answer["detail"].is_string(), "{answer}");
    assert_eq!(app.db.count("SELECT count(*) FROM contacts").await, 0);
    // Just under the limit is fine.
    let (status, answer) = app
        .post_raw(&path, &json!({"contacts": big[..20]}).to_string())
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    // A request held up by the database answers 503 at its deadline, and
    // what it was writing is rolled back.
    let mut lock = app.db.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE contacts IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let began = std::time::Instant::now();
    let (status, answer) = app
        .post_raw(&path, &json!({"contacts": big[20..30]}).to_string())
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(detail(&answer), "the request took too long");
    assert!(began.elapsed() >= Duration::from_secs(1));
    lock.rollback().await.unwrap();
    eventually(10, "the abandoned write rolled back", || async {
        app.db
            .count(
                "SELECT count(*) FROM pg_stat_activity
                  WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .await
            == 0
    })
    .await;
    assert_eq!(app.db.count("SELECT count(*) FROM contacts").await, 20);
}
