//! API errors and the one place they map to status codes and `{"detail"}`.

use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::DbError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or invalid bearer token")]
    Unauthorized,
    #[error("this token lacks the scope for this call (needs one of: {0})")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    BadState(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{detail}")]
    Rejected { status: StatusCode, detail: String },
    #[error("internal error")]
    Internal(#[from] DbError),
}

/// The body of every error response.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub detail: String,
}

impl ApiError {
    pub fn invalid(field: impl std::fmt::Display, reason: impl std::fmt::Display) -> Self {
        ApiError::Invalid(format!("{field}: {reason}"))
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadState(_) => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Rejected { status, .. } => *status,
            ApiError::Internal(DbError::Duplicate { .. }) => StatusCode::CONFLICT,
            ApiError::Internal(e) if e.unreachable() => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let detail = match &self {
            ApiError::Internal(e @ DbError::Duplicate { .. }) => e.to_string(),
            ApiError::Internal(e) if e.unreachable() => {
                tracing::warn!(error = %e, "request refused: the database is unreachable");
                "the database is unreachable; try again".into()
            }
            ApiError::Internal(e) => {
                tracing::error!(error = %e, "request failed");
                self.to_string()
            }
            other => other.to_string(),
        };
        let mut response = (status, Json(ErrorBody { detail })).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                "www-authenticate",
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        // Malformed JSON is a body that fails validation, like wrong types.
        let status = match rejection.status() {
            StatusCode::BAD_REQUEST => StatusCode::UNPROCESSABLE_ENTITY,
            other => other,
        };
        ApiError::Rejected {
            status,
            detail: rejection.body_text(),
        }
    }
}
