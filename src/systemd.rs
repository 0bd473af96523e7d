//! systemd integration through `sd_notify`: readiness, status lines, the
//! watchdog and stopping. Outside systemd (no `NOTIFY_SOCKET`) every call
//! does nothing.

use sd_notify::NotifyState;
use tokio::task::JoinHandle;

use crate::actors::Probe;

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// `READY=1` with a status line: migrations ran, listeners bound, actors up.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A `STATUS=` line saying what the daemon is doing.
pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// `STOPPING=1`: no new calls from here on.
pub fn stopping(status: &str) {
    send(&[NotifyState::Stopping, NotifyState::Status(status)]);
}

/// When systemd asked for a watchdog (`WATCHDOG_USEC`), pings it at half the
/// interval, but only while the supervision tree answers within a quarter
/// of it: a wedged dispatcher stops the pings and systemd restarts the
/// daemon. A database outage alone does not, since the dispatcher keeps
/// answering while its claims fail. Each ping also updates the status line.
pub fn watchdog(probe: Probe) -> Option<JoinHandle<()>> {
    let interval = sd_notify::watchdog_enabled()?;
    Some(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval / 2);
        let mut wedged = false;
        loop {
            ticks.tick().await;
            match probe.check(interval / 4).await {
                Some(h) => {
                    if std::mem::take(&mut wedged) {
                        tracing::info!("the supervision tree answers again");
                    }
                    let line = format!("dialing: {} of {} lines busy", h.busy, h.lines);
                    send(&[NotifyState::Watchdog, NotifyState::Status(&line)]);
                }
                None if !wedged => {
                    wedged = true;
                    tracing::error!(
                        "the supervision tree does not answer; withholding the watchdog ping"
                    );
                }
                None => {}
            }
        }
    }))
}

/// Logs SIGHUP instead of dying of it: settings are read at start only.
pub fn ignore_hangups() -> std::io::Result<JoinHandle<()>> {
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            tracing::warn!("SIGHUP received: reloading settings is not supported; restart dialerd to apply changes");
        }
    }))
}
