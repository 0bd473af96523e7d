//! `/metrics` of the real binary during a demo-sized run: the metrics move
//! as calls happen, every family is described, labels are bounded, and
//! Prometheus's own `promtool check metrics` accepts the exposition.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::helpers::{eventually, Daemon, TestDb};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One parsed sample line: name, labels, value.
pub struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

pub fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => {
                    let inner = rest.strip_suffix('}').expect("labels close");
                    let labels = inner
                        .split("\",")
                        .filter(|p| !p.is_empty())
                        .map(|p| {
                            let (k, v) = p.split_once("=\"").expect("label=value");
                            (k.to_owned(), v.trim_end_matches('"').to_owned())
                        })
                        .collect();
                    (name, labels)
                }
                None => (series, Vec::new()),
            };
            Sample {
                name: name.to_owned(),
                labels,
                value: value.parse().expect("a numeric value"),
            }
        })
        .collect()
}

/// The sum of the samples of `name` that carry every label of `with`.
pub fn total(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            with.iter()
                .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|s| s.value)
        .sum()
}

/// The total of `name` with the labels of `with` on a daemon's metrics
/// listener on `port` (0 while it does not answer).
pub async fn metric(port: u16, name: &str, with: &[(&str, &str)]) -> f64 {
    let url = format!("http://127.0.0.1:{port}/metrics");
    match scrape(&reqwest::Client::new(), &url).await {
        Some(text) => total(&parse(&text), name, with),
        None => 0.0,
    }
}

fn has(samples: &[Sample], name: &str) -> bool {
    samples.iter().any(|s| s.name == name)
}

async fn scrape(client: &reqwest::Client, url: &str) -> Option<String> {
    let response = client.get(url).send().await.ok()?;
    assert_eq!(response.status(), 200);
    let kind = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    response.text().await.ok()
}

/// Runs promtool with `args`, `stdin` on its standard input, when promtool
/// is installed (always under CI).
fn promtool(args: &[&str], stdin: &str) -> Option<std::process::Output> {
    let mut child = match Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // CI installs it (.ci/run): missing there, the check would pass
            // without having run.
            assert!(
                std::env::var_os("CI").is_none(),
                "promtool is missing under CI: .ci/run installs Debian's prometheus package"
            );
            eprintln!(
                "promtool not installed: skipped promtool {}",
                args.join(" ")
            );
            return None;
        }
        Err(e) => panic!("cannot run promtool: {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    Some(child.wait_with_output().unwrap())
}

/// Asserts promtool succeeded, when it ran.
fn promtool_ok(out: Option<std::process::Output>, what: &str) {
    if let Some(out) = out {
        assert!(
            out.status.success(),
            "promtool {what} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The `dialerd_*` metric families an expression or a file names, with the
/// histogram series suffixes taken off.
fn families(text: &str) -> std::collections::BTreeSet<String> {
    let mut found = std::collections::BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("dialerd_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        found.insert(base.to_owned());
        rest = &tail[end..];
    }
    found
}

#[test]
fn the_dashboard_and_the_alerts_use_dialerd_metrics_in_valid_promql() {
    let root = env!("CARGO_MANIFEST_DIR");
    let read = |path: &str| std::fs::read_to_string(format!("{root}/{path}")).unwrap();
    let defined = families(&read("src/monitoring.rs"));
    assert!(defined.contains("dialerd_contacts_callable"), "{defined:?}");

    // Every panel's query, and the instance variable's, names defined
    // metrics; each one, made concrete, is PromQL promtool accepts.
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("config/grafana/dialerd.json")).unwrap();
    let mut exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().clone())
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect();
    assert!(exprs.len() >= 12, "{exprs:?}");
    let variable = dashboard["templating"]["list"][0]["definition"]
        .as_str()
        .unwrap();
    assert_eq!(variable, "label_values(dialerd_lines, instance)");
    exprs.push("dialerd_lines".into());
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, expr) in exprs.iter().enumerate() {
        let used = families(expr);
        assert!(!used.is_empty(), "a panel without a dialerd metric: {expr}");
        assert!(
            used.is_subset(&defined),
            "undefined metrics in {expr}: {used:?}"
        );
        let concrete = expr
            .replace("$__rate_interval", "5m")
            .replace("$__range", "1h")
            .replace("$instance", ".*");
        rules.push_str(&format!(
            "      - record: dashboard_panel_{i}\n        expr: {}\n",
            serde_json::to_string(&concrete).unwrap()
        ));
    }
    let file = std::env::temp_dir().join(format!("dialerd-dashboard-{}.yml", uuid::Uuid::new_v4()));
    std::fs::write(&file, &rules).unwrap();
    let checked = promtool(&["check", "rules", file.to_str().unwrap()], "");
    let _ = std::fs::remove_file(&file);
    promtool_ok(checked, "check rules (the dashboard's queries)");

    // The alert rules name defined metrics, are valid and pass their tests.
    let alerts = read("config/prometheus/alerts.yml");
    let used = families(&alerts);
    assert!(
        used.is_subset(&defined),
        "undefined metrics in alerts.yml: {used:?}"
    );
    let dir = format!("{root}/config/prometheus");
    promtool_ok(
        promtool(&["check", "rules", &format!("{dir}/alerts.yml")], ""),
        "check rules alerts.yml",
    );
    promtool_ok(
        promtool(&["test", "rules", &format!("{dir}/alerts.test.yml")], ""),
        "test rules alerts.test.yml",
    );
}

#[tokio::test]
async fn metrics_move_during_a_demo_run_and_pass_promtool() {
    let db = TestDb::new().await;
    let (metrics_port, http_port) = (free_port(), free_port());
    let metrics_listen = format!("127.0.0.1:{metrics_port}");
    let http_listen = format!("127.0.0.1:{http_port}");
    let mut demo = Daemon::run(
        &db,
        &[
            "demo",
            "--contacts",
            "3000",
            "--lines",
            "20",
            "--mean-call-ms",
            "40",
        ],
        &[
            ("DIALERD_METRICS__LISTEN", &metrics_listen),
            ("DIALERD_HTTP__LISTEN", &http_listen),
        ],
    );
    let client = reqwest::Client::new();
    let url = format!("http://{metrics_listen}/metrics");

    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let first = loop {
        if let Some(text) = scrape(&client, &url).await {
            let samples = parse(&text);
            if total(&samples, "dialerd_calls_placed_total", &[]) > 0.0 {
                break samples;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the demo placed no call within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // Requests to the API, one of them to a path that matches no route.
    let api = format!("http://{http_listen}");
    let get = |path: &str| client.get(format!("{api}{path}")).send();
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    assert_eq!(get("/campaign/campaigns").await.unwrap().status(), 401);
    assert_eq!(
        get("/no/such/path/+14155550123").await.unwrap().status(),
        404
    );
    // A status flip by plain SQL, and back, for the detection latency.
    for status in ["paused", "active"] {
        sqlx::query(
            "UPDATE campaigns SET status = $1::campaign_status
              WHERE id = (SELECT id FROM campaigns ORDER BY priority DESC LIMIT 1)",
        )
        .bind(status)
        .execute(&db.pool)
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }

    let text = scrape(&client, &url).await.expect("a second scrape");
    let second = parse(&text);
    for name in [
        "dialerd_calls_placed_total",
        "dialerd_calls_finished_total",
        "dialerd_results_written_total",
        "dialerd_claim_duration_seconds_count",
        "dialerd_claim_batch_contacts_count",
        "dialerd_attempts_write_seconds_count",
        "dialerd_dispatch_lag_seconds_count",
        "dialerd_call_duration_seconds_count",
    ] {
        assert!(
            total(&second, name, &[]) > total(&first, name, &[]),
            "{name} did not move: {} then {}",
            total(&first, name, &[]),
            total(&second, name, &[])
        );
    }
    assert!(
        total(
            &second,
            "dialerd_calls_finished_total",
            &[("outcome", "completed")]
        ) > 0.0
    );
    assert_eq!(total(&second, "dialerd_lines", &[]), 20.0);
    // The busy-lines gauge follows the calls: lines busy while dialing,
    // none once every campaign is paused and its calls are over.
    let busy = || async {
        let text = scrape(&client, &url).await.expect("a scrape");
        total(&parse(&text), "dialerd_lines_busy", &[])
    };
    eventually(30, "lines busy on the gauge", || async {
        busy().await >= 1.0
    })
    .await;
    let flip_all = |status: &'static str| {
        sqlx::query("UPDATE campaigns SET status = $1::campaign_status").bind(status)
    };
    flip_all("paused").execute(&db.pool).await.unwrap();
    eventually(30, "every call over", || async {
        db.count("SELECT count(*) FROM contacts WHERE status IN ('locked', 'in_progress')")
            .await
            == 0
    })
    .await;
    eventually(10, "no line busy on the gauge", || async {
        busy().await == 0.0
    })
    .await;
    flip_all("active").execute(&db.pool).await.unwrap();
    assert_eq!(total(&second, "dialerd_campaigns_active", &[]), 3.0);
    assert!(
        total(&second, "dialerd_status_flip_detection_seconds_count", &[]) >= 2.0,
        "both flips measured"
    );
    assert!(
        total(
            &second,
            "dialerd_status_flip_detection_seconds_bucket",
            &[("le", "1.5")]
        ) >= 2.0,
        "flips noticed within a poll interval"
    );
    assert!(has(&second, "dialerd_contacts_due"));
    assert!(has(&second, "dialerd_contacts_callable"));
    assert_eq!(total(&second, "dialerd_leases_lost_total", &[]), 0.0);
    assert!(
        has(&second, "dialerd_leases_lost_total"),
        "exposed at 0 for alerting"
    );
    assert!(total(&second, "dialerd_db_max_connections", &[]) >= 1.0);
    assert!(has(&second, "dialerd_db_connections"));
    let requests = "dialerd_http_requests_total";
    assert_eq!(
        total(
            &second,
            requests,
            &[("route", "/healthz"), ("status", "200")]
        ),
        1.0
    );
    assert_eq!(
        total(
            &second,
            requests,
            &[("route", "/campaign/campaigns"), ("status", "401")]
        ),
        1.0
    );
    assert_eq!(
        total(
            &second,
            requests,
            &[("route", "unmatched"), ("status", "404")]
        ),
        1.0
    );
    assert!(has(&second, "dialerd_http_request_duration_seconds_bucket"));

    // Every family is described and typed; no label carries an id, a number
    // or a raw path.
    for sample in &second {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| sample.name.strip_suffix(suffix))
            .filter(|base| text.contains(&format!("# TYPE {base} histogram")))
            .unwrap_or(&sample.name);
        assert!(
            text.contains(&format!("# HELP {family} ")),
            "{family} has no help"
        );
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{family} has no type"
        );
        for (key, value) in sample.labels.iter().filter(|(k, _)| k != "le") {
            let unbounded = value.contains('+')
                || value.contains("/no/")
                || uuid::Uuid::parse_str(value).is_ok()
                || value.chars().filter(char::is_ascii_digit).count() > 4;
            assert!(!unbounded, "{}{{{key}={value}}} is unbounded", sample.name);
        }
    }
    promtool_ok(promtool(&["check", "metrics"], &text), "check metrics");

    assert!(demo.wait_exit(Duration::from_secs(120)).await.success());
    assert_eq!(
        db.count("SELECT count(*) FROM contacts WHERE status NOT IN ('completed', 'exhausted')")
            .await,
        0
    );
}
