//! A database outage mid-run: every connection cut and new ones refused for
//! a while. The daemon keeps running, reports not ready, stops claiming,
//! resumes by itself, and loses no result it already had.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use dialerd::app::{engine_deps, Running};
use dialerd::clock::SystemClock;
use dialerd::db::recovery::Interruption;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::daemon::seed;
use crate::helpers::{assert_attempts_accounted, engine_settings, eventually, TestDb};
use crate::record::{assert_calls_have_attempts, assert_no_contact_in_two_calls, Call, CallLog};

/// A TCP proxy to PostgreSQL that can cut every connection and refuse new
/// ones, like a database restart or a network partition would.
pub struct Proxy {
    pub port: u16,
    down: Arc<AtomicBool>,
    cuts: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let (cuts, _) = watch::channel(0u64);
        let (is_down, cut) = (down.clone(), cuts.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if is_down.load(Ordering::SeqCst) {
                    continue; // dropped: connection refused in effect
                }
                let upstream = upstream.clone();
                let mut cut = cut.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Proxy {
            port,
            down,
            cuts,
            task,
        }
    }

    /// Cuts every open connection and refuses new ones.
    pub fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.cuts.send_modify(|n| *n += 1);
    }

    pub fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn ready(client: &reqwest::Client, url: &str) -> u16 {
    client
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_database_outage_pauses_dialing_and_loses_nothing() {
    let db = TestDb::new().await;
    let n = 1500;
    seed(&db, "outage", 1000, n).await;
    let upstream = host_port(&db.url);
    let proxy = Proxy::start(upstream.clone()).await;
    let mut settings = engine_settings(&db, 20);
    settings.database.url = db
        .url
        .replacen(&upstream, &format!("127.0.0.1:{}", proxy.port), 1);
    settings.database.acquire_timeout_seconds = 1;
    settings.telephony.simulated.mean_call_ms = 30;
    let log = CallLog::new();
    settings.telephony.simulated.call_log = log.path().into();
    let pool = dialerd::db::connect(&settings.database).await.unwrap();
    let deps = engine_deps(&settings, pool.clone(), Arc::new(SystemClock)).unwrap();
    let engine = dialerd::actors::Engine::start(deps).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = Running::start(&settings, pool.clone(), Some(engine.probe()), async {
        let _ = stopped.await;
    })
    .await
    .unwrap();
    let client = reqwest::Client::new();
    let readyz = format!("http://{}/readyz", running.http_addr);
    assert_eq!(ready(&client, &readyz).await, 200);

    let attempts = || db.count("SELECT count(*) FROM attempts");
    eventually(30, "calls under way", || async { attempts().await > 300 }).await;
    let cut_at = Utc::now();
    proxy.cut();
    eventually(15, "readyz reporting the outage", || async {
        ready(&client, &readyz).await == 503
    })
    .await;
    // Longer than the lease: the daemon must not take its own claims for dead.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let restored_at = Utc::now();
    // From the network's record: a call placed during the outage is one
    // whose attempt was committed before the cut (its line had it already).
    let during: Vec<Call> = log
        .placed_after(cut_at)
        .into_iter()
        .filter(|c| c.placed < restored_at)
        .collect();
    let decided_before: i64 =
        sqlx::query_scalar("SELECT count(*) FROM attempts WHERE id = ANY($1) AND created_at < $2")
            .bind(during.iter().map(|c| c.attempt).collect::<Vec<_>>())
            .bind(cut_at)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        decided_before as usize,
        during.len(),
        "a call started during the outage: {during:?}"
    );
    assert!(
        during
            .iter()
            .all(|c| c.placed < cut_at + chrono::Duration::seconds(1)),
        "a call placed long into the outage: {during:?}"
    );
    assert!(
        db.count("SELECT count(*) FROM contacts WHERE status <> 'pending'")
            .await
            < i64::from(n),
        "the outage came before the end of the run"
    );

    proxy.restore();
    eventually(30, "readyz recovering", || async {
        ready(&client, &readyz).await == 200
    })
    .await;
    eventually(90, "every contact final", || async {
        db.count("SELECT count(*) FROM contacts WHERE status NOT IN ('completed', 'exhausted')")
            .await
            == 0
    })
    .await;
    engine.stop(Duration::from_secs(5)).await.unwrap();
    let _ = stop.send(());
    running.wait().await.unwrap();

    assert_attempts_accounted(&db.pool).await;
    let calls = log.calls();
    assert_calls_have_attempts(&db.pool, &calls).await;
    assert_no_contact_in_two_calls(&calls, None);
    assert_eq!(
        calls.len(),
        n as usize,
        "each contact was called exactly once"
    );
    // Every call answers (answer rate 1.0): each contact completed exactly
    // once, and the results held through the outage were written as they
    // were, never closed as interrupted. The only interrupted attempts
    // allowed are starts whose confirmation the cut swallowed, which were
    // never dialed.
    assert_eq!(
        db.count("SELECT count(*) FROM contacts WHERE status = 'completed'")
            .await,
        i64::from(n)
    );
    assert_eq!(
        db.count("SELECT count(*) FROM attempts WHERE outcome = 'completed'")
            .await,
        i64::from(n)
    );
    let lost: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM attempts WHERE outcome = 'interrupted' AND telephony_detail IS DISTINCT FROM $1",
    )
    .bind(Interruption::NeverPlaced.detail())
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(lost, 0, "a placed call's result was lost");
}

/// The `host:port` of a PostgreSQL URL.
pub fn host_port(url: &str) -> String {
    let rest = url.split_once("://").expect("a URL").1;
    let authority = rest.split('/').next().unwrap();
    authority.rsplit('@').next().unwrap().to_owned()
}
