use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{detail, TestApp};

#[tokio::test]
async fn requests_without_a_valid_token_are_unauthorized() {
    let app = TestApp::spawn().await;
    for token in [None, Some("dlr_not_a_real_token"), Some("")] {
        let (status, body) = app
            .call_as(token, Method::GET, "/campaign/campaigns", None)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(detail(&body), "missing or invalid bearer token");
    }
    // 401 comes before body validation.
    let (status, _) = app
        .call_as(
            None,
            Method::POST,
            "/campaign/campaigns",
            Some(json!({"bad": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn scopes_decide_what_a_token_may_do() {
    let app = TestApp::spawn().await;
    let id = app.campaign(json!({})).await;
    let reader = app.token(app.org, "campaigns:read").await;
    let conc_reader = app.token(app.org, "concurrency:read").await;
    let conc_manager = app.token(app.org, "concurrency:manage").await;

    let limit = || Some(json!({"concurrency_limit": 5}));
    let cases = [
        (
            &reader,
            Method::GET,
            format!("/campaign/campaigns/{id}"),
            None,
            StatusCode::OK,
        ),
        (
            &reader,
            Method::GET,
            "/campaign/timezones".into(),
            None,
            StatusCode::OK,
        ),
        (
            &reader,
            Method::GET,
            "/campaign/concurrency-settings".into(),
            None,
            StatusCode::OK,
        ),
        (
            &reader,
            Method::POST,
            format!("/campaign/campaigns/{id}/pause"),
            None,
            StatusCode::FORBIDDEN,
        ),
        // 403 comes before body validation too.
        (
            &reader,
            Method::POST,
            "/campaign/configurations".into(),
            Some(json!({"bad": 1})),
            StatusCode::FORBIDDEN,
        ),
        (
            &reader,
            Method::PUT,
            "/campaign/concurrency-settings".into(),
            limit(),
            StatusCode::FORBIDDEN,
        ),
        (
            &reader,
            Method::POST,
            "/campaign/forecast".into(),
            Some(json!({"campaigns": [id], "lines": [2]})),
            StatusCode::OK,
        ),
        (
            &conc_reader,
            Method::POST,
            "/campaign/forecast".into(),
            Some(json!({"lines": [2]})),
            StatusCode::FORBIDDEN,
        ),
        (
            &conc_reader,
            Method::GET,
            "/campaign/concurrency-settings".into(),
            None,
            StatusCode::OK,
        ),
        (
            &conc_reader,
            Method::GET,
            "/campaign/campaigns".into(),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            &conc_reader,
            Method::PUT,
            "/campaign/concurrency-settings".into(),
            limit(),
            StatusCode::FORBIDDEN,
        ),
        (
            &conc_manager,
            Method::PUT,
            "/campaign/concurrency-settings".into(),
            limit(),
            StatusCode::OK,
        ),
    ];
    for (token, method, path, body, expected) in cases {
        let (status, resp) = app.call_as(Some(token), method.clone(), &path, body).await;
        assert_eq!(status, expected, "{method} {path} -> {resp}");
    }
    let (status, body) = app
        .call_as(
            Some(&reader),
            Method::POST,
            &format!("/campaign/campaigns/{id}/close"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(detail(&body).contains("campaigns:manage"));
    assert_eq!(
        app.get(&format!("/campaign/campaigns/{id}")).await.1["status"],
        "active"
    );
}

#[tokio::test]
async fn one_organization_never_sees_or_changes_another_ones_objects() {
    let app = TestApp::spawn().await;
    let id = app.campaign(json!({"external_id": "mine"})).await;
    app.post(
        &format!("/campaign/campaigns/{id}/contacts"),
        json!({"contacts": [{"external_id": "c", "phone_numbers": ["+14155552671"]}]}),
    )
    .await;
    app.post(
        "/campaign/campaigns/default/contacts",
        json!({"contacts": [{"external_id": "adhoc", "phone_numbers": ["+14155552671"]}]}),
    )
    .await;
    let (_, campaign) = app.get(&format!("/campaign/campaigns/{id}")).await;
    let config = campaign["configuration_id"].as_str().unwrap().to_owned();
    let (_, other) = app.other_org().await;
    let o = Some(other.as_str());

    let not_found = [
        (Method::GET, format!("/campaign/campaigns/{id}"), None),
        (Method::GET, "/campaign/campaigns/mine".to_owned(), None),
        (
            Method::PATCH,
            format!("/campaign/campaigns/{id}"),
            Some(json!({"name": "stolen"})),
        ),
        (
            Method::POST,
            format!("/campaign/campaigns/{id}/pause"),
            None,
        ),
        (
            Method::POST,
            format!("/campaign/campaigns/{id}/close"),
            None,
        ),
        (Method::GET, format!("/campaign/campaigns/{id}/stats"), None),
        (
            Method::GET,
            format!("/campaign/campaigns/{id}/contacts"),
            None,
        ),
        (
            Method::POST,
            format!("/campaign/campaigns/{id}/contacts"),
            Some(json!({"contacts": [{"phone_numbers": ["+14155552679"]}]})),
        ),
        (
            Method::GET,
            format!("/campaign/campaigns/{id}/contacts/c"),
            None,
        ),
        (
            Method::DELETE,
            format!("/campaign/campaigns/{id}/contacts/c"),
            None,
        ),
        (
            Method::GET,
            "/campaign/campaigns/default/contacts/adhoc".to_owned(),
            None,
        ),
        (
            Method::DELETE,
            "/campaign/campaigns/default/contacts/adhoc".to_owned(),
            None,
        ),
        (
            Method::GET,
            format!("/campaign/configurations/{config}"),
            None,
        ),
        (
            Method::PATCH,
            format!("/campaign/configurations/{config}"),
            Some(json!({"name": "stolen"})),
        ),
        (
            Method::DELETE,
            format!("/campaign/configurations/{config}"),
            None,
        ),
    ];
    for (method, path, body) in not_found {
        let (status, resp) = app.call_as(o, method.clone(), &path, body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path} -> {resp}");
    }
    let (_, list) = app
        .call_as(o, Method::GET, "/campaign/campaigns", None)
        .await;
    assert_eq!(list["campaigns"], json!([]));
    let (_, list) = app
        .call_as(o, Method::GET, "/campaign/configurations", None)
        .await;
    assert_eq!(list["configurations"], json!([]));
    let (_, adhoc) = app
        .call_as(o, Method::GET, "/campaign/campaigns/default/contacts", None)
        .await;
    assert_eq!(adhoc["total"], 0);
    // Another organization's configuration cannot be used either.
    let (status, _) = app
        .call_as(
            o,
            Method::POST,
            "/campaign/campaigns",
            Some(json!({"name": "x", "configuration_id": config})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let (_, after) = app.get(&format!("/campaign/campaigns/{id}")).await;
    assert_eq!(
        (after["name"].as_str(), after["status"].as_str()),
        (Some("Spring drive"), Some("active"))
    );
    assert_eq!(app.db.count("SELECT count(*) FROM contacts").await, 2);
    assert_eq!(app.db.count("SELECT count(*) FROM configurations").await, 1);
}

#[tokio::test]
async fn concurrency_settings_are_read_and_set_within_range() {
    let app = TestApp::spawn().await;
    let (status, body) = app.get("/campaign/concurrency-settings").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"concurrency_limit": 10}));
    let (status, body) = app
        .call(
            Method::PUT,
            "/campaign/concurrency-settings",
            Some(json!({"concurrency_limit": 250})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"concurrency_limit": 250}));
    for bad in [
        json!({"concurrency_limit": 0}),
        json!({"concurrency_limit": 10001}),
        json!({"concurrency_limit": "9"}),
        json!({}),
        json!({"concurrency_limit": 5, "x": 1}),
    ] {
        let (status, _) = app
            .call(
                Method::PUT,
                "/campaign/concurrency-settings",
                Some(bad.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    assert_eq!(
        app.get("/campaign/concurrency-settings").await.1["concurrency_limit"],
        250
    );
}

#[tokio::test]
async fn the_time_zone_list_holds_every_iana_name() {
    let app = TestApp::spawn().await;
    let (status, body) = app.get("/campaign/timezones").await;
    assert_eq!(status, StatusCode::OK);
    let zones = body["timezones"].as_array().unwrap();
    assert!(zones.len() > 400);
    assert!(zones.contains(&json!("America/New_York")));
    assert!(zones.contains(&json!("Asia/Kolkata")));
}

#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let app = TestApp::spawn().await;
    let (status, doc) = app.call_as(None, Method::GET, "/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let expected = [
        ("/campaign/campaigns", &["get", "post"][..]),
        ("/campaign/campaigns/{campaign_id}", &["get", "patch"]),
        ("/campaign/campaigns/{campaign_id}/start", &["post"]),
        ("/campaign/campaigns/{campaign_id}/pause", &["post"]),
        ("/campaign/campaigns/{campaign_id}/close", &["post"]),
        ("/campaign/campaigns/{campaign_id}/stats", &["get"]),
        (
            "/campaign/campaigns/{campaign_id}/contacts",
            &["get", "post"],
        ),
        (
            "/campaign/campaigns/{campaign_id}/contacts/{contact_id}",
            &["delete", "get"],
        ),
        (
            "/campaign/campaigns/{campaign_id}/contacts/{contact_id}/explain",
            &["get"],
        ),
        (
            "/campaign/campaigns/{campaign_id}/imports",
            &["get", "post"],
        ),
        (
            "/campaign/campaigns/{campaign_id}/imports/{import_id}",
            &["get"],
        ),
        (
            "/campaign/campaigns/{campaign_id}/imports/{import_id}/errors",
            &["get"],
        ),
        ("/campaign/dnc-lists", &["get", "post"]),
        ("/campaign/dnc-lists/{list_id}", &["delete", "get"]),
        ("/campaign/dnc-lists/{list_id}/numbers", &["post"]),
        ("/campaign/dnc-lists/{list_id}/numbers/remove", &["post"]),
        ("/campaign/dnc-numbers/{number}", &["get"]),
        ("/campaign/configurations", &["get", "post"]),
        (
            "/campaign/configurations/{configuration_id}",
            &["delete", "get", "patch"],
        ),
        ("/campaign/forecast", &["post"]),
        ("/campaign/timezones", &["get"]),
        ("/campaign/concurrency-settings", &["get", "put"]),
        ("/telephony/callbacks", &["post"]),
    ];
    let paths = doc["paths"].as_object().unwrap();
    assert_eq!(paths.len(), expected.len());
    for (path, methods) in expected {
        let mut got: Vec<&str> = paths[path]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        got.sort_unstable();
        assert_eq!(got, methods, "{path}");
    }
    assert!(doc["components"]["schemas"]["Campaign"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    // The callback route is signed, not token-authenticated.
    let callback = &doc["paths"]["/telephony/callbacks"]["post"];
    assert_eq!(callback["security"], serde_json::json!([{}]));
    assert!(callback["parameters"][0]["name"] == "X-Dialerd-Signature");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_json() {
    let app = TestApp::spawn().await;
    let (status, body) = app.get("/campaign/nothing-here").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(detail(&body), "route not found");
    let (status, body) = app.call(Method::DELETE, "/campaign/campaigns", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(detail(&body), "method not allowed");
}
