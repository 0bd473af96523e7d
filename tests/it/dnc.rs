//! Do-not-call lists: the API (lists, numbers in batches, lookups, one
//! organization's lists apart from another's, global lists read-only), the
//! engine (a listed number is skipped for the contact's next one; a contact
//! with none left ends suppressed with no call placed; every attempt keeps
//! the evidence of its claim) and `dnc load`.
//! The fence between a listing and claims in flight: tests/it/claims.rs.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{
    around_the_clock, detail, engine_settings, eventually, plans_published, start_engine, TestApp,
};

async fn list(app: &TestApp, name: &str, extra: Value) -> String {
    let mut body = json!({"name": name});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let (status, made) = app.post("/campaign/dnc-lists", body).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    made["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn lists_take_numbers_in_batches_all_or_nothing_and_answer_lookups() {
    let app = TestApp::spawn().await;
    let id = list(&app, "complaints", json!({"default_country": "US"})).await;
    let numbers = format!("/campaign/dnc-lists/{id}/numbers");
    let (status, added) = app
        .post(
            &numbers,
            json!({"numbers": ["+14155550101", "(212) 555-0102", "+14155550101"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{added}");
    assert_eq!((&added["changed"], &added["size"]), (&json!(2), &json!(2)));
    // One bad entry refuses the batch, named; nothing changes.
    let (status, body) = app
        .post(&numbers, json!({"numbers": ["+14155550103", "call me"]}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(detail(&body).starts_with("numbers[1]: "), "{body}");
    let too_many: Vec<String> = (0..10_001)
        .map(|i| format!("+1415555{:04}", i % 10_000))
        .collect();
    let (status, _) = app.post(&numbers, json!({"numbers": too_many})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, one) = app.get(&format!("/campaign/dnc-lists/{id}")).await;
    assert_eq!((&one["size"], &one["version"]), (&json!(2), &json!(2)));

    let (status, found) = app.get("/campaign/dnc-numbers/+12125550102").await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["lists"][0]["name"], "complaints");
    assert!(found["lists"][0]["added_at"].is_string());
    let (status, _) = app.get("/campaign/dnc-numbers/nonsense").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let (status, removed) = app
        .post(
            &format!("{numbers}/remove"),
            json!({"numbers": ["+12125550102", "+19995550000"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{removed}");
    assert_eq!(
        (&removed["changed"], &removed["size"]),
        (&json!(1), &json!(1))
    );
    let (_, gone) = app.get("/campaign/dnc-numbers/+12125550102").await;
    assert_eq!(gone["lists"], json!([]));
    let (status, _) = app
        .post("/campaign/dnc-lists", json!({"name": "complaints"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Another organization sees none of it; a reader cannot change it.
    let (_, stranger) = app.other_org().await;
    let (status, _) = app
        .call_as(
            Some(&stranger),
            Method::GET,
            &format!("/campaign/dnc-lists/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, theirs) = app
        .call_as(
            Some(&stranger),
            Method::GET,
            "/campaign/dnc-numbers/+14155550101",
            None,
        )
        .await;
    assert_eq!(theirs["lists"], json!([]));
    let reader = app.token(app.org, "campaigns:read").await;
    let (status, _) = app
        .call_as(
            Some(&reader),
            Method::POST,
            &numbers,
            Some(json!({"numbers": ["+14155550109"]})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A global list applies to everyone and is changed by the operator only.
    let global = dialerd::db::dnc::create(&app.db.pool, None, "national registry", Some("US"))
        .await
        .unwrap();
    dialerd::db::dnc::add(&app.db.pool, None, global.id, &[14155550199])
        .await
        .unwrap();
    let (_, lists) = app.get("/campaign/dnc-lists").await;
    let names: Vec<&str> = lists["lists"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["complaints", "national registry"]);
    let (_, theirs) = app
        .call_as(
            Some(&stranger),
            Method::GET,
            "/campaign/dnc-numbers/+14155550199",
            None,
        )
        .await;
    assert_eq!(theirs["lists"][0]["global"], true);
    let (status, body) = app
        .post(
            &format!("/campaign/dnc-lists/{}/numbers", global.id),
            json!({"numbers": ["+14155550108"]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/campaign/dnc-lists/{}", global.id),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = app
        .call(Method::DELETE, &format!("/campaign/dnc-lists/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.db
            .count("SELECT coalesce(sum(cardinality(members)), 0) FROM dnc_blocks")
            .await,
        1,
        "the deleted list's numbers went with it"
    );
}

#[tokio::test]
async fn a_listed_number_is_skipped_and_a_contact_with_none_left_ends_suppressed_uncalled() {
    let app = TestApp::spawn().await;
    let campaign = app
        .campaign_with(json!({"schedule": around_the_clock()}), json!({}))
        .await;
    let id = list(&app, "internal", json!({})).await;
    let (status, _) = app
        .post(
            &format!("/campaign/dnc-lists/{id}/numbers"),
            json!({"numbers": ["+14155550101", "+14155550102"]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    app.contacts(
        &campaign,
        json!([
            {"external_id": "only-listed", "phone_numbers": ["+14155550101"]},
            {"external_id": "first-listed", "phone_numbers": ["+14155550102", "+14155550103"]},
            {"external_id": "clean", "phone_numbers": ["+14155550104"], "timezone": "Europe/Paris"}
        ]),
    )
    .await;
    let settings = engine_settings(&app.db, 4);
    let engine = start_engine(&app.db, &settings, dialerd::clock::SystemClock).await;
    plans_published(&engine, 1).await;
    eventually(20, "every contact final", || async {
        app.db
            .count("SELECT count(*) FROM contacts WHERE status IN ('completed', 'exhausted')")
            .await
            == 3
    })
    .await;
    engine.stop(Duration::from_secs(5)).await.unwrap();
    let dialed: Vec<String> =
        sqlx::query_scalar("SELECT phone_number FROM attempts ORDER BY phone_number")
            .fetch_all(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(dialed, ["+14155550103", "+14155550104"]);
    // Each attempt keeps what its claim saw: zone and source, local time,
    // the windows that allowed it, the lists checked and their versions.
    let (_, first) = app
        .get(&format!(
            "/campaign/campaigns/{campaign}/contacts/first-listed"
        ))
        .await;
    let evidence = &first["attempts"][0]["evidence"];
    assert_eq!(
        evidence["zones"][0]["zone"], "America/Los_Angeles",
        "{evidence}"
    );
    // No stated zone: the zone of its (+1 415) numbers.
    assert_eq!(evidence["zones"][0]["source"], "number");
    assert_eq!(evidence["windows"], "default");
    assert!(evidence["window"]["start"].is_string(), "{evidence}");
    assert_eq!(
        evidence["dnc_lists"],
        json!([{"id": id, "name": "internal", "version": 2}])
    );
    let attempted =
        chrono::DateTime::parse_from_rfc3339(first["attempts"][0]["created_at"].as_str().unwrap())
            .unwrap();
    let checked =
        chrono::DateTime::parse_from_rfc3339(evidence["checked_at"].as_str().unwrap()).unwrap();
    assert!(checked <= attempted && attempted - checked < chrono::Duration::seconds(5));
    let local = checked
        .with_timezone(&chrono_tz::America::Los_Angeles)
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    assert_eq!(evidence["zones"][0]["local_time"], local);
    let (_, clean) = app
        .get(&format!("/campaign/campaigns/{campaign}/contacts/clean"))
        .await;
    let zone = &clean["attempts"][0]["evidence"]["zones"][0];
    assert_eq!(
        (&zone["zone"], &zone["source"]),
        (&json!("Europe/Paris"), &json!("contact"))
    );

    let path = format!("/campaign/campaigns/{campaign}/contacts/only-listed");
    let (_, only) = app.get(&path).await;
    assert_eq!(only["status"], "exhausted");
    assert_eq!(only["attempt_count"], 0);
    assert_eq!(only["attempts"], json!([]));
    assert!(
        only["set_aside_reason"]
            .as_str()
            .unwrap()
            .starts_with("suppressed: 1 of its 1 numbers on a do-not-call list"),
        "{only}"
    );
    let (_, stats) = app
        .get(&format!("/campaign/campaigns/{campaign}/stats"))
        .await;
    assert_eq!(stats["contacts"]["suppressed"], 1, "{stats}");
    let (_, why) = app.get(&format!("{path}/explain")).await;
    let numbers = why["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["gate"] == "numbers")
        .unwrap()
        .clone();
    assert_eq!(numbers["pass"], false);
    assert!(
        numbers["detail"]
            .as_str()
            .unwrap()
            .contains("1 on a do-not-call list"),
        "{numbers}"
    );
}

fn dialerd(db_url: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_dialerd"))
        .args(args)
        .env("DATABASE_URL", db_url)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

#[tokio::test]
async fn dnc_load_reads_e164_and_the_registry_format_and_replaces_only_with_a_whole_file() {
    let app = TestApp::spawn().await;
    let dir = std::env::temp_dir().join(format!("dialerd-dnc-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let org = app.org.to_string();
    let good = file(
        "good.txt",
        "+14155550101\n2125550102\n212,5550103\n\n# a comment\n",
    );
    let out = dialerd(
        &app.db.url,
        &["dnc", "load", "--list", "registry", "--global", &good],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("3 numbers read") && stdout.contains("3 numbers on the list"),
        "{stdout}"
    );
    let (_, found) = app.get("/campaign/dnc-numbers/+12125550103").await;
    assert_eq!(found["lists"][0]["global"], true, "{found}");

    // Bad lines are counted and named; the good ones are added.
    let mixed = file("mixed.txt", "+14155550104\nnot a number\n112,5550105\n");
    let out = dialerd(
        &app.db.url,
        &["dnc", "load", "--list", "own", "--org", &org, &mixed],
    );
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refused line 2: ") && stderr.contains("refused line 3: "),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 numbers read"));

    // Loading more adds to the list; a number already on it keeps its date.
    let (_, before) = app.get("/campaign/dnc-numbers/+14155550104").await;
    let more = file("more.txt", "+14155550104\n+14155550105\n");
    let out = dialerd(
        &app.db.url,
        &["dnc", "load", "--list", "own", "--org", &org, &more],
    );
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("2 numbers on the list"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let (_, after) = app.get("/campaign/dnc-numbers/+14155550104").await;
    assert_eq!(
        before["lists"][0]["added_at"],
        after["lists"][0]["added_at"]
    );

    // --replace needs a whole file, and --allow-empty to empty a list.
    let out = dialerd(
        &app.db.url,
        &[
            "dnc",
            "load",
            "--list",
            "registry",
            "--global",
            "--replace",
            &mixed,
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("2 lines refused; with --replace the file must be whole: nothing loaded"));
    let empty = file("empty.txt", "\n");
    let out = dialerd(
        &app.db.url,
        &[
            "dnc",
            "load",
            "--list",
            "registry",
            "--global",
            "--replace",
            &empty,
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow-empty"));
    let (_, still) = app.get("/campaign/dnc-numbers/+14155550101").await;
    assert_eq!(
        still["lists"][0]["name"], "registry",
        "nothing was replaced"
    );
    let next = file("next.txt", "+14155550199\n");
    let out = dialerd(
        &app.db.url,
        &[
            "dnc",
            "load",
            "--list",
            "registry",
            "--global",
            "--replace",
            &next,
        ],
    );
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 numbers on the list (replaced)"));
    let (_, old) = app.get("/campaign/dnc-numbers/+14155550101").await;
    assert_eq!(old["lists"], json!([]));
    let (_, new) = app.get("/campaign/dnc-numbers/+14155550199").await;
    assert_eq!(new["lists"][0]["name"], "registry");
    assert_eq!(
        app.db
            .count("SELECT sum(cardinality(members)) FROM dnc_blocks d JOIN dnc_lists l ON l.key = d.list_key WHERE l.name = 'registry'")
            .await,
        1,
        "the old generation is gone"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn numbers_listed_mid_campaign_are_never_dialed_after_the_listing_returns_across_two_daemons()
{
    let app = TestApp::spawn().await;
    let campaign = app
        .campaign_with(json!({"schedule": around_the_clock()}), json!({}))
        .await;
    let numbers: Vec<String> = (0..300)
        .map(|i| format!("+1415555{:04}", 1000 + i))
        .collect();
    let contacts: Vec<Value> = numbers
        .iter()
        .enumerate()
        .map(|(i, n)| json!({"external_id": format!("c{i}"), "phone_numbers": [n]}))
        .collect();
    app.contacts(&campaign, json!(contacts)).await;
    let id = list(&app, "complaints", json!({})).await;
    // Two daemons of 5 lines, calls of 300 ms: some 30 calls a second.
    let mut settings = engine_settings(&app.db, 5);
    settings.telephony.simulated.mean_call_ms = 300;
    settings.telephony.simulated.duration = dialerd::settings::DurationShape::Fixed;
    let one = start_engine(&app.db, &settings, dialerd::clock::SystemClock).await;
    let two = start_engine(&app.db, &settings, dialerd::clock::SystemClock).await;
    plans_published(&one, 1).await;
    // While they dial, list ten numbers every 100 ms: those of contacts
    // waiting or claimed right now (queued, some with an attempt being
    // written), each batch's moment noted once its answer is in.
    let mut listed: Vec<(String, chrono::DateTime<chrono::Utc>)> = Vec::new();
    for _ in 0..15 {
        let batch: Vec<String> = sqlx::query_scalar(
            "SELECT phone_numbers[1] FROM contacts
              WHERE status IN ('pending', 'in_progress') AND phone_numbers[1] <> ALL($1)
              ORDER BY random() LIMIT 10",
        )
        .bind(listed.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>())
        .fetch_all(&app.db.pool)
        .await
        .unwrap();
        let (status, body) = app
            .post(
                &format!("/campaign/dnc-lists/{id}/numbers"),
                json!({"numbers": batch}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let answered = chrono::Utc::now();
        listed.extend(batch.into_iter().map(|n| (n, answered)));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eventually(30, "every contact final", || async {
        app.db
            .count("SELECT count(*) FROM contacts WHERE status IN ('completed', 'exhausted')")
            .await
            == 300
    })
    .await;
    one.stop(Duration::from_secs(5)).await.unwrap();
    two.stop(Duration::from_secs(5)).await.unwrap();
    assert_eq!(listed.len(), 150);
    let mut suppressed = 0;
    for (number, answered) in &listed {
        let dialed: Vec<chrono::DateTime<chrono::Utc>> =
            sqlx::query_scalar("SELECT created_at FROM attempts WHERE phone_number = $1")
                .bind(number)
                .fetch_all(&app.db.pool)
                .await
                .unwrap();
        for at in &dialed {
            assert!(
                at < answered,
                "{number} dialed at {at}, after its listing at {answered}"
            );
        }
        suppressed += usize::from(dialed.is_empty());
    }
    // Most listed numbers were still waiting: they end suppressed, uncalled.
    let set_aside = app
        .db
        .count("SELECT count(*) FROM contacts WHERE set_aside_reason LIKE 'suppressed%'")
        .await;
    assert_eq!(set_aside as usize, suppressed);
    assert!(
        suppressed > 50,
        "{suppressed} of 150 listed numbers were never dialed"
    );
}

/// Numbers are stored a row a block of 256 (`dnc_blocks`): random adds,
/// removals and loads over a few neighbouring blocks, their edges
/// included, agree with a plain set after every step, in the list's size,
/// the lookup and the claim's check.
#[tokio::test]
async fn numbers_kept_in_blocks_agree_with_a_plain_set_through_adds_removes_and_loads() {
    use std::collections::BTreeSet;

    use dialerd::db::dnc;
    use rand::{rngs::StdRng, Rng, SeedableRng};

    let app = TestApp::spawn().await;
    let pool = &app.db.pool;
    let list = dnc::create(pool, Some(app.org), "blocks", None)
        .await
        .unwrap();
    // Four blocks: 14155550000 >> 8 and the three after it.
    let base = (14_155_550_000i64 >> 8) << 8;
    let mut rng = StdRng::seed_from_u64(21);
    let pick = |rng: &mut StdRng, n: usize| -> Vec<i64> {
        (0..n)
            .map(|_| match rng.random_range(0..10) {
                0 => base + 256 * rng.random_range(0..4), // a block's first
                1 => base + 256 * rng.random_range(0..4) + 255, // and last
                _ => base + rng.random_range(0..1024),
            })
            .collect()
    };
    let mut model = BTreeSet::new();
    for step in 0..40 {
        let n = rng.random_range(1..60);
        let numbers = pick(&mut rng, n);
        match step % 4 {
            0 | 1 => {
                // Duplicates within the batch count once.
                let fresh: BTreeSet<i64> = numbers
                    .iter()
                    .copied()
                    .filter(|n| !model.contains(n))
                    .collect();
                let added = dnc::add(pool, Some(app.org), list.id, &numbers)
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(added as usize, fresh.len(), "step {step}");
                model.extend(fresh);
            }
            2 => {
                let on: usize = numbers
                    .iter()
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .filter(|n| model.contains(*n))
                    .count();
                let removed = dnc::remove(pool, Some(app.org), list.id, &numbers)
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(removed as usize, on, "step {step}");
                for n in &numbers {
                    model.remove(n);
                }
            }
            _ => {
                let mut load = dnc::Load::begin(pool, &list, Some(app.org));
                for n in &numbers {
                    load.push(*n);
                }
                let replace = step % 8 == 7;
                let size = load.commit(replace).await.unwrap().unwrap();
                if replace {
                    model = numbers.iter().copied().collect();
                } else {
                    model.extend(numbers.iter().copied());
                }
                assert_eq!(size as usize, model.len(), "step {step}");
            }
        }
        let size: i64 = sqlx::query_scalar("SELECT size FROM dnc_lists WHERE id = $1")
            .bind(list.id)
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(size as usize, model.len(), "size after step {step}");
        let stored: Vec<i64> = sqlx::query_scalar(
            "SELECT (d.block << 8) | m FROM dnc_blocks d
               JOIN dnc_lists l ON l.key = d.list_key AND l.generation = d.generation,
                    unnest(d.members) m
              WHERE l.id = $1 ORDER BY 1",
        )
        .bind(list.id)
        .fetch_all(pool)
        .await
        .unwrap();
        assert_eq!(
            stored,
            model.iter().copied().collect::<Vec<_>>(),
            "numbers after step {step}, each on one row"
        );
        let probe: Vec<i64> = (0..1024).step_by(7).map(|i| base + i).collect();
        let texts: Vec<String> = probe.iter().map(|n| format!("+{n}")).collect();
        let suppressed: Vec<i32> = sqlx::query_scalar("SELECT dnc_suppressed($1, $2)")
            .bind(&texts)
            .bind(app.org)
            .fetch_one(pool)
            .await
            .unwrap();
        let expected: Vec<i32> = probe
            .iter()
            .enumerate()
            .filter(|(_, n)| model.contains(*n))
            .map(|(i, _)| i as i32)
            .collect();
        assert_eq!(suppressed, expected, "the claim's check after step {step}");
        for n in probe.iter().take(3).chain(model.iter().take(3)) {
            let found = dnc::lookup(pool, app.org, *n).await.unwrap();
            assert_eq!(found.len(), usize::from(model.contains(n)), "lookup of {n}");
        }
    }
}
