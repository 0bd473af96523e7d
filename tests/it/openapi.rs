//! `/openapi.json` describes every answer the server gives: real responses
//! of every route, successes and refusals, validated against it.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::TestApp;

/// The served document and the app it describes.
struct Checked<'a> {
    app: &'a TestApp,
    doc: Value,
    seen: Vec<(String, String, u16)>,
}

impl<'a> Checked<'a> {
    async fn new(app: &'a TestApp) -> Checked<'a> {
        let (status, doc) = app.call_as(None, Method::GET, "/openapi.json", None).await;
        assert_eq!(status, StatusCode::OK);
        Checked {
            app,
            doc,
            seen: Vec::new(),
        }
    }

    /// Sends the request as `token` and checks the answer against the
    /// operation `template` documents for its status.
    async fn call(
        &mut self,
        token: Option<&str>,
        method: Method,
        template: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (status, answer) = self.app.call_as(token, method.clone(), path, body).await;
        self.check(&method, template, status, &answer);
        (status, answer)
    }

    async fn manage(
        &mut self,
        method: Method,
        template: &str,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let token = self.app.token.clone();
        self.call(Some(&token), method, template, path, body)
            .await
            .1
    }

    fn check(&mut self, method: &Method, template: &str, status: StatusCode, answer: &Value) {
        let operation = &self.doc["paths"][template][method.as_str().to_lowercase()];
        assert!(
            operation.is_object(),
            "{method} {template} is not documented"
        );
        let response = &operation["responses"][status.as_str()];
        assert!(
            response.is_object(),
            "{method} {template} answered {status}, which it does not document: {answer}"
        );
        let schema = &response["content"]["application/json"]["schema"];
        if schema.is_null() {
            assert_eq!(
                *answer,
                Value::Null,
                "{method} {template} {status} has a body"
            );
        } else {
            let mut root = schema.clone();
            root["components"] = self.doc["components"].clone();
            let validator = jsonschema::validator_for(&root).expect("a valid schema");
            let errors: Vec<String> = validator
                .iter_errors(answer)
                .map(|e| format!("{} at {}", e, e.instance_path()))
                .collect();
            assert!(
                errors.is_empty(),
                "{method} {template} {status} does not match its schema: {errors:?}\n{answer}"
            );
        }
        self.seen
            .push((method.to_string(), template.to_owned(), status.as_u16()));
    }
}

#[tokio::test]
async fn every_route_answers_as_the_openapi_document_says() {
    let app = TestApp::spawn().await;
    let mut c = Checked::new(&app).await;
    let reader = app.token(app.org, "campaigns:read").await;
    use Method as M;

    // Configurations.
    let config = c
        .manage(M::POST, "/campaign/configurations", "/campaign/configurations", Some(json!({
            "name": "Weekdays",
            "schedule": {"default_windows": [{"days": ["mon"], "start": "09:00", "end": "17:00"}],
                         "overrides": [{"timezone": "Europe/Paris", "windows": [{"days": ["tue"], "start": "22:00", "end": "02:00"}]}]},
            "dialing_policy": {"max_attempts": 5, "retry_delays": {"busy": 60}, "default_country": "US"},
            "agent": {"agent_id": "bot", "agent_config": {"voice": "calm"}}
        })))
        .await;
    let config_id = config["id"].as_str().unwrap().to_owned();
    let one = "/campaign/configurations/{configuration_id}";
    let config_path = format!("/campaign/configurations/{config_id}");
    c.manage(
        M::GET,
        "/campaign/configurations",
        "/campaign/configurations",
        None,
    )
    .await;
    c.manage(M::GET, one, &config_path, None).await;
    c.manage(
        M::PATCH,
        one,
        &config_path,
        Some(json!({"name": "Renamed"})),
    )
    .await;
    c.manage(
        M::GET,
        one,
        "/campaign/configurations/0190b2a0-0000-7000-8000-000000000000",
        None,
    )
    .await;
    c.manage(M::PATCH, one, &config_path, Some(json!({"nope": 1})))
        .await;

    // Campaigns.
    let list = "/campaign/campaigns";
    let campaign = c
        .manage(M::POST, list, list, Some(json!({"name": "Drive", "configuration_id": config_id, "external_id": "drive", "agent_config": {"a": [1, 2.5]}})))
        .await;
    let campaign_id = campaign["id"].as_str().unwrap().to_owned();
    c.manage(
        M::POST,
        list,
        list,
        Some(json!({"name": "Other", "configuration_id": config_id, "external_id": "other"})),
    )
    .await;
    c.manage(
        M::POST,
        list,
        list,
        Some(json!({"name": "Dup", "configuration_id": config_id, "external_id": "drive"})),
    )
    .await;
    c.manage(M::GET, list, "/campaign/campaigns?limit=1", None)
        .await;
    c.manage(M::GET, list, "/campaign/campaigns?status=bogus", None)
        .await;
    let one = "/campaign/campaigns/{campaign_id}";
    c.manage(M::GET, one, "/campaign/campaigns/drive", None)
        .await;
    c.manage(
        M::PATCH,
        one,
        "/campaign/campaigns/drive",
        Some(json!({"priority": 7})),
    )
    .await;
    c.manage(
        M::PATCH,
        one,
        "/campaign/campaigns/drive",
        Some(json!({"external_id": "other"})),
    )
    .await;
    c.manage(M::GET, one, "/campaign/campaigns/missing", None)
        .await;
    c.manage(M::GET, one, "/campaign/campaigns/%FF", None).await;
    c.manage(M::GET, one, "/campaign/campaigns/%00", None).await;
    c.manage(
        M::DELETE,
        "/campaign/configurations/{configuration_id}",
        &config_path,
        None,
    )
    .await;

    // Contacts.
    let contacts = "/campaign/campaigns/{campaign_id}/contacts";
    c.manage(M::POST, contacts, "/campaign/campaigns/drive/contacts", Some(json!({"contacts": [
        {"external_id": "ann", "phone_numbers": ["415 555 2671"], "data": {"plan": "gold", "n": 1.5}, "timezone": "America/Chicago",
         "scheduled_at": "2030-01-01T10:00:00Z", "agent_config": {"k": "v"}},
        {"phone_numbers": ["+12125550100"]}
    ]}))).await;
    c.manage(
        M::POST,
        contacts,
        "/campaign/campaigns/drive/contacts",
        Some(json!({"contacts": [{"phone_numbers": ["bad"]}]})),
    )
    .await;
    c.manage(
        M::POST,
        contacts,
        "/campaign/campaigns/default/contacts",
        Some(json!({"contacts": [{"phone_numbers": ["+12125550101"]}]})),
    )
    .await;
    c.manage(
        M::GET,
        contacts,
        "/campaign/campaigns/drive/contacts?status=pending",
        None,
    )
    .await;
    let contact = "/campaign/campaigns/{campaign_id}/contacts/{contact_id}";
    c.manage(
        M::GET,
        contact,
        "/campaign/campaigns/drive/contacts/ann",
        None,
    )
    .await;
    c.manage(
        M::GET,
        contact,
        "/campaign/campaigns/drive/contacts/nobody",
        None,
    )
    .await;
    let explain = "/campaign/campaigns/{campaign_id}/contacts/{contact_id}/explain";
    c.manage(
        M::GET,
        explain,
        "/campaign/campaigns/drive/contacts/ann/explain",
        None,
    )
    .await;
    c.manage(
        M::GET,
        explain,
        "/campaign/campaigns/drive/contacts/nobody/explain",
        None,
    )
    .await;
    c.manage(
        M::GET,
        "/campaign/campaigns/{campaign_id}/stats",
        "/campaign/campaigns/drive/stats",
        None,
    )
    .await;
    c.manage(
        M::DELETE,
        contact,
        "/campaign/campaigns/drive/contacts/ann",
        None,
    )
    .await;

    // Imports: a CSV body, the import's record, its error report.
    let imports = "/campaign/campaigns/{campaign_id}/imports";
    for (content_type, body) in [
        ("text/csv", "phone,external_id\n+12125550103,bo\nnope,x\n"),
        ("text/csv", "name\nx\n"),
        ("application/json", "{}"),
    ] {
        let resp = reqwest::Client::new()
            .post(format!("{}/campaign/campaigns/drive/imports", app.base))
            .bearer_auth(&app.token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let answer: Value = resp.json().await.unwrap();
        c.check(&M::POST, imports, status, &answer);
        if status == StatusCode::ACCEPTED {
            let id = answer["id"].as_str().unwrap().to_owned();
            let import_path = format!("/campaign/campaigns/drive/imports/{id}");
            c.manage(M::GET, imports, "/campaign/campaigns/drive/imports", None)
                .await;
            let import_one = "/campaign/campaigns/{campaign_id}/imports/{import_id}";
            c.manage(M::GET, import_one, &import_path, None).await;
            // The report itself is CSV (tests/it/imports.rs reads it); its refusal is JSON.
            c.manage(
                M::GET,
                "/campaign/campaigns/{campaign_id}/imports/{import_id}/errors",
                "/campaign/campaigns/drive/imports/0190b2a0-0000-7000-8000-000000000000/errors",
                None,
            )
            .await;
        }
    }

    // Do-not-call lists.
    let lists = "/campaign/dnc-lists";
    let made = c
        .manage(M::POST, lists, lists, Some(json!({"name": "internal"})))
        .await;
    c.manage(M::POST, lists, lists, Some(json!({"name": "internal"})))
        .await;
    c.manage(M::GET, lists, lists, None).await;
    let list_one = "/campaign/dnc-lists/{list_id}";
    let list_path = format!("/campaign/dnc-lists/{}", made["id"].as_str().unwrap());
    c.manage(M::GET, list_one, &list_path, None).await;
    let numbers = "/campaign/dnc-lists/{list_id}/numbers";
    let body = Some(json!({"numbers": ["+12125550109"]}));
    c.manage(
        M::POST,
        numbers,
        &format!("{list_path}/numbers"),
        body.clone(),
    )
    .await;
    c.manage(
        M::POST,
        numbers,
        &format!("{list_path}/numbers"),
        Some(json!({"numbers": ["x"]})),
    )
    .await;
    let lookup = "/campaign/dnc-numbers/{number}";
    c.manage(M::GET, lookup, "/campaign/dnc-numbers/+12125550109", None)
        .await;
    c.manage(M::GET, lookup, "/campaign/dnc-numbers/x", None)
        .await;
    c.manage(
        M::POST,
        "/campaign/dnc-lists/{list_id}/numbers/remove",
        &format!("{list_path}/numbers/remove"),
        body,
    )
    .await;
    c.manage(M::DELETE, list_one, &list_path, None).await;
    c.manage(M::GET, list_one, &list_path, None).await;

    // Lifecycle.
    for (action, path) in [
        ("pause", "drive"),
        ("pause", "drive"),
        ("start", "drive"),
        ("close", "drive"),
        ("start", "drive"),
    ] {
        let template = format!("/campaign/campaigns/{{campaign_id}}/{action}");
        c.manage(
            M::POST,
            &template,
            &format!("/campaign/campaigns/{path}/{action}"),
            None,
        )
        .await;
    }
    c.manage(
        M::POST,
        contacts,
        "/campaign/campaigns/drive/contacts",
        Some(json!({"contacts": [{"phone_numbers": ["+12125550102"]}]})),
    )
    .await;

    // Forecast: an answer, a field out of range, a campaign not the caller's.
    let forecast = "/campaign/forecast";
    c.manage(M::POST, forecast, forecast, Some(json!({"lines": [1, 5]})))
        .await;
    c.manage(M::POST, forecast, forecast, Some(json!({"lines": [0]})))
        .await;
    c.manage(
        M::POST,
        forecast,
        forecast,
        Some(json!({"campaigns": ["nobody-has-this"]})),
    )
    .await;

    // Organization.
    c.manage(M::GET, "/campaign/timezones", "/campaign/timezones", None)
        .await;
    let settings = "/campaign/concurrency-settings";
    c.manage(M::GET, settings, settings, None).await;
    c.manage(
        M::PUT,
        settings,
        settings,
        Some(json!({"concurrency_limit": 25})),
    )
    .await;
    c.manage(M::PUT, settings, settings, Some(json!([25])))
        .await;
    c.manage(
        M::PUT,
        settings,
        settings,
        Some(json!({"concurrency_limit": 0})),
    )
    .await;

    // Auth refusals.
    c.call(None, M::GET, list, list, None).await;
    c.call(Some("bogus"), M::GET, list, list, None).await;
    c.call(
        Some(&reader),
        M::POST,
        list,
        list,
        Some(json!({"name": "x", "configuration_id": config_id})),
    )
    .await;
    c.call(
        Some(&reader),
        M::GET,
        one,
        &format!("/campaign/campaigns/{campaign_id}"),
        None,
    )
    .await;

    // The callback route, off with the simulated backend.
    c.call(
        None,
        M::POST,
        "/telephony/callbacks",
        "/telephony/callbacks",
        Some(json!({})),
    )
    .await;

    let statuses: std::collections::BTreeSet<u16> = c.seen.iter().map(|s| s.2).collect();
    assert_eq!(
        statuses.into_iter().collect::<Vec<_>>(),
        vec![200, 201, 202, 204, 400, 401, 403, 404, 409, 415, 422],
        "the test saw every kind of answer"
    );
    let operations: std::collections::BTreeSet<(String, String)> =
        c.seen.iter().map(|s| (s.0.clone(), s.1.clone())).collect();
    let documented: usize = c.doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|ops| ops.as_object().unwrap().len())
        .sum();
    assert_eq!(
        operations.len(),
        documented,
        "every documented operation was called"
    );
}
