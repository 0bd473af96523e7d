use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{detail, TestApp};

fn contacts(list: Value) -> Value {
    json!({ "contacts": list })
}

#[tokio::test]
async fn upsert_creates_then_updates_by_external_id_and_by_id_normalizing_numbers() {
    let app = TestApp::spawn().await;
    let id = app.campaign(json!({"external_id": "drive"})).await;
    let path = "/campaign/campaigns/drive/contacts";
    let (status, first) = app
        .post(path, contacts(json!([
            {"external_id": "ann", "phone_numbers": ["(415) 555-2671", "+44 20 7946 0958"], "timezone": "America/Chicago",
             "data": {"plan": "gold"}, "agent_id": "ann-bot"},
            {"phone_numbers": ["212-555-0100"]}
        ])))
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["created"], 2);
    assert_eq!(first["updated"], 0);
    let ids = first["contact_ids"].as_array().unwrap().clone();
    assert_eq!(ids.len(), 2);

    let (_, ann) = app.get(&format!("{path}/ann")).await;
    assert_eq!(ann["id"], ids[0]);
    assert_eq!(ann["campaign_id"], id.as_str());
    assert_eq!(
        ann["phone_numbers"],
        json!(["+14155552671", "+442079460958"])
    );
    assert_eq!(ann["timezone"], "America/Chicago");
    assert_eq!(ann["data"]["plan"], "gold");
    assert_eq!(ann["agent_id"], "ann-bot");
    assert_eq!(ann["status"], "pending");
    assert_eq!(ann["attempt_count"], 0);
    assert_eq!(ann["attempts"], json!([]));
    // As after two calls: ann exhausted on her second number, bob waiting
    // for a retry on his.
    let called = "UPDATE contacts SET attempt_count = 2, next_number_index = 1,
                         retired_numbers = '{0}', last_outcome = 'no_answer',
                         next_attempt_at = '2030-01-01T00:00:00Z'";
    app.db
        .run(&format!(
            "{called}, status = 'exhausted' WHERE external_id = 'ann'"
        ))
        .await
        .unwrap();
    app.db
        .run(&format!(
            "{called} WHERE id = '{}'",
            ids[1].as_str().unwrap()
        ))
        .await
        .unwrap();

    let (status, second) = app
        .post(path, contacts(json!([
            {"id": ids[1], "external_id": "bob", "phone_numbers": ["+12125550199"]},
            {"external_id": "ann", "phone_numbers": ["415 555 2671"], "data": {"plan": "silver"}},
            {"external_id": "cid", "phone_numbers": ["+13125550123"]}
        ])))
        .await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(
        (second["created"].as_i64(), second["updated"].as_i64()),
        (Some(1), Some(2))
    );
    assert_eq!(second["contact_ids"][0], ids[1]);
    assert_eq!(second["contact_ids"][1], ids[0]);
    let (_, bob) = app.get(&format!("{path}/bob")).await;
    assert_eq!(bob["id"], ids[1]);
    assert_eq!(bob["phone_numbers"], json!(["+12125550199"]));
    let (_, ann) = app
        .get(&format!("{path}/{}", ids[0].as_str().unwrap()))
        .await;
    assert_eq!(ann["data"]["plan"], "silver");
    assert_eq!(app.db.count("SELECT count(*) FROM contacts").await, 3);
    // An update keeps status, attempts and the due time; new numbers
    // start their rotation (and retirements) afresh.
    let state = |who: &'static str| {
        let pool = app.db.pool.clone();
        async move {
            sqlx::query_as::<_, (String, i32, i32, Vec<i32>, bool)>(
                "SELECT status::text, attempt_count, next_number_index, retired_numbers, next_attempt_at = '2030-01-01T00:00:00Z'
                   FROM contacts WHERE external_id = $1",
            )
            .bind(who)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    assert_eq!(state("ann").await, ("exhausted".into(), 2, 0, vec![], true));
    assert_eq!(state("bob").await, ("pending".into(), 2, 0, vec![], true));
    // The same numbers again keep their place in the rotation.
    app.db
        .run("UPDATE contacts SET next_number_index = 1, retired_numbers = '{0}' WHERE external_id = 'bob'")
        .await
        .unwrap();
    let (status, _) = app
        .post(
            path,
            contacts(json!([
                {"external_id": "bob", "phone_numbers": ["(212) 555-0199"], "data": {"x": 1}}
            ])),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(state("bob").await, ("pending".into(), 2, 1, vec![0], true));
}

#[tokio::test]
async fn a_scheduled_contact_is_due_at_its_scheduled_time() {
    let app = TestApp::spawn().await;
    let id = app.campaign(json!({})).await;
    let (status, body) = app
        .post(
            &format!("/campaign/campaigns/{id}/contacts"),
            contacts(json!([{"external_id": "later", "phone_numbers": ["+14155552671"], "scheduled_at": "2030-01-02T09:30:00-05:00"}])),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, c) = app
        .get(&format!("/campaign/campaigns/{id}/contacts/later"))
        .await;
    assert_eq!(c["scheduled_at"], "2030-01-02T14:30:00Z");
    assert_eq!(c["next_attempt_at"], "2030-01-02T14:30:00Z");
}

#[tokio::test]
async fn bad_contacts_reject_the_whole_request_naming_index_and_field() {
    let app = TestApp::spawn().await;
    let id = app.campaign(json!({})).await;
    let path = format!("/campaign/campaigns/{id}/contacts");
    let ok = json!({"phone_numbers": ["+14155552671"]});
    let eleven: Vec<String> = (0..11)
        .map(|i| format!("+1415555{:04}", 2600 + i))
        .collect();
    let cases = [
        (
            json!([ok, {"phone_numbers": ["12"]}]),
            "contacts[1].phone_numbers[0]",
        ),
        (
            json!([ok, {"phone_numbers": []}]),
            "contacts[1].phone_numbers",
        ),
        (
            json!([{"phone_numbers": eleven}]),
            "contacts[0].phone_numbers",
        ),
        (
            json!([{"phone_numbers": ["+14155552671", "415-555-2671"]}]),
            "repeats",
        ),
        (
            json!([ok, {"phone_numbers": ["+14155552672"], "timezone": "Moon/Base"}]),
            "contacts[1].timezone",
        ),
        (
            json!([{"phone_numbers": ["+14155552671"], "data": [1, 2]}]),
            "contacts[0].data",
        ),
        (
            json!([{"phone_numbers": ["+14155552671"], "scheduled_at": "2030-01-02 09:30"}]),
            "contacts[0].scheduled_at",
        ),
        (
            json!([{"phone_numbers": ["+14155552671"], "priority": 3}]),
            "unknown field",
        ),
        (
            json!([{"phone_numbers": "+14155552671"}]),
            "contacts[0].phone_numbers",
        ),
        (
            json!([{"external_id": "x", "phone_numbers": ["+14155552671"]}, {"external_id": "x", "phone_numbers": ["+14155552672"]}]),
            "contacts[1].external_id",
        ),
        (
            json!([ok, {"id": "0192f0d4-0000-7000-8000-000000000000", "phone_numbers": ["+14155552672"]}]),
            "contacts[1].id",
        ),
        (json!([]), "1 to 1000"),
    ];
    for (list, needle) in cases {
        let (status, resp) = app.post(&path, contacts(list.clone())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{list} -> {resp}");
        assert!(detail(&resp).contains(needle), "{list} -> {resp}");
    }
    let many: Vec<Value> = (0..1001)
        .map(|i| json!({"phone_numbers": [format!("+1415555{:04}", i)]}))
        .collect();
    let (status, resp) = app.post(&path, contacts(json!(many))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(detail(&resp).contains("got 1001"));
    let (status, _) = app.post_raw(&path, "{\"contacts\": [").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = app
        .post(&path, json!({"contacts": [ok], "extra": true}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.db.count("SELECT count(*) FROM contacts").await, 0);
}

#[tokio::test]
async fn an_external_id_taken_by_another_contact_rolls_the_request_back() {
    let app = TestApp::spawn().await;
    let id = app.campaign(json!({})).await;
    let path = format!("/campaign/campaigns/{id}/contacts");
    let (_, made) = app
        .post(&path, contacts(json!([{"external_id": "a", "phone_numbers": ["+14155552671"]}, {"external_id": "b", "phone_numbers": ["+14155552672"]}])))
        .await;
    let b = made["contact_ids"][1].clone();
    let (status, resp) = app
        .post(&path, contacts(json!([{"external_id": "new", "phone_numbers": ["+14155552673"]}, {"id": b, "external_id": "a", "phone_numbers": ["+14155552672"]}])))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{resp}");
    assert!(detail(&resp).contains("contacts[1].external_id"), "{resp}");
    assert_eq!(app.db.count("SELECT count(*) FROM contacts").await, 2);
}

#[tokio::test]
async fn a_full_batch_of_a_thousand_contacts_is_accepted() {
    let app = TestApp::spawn().await;
    let id = app.campaign(json!({})).await;
    let many: Vec<Value> = (0..1000)
        .map(|i| json!({"external_id": format!("c{i}"), "phone_numbers": [format!("415555{:04}", i)], "data": {"row": i}}))
        .collect();
    let (status, resp) = app
        .post(
            &format!("/campaign/campaigns/{id}/contacts"),
            contacts(json!(many)),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    assert_eq!(resp["created"], 1000);
    assert_eq!(app.db.count("SELECT count(*) FROM contacts").await, 1000);
}

#[tokio::test]
async fn ad_hoc_contacts_live_in_the_default_campaign_and_need_e164() {
    let app = TestApp::spawn().await;
    let (status, resp) = app
        .post(
            "/campaign/campaigns/default/contacts",
            contacts(json!([{"external_id": "vip", "phone_numbers": ["4155552671"]}])),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(detail(&resp).contains("contacts[0].phone_numbers[0]"));
    let (status, resp) = app
        .post(
            "/campaign/campaigns/default/contacts",
            contacts(json!([{"external_id": "vip", "phone_numbers": ["+1 415 555 2671"]}])),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{resp}");
    let (status, resp) = app
        .post(
            "/campaign/campaigns/default/contacts",
            contacts(json!([{"external_id": "vip", "phone_numbers": ["+14155552671"]}])),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{resp}");
    let (_, vip) = app.get("/campaign/campaigns/default/contacts/vip").await;
    assert_eq!(vip["campaign_id"], Value::Null);
    assert_eq!(
        app.db.count("SELECT priority::bigint FROM contacts").await,
        1_000_000
    );
    let (_, list) = app.get("/campaign/campaigns/default/contacts").await;
    assert_eq!(list["total"], 1);
    // A campaign's contact list does not show ad-hoc contacts.
    let id = app.campaign(json!({})).await;
    let (_, list) = app.get(&format!("/campaign/campaigns/{id}/contacts")).await;
    assert_eq!(list["total"], 0);
}

#[tokio::test]
async fn contact_lists_page_filter_by_status_and_carry_attempts() {
    let app = TestApp::spawn().await;
    let id = app.campaign(json!({})).await;
    let path = format!("/campaign/campaigns/{id}/contacts");
    let list: Vec<Value> = (0..5).map(|i| json!({"external_id": format!("c{i}"), "phone_numbers": [format!("+1415555267{i}")]})).collect();
    app.post(&path, contacts(json!(list))).await;
    sqlx::query("UPDATE contacts SET status = 'completed', attempt_count = 1, last_outcome = 'completed' WHERE external_id IN ('c1', 'c3')")
        .execute(&app.db.pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO attempts (id, organization_id, contact_id, campaign_id, attempt_number, phone_number, instance_id,
                               conversation_id, outcome, ended_at, agent_id)
         SELECT gen_random_uuid(), organization_id, id, campaign_id, 1, phone_numbers[1], gen_random_uuid(),
                'conv-' || external_id, 'completed', now(), 'bot' FROM contacts WHERE status = 'completed'",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();

    let (status, page) = app.get(&format!("{path}?limit=2&offset=1")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(
        (
            page["total"].as_i64(),
            page["limit"].as_i64(),
            page["offset"].as_i64()
        ),
        (Some(5), Some(2), Some(1))
    );
    let ext: Vec<&str> = page["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["external_id"].as_str().unwrap())
        .collect();
    assert_eq!(ext, ["c1", "c2"]);
    assert_eq!(
        page["contacts"][0]["attempts"][0]["conversation_id"],
        "conv-c1"
    );
    assert_eq!(page["contacts"][0]["attempts"][0]["outcome"], "completed");
    assert_eq!(page["contacts"][0]["attempts"][0]["agent_id"], "bot");
    assert_eq!(page["contacts"][1]["attempts"], json!([]));

    let (_, done) = app.get(&format!("{path}?status=completed")).await;
    assert_eq!(done["total"], 2);
    let (_, some) = app
        .get(&format!("{path}?status=completed&status=pending"))
        .await;
    assert_eq!(some["total"], 5);
    for bad in [
        "limit=0",
        "limit=1001",
        "offset=-1",
        "status=done",
        "page=2",
    ] {
        let (status, _) = app.get(&format!("{path}?{bad}")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
}

#[tokio::test]
async fn contacts_are_deleted_unless_a_call_is_in_progress() {
    let app = TestApp::spawn().await;
    let id = app.campaign(json!({})).await;
    let path = format!("/campaign/campaigns/{id}/contacts");
    app.post(&path, contacts(json!([{"external_id": "a", "phone_numbers": ["+14155552671"]}, {"external_id": "b", "phone_numbers": ["+14155552672"]}])))
        .await;
    sqlx::query("UPDATE contacts SET status = 'in_progress', owner_instance = gen_random_uuid(), claimed_at = now() WHERE external_id = 'b'")
        .execute(&app.db.pool)
        .await
        .unwrap();
    let (status, _) = app.call(Method::DELETE, &format!("{path}/a"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.get(&format!("{path}/a")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.call(Method::DELETE, &format!("{path}/a"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = app.call(Method::DELETE, &format!("{path}/b"), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(detail(&body).contains("in progress"));
    assert_eq!(app.db.count("SELECT count(*) FROM contacts").await, 1);
}

#[tokio::test]
async fn a_closed_campaign_takes_no_more_contacts() {
    let app = TestApp::spawn().await;
    let id = app.campaign(json!({})).await;
    app.call(
        Method::POST,
        &format!("/campaign/campaigns/{id}/close"),
        None,
    )
    .await;
    let (status, body) = app
        .post(
            &format!("/campaign/campaigns/{id}/contacts"),
            contacts(json!([{"phone_numbers": ["+14155552671"]}])),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(detail(&body).contains("closed"));
    assert_eq!(app.db.count("SELECT count(*) FROM contacts").await, 0);
}

#[tokio::test]
async fn contact_routes_of_an_unknown_campaign_are_not_found() {
    let app = TestApp::spawn().await;
    let (status, _) = app.get("/campaign/campaigns/ghost/contacts").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .post(
            "/campaign/campaigns/ghost/contacts",
            contacts(json!([{"phone_numbers": ["+14155552671"]}])),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
