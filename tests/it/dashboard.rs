//! The web dashboard in a real browser (headless Chromium through
//! chromedriver, spoken to over the W3C WebDriver protocol): sign in once,
//! see campaigns live, pause one from the page and find it paused in the
//! database, search contacts and ask why one is not called, the lines and
//! limits pages. Screenshots of each page go to target/ui-screenshots/.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    around_the_clock, engine_settings, eventually, plans_published, start_engine, TestApp,
};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process and one headless Chromium session.
struct Browser {
    driver: Child,
    base: String,
    http: reqwest::Client,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn found(program: &str) -> Option<String> {
    ["/usr/bin", "/usr/local/bin", "/usr/lib/chromium"]
        .iter()
        .map(|dir| format!("{dir}/{program}"))
        .find(|p| std::path::Path::new(p).exists())
}

impl Browser {
    /// None (the test says it skips) when no browser is installed, unless
    /// UI_TESTS_REQUIRE_BROWSER is set (`.ci/run` sets it, having installed one).
    async fn start() -> Option<Browser> {
        let (Some(driver), Some(chromium)) = (found("chromedriver"), found("chromium")) else {
            assert!(
                std::env::var_os("UI_TESTS_REQUIRE_BROWSER").is_none(),
                "UI_TESTS_REQUIRE_BROWSER is set but chromium or chromedriver is missing"
            );
            eprintln!(
                "SKIPPED: no chromium and chromedriver here (Debian packages chromium, \
                 chromium-driver; .ci/run installs them)"
            );
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let process = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::new();
        let mut browser = Browser {
            driver: process,
            base: format!("http://127.0.0.1:{port}"),
            http,
        };
        eventually(20, "chromedriver ready", || async {
            let status = browser
                .http
                .get(format!("{}/status", browser.base))
                .send()
                .await;
            match status {
                Ok(r) => r.json::<Value>().await.unwrap_or_default()["value"]["ready"] == true,
                Err(_) => false,
            }
        })
        .await;
        let session = browser
            .send(
                reqwest::Method::POST,
                "/session",
                json!({"capabilities": {"alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {"binary": chromium, "args": [
                        "--headless=new", "--no-sandbox", "--disable-gpu",
                        "--disable-dev-shm-usage", "--window-size=1366,900"]}}}}),
            )
            .await;
        let id = session["sessionId"].as_str().expect("a session").to_owned();
        browser.base = format!("{}/session/{id}", browser.base);
        Some(browser)
    }

    /// A WebDriver command: its value, or its error.
    async fn try_send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> Result<Value, Value> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if !body.is_null() {
            req = req.json(body);
        }
        let resp = req.send().await.unwrap();
        let ok = resp.status().is_success();
        let value: Value = resp.json().await.unwrap();
        if ok {
            Ok(value["value"].clone())
        } else {
            Err(value)
        }
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        match self.try_send(method, path, &body).await {
            Ok(value) => value,
            Err(e) => panic!("WebDriver {path}: {e}"),
        }
    }

    async fn goto(&self, url: &str) {
        self.send(reqwest::Method::POST, "/url", json!({"url": url}))
            .await;
    }

    async fn script(&self, js: &str) -> Value {
        self.send(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": js, "args": []}),
        )
        .await
    }

    /// Finds the displayed element `css` matches and runs `command` on it
    /// (`None`: nothing), retrying for 20 s: the page replaces its view
    /// every two seconds, so an element found may be gone (stale) the next
    /// moment.
    async fn on(&self, css: &str, command: Option<(reqwest::Method, &str, Value)>) -> Value {
        let until = Instant::now() + Duration::from_secs(20);
        let mut last = Value::Null;
        loop {
            let found = self
                .try_send(
                    reqwest::Method::POST,
                    "/element",
                    &json!({"using": "css selector", "value": css}),
                )
                .await;
            if let Ok(element) = found {
                let id = element[ELEMENT].as_str().unwrap().to_owned();
                let shown = self
                    .try_send(
                        reqwest::Method::GET,
                        &format!("/element/{id}/displayed"),
                        &Value::Null,
                    )
                    .await;
                if shown == Ok(Value::Bool(true)) {
                    let Some((method, verb, body)) = command.clone() else {
                        return Value::Null;
                    };
                    match self
                        .try_send(method, &format!("/element/{id}/{verb}"), &body)
                        .await
                    {
                        Ok(value) => return value,
                        Err(e) => last = e,
                    }
                }
            }
            assert!(
                Instant::now() < until,
                "no element `{css}` shown and usable in 20 s: {last}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `css` matches a displayed element.
    async fn element(&self, css: &str) {
        self.on(css, None).await;
    }

    async fn click(&self, css: &str) {
        self.on(css, Some((reqwest::Method::POST, "click", json!({}))))
            .await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        self.on(
            css,
            Some((reqwest::Method::POST, "value", json!({"text": text}))),
        )
        .await;
    }

    async fn text(&self, css: &str) -> String {
        let text = self
            .on(css, Some((reqwest::Method::GET, "text", Value::Null)))
            .await;
        text.as_str().unwrap().to_owned()
    }

    /// Saves a screenshot as target/ui-screenshots/NAME.png.
    async fn screenshot(&self, name: &str) {
        let data = self
            .send(reqwest::Method::GET, "/screenshot", Value::Null)
            .await;
        let png = base64(data.as_str().unwrap());
        assert_eq!(&png[1..4], b"PNG");
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/target/ui-screenshots");
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(format!("{dir}/{name}.png"), png).unwrap();
    }
}

/// Decodes standard base64 (WebDriver's screenshots).
fn base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let digits: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .map(value)
        .collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &d)| n | u32::from(d) << (18 - 6 * i));
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

#[test]
fn base64_decodes_what_webdriver_sends() {
    assert_eq!(base64("aGVsbG8="), b"hello");
    assert_eq!(base64("aGk="), b"hi");
    assert_eq!(base64("YWJj"), b"abc");
}

async fn status_of(app: &TestApp, campaign: &str) -> String {
    sqlx::query_scalar(&format!(
        "SELECT status::text FROM campaigns WHERE id = '{campaign}'"
    ))
    .fetch_one(&app.db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_dashboard_signs_in_once_updates_live_and_pauses_a_campaign_from_the_page() {
    let app = TestApp::spawn().await;
    // Called at once: 20 contacts, their calls completed by the engine.
    let called = app
        .campaign_with(
            json!({"schedule": around_the_clock(), "dialing_policy": {"default_country": "US"}}),
            json!({"name": "Spring drive", "priority": 5}),
        )
        .await;
    let contacts: Vec<Value> = (0..20)
        .map(|i| json!({"external_id": format!("s-{i}"), "phone_numbers": [format!("+1415555{:04}", 100 + i)]}))
        .collect();
    app.contacts(&called, json!(contacts)).await;
    // Waiting: its contacts are scheduled for tomorrow.
    let waiting = app
        .campaign_with(
            json!({"schedule": around_the_clock()}),
            json!({"name": "Autumn renewals"}),
        )
        .await;
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    app.contacts(
        &waiting,
        json!([{"external_id": "a-1", "phone_numbers": ["+14155550900"], "scheduled_at": tomorrow}]),
    )
    .await;
    let settings = engine_settings(&app.db, 4);
    let engine = start_engine(&app.db, &settings, dialerd::clock::SystemClock).await;
    plans_published(&engine, 2).await;
    eventually(20, "the first campaign called", || async {
        app.db
            .count("SELECT count(*) FROM contacts WHERE status = 'completed'")
            .await
            == 20
    })
    .await;

    let Some(browser) = Browser::start().await else {
        return;
    };
    browser.goto(&format!("{}/ui", app.base)).await;
    browser.type_into("#token", &app.token).await;
    browser.click("#login button[type=submit]").await;
    let row = format!("tr[data-campaign='{waiting}']");
    browser
        .element(&format!("{row}[data-status='active']"))
        .await;
    let progress = browser
        .text(&format!("tr[data-campaign='{called}'] small"))
        .await;
    assert_eq!(progress, "20 / 0 / 0 of 20");
    browser.screenshot("campaigns").await;

    // Pause from the page: the database flips, and the page follows
    // without a reload.
    browser
        .click(&format!("{row} button[data-action='pause']"))
        .await;
    eventually(10, "the campaign paused in the database", || async {
        status_of(&app, &waiting).await == "paused"
    })
    .await;
    browser
        .element(&format!("{row}[data-status='paused']"))
        .await;
    // A change made elsewhere (the API) shows up within the refresh.
    let (status, _) = app
        .post(&format!("/campaign/campaigns/{waiting}/start"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    browser
        .element(&format!("{row}[data-status='active']"))
        .await;

    // One campaign: its contacts, a search by number, why one waits.
    browser
        .goto(&format!("{}/ui#/campaigns/{called}", app.base))
        .await;
    browser.element("#contacts tr[data-contact]").await;
    let rows = browser
        .script("return document.querySelectorAll('#contacts tr[data-contact]').length")
        .await;
    assert_eq!(rows, 20);
    browser.type_into("#q", "(415) 555-0107").await;
    browser.click("#search button").await;
    eventually(10, "one contact found by its number", || async {
        browser
            .script("return document.querySelectorAll('#contacts tr[data-contact]').length")
            .await
            == 1
    })
    .await;
    assert!(browser
        .text("#contacts tr[data-contact]")
        .await
        .contains("s-7"));
    browser
        .goto(&format!("{}/ui#/campaigns/{waiting}", app.base))
        .await;
    browser.click("#contacts tr[data-contact] a").await;
    let why = browser.text("tr.explain").await;
    assert!(why.contains("Verdict: waiting, until"), "{why}");
    browser.screenshot("campaign").await;

    browser.goto(&format!("{}/ui#/lines", app.base)).await;
    let line = browser.text("#instances tr[data-instance]").await;
    assert!(line.contains(" / 4"), "{line}");
    browser.screenshot("lines").await;
    browser.goto(&format!("{}/ui#/limits", app.base)).await;
    let limits = browser.text("#limits tr[data-limit='organization']").await;
    assert!(limits.contains("10"), "{limits}");
    browser.screenshot("limits").await;

    // The token is kept for the session: a reload asks for nothing.
    browser.goto(&format!("{}/ui", app.base)).await;
    browser
        .element(&format!("tr[data-campaign='{called}']"))
        .await;
    let asked = browser
        .script("return !document.getElementById('login').hidden")
        .await;
    assert_eq!(asked, false);
    // Signing out forgets it.
    browser.click("#logout").await;
    browser.element("#token").await;
    let kept = browser
        .script("return sessionStorage.getItem('dialerd-token')")
        .await;
    assert_eq!(kept, Value::Null);
    engine.stop(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn the_dashboards_parts_need_a_token_and_show_one_organization() {
    let app = TestApp::spawn().await;
    let ours = app.campaign(json!({"name": "Ours"})).await;
    let get = |token: Option<String>, path: &str| {
        let req = reqwest::Client::new().get(format!("{}{path}", app.base));
        let req = match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        async move {
            let resp = req.send().await.unwrap();
            (resp.status(), resp.text().await.unwrap())
        }
    };
    let (status, page) = get(None, "/ui").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("/ui/app.js") && page.contains("id=\"login\""));
    let (status, script) = get(None, "/ui/app.js").await;
    assert_eq!(status, StatusCode::OK);
    assert!(script.contains("sessionStorage"));
    let (status, _) = get(None, "/ui/parts/campaigns").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, html) = get(Some(app.token.clone()), "/ui/parts/campaigns").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(&ours) && html.contains("Ours"), "{html}");
    let (_, stranger) = app.other_org().await;
    let (status, html) = get(Some(stranger.clone()), "/ui/parts/campaigns").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!html.contains(&ours), "{html}");
    let (status, _) = get(Some(stranger), &format!("/ui/parts/campaigns/{ours}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = get(
        Some(app.token.clone()),
        &format!("/ui/parts/campaigns/{ours}?sort=x"),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}
