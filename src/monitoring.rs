//! Prometheus metrics: every metric dialerd exports, its help text and
//! buckets, the process-wide recorder, and the `/metrics` listener.
//!
//! Names carry their base unit (`_seconds`) and counters end in `_total`.
//! Labels are bounded: outcomes, actor kinds, task names, HTTP methods,
//! route templates and status codes; never contact ids, numbers or raw paths.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context;
use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;
use metrics::{describe_counter, describe_gauge, describe_histogram, gauge, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sqlx::PgPool;
use tokio::net::TcpListener;

pub const LINES: &str = "dialerd_lines";
pub const LINES_BUSY: &str = "dialerd_lines_busy";
pub const CALLS_PLACED: &str = "dialerd_calls_placed_total";
pub const CALLS_FINISHED: &str = "dialerd_calls_finished_total";
pub const CALL_DURATION: &str = "dialerd_call_duration_seconds";
pub const RESULTS_WRITTEN: &str = "dialerd_results_written_total";
pub const RESULTS_FENCED: &str = "dialerd_results_fenced_total";
pub const CLAIM_DURATION: &str = "dialerd_claim_duration_seconds";
pub const CLAIM_BATCH: &str = "dialerd_claim_batch_contacts";
pub const ATTEMPTS_WRITE: &str = "dialerd_attempts_write_seconds";
pub const DISPATCH_LAG: &str = "dialerd_dispatch_lag_seconds";
pub const STATUS_FLIP_DETECTION: &str = "dialerd_status_flip_detection_seconds";
pub const CAMPAIGNS_ACTIVE: &str = "dialerd_campaigns_active";
pub const CONTACTS_DUE: &str = "dialerd_contacts_due";
pub const CONTACTS_CALLABLE: &str = "dialerd_contacts_callable";
pub const LEASES_LOST: &str = "dialerd_leases_lost_total";
pub const CONTACTS_SET_ASIDE: &str = "dialerd_contacts_set_aside_total";
pub const CLAIMS_RECOVERED: &str = "dialerd_claims_recovered_total";
pub const ACTOR_RESTARTS: &str = "dialerd_actor_restarts_total";
pub const DB_CONNECTIONS: &str = "dialerd_db_connections";
pub const DB_MAX_CONNECTIONS: &str = "dialerd_db_max_connections";
pub const DB_ERRORS: &str = "dialerd_db_errors_total";
pub const PLATFORM_REQUESTS: &str = "dialerd_platform_requests_total";
pub const CALLBACKS: &str = "dialerd_callbacks_total";
pub const HTTP_REQUESTS: &str = "dialerd_http_requests_total";
pub const HTTP_DURATION: &str = "dialerd_http_request_duration_seconds";
pub const IMPORT_ROWS: &str = "dialerd_import_rows_total";

/// Short database round trips: claims, status reads.
const DB_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
/// Contacts per claim: 1 up to a large line pool.
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 5000.0,
];
/// Due to dialed: milliseconds when keeping up, minutes when backlogged.
const LAG_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];
/// Phone calls: seconds to an hour (simulated calls may be instant).
const CALL_BUCKETS: &[f64] = &[
    0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];
/// A status flip is noticed within a second by polling, at once by NOTIFY.
const FLIP_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0,
];
/// API requests.
const HTTP_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder (once; later calls return the same
/// handle) and describes every metric.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let full = |name: &str| Matcher::Full(name.to_owned());
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(full(CLAIM_DURATION), DB_BUCKETS)?
        .set_buckets_for_metric(full(CLAIM_BATCH), BATCH_BUCKETS)?
        .set_buckets_for_metric(full(ATTEMPTS_WRITE), DB_BUCKETS)?
        .set_buckets_for_metric(full(DISPATCH_LAG), LAG_BUCKETS)?
        .set_buckets_for_metric(full(CALL_DURATION), CALL_BUCKETS)?
        .set_buckets_for_metric(full(STATUS_FLIP_DETECTION), FLIP_BUCKETS)?
        .set_buckets_for_metric(full(HTTP_DURATION), HTTP_BUCKETS)?
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    describe();
    Ok(HANDLE.get_or_init(|| handle).clone())
}

fn describe() {
    describe_gauge!(
        LINES,
        Unit::Count,
        "Lines (simultaneous calls) this daemon runs."
    );
    describe_gauge!(LINES_BUSY, Unit::Count, "Lines with a call in flight.");
    describe_counter!(
        CONTACTS_SET_ASIDE,
        Unit::Count,
        "Contacts set aside by a claim because they cannot be dialed as stored (no usable number, a row that does not decode)."
    );
    describe_counter!(
        IMPORT_ROWS,
        Unit::Count,
        "CSV rows of bulk imports committed, by result: created, updated or refused."
    );
    describe_counter!(
        CALLS_PLACED,
        Unit::Count,
        "Calls handed to the telephony backend, after their attempt row was written."
    );
    describe_counter!(
        CALLS_FINISHED,
        Unit::Count,
        "Calls that ended, by SPEC outcome."
    );
    describe_histogram!(
        CALL_DURATION,
        Unit::Seconds,
        "Time from placing a call to its end, as the telephony backend reports it."
    );
    describe_counter!(
        RESULTS_WRITTEN,
        Unit::Count,
        "Call results committed to the database."
    );
    describe_counter!(
        RESULTS_FENCED,
        Unit::Count,
        "Call results refused because their claim had been recovered meanwhile."
    );
    describe_histogram!(
        CLAIM_DURATION,
        Unit::Seconds,
        "Time of one claim transaction (all gates checked, rows locked)."
    );
    describe_histogram!(
        ATTEMPTS_WRITE,
        Unit::Seconds,
        "Time to write the attempts of one claim, after it and before its calls are placed."
    );
    describe_histogram!(
        CLAIM_BATCH,
        Unit::Count,
        "Contacts taken by one claim that found any."
    );
    describe_histogram!(
        DISPATCH_LAG,
        Unit::Seconds,
        "Claim time minus the time the contact became due."
    );
    describe_histogram!(
        STATUS_FLIP_DETECTION,
        Unit::Seconds,
        "Time from a campaign status change in the database to this daemon acting on it."
    );
    describe_gauge!(
        CAMPAIGNS_ACTIVE,
        Unit::Count,
        "Campaigns with a running campaign actor."
    );
    describe_gauge!(
        CONTACTS_DUE,
        Unit::Count,
        "Pending contacts whose next attempt time has passed, in every organization (some may be outside their calling window)."
    );
    describe_gauge!(
        CONTACTS_CALLABLE,
        Unit::Count,
        "Due contacts a claim could take now if limits left room: ad-hoc ones, and those of active campaigns inside an open calling window."
    );
    describe_counter!(
        LEASES_LOST,
        Unit::Count,
        "Heartbeats that found this instance's lease had run out (its claims may have been recovered by another instance); it registered again."
    );
    describe_counter!(
        CLAIMS_RECOVERED,
        Unit::Count,
        "Claims of stopped instances taken back: state=released (no call placed) went back to pending, state=interrupted had its open attempt closed as interrupted."
    );
    describe_counter!(
        ACTOR_RESTARTS,
        Unit::Count,
        "Actors the supervisor restarted after they failed, by kind."
    );
    describe_gauge!(
        DB_CONNECTIONS,
        Unit::Count,
        "Database pool connections, by state (idle or in_use)."
    );
    describe_gauge!(
        DB_MAX_CONNECTIONS,
        Unit::Count,
        "Largest size of the database pool."
    );
    describe_counter!(
        DB_ERRORS,
        Unit::Count,
        "Failed database operations of the engine, by task."
    );
    describe_counter!(
        PLATFORM_REQUESTS,
        Unit::Count,
        "Call requests to the voice-agent platform (http backend), by result: started, invalid_number, refused, retryable_error."
    );
    describe_counter!(
        CALLBACKS,
        Unit::Count,
        "Status callbacks received, by result: closed, progress, late, duplicate, unknown, rejected."
    );
    describe_counter!(
        HTTP_REQUESTS,
        Unit::Count,
        "API requests answered, by method, route template and status code."
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "API request latency, by method and route template."
    );
}

/// A bound `/metrics` listener.
pub struct MetricsServer {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl MetricsServer {
    /// Binds `listen` and serves `/metrics` until aborted; pool gauges are
    /// read at each scrape.
    pub async fn start(listen: SocketAddr, pool: PgPool) -> anyhow::Result<MetricsServer> {
        let handle = install()?;
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on metrics.listen = {listen}"))?;
        let addr = listener.local_addr()?;
        let upkeep = handle.clone();
        let app = Router::new().route(
            "/metrics",
            get(move || {
                let handle = handle.clone();
                let pool = pool.clone();
                async move {
                    let idle = pool.num_idle() as f64;
                    gauge!(DB_CONNECTIONS, "state" => "idle").set(idle);
                    gauge!(DB_CONNECTIONS, "state" => "in_use").set(f64::from(pool.size()) - idle);
                    gauge!(DB_MAX_CONNECTIONS).set(f64::from(pool.options().get_max_connections()));
                    (
                        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
                        handle.render(),
                    )
                }
            }),
        );
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            let keep = async move {
                loop {
                    tick.tick().await;
                    upkeep.run_upkeep();
                }
            };
            tokio::select! {
                served = axum::serve(listener, app) => served,
                () = keep => Ok(()),
            }
        });
        tracing::info!(%addr, "metrics listening");
        Ok(MetricsServer { addr, task })
    }

    pub fn stop(self) {
        self.task.abort();
    }
}
