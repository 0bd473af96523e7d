//! The running daemon: database, migrations, HTTP listener, graceful stop.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::api::{self, HttpLimits};
use crate::db;
use crate::settings::Settings;

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
}

impl Running {
    /// Binds the listener and serves until `stop` resolves.
    pub async fn start(
        settings: &Settings,
        pool: PgPool,
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
        let app = api::app(pool, limits);
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
        });
        tracing::info!(%http_addr, "HTTP API listening");
        Ok(Running { http_addr, task })
    }

    /// Waits until the server has stopped.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("HTTP server task failed")??;
        Ok(())
    }
}

/// `dialerd serve`: runs until SIGTERM or SIGINT.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let pool = database(&settings).await?;
    let running = Running::start(&settings, pool.clone(), crate::shutdown::signal()).await?;
    running.wait().await?;
    pool.close().await;
    tracing::info!("stopped");
    Ok(())
}
