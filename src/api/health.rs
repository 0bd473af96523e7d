//! Liveness and readiness for load balancers and orchestrators; no auth.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::AppState;
use crate::actors::Health;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /healthz`: the process is alive and serving HTTP.
pub async fn alive() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: 200 when the database answers and the supervision tree
/// (if this process dials) answers and is not draining; 503 naming what is
/// wrong. A draining daemon still serves callbacks, but a load balancer
/// should send it nothing new.
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let database = matches!(
        tokio::time::timeout(CHECK_TIMEOUT, sqlx::query("SELECT 1").execute(&state.pool)).await,
        Ok(Ok(_))
    );
    let health = match &state.probe {
        Some(probe) => probe.check(CHECK_TIMEOUT).await,
        None => Some(Health::default()),
    };
    let engine = health.is_some();
    let draining = health.is_some_and(|h| h.draining);
    let status = if database && engine && !draining {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({"database": database, "dialer": engine, "draining": draining})),
    )
}
