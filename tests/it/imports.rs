//! Bulk CSV import: through the API and the command line, good, bad and
//! duplicate rows, all-or-nothing, a 100,000-row file loaded while the
//! campaign dials, and imports interrupted by a crash and by a shutdown.

use std::time::Duration;

use dialerd::db::campaigns::{self, NewCampaign};
use dialerd::db::configurations::{self, ConfigurationBody};
use dialerd::domain::agent::AgentFields;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{around_the_clock, detail, eventually, Daemon, TestApp, TestDb};

/// Rows a chunk of an import holds (`dialerd::import::CHUNK_ROWS`).
const CHUNK: i64 = dialerd::import::CHUNK_ROWS as i64;

/// POSTs `body` as a CSV import into `campaign` with `query`.
async fn upload(
    base: &str,
    token: &str,
    campaign: &str,
    query: &str,
    body: impl Into<reqwest::Body>,
) -> (StatusCode, Value) {
    let resp = reqwest::Client::new()
        .post(format!(
            "{base}/campaign/campaigns/{campaign}/imports{query}"
        ))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Polls an import until it is no longer running; returns it.
async fn finished(app: &TestApp, campaign: &str, id: &str) -> Value {
    let path = format!("/campaign/campaigns/{campaign}/imports/{id}");
    let mut last = Value::Null;
    for _ in 0..600 {
        let (status, body) = app.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["state"] != "running" {
            return body;
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the import did not finish: {last}");
}

async fn error_report(app: &TestApp, campaign: &str, id: &str) -> String {
    let resp = reqwest::Client::new()
        .get(format!(
            "{}/campaign/campaigns/{campaign}/imports/{id}/errors",
            app.base
        ))
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    resp.text().await.unwrap()
}

/// `n` rows `phone,external_id,first_name` with distinct valid US numbers.
fn rows(n: usize, prefix: &str) -> String {
    const AREAS: [u32; 10] = [212, 415, 646, 718, 917, 310, 312, 617, 202, 305];
    let mut out = String::from("phone,external_id,first_name\n");
    for i in 0..n {
        let area = AREAS[(i / 10_000) % AREAS.len()];
        let exchange = 200 + (i / 100_000) % 700;
        out.push_str(&format!(
            "+1{area}{exchange}{:04},{prefix}{i},Name {i}\n",
            i % 10_000
        ));
    }
    out
}

#[tokio::test]
async fn good_rows_load_and_bad_rows_are_reported_by_line_and_column() {
    let app = TestApp::spawn().await;
    let campaign = app.campaign(json!({})).await;
    app.contacts(
        &campaign,
        json!([{"external_id": "existing", "phone_numbers": ["+14155550199"]}]),
    )
    .await;
    let mut file = b"phone,Phone_2,External_ID,timezone,first_name,note
(415) 555-0101,,a-1,America/Chicago,Ann,\"hello, world\"
+14155550102,415 555 0102,a-2,,Bob,
+14155550103,,a-3,Mars/Base,Cy,
not-a-number,,a-4,,Di,
+14155550105,,a-1,,Ann again,
+14155550106,,existing,,Eve,
+14155550107,,,,No id,
+14155550108,only-three-fields
\"+14155550109\",,\"multi
line\",,Fay,
+14155550110,,a-5,,"
        .to_vec();
    // Line 12's first_name is not UTF-8.
    file.extend_from_slice(b"\xff\xfe,\n");
    let (status, accepted) = upload(&app.base, &app.token, &campaign, "", file).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    assert_eq!(accepted["source"], "api");
    assert_eq!(accepted["mapping"]["Phone_2"], "phone_2");
    assert_eq!(accepted["mapping"]["note"], "data.note");
    let id = accepted["id"].as_str().unwrap();
    let done = finished(&app, &campaign, id).await;
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(
        (
            &done["rows_read"],
            &done["created"],
            &done["updated"],
            &done["refused"]
        ),
        (&json!(10), &json!(3), &json!(2), &json!(5)),
        "{done}"
    );
    assert_eq!(
        error_report(&app, &campaign, id).await,
        "line,column,reason\n\
         3,Phone_2,repeats an earlier number of the row\n\
         4,timezone,unknown IANA time zone `Mars/Base`\n\
         5,phone,`not-a-number` is not a phone number\n\
         9,,has 2 fields; the header has 6\n\
         12,first_name,is not valid UTF-8\n"
    );
    let contact = |key: &str| {
        let app = &app;
        let campaign = campaign.clone();
        let key = key.to_owned();
        async move {
            let (status, body) = app
                .get(&format!("/campaign/campaigns/{campaign}/contacts/{key}"))
                .await;
            assert_eq!(status, StatusCode::OK, "{key}: {body}");
            body
        }
    };
    // A later row of the file updates an earlier one, field by field.
    let a1 = contact("a-1").await;
    assert_eq!(a1["phone_numbers"], json!(["+14155550105"]));
    assert_eq!(a1["data"], json!({"first_name": "Ann again"}));
    assert_eq!(a1["timezone"], Value::Null);
    assert_eq!(
        contact("existing").await["phone_numbers"],
        json!(["+14155550106"])
    );
    assert_eq!(
        contact("multi%0Aline").await["data"],
        json!({"first_name": "Fay"})
    );
    let total = app
        .db
        .count(&format!(
            "SELECT count(*) FROM contacts WHERE campaign_id = '{campaign}'"
        ))
        .await;
    assert_eq!(total, 4, "existing, a-1, no id, multi line");
    let (status, list) = app
        .get(&format!("/campaign/campaigns/{campaign}/imports"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["imports"][0]["id"], json!(id));
}

#[tokio::test]
async fn all_or_nothing_refuses_the_whole_file_for_one_bad_row() {
    let app = TestApp::spawn().await;
    let campaign = app.campaign(json!({})).await;
    let mut file = rows(25_000, "r");
    file.push_str("+1415555,bad,Bad\n");
    let (status, accepted) = upload(
        &app.base,
        &app.token,
        &campaign,
        "?all_or_nothing=true",
        file,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let id = accepted["id"].as_str().unwrap();
    let done = finished(&app, &campaign, id).await;
    assert_eq!(done["state"], "failed", "{done}");
    assert_eq!(
        done["failure"],
        "1 of 25001 rows refused; nothing was loaded (all-or-nothing)"
    );
    assert_eq!((&done["created"], &done["refused"]), (&json!(0), &json!(1)));
    let report = error_report(&app, &campaign, id).await;
    assert!(
        report.ends_with("\n25002,phone,`+*****55` is not a valid phone number\n"),
        "{report}"
    );
    let loaded = app.db.count("SELECT count(*) FROM contacts").await;
    assert_eq!(loaded, 0, "three chunks were merged, none committed");

    let (status, accepted) = upload(
        &app.base,
        &app.token,
        &campaign,
        "?all_or_nothing=true",
        rows(25_000, "r"),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let done = finished(&app, &campaign, accepted["id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["created"], 25_000);
    assert_eq!(app.db.count("SELECT count(*) FROM contacts").await, 25_000);
}

#[tokio::test]
async fn mappings_content_types_states_and_tenants_are_checked_before_anything_loads() {
    let app = TestApp::spawn_with(|s| s.http.max_import_bytes = 4096).await;
    let campaign = app.campaign(json!({"external_id": "spring"})).await;
    let file = "Mobile,CRM,phone,notes\n415-555-0101,x1,999,kept\n";
    // Overrides: a column renamed to phone, another to external_id, and the
    // header's own `phone` column ignored.
    let (status, accepted) = upload(
        &app.base,
        &app.token,
        "spring",
        "?map=Mobile%3Dphone&map=CRM%3Dexternal_id&map=phone%3Dignore&map=notes%3Ddata.remarks",
        file,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let done = finished(&app, "spring", accepted["id"].as_str().unwrap()).await;
    assert_eq!(done["created"], 1, "{done}");
    let (_, x1) = app.get("/campaign/campaigns/spring/contacts/x1").await;
    assert_eq!(x1["phone_numbers"], json!(["+14155550101"]));
    assert_eq!(x1["data"], json!({"remarks": "kept"}));

    let refusals = [
        ("", "number,name\n1,2\n", 422, "no column maps to phone"),
        ("?map=Cell%3Dphone", file, 422, "header lacks"),
        ("?map=Mobile%3Dphone_11", file, 422, "is not a field"),
        ("", "", 422, "no header row"),
        ("?all_or_nothing=maybe", file, 422, "all_or_nothing"),
        ("?limit=5", file, 422, "unknown parameter"),
    ];
    for (query, body, code, says) in refusals {
        let (status, body) = upload(&app.base, &app.token, "spring", query, body).await;
        assert_eq!(status.as_u16(), code, "{query}: {body}");
        assert!(detail(&body).contains(says), "{query}: {body}");
    }
    let big = "phone\n".to_owned() + &"+14155550101\n".repeat(400);
    let (status, body) = upload(&app.base, &app.token, "spring", "", big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let json_body = reqwest::Client::new()
        .post(format!("{}/campaign/campaigns/spring/imports", app.base))
        .bearer_auth(&app.token)
        .json(&json!({"phone": "+14155550101"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_body.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let reader = app.token(app.org, "campaigns:read").await;
    let (status, _) = upload(&app.base, &reader, "spring", "", file).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, stranger) = app.other_org().await;
    let (status, _) = upload(&app.base, &stranger, &campaign, "", file).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let strangers_view = reqwest::Client::new()
        .get(format!(
            "{}/campaign/campaigns/{campaign}/imports/{}",
            app.base,
            done["id"].as_str().unwrap()
        ))
        .bearer_auth(&stranger)
        .send()
        .await
        .unwrap();
    assert_eq!(strangers_view.status(), StatusCode::NOT_FOUND);
    let (status, _) = app
        .post("/campaign/campaigns/spring/close", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = upload(&app.base, &app.token, "spring", "", file).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let imports = app.db.count("SELECT count(*) FROM imports").await;
    assert_eq!(imports, 1, "no refused request left an import behind");
    assert_eq!(app.db.count("SELECT count(*) FROM contacts").await, 1);
}

/// An organization with an around-the-clock campaign `spring` on `db`, and
/// a manage token; returns (org, campaign id, token).
async fn seed(db: &TestDb) -> (Uuid, Uuid, String) {
    let org = dialerd::admin::create_org(&db.pool, "importer", 20)
        .await
        .unwrap();
    let token = dialerd::admin::create_token(&db.pool, org, "campaigns:manage")
        .await
        .unwrap();
    let body: ConfigurationBody = serde_json::from_value(json!({
        "name": "c", "schedule": around_the_clock(),
        "dialing_policy": {"default_country": "US"}, "agent": {}
    }))
    .unwrap();
    let config = configurations::create(&db.pool, org, &body).await.unwrap();
    let campaign = campaigns::create(
        &db.pool,
        org,
        NewCampaign {
            name: "spring".into(),
            configuration_id: config.id,
            priority: 1,
            external_id: Some("spring".into()),
            agent: AgentFields::default(),
        },
    )
    .await
    .unwrap();
    (org, campaign.id, token)
}

#[tokio::test]
async fn the_command_line_loads_100000_rows_while_the_campaign_dials() {
    let db = TestDb::new().await;
    let (_, campaign, _) = seed(&db).await;
    let dir = std::env::temp_dir().join(format!("dialerd-import-test-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("contacts.csv");
    std::fs::write(&file, rows(100_000, "c")).unwrap();
    let _daemon = Daemon::start(
        &db,
        &[
            ("DIALERD_DIALER__LINES", "20"),
            ("DIALERD_TELEPHONY__SIMULATED__MEAN_CALL_MS", "50"),
        ],
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dialerd"))
        .args(["import", "--campaign", "spring"])
        .arg(&file)
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(": 100000 rows in ")
            && stdout.contains("100000 created, 0 updated, 0 refused"),
        "{stdout}"
    );
    let loaded = db
        .count(&format!(
            "SELECT count(*) FROM contacts WHERE campaign_id = '{campaign}'"
        ))
        .await;
    assert_eq!(loaded, 100_000);
    // Contacts of the first chunks were called before the last committed.
    let dialed_during: i64 = db
        .count(
            "SELECT count(*) FROM attempts a, imports i
              WHERE a.created_at < i.finished_at - interval '100 milliseconds'",
        )
        .await;
    assert!(
        dialed_during > 0,
        "nothing was dialed while the file loaded"
    );

    // Bad rows: loaded around, written to FILE.errors.csv, exit 0; with
    // --all-or-nothing nothing loads and the command fails.
    let bad = dir.join("bad.csv");
    std::fs::write(&bad, "phone,external_id\n+14155550101,b1\nnope,b2\n").unwrap();
    let run = |args: Vec<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_dialerd"));
        cmd.args(args)
            .arg(&bad)
            .env("DATABASE_URL", &db.url)
            .env("RUST_LOG", "warn");
        cmd.output().unwrap()
    };
    let strict = run(vec!["import", "--campaign", "spring", "--all-or-nothing"]);
    assert!(!strict.status.success());
    assert!(String::from_utf8_lossy(&strict.stderr)
        .contains("import failed: 1 of 2 rows refused; nothing was loaded (all-or-nothing)"));
    assert_eq!(
        db.count("SELECT count(*) FROM contacts WHERE external_id = 'b1'")
            .await,
        0
    );
    let lenient = run(vec!["import", "--campaign", "spring"]);
    assert!(lenient.status.success());
    assert!(String::from_utf8_lossy(&lenient.stdout).contains("1 created, 0 updated, 1 refused"));
    let report = std::fs::read_to_string(dir.join("bad.csv.errors.csv")).unwrap();
    assert_eq!(
        report,
        "line,column,reason\n3,phone,`nope` is not a phone number\n"
    );
    let unknown = run(vec!["import", "--campaign", "autumn"]);
    assert!(String::from_utf8_lossy(&unknown.stderr)
        .contains("no campaign with id or external_id `autumn`"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn an_interrupted_import_is_failed_with_what_it_committed_never_half_a_chunk() {
    let db = TestDb::new().await;
    let (org, campaign, token) = seed(&db).await;
    let file = rows(400_000, "k");
    for crash in [true, false] {
        let (mut daemon, logs) = Daemon::logged(&db, &[("DIALERD_DIALER__LINES", "2")]);
        let event = logs.wait_for(30, "HTTP API listening").await;
        let base = format!("http://{}", event["http_addr"].as_str().unwrap());
        let (status, accepted) = upload(&base, &token, "spring", "", file.clone()).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
        let id: Uuid = accepted["id"].as_str().unwrap().parse().unwrap();
        eventually(60, "a chunk committed", || async {
            db.count(&format!("SELECT rows_read FROM imports WHERE id = '{id}'"))
                .await
                > 0
        })
        .await;
        if crash {
            daemon.kill();
        } else {
            daemon.terminate();
            assert!(daemon.wait_exit(Duration::from_secs(30)).await.success());
        }
        // A crash shows once the importer's lease runs out; a shutdown at once.
        let within = if crash { 15 } else { 1 };
        eventually(within, "the import reads as failed", || async {
            let import = dialerd::db::imports::get(&db.pool, org, id)
                .await
                .unwrap()
                .unwrap();
            import.state == "failed"
        })
        .await;
        let import = dialerd::db::imports::get(&db.pool, org, id)
            .await
            .unwrap()
            .unwrap();
        let why = import.failure.unwrap();
        let expected = if crash {
            "interrupted: the importing process stopped"
        } else {
            "interrupted: the daemon shut down"
        };
        assert!(why.starts_with(expected), "{why}");
        let loaded = db
            .count(&format!(
                "SELECT count(*) FROM contacts WHERE campaign_id = '{campaign}'"
            ))
            .await;
        // Each run starts over on the same external ids: what the first
        // run created, the second updates.
        let committed = import.created + import.updated;
        assert!(committed > 0 && committed < 400_000, "{committed}");
        assert_eq!(committed % CHUNK, 0, "only whole chunks commit");
        assert_eq!(import.rows_read, committed);
        if crash {
            assert_eq!(loaded, import.created, "every contact it counts is there");
        } else {
            assert!(loaded >= committed, "{loaded} < {committed}");
        }
        assert_eq!(
            db.count(
                "SELECT count(*) FROM imports WHERE state = 'running' AND alive_until > now()"
            )
            .await,
            0
        );
    }
}
