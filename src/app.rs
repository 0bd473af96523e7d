//! The running daemon: database, migrations, dialing engine, HTTP listener,
//! graceful stop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::actors::{Deps, Engine, Probe};
use crate::api::{self, HttpLimits};
use crate::clock::{Clock, SystemClock};
use crate::db;
use crate::monitoring::MetricsServer;
use crate::settings::{Backend, Settings};
use crate::systemd;
use crate::telephony::http::Http;
use crate::telephony::simulated::Simulated;
use crate::telephony::Telephony;

/// Opens the database (creating it when the server lacks it) and applies migrations.
pub async fn database(settings: &Settings) -> Result<PgPool, db::DbError> {
    db::create_if_missing(&settings.database.url).await;
    let pool = db::connect(&settings.database).await?;
    db::migrate(&pool, &settings.database.url).await?;
    Ok(pool)
}

/// A daemon whose listener is bound and which is serving.
pub struct Running {
    pub http_addr: SocketAddr,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    imports: api::imports::Imports,
}

impl Running {
    /// Binds the listener and serves until `stop` resolves.
    pub async fn start(
        settings: &Settings,
        pool: PgPool,
        probe: Option<Probe>,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<Running> {
        let listener = TcpListener::bind(settings.http.listen)
            .await
            .with_context(|| format!("cannot listen on http.listen = {}", settings.http.listen))?;
        let http_addr = listener.local_addr()?;
        let limits = HttpLimits {
            max_body_bytes: settings.http.max_body_bytes,
            request_timeout: Duration::from_secs(settings.http.request_timeout_seconds),
        };
        let secret = (settings.telephony.backend == Backend::Http)
            .then_some(settings.telephony.http.signing_secret.as_str());
        let imports =
            api::imports::Imports::new(settings.http.max_import_bytes, limits.request_timeout);
        let app = api::app(
            pool,
            probe,
            limits,
            secret,
            &settings.dialer,
            imports.clone(),
        );
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
        });
        tracing::info!(%http_addr, "HTTP API listening");
        Ok(Running {
            http_addr,
            task,
            imports,
        })
    }

    /// Waits until the server has stopped, then stops the imports it
    /// started (each records that it was interrupted, and what it loaded).
    pub async fn wait(self) -> anyhow::Result<()> {
        let served = self.task.await.context("HTTP server task failed");
        self.imports.stop().await;
        served??;
        Ok(())
    }
}

/// What the engine needs, built from settings, with `clock` as its time.
pub fn engine_deps(
    settings: &Settings,
    pool: PgPool,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Deps> {
    let telephony = match settings.telephony.backend {
        Backend::Simulated => Telephony::Simulated(
            Simulated::new(settings.telephony.simulated.clone()).with_context(|| {
                format!(
                    "cannot open telephony.simulated.call_log = {}",
                    settings.telephony.simulated.call_log
                )
            })?,
        ),
        Backend::Http => Telephony::Http(
            Http::new(settings.telephony.http.clone(), pool.clone())
                .context("cannot build the HTTP client of the http telephony backend")?,
        ),
    };
    Ok(Deps {
        pool,
        clock,
        telephony: Arc::new(telephony),
        settings: settings.dialer.clone(),
        backlog_every: settings
            .metrics
            .enabled
            .then(|| Duration::from_secs(settings.metrics.backlog_seconds)),
        instance: Uuid::now_v7(),
        hang_up: CancellationToken::new(),
    })
}

/// A daemon: the dialing engine and the HTTP API, until `stop` resolves.
/// Then it stops new calls, lets calls in flight finish up to the drain
/// timeout while the API (status callbacks included) keeps serving,
/// releases every claim left, and only then closes the listener.
pub async fn run_until(
    settings: &Settings,
    pool: PgPool,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let metrics = if settings.metrics.enabled {
        Some(MetricsServer::start(settings.metrics.listen, pool.clone()).await?)
    } else {
        None
    };
    systemd::status("starting the dialing engine");
    let mut engine =
        Engine::start(engine_deps(settings, pool.clone(), Arc::new(SystemClock))?).await?;
    let (http_stop, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let running = Running::start(settings, pool.clone(), Some(engine.probe()), async {
        let _ = http_stopped.await;
    })
    .await?;
    let metrics_on = match &metrics {
        Some(m) => format!("; metrics on {}", m.addr),
        None => String::new(),
    };
    systemd::ready(&format!(
        "dialing with {} lines; API on {}{metrics_on}",
        settings.dialer.lines, running.http_addr
    ));
    let watchdog = systemd::watchdog(engine.probe());
    let engine_failed = tokio::select! {
        () = stop => false,
        () = engine.stopped() => true,
    };
    systemd::stopping("draining: no new calls; waiting for calls in flight");
    if let Some(task) = watchdog {
        task.abort();
    }
    let stop_metrics = || {
        if let Some(m) = metrics {
            m.stop();
        }
    };
    if engine_failed {
        let _ = http_stop.send(());
        running.wait().await?;
        stop_metrics();
        anyhow::bail!("the dialing engine stopped after repeated failures");
    }
    // The listener stays open through the drain: the platform's callbacks
    // settle the calls in flight, and /readyz answers 503 meanwhile.
    let drain = Duration::from_secs(settings.dialer.drain_timeout_seconds);
    let report = engine.stop(drain).await;
    let _ = http_stop.send(());
    running.wait().await?;
    stop_metrics();
    let report = report?;
    tracing::info!(
        drained = report.drained,
        released = report.released.released,
        interrupted = report.released.interrupted,
        "stopped"
    );
    Ok(())
}

/// `dialerd serve`: runs until SIGTERM or SIGINT.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let _hangups = systemd::ignore_hangups()?;
    systemd::status("applying migrations");
    let pool = database(&settings).await?;
    run_until(&settings, pool.clone(), crate::shutdown::signal()).await?;
    pool.close().await;
    Ok(())
}
