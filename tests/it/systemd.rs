//! The real binary under a fake systemd: READY only once migrations ran,
//! STATUS lines, WATCHDOG pings that stop while the dialer loop is wedged
//! but go on through a database outage and a SIGHUP, and STOPPING. Every
//! step waits for the event it checks, with a generous deadline.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};
use tokio::net::UnixDatagram;

use crate::helpers::{lock_waits, Daemon, TestDb};
use crate::outage::{host_port, Proxy};

/// The notify socket of a fake systemd, and what it received.
struct Notify {
    socket: UnixDatagram,
    dir: PathBuf,
}

impl Notify {
    fn bind() -> Notify {
        let dir =
            std::env::temp_dir().join(format!("dialerd-notify-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = UnixDatagram::bind(dir.join("notify.sock")).unwrap();
        Notify { socket, dir }
    }

    fn path(&self) -> String {
        self.dir.join("notify.sock").to_str().unwrap().to_owned()
    }

    /// Datagrams received until `done` holds of what was received (up to 30 s).
    async fn until(&self, what: &str, done: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut got = Vec::new();
        let mut buf = vec![0u8; 4096];
        while !done(&got) {
            let left = deadline
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| panic!("timed out waiting for {what}: {got:?}"));
            if let Ok(Ok(n)) = tokio::time::timeout(left, self.socket.recv(&mut buf)).await {
                got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        got
    }

    /// Datagrams received within `ms`: only to show something does not come.
    async fn during(&self, ms: u64) -> Vec<String> {
        let until = Instant::now() + Duration::from_millis(ms);
        let mut got = Vec::new();
        let mut buf = vec![0u8; 4096];
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match tokio::time::timeout(left, self.socket.recv(&mut buf)).await {
                Ok(Ok(n)) => got.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                _ => break,
            }
        }
        got
    }

    /// Waits for `n` watchdog pings.
    /// Drops what was received and not read yet.
    fn drain(&self) {
        let mut buf = vec![0u8; 4096];
        while self.socket.try_recv(&mut buf).is_ok() {}
    }

    async fn pings(&self, n: usize) -> Vec<String> {
        self.until(&format!("{n} watchdog pings"), |got| pings(got) >= n)
            .await
    }
}

impl Drop for Notify {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn has_line(messages: &[String], line: &str) -> bool {
    messages.iter().any(|m| m.lines().any(|l| l == line))
}

fn pings(messages: &[String]) -> usize {
    messages
        .iter()
        .filter(|m| m.lines().any(|l| l == "WATCHDOG=1"))
        .count()
}

/// The advisory lock sqlx's migrator takes before it migrates a database.
fn migration_lock(database: &str) -> i64 {
    let mut crc = !0u32;
    for byte in database.bytes() {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    0x3d32_ad9e * i64::from(!crc)
}

#[tokio::test]
async fn systemd_hears_ready_after_migrations_pings_while_healthy_and_stopping() {
    let db = TestDb::blank().await;
    let upstream = host_port(&db.url);
    let proxy = Proxy::start(upstream.clone()).await;
    let url = db
        .url
        .replacen(&upstream, &format!("127.0.0.1:{}", proxy.port), 1);
    let notify = Notify::bind();

    // Hold the migrations back: READY must wait for them.
    let mut holder = PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(migration_lock(db.name()))
        .execute(&mut holder)
        .await
        .unwrap();
    let (mut daemon, logs) = Daemon::logged(
        &db,
        &[
            ("DATABASE_URL", &url),
            ("NOTIFY_SOCKET", &notify.path()),
            ("WATCHDOG_USEC", "1000000"),
        ],
    );
    let before = notify
        .until("the migrations status", |got| {
            has_line(got, "STATUS=applying migrations")
        })
        .await;
    lock_waits(&db, 1).await;
    let mut held = before;
    held.extend(notify.during(300).await);
    assert!(
        !has_line(&held, "READY=1"),
        "READY before migrations: {held:?}"
    );
    holder.close().await.unwrap();

    let start = notify.until("READY", |got| has_line(got, "READY=1")).await;
    let applied =
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM _sqlx_migrations WHERE success")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(applied as usize, dialerd::db::MIGRATOR.iter().count());
    assert!(
        start
            .last()
            .unwrap()
            .contains("STATUS=dialing with 50 lines"),
        "{start:?}"
    );
    let healthy = notify.pings(2).await;
    assert!(
        healthy
            .iter()
            .any(|m| m.contains("STATUS=dialing: 0 of 50 lines busy")),
        "{healthy:?}"
    );

    // Wedge the dialer loop: its next claim (within `dialer.idle_recheck_ms`,
    // nothing being due) waits on this lock; pings sent until then are
    // dropped unread.
    let mut tx = db.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE organization_due IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await
        .unwrap();
    logs.wait_for(
        30,
        "the supervision tree does not answer; withholding the watchdog ping",
    )
    .await;
    notify.drain();
    let wedged = notify.during(1500).await;
    assert_eq!(pings(&wedged), 0, "no pings while wedged: {wedged:?}");
    tx.rollback().await.unwrap();
    logs.wait_for(30, "the supervision tree answers again")
        .await;
    notify.pings(2).await;

    // A database outage is not a wedge: the pings go on.
    proxy.cut();
    eventually_logged(&logs, "failed; retrying with backoff", "claiming").await;
    notify.pings(3).await;
    proxy.restore();
    eventually_logged(&logs, "works again", "claiming").await;

    // SIGHUP is logged and ignored.
    daemon.signal("-HUP");
    logs.wait_for(
        30,
        "SIGHUP received: reloading settings is not supported; restart dialerd to apply changes",
    )
    .await;
    notify.pings(2).await;
    assert!(
        daemon.0.try_wait().unwrap().is_none(),
        "SIGHUP stopped the daemon"
    );

    daemon.signal("-TERM");
    notify
        .until("STOPPING", |got| has_line(got, "STOPPING=1"))
        .await;
    // Waited for without blocking the runtime, which runs the proxy.
    let exit = daemon.wait_exit(Duration::from_secs(30)).await;
    let errors: Vec<_> = logs.events_at("TEXT");
    assert!(exit.success(), "{exit}: {errors:#?}");
}

/// Waits for an event with `message` logged for `task`.
async fn eventually_logged(logs: &crate::helpers::Logs, message: &str, task: &str) {
    crate::helpers::eventually(30, &format!("{message} ({task})"), || async {
        logs.events(message).iter().any(|e| e["task"] == task)
    })
    .await;
}
