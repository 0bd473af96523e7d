//! Bulk CSV imports through the API: the body is spooled to a file while it
//! arrives, its header mapped, and the import runs in the background; its
//! status and error report are read back by id.

use std::path::PathBuf;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http_body_util::BodyExt;
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use utoipa::ToSchema;
use uuid::Uuid;

use super::campaigns::find;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiPath, Auth, CampaignsManage, CampaignsRead, Query};
use super::AppState;
use crate::db::configurations;
use crate::db::imports::{self as store, Import, NewImport};
use crate::domain::status::CampaignStatus;
use crate::import::mapping::Override;
use crate::import::{Job, Outcome, Source};

/// The route whose upload is bounded by an idle time, not a deadline.
pub const UPLOAD_ROUTE: &str = "/campaign/campaigns/{campaign_id}/imports";

/// Imports running in this process, stopped (and recorded as failed) when
/// the listener closes.
#[derive(Clone)]
pub struct Imports {
    tracker: TaskTracker,
    cancel: CancellationToken,
    max_bytes: u64,
    /// Longest wait for the next bytes of an upload.
    idle: Duration,
}

impl Imports {
    pub fn new(max_bytes: u64, idle: Duration) -> Imports {
        Imports {
            tracker: TaskTracker::new(),
            cancel: CancellationToken::new(),
            max_bytes,
            idle,
        }
    }

    /// Stops every running import at its next chunk boundary and waits
    /// until each has recorded that it failed.
    pub async fn stop(&self) {
        self.cancel.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

#[derive(Serialize, ToSchema)]
pub struct ImportList {
    pub imports: Vec<Import>,
}

/// Removes a spooled upload's name when dropped.
struct Spooled(PathBuf);

impl Drop for Spooled {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Streams the body into a file: refused past `max_bytes`, or when no
/// bytes come for `idle`.
async fn spool(body: Body, imports: &Imports, id: Uuid) -> Result<Spooled, ApiError> {
    let path = std::env::temp_dir().join(format!("dialerd-import-{id}.csv"));
    let spooled = Spooled(path.clone());
    let fault = |e: std::io::Error| {
        tracing::error!(error = %e, path = %path.display(), "cannot spool an import");
        ApiError::Rejected {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            detail: "cannot store the upload on the server".into(),
        }
    };
    let mut file = tokio::fs::File::create(&spooled.0).await.map_err(fault)?;
    let mut body = body;
    let mut size = 0u64;
    loop {
        let frame = match tokio::time::timeout(imports.idle, body.frame()).await {
            Err(_) => {
                return Err(ApiError::Rejected {
                    status: StatusCode::REQUEST_TIMEOUT,
                    detail: format!("no bytes of the upload for {} s", imports.idle.as_secs()),
                })
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(ApiError::Rejected {
                    status: StatusCode::BAD_REQUEST,
                    detail: format!("cannot read the upload: {e}"),
                })
            }
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            size += data.len() as u64;
            if size > imports.max_bytes {
                return Err(ApiError::Rejected {
                    status: StatusCode::PAYLOAD_TOO_LARGE,
                    detail: format!(
                        "the file is larger than http.max_import_bytes ({} bytes)",
                        imports.max_bytes
                    ),
                });
            }
            file.write_all(&data).await.map_err(fault)?;
        }
    }
    file.flush().await.map_err(fault)?;
    Ok(spooled)
}

/// Import a CSV file of contacts into a campaign: rows are validated like
/// the upsert, good rows load in chunks while dialing goes on, bad rows
/// go to the error report. Answers at once with the import's id; read its
/// progress at `.../imports/{import_id}`.
#[utoipa::path(post, path = "/campaign/campaigns/{campaign_id}/imports", tag = "imports",
    request_body(content = String, content_type = "text/csv",
        description = "A CSV file with a header row. Columns named phone, phone_2..phone_10, external_id, timezone, scheduled_at, agent_id, agent_version, agent_number, agent_config or initial_context (any case) fill those fields; every other column goes into data."),
    params(("campaign_id" = String, Path, description = "UUID or external_id"),
           ("map" = Option<Vec<String>>, Query, description = "COLUMN=FIELD, repeatable: overrides the header's name (FIELD: a field above, data.KEY, or ignore)"),
           ("all_or_nothing" = Option<bool>, Query, description = "refuse the whole file if any row is refused (default false)")),
    responses((status = 202, body = Import, description = "Accepted; the import runs"),
              (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 408, body = ErrorBody, description = "The upload stalled for http.request_timeout_seconds."),
              (status = 413, body = ErrorBody, description = "The file is larger than http.max_import_bytes."),
              (status = 415, body = ErrorBody, description = "The body is not sent as text/csv."),
              (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    auth: Auth<CampaignsManage>,
    ApiPath(key): ApiPath<String>,
    mut query: Query,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let overrides = query.all::<Override>("map")?;
    let all_or_nothing = query.one::<bool>("all_or_nothing")?.unwrap_or(false);
    query.finish()?;
    let csv = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("text/csv"));
    if !csv {
        return Err(ApiError::Rejected {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            detail: "send the file as text/csv".into(),
        });
    }
    let campaign = find(&state, auth.org, &key).await?;
    if campaign.status == CampaignStatus::Closed {
        return Err(ApiError::BadState(
            "campaign is closed; it takes no more contacts".into(),
        ));
    }
    let country = configurations::get(&state.pool, auth.org, campaign.configuration_id)
        .await?
        .and_then(|c| c.dialing_policy.default_country);
    let id = Uuid::now_v7();
    let spooled = spool(body, &state.imports, id).await?;
    let path = spooled.0.clone();
    let source = tokio::task::spawn_blocking(move || crate::import::open(&path, &overrides))
        .await
        .map_err(|_| ApiError::invalid("body", "cannot be read"))?
        .map_err(|e| ApiError::invalid("body", e))?;
    // The open file is read to its end; its name goes now, so a crash
    // leaves nothing behind on disk.
    drop(spooled);
    let new = NewImport {
        id,
        org: auth.org,
        campaign: campaign.id,
        source: "api",
        all_or_nothing,
        mapping: source.columns.applied(),
    };
    store::create(&state.pool, &new).await?;
    let job = Job {
        id,
        org: auth.org,
        campaign: campaign.id,
        country,
        all_or_nothing,
    };
    spawn(&state, job, source);
    let import = store::get(&state.pool, auth.org, id)
        .await?
        .ok_or(ApiError::NotFound("import"))?;
    let location = format!("/campaign/campaigns/{}/imports/{id}", campaign.id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(import),
    )
        .into_response())
}

/// Runs the import in the background.
fn spawn(state: &AppState, job: Job, source: Source<std::io::BufReader<std::fs::File>>) {
    let pool = state.pool.clone();
    let cancel = state.imports.cancel.clone();
    state.imports.tracker.spawn(async move {
        let outcome = crate::import::run(&pool, &job, source, &cancel, |_| {}).await;
        match outcome {
            Ok(Outcome::Completed(p)) => tracing::info!(
                import = %job.id, rows = p.read, created = p.created, updated = p.updated,
                refused = p.refused, "import completed"
            ),
            Ok(Outcome::Failed(p, why)) => tracing::warn!(
                import = %job.id, rows = p.read, created = p.created, updated = p.updated,
                refused = p.refused, %why, "import failed"
            ),
            Err(e) => tracing::error!(import = %job.id, error = %e, "import failed"),
        }
    });
}

async fn find_import(
    state: &AppState,
    org: Uuid,
    campaign: &str,
    id: Uuid,
) -> Result<Import, ApiError> {
    let campaign = find(state, org, campaign).await?;
    store::get(&state.pool, org, id)
        .await?
        .filter(|i| i.campaign_id == campaign.id)
        .ok_or(ApiError::NotFound("import"))
}

/// A campaign's imports, newest first (the last 100).
#[utoipa::path(get, path = "/campaign/campaigns/{campaign_id}/imports", tag = "imports",
    params(("campaign_id" = String, Path, description = "UUID or external_id")),
    responses((status = 200, body = ImportList), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth<CampaignsRead>,
    ApiPath(key): ApiPath<String>,
    query: Query,
) -> Result<Json<ImportList>, ApiError> {
    query.finish()?;
    let campaign = find(&state, auth.org, &key).await?;
    let imports = store::list(&state.pool, auth.org, campaign.id, 100).await?;
    Ok(Json(ImportList { imports }))
}

/// An import's state and counts: rows read, created, updated, refused.
#[utoipa::path(get, path = "/campaign/campaigns/{campaign_id}/imports/{import_id}", tag = "imports",
    params(("campaign_id" = String, Path, description = "UUID or external_id"),
           ("import_id" = Uuid, Path)),
    responses((status = 200, body = Import), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    auth: Auth<CampaignsRead>,
    ApiPath((campaign, id)): ApiPath<(String, Uuid)>,
) -> Result<Json<Import>, ApiError> {
    Ok(Json(find_import(&state, auth.org, &campaign, id).await?))
}

/// The error report: a CSV of the refused rows (line, column, reason), in
/// line order; line 1 is the header.
#[utoipa::path(get, path = "/campaign/campaigns/{campaign_id}/imports/{import_id}/errors", tag = "imports",
    params(("campaign_id" = String, Path, description = "UUID or external_id"),
           ("import_id" = Uuid, Path)),
    responses((status = 200, content_type = "text/csv", body = String), (status = 404, body = ErrorBody)))]
pub async fn errors(
    State(state): State<AppState>,
    auth: Auth<CampaignsRead>,
    ApiPath((campaign, id)): ApiPath<(String, Uuid)>,
) -> Result<Response, ApiError> {
    let import = find_import(&state, auth.org, &campaign, id).await?;
    let mut out = csv::Writer::from_writer(Vec::new());
    let mut write = |cells: [&str; 3]| {
        out.write_record(cells)
            .expect("writing CSV to memory cannot fail")
    };
    write(["line", "column", "reason"]);
    for e in store::errors(&state.pool, import.id).await? {
        write([
            &e.line.to_string(),
            e.column.as_deref().unwrap_or(""),
            &e.reason,
        ]);
    }
    let bytes = out.into_inner().expect("writing CSV to memory cannot fail");
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"import-{id}-errors.csv\""),
            ),
        ],
        bytes,
    )
        .into_response())
}
