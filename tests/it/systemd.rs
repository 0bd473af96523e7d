//! The real binary under a fake systemd: the notify socket sees READY,
//! STATUS, WATCHDOG and STOPPING in order, and the watchdog pings stop while
//! the dialer loop is wedged.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::net::UnixDatagram;

use crate::helpers::TestDb;

/// The daemon, killed if the test fails before it stops.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Datagrams received within `for_ms`.
async fn drain(socket: &UnixDatagram, for_ms: u64) -> Vec<String> {
    let mut got = Vec::new();
    let until = Instant::now() + Duration::from_millis(for_ms);
    let mut buf = vec![0u8; 4096];
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        match tokio::time::timeout(left, socket.recv(&mut buf)).await {
            Ok(Ok(n)) => got.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            _ => break,
        }
    }
    got
}

fn pings(messages: &[String]) -> usize {
    messages
        .iter()
        .filter(|m| m.lines().any(|l| l == "WATCHDOG=1"))
        .count()
}

#[tokio::test]
async fn systemd_hears_ready_status_watchdog_and_stopping_and_no_pings_while_wedged() {
    let db = TestDb::new().await;
    let dir = std::env::temp_dir().join(format!(
        "dialerd-notify-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_dialerd"))
            .arg("serve")
            .env("DATABASE_URL", &db.url)
            .env("DIALERD_HTTP__LISTEN", "127.0.0.1:0")
            .env("DIALERD_METRICS__LISTEN", "127.0.0.1:0")
            .env("NOTIFY_SOCKET", &path)
            .env("WATCHDOG_USEC", "1000000")
            .env(
                "RUST_LOG",
                std::env::var("DAEMON_LOG").unwrap_or("warn".into()),
            )
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = drain(&socket, 4000).await;
    let ready = start
        .iter()
        .position(|m| m.lines().any(|l| l == "READY=1"))
        .expect("READY=1 sent");
    assert!(
        start[..ready]
            .iter()
            .any(|m| m.trim_end() == "STATUS=applying migrations"),
        "{start:?}"
    );
    assert!(
        start[ready].contains("STATUS=dialing with 50 lines"),
        "{start:?}"
    );
    // Migrations ran before READY.
    assert!(db.count("SELECT count(*) FROM _sqlx_migrations").await >= 1);
    let after = &start[ready + 1..];
    assert!(pings(after) >= 4, "about two pings a second: {start:?}");
    assert!(
        after
            .iter()
            .any(|m| m.contains("STATUS=dialing: 0 of 50 lines busy")),
        "{start:?}"
    );

    // Wedge the dialer loop: its next claim waits on this lock.
    let mut tx = db.pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE organization_due IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await
        .unwrap();
    drain(&socket, 700).await;
    let wedged = drain(&socket, 2500).await;
    assert_eq!(pings(&wedged), 0, "no pings while wedged: {wedged:?}");
    tx.rollback().await.unwrap();
    let healed = drain(&socket, 2000).await;
    assert!(pings(&healed) >= 2, "pings resume: {healed:?}");

    Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    let stop = drain(&socket, 3000).await;
    assert!(
        stop.iter().any(|m| m.lines().any(|l| l == "STOPPING=1")),
        "{stop:?}"
    );
    let status = child.0.wait().unwrap();
    assert!(status.success());
    let _ = std::fs::remove_dir_all(&dir);
}
