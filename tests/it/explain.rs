//! "Why is this contact not being called?" against the claim itself: the
//! contacts explained as dialable now are exactly those the engine takes.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{Duration as Span, Timelike, Utc};
use dialerd::clock::SystemClock;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{cycles_ran, engine_settings, eventually, start_engine, TestApp};

/// A window of all days from `from` to `to` (HH:MM).
fn every_day(from: chrono::NaiveTime, to: chrono::NaiveTime) -> Value {
    let all = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let hhmm = |t: chrono::NaiveTime| format!("{:02}:{:02}", t.hour(), t.minute());
    json!([{"days": all, "start": hhmm(from), "end": hhmm(to)}])
}

/// A small deterministic generator: the same contacts on every run.
struct Draw(u64);

impl Draw {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[tokio::test]
async fn the_contacts_explained_as_dialable_now_are_exactly_those_the_engine_takes() {
    let app = TestApp::spawn().await;
    sqlx::query("UPDATE organizations SET concurrency_limit = 10000")
        .execute(&app.db.pool)
        .await
        .unwrap();
    // Open two hours either side of now on UTC's clock (and so in Paris,
    // an hour ahead); shut in Tokyo, whose window is hours away.
    let now = Utc::now();
    let utc = |d: Span| (now + d).time();
    let tokyo = |d: Span| (now + d).with_timezone(&chrono_tz::Asia::Tokyo).time();
    let schedule = json!({
        "default_timezone": "UTC",
        "default_windows": every_day(utc(Span::hours(-2)), utc(Span::hours(2))),
        "overrides": [{"timezone": "Asia/Tokyo",
                       "windows": every_day(tokyo(Span::hours(5)), tokyo(Span::hours(9)))}]
    });
    let config = json!({"schedule": schedule, "dialing_policy": {"max_attempts": 3}});
    let active = app.campaign_with(config.clone(), json!({})).await;
    let paused = app.campaign_with(config, json!({})).await;

    let mut draw = Draw(7);
    let zones = [Value::Null, json!("Asia/Tokyo"), json!("Europe/Paris")];
    let mut made: Vec<(String, Uuid)> = Vec::new();
    for (campaign, n) in [
        (active.as_str(), 200),
        (paused.as_str(), 50),
        ("default", 50),
    ] {
        let first = made.len();
        let list: Vec<Value> = (first..first + n)
            .map(|k| {
                let zone = &zones[draw.below(3) as usize];
                json!({"phone_numbers": [format!("+1415555{k:04}")],
                       "timezone": if campaign == "default" { &Value::Null } else { zone }})
            })
            .collect();
        let ids = app.contacts(campaign, json!(list)).await;
        made.extend(ids.into_iter().map(|id| (campaign.to_owned(), id)));
    }
    // Some not due for an hour, some done, some with every number retired.
    for (_, id) in &made {
        let change = match draw.below(10) {
            0 | 1 => "next_attempt_at = now() + interval '1 hour'",
            2 => "status = 'completed', attempt_count = 1, last_outcome = 'completed'",
            3 => "retired_numbers = '{0}'",
            _ => continue,
        };
        sqlx::query(&format!("UPDATE contacts SET {change} WHERE id = $1"))
            .bind(id)
            .execute(&app.db.pool)
            .await
            .unwrap();
    }
    let (status, _) = app
        .call(
            reqwest::Method::POST,
            &format!("/campaign/campaigns/{paused}/pause"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let mut dialable = HashSet::new();
    let mut never = HashSet::new();
    for (campaign, id) in &made {
        let (status, e) = app
            .get(&format!(
                "/campaign/campaigns/{campaign}/contacts/{id}/explain"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{e}");
        match e["verdict"].as_str().unwrap() {
            "dialable_now" => {
                assert!(e["checks"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|c| c["pass"] == true));
                dialable.insert(*id);
            }
            "never" => {
                never.insert(*id);
            }
            "waiting" => {}
            other => panic!("verdict {other}"),
        }
    }
    // Every kind is there: the test would prove little otherwise.
    assert!(
        dialable.len() > 50 && never.len() > 20,
        "{} {}",
        dialable.len(),
        never.len()
    );

    // The engine, with lines for all and calls that outlast the test.
    let mut settings = engine_settings(&app.db, 400);
    settings.dialer.global_concurrency_limit = 10_000;
    settings.telephony.simulated.mean_call_ms = 600_000;
    settings.telephony.simulated.duration = dialerd::settings::DurationShape::Fixed;
    let engine = start_engine(&app.db, &settings, SystemClock).await;
    let taken = || async {
        sqlx::query_scalar::<_, Uuid>("SELECT id FROM contacts WHERE status = 'in_progress'")
            .fetch_all(&app.db.pool)
            .await
            .unwrap()
            .into_iter()
            .collect::<HashSet<Uuid>>()
    };
    eventually(20, "the dialable contacts taken", || async {
        taken().await.len() >= dialable.len()
    })
    .await;
    cycles_ran(&engine).await;
    assert_eq!(taken().await, dialable, "explain and the claim disagree");
    // What the claim set aside, explain called `never`.
    let set_aside: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM contacts WHERE set_aside_reason IS NOT NULL")
            .fetch_all(&app.db.pool)
            .await
            .unwrap();
    assert!(!set_aside.is_empty());
    assert!(set_aside.iter().all(|id| never.contains(id)));
    engine.stop(Duration::ZERO).await.unwrap();
}

#[tokio::test]
async fn an_explanation_names_each_gate_and_when_a_waiting_contact_is_due() {
    let app = TestApp::spawn().await;
    let campaign = app
        .campaign_with(
            json!({"schedule": crate::helpers::around_the_clock()}),
            json!({}),
        )
        .await;
    let ids = app
        .contacts(
            &campaign,
            json!([{"external_id": "later", "phone_numbers": ["+14155550100"]}]),
        )
        .await;
    let due = Utc::now() + Span::hours(3);
    sqlx::query("UPDATE contacts SET next_attempt_at = $2 WHERE id = $1")
        .bind(ids[0])
        .bind(due)
        .execute(&app.db.pool)
        .await
        .unwrap();
    let (status, e) = app
        .get(&format!(
            "/campaign/campaigns/{campaign}/contacts/later/explain"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{e}");
    assert_eq!(e["verdict"], "waiting");
    let until: chrono::DateTime<Utc> = e["waiting_until"].as_str().unwrap().parse().unwrap();
    assert!((until - due).num_milliseconds().abs() < 1, "{e}");
    let gates: Vec<&str> = e["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["gate"].as_str().unwrap())
        .collect();
    assert_eq!(
        gates,
        [
            "status",
            "due",
            "campaign",
            "window",
            "numbers",
            "organization_limit",
            "global_limit"
        ]
    );
    let (status, _) = app
        .get(&format!(
            "/campaign/campaigns/{campaign}/contacts/nobody/explain"
        ))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
