//! The REST API (SPEC 5): thin handlers over `db`, all under `/campaign`,
//! described by an OpenAPI document generated from the same code.

pub mod callbacks;
pub mod campaigns;
pub mod configurations;
pub mod contacts;
pub mod dnc;
pub mod error;
pub mod extract;
pub mod forecast;
pub mod health;
pub mod imports;
pub mod openapi;
pub mod organization;
mod patch;

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use sqlx::PgPool;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::actors::Probe;
use crate::monitoring;
use error::ApiError;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    /// The dialing engine of this process, if it runs one.
    pub probe: Option<Probe>,
    /// The key of status callback signatures, when the backend is `http`.
    pub callback_secret: Option<std::sync::Arc<str>>,
    /// `dialer.global_concurrency_limit`, for explanations and forecasts.
    pub global_limit: u32,
    /// `dialer.lines`, the line count a forecast assumes when asked none.
    pub lines: u32,
    /// Forecasts computing in this process.
    pub forecasts: forecast::Forecasts,
    /// Bulk imports running in this process.
    pub imports: imports::Imports,
}

/// Limits the HTTP layer enforces on every request.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "dialerd", description = "Outbound campaign dialer: campaign management API."),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The API routes and the OpenAPI document that describes exactly them.
pub fn routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(campaigns::create, campaigns::list))
        .routes(routes!(campaigns::get, campaigns::patch))
        .routes(routes!(campaigns::start))
        .routes(routes!(campaigns::pause))
        .routes(routes!(campaigns::close))
        .routes(routes!(campaigns::stats))
        .routes(routes!(contacts::upsert, contacts::list))
        .routes(routes!(contacts::get, contacts::delete))
        .routes(routes!(contacts::explain))
        .routes(routes!(imports::create, imports::list))
        .routes(routes!(imports::get))
        .routes(routes!(imports::errors))
        .routes(routes!(dnc::create, dnc::list))
        .routes(routes!(dnc::get, dnc::delete))
        .routes(routes!(dnc::add))
        .routes(routes!(dnc::remove))
        .routes(routes!(dnc::lookup))
        .routes(routes!(configurations::create, configurations::list))
        .routes(routes!(
            configurations::get,
            configurations::patch,
            configurations::delete
        ))
        .routes(routes!(forecast::forecast))
        .routes(routes!(organization::timezones))
        .routes(routes!(callbacks::receive))
        .routes(routes!(
            organization::get_concurrency,
            organization::put_concurrency
        ))
        .split_for_parts()
}

/// The whole HTTP application: API, `/openapi.json`, JSON 404/405 answers.
pub fn app(
    pool: PgPool,
    probe: Option<Probe>,
    limits: HttpLimits,
    callback_secret: Option<&str>,
    dialer: &crate::settings::DialerSettings,
    imports: imports::Imports,
) -> Router {
    let (api, doc) = routes();
    let doc = Json(openapi::served(&doc));
    api.merge(crate::ui::routes())
        .route("/openapi.json", get(move || async move { doc }))
        .route("/healthz", get(health::alive))
        .route("/readyz", get(health::ready))
        .fallback(|| async { ApiError::NotFound("route") })
        .method_not_allowed_fallback(|| async {
            ApiError::Rejected {
                status: StatusCode::METHOD_NOT_ALLOWED,
                detail: "method not allowed".into(),
            }
        })
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            limits.request_timeout,
            deadline,
        ))
        .layer(middleware::from_fn(extract::readable_uri))
        .layer(middleware::from_fn(observe))
        .with_state(AppState {
            pool,
            probe,
            callback_secret: callback_secret.map(Into::into),
            global_limit: dialer.global_concurrency_limit,
            lines: dialer.lines,
            forecasts: forecast::Forecasts::default(),
            imports,
        })
}

/// Counts and times each request by method, route template and status;
/// requests that match no route are labeled `unmatched`, never by raw path.
async fn observe(req: Request, next: Next) -> Response {
    let began = std::time::Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = match *req.method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!(monitoring::HTTP_DURATION, "method" => method, "route" => route.clone())
        .record(began.elapsed().as_secs_f64());
    metrics::counter!(monitoring::HTTP_REQUESTS, "method" => method, "route" => route, "status" => status)
        .increment(1);
    response
}

/// Answers 503 when a request runs past its deadline; an import's upload
/// is bounded by its idle time instead (see `imports::spool`).
async fn deadline(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    let upload = req.method() == Method::POST
        && req
            .extensions()
            .get::<MatchedPath>()
            .is_some_and(|p| p.as_str() == imports::UPLOAD_ROUTE);
    if upload {
        return next.run(req).await;
    }
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::Rejected {
            status: StatusCode::SERVICE_UNAVAILABLE,
            detail: "the request took too long".into(),
        }
        .into_response(),
    }
}
