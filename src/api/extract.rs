//! Request extractors: bearer-token auth with scopes, JSON bodies, paths
//! and raw bodies that fail with `{"detail"}`, strict query strings, and
//! the check that every URI can be read as text.

use std::marker::PhantomData;
use std::str::FromStr;

use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::Value;
use uuid::Uuid;

use super::error::ApiError;
use super::AppState;
use crate::db;
use crate::domain::scope::Access;

/// Which scopes a handler needs; see `Access`.
pub trait Requirement {
    const ACCESS: Access;
}

macro_rules! requirement {
    ($name:ident) => {
        pub struct $name;
        impl Requirement for $name {
            const ACCESS: Access = Access::$name;
        }
    };
}
requirement!(CampaignsRead);
requirement!(CampaignsManage);
requirement!(ConcurrencyRead);
requirement!(ConcurrencyManage);

/// The caller's organization, once the token is known and holds a scope `R` accepts.
pub struct Auth<R> {
    pub org: Uuid,
    _needs: PhantomData<R>,
}

impl<S, R> FromRequestParts<S> for Auth<R>
where
    AppState: FromRef<S>,
    S: Send + Sync,
    R: Requirement,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(ApiError::Unauthorized)?;
        let state = AppState::from_ref(state);
        let grant = db::tokens::lookup(&state.pool, token)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        if !R::ACCESS.allows(&grant.scopes) {
            let names: Vec<_> = R::ACCESS.accepted().iter().map(|s| s.as_str()).collect();
            return Err(ApiError::Forbidden(names.join(", ")));
        }
        Ok(Auth {
            org: grant.organization_id,
            _needs: PhantomData,
        })
    }
}

/// A JSON body whose every rejection is an `ApiError`, read by the one
/// rule for JSON that dialerd stores ([`json_object`]).
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(value) = axum::Json::<Value>::from_request(req, state).await?;
        json_object(value).map(ApiJson)
    }
}

/// The rule for every JSON body, and so for every JSON value dialerd
/// stores: the body is an object; no string or key anywhere in it holds a
/// NUL character (PostgreSQL stores none, in text or jsonb); numbers are
/// what `serde_json` parsed (64-bit integers or finite doubles, which read
/// back exactly). Then it must be a `T`, field names and all.
pub fn json_object<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(ApiError::invalid("body", "must be a JSON object"));
    }
    if let Some(at) = nul_at(&value, &mut String::new()) {
        return Err(ApiError::invalid(
            if at.is_empty() { "body".into() } else { at },
            "contains a NUL character (\\u0000), which cannot be stored",
        ));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "body".into() } else { path };
        ApiError::invalid(field, e.into_inner())
    })
}

/// The path of the first string or key holding a NUL, e.g. `contacts[2].data.name`.
fn nul_at(value: &Value, path: &mut String) -> Option<String> {
    match value {
        Value::String(s) if s.contains('\0') => Some(path.clone()),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, v)| {
            let len = path.len();
            path.push_str(&format!("[{i}]"));
            let found = nul_at(v, path);
            path.truncate(len);
            found
        }),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            let len = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(&k.replace('\0', "\\u0000"));
            let found = if k.contains('\0') {
                Some(path.clone())
            } else {
                nul_at(v, path)
            };
            path.truncate(len);
            found
        }),
        _ => None,
    }
}

/// Refuses, before any handler runs, a path or query string that cannot be
/// read as text (400) or that holds a NUL once decoded (422), each with a
/// `{"detail"}` body: no such value can name anything dialerd stores.
pub async fn readable_uri(req: Request, next: axum::middleware::Next) -> axum::response::Response {
    use axum::response::IntoResponse;
    let uri = req.uri();
    for segment in uri.path().split('/') {
        match percent_decode(segment) {
            Err(()) => {
                return ApiError::Rejected {
                    status: axum::http::StatusCode::BAD_REQUEST,
                    detail: "path: not valid UTF-8 once percent-decoded".into(),
                }
                .into_response()
            }
            Ok(text) if text.contains('\0') => {
                return ApiError::invalid("path", "contains a NUL character").into_response()
            }
            Ok(_) => {}
        }
    }
    let query = uri.query().unwrap_or("");
    if let Some((k, _)) =
        form_urlencoded::parse(query.as_bytes()).find(|(k, v)| k.contains('\0') || v.contains('\0'))
    {
        let name = k.replace('\0', "\\u0000");
        return ApiError::invalid(format!("query `{name}`"), "contains a NUL character")
            .into_response();
    }
    next.run(req).await
}

/// A path segment's percent-decoded text; `Err` when it is not UTF-8.
fn percent_decode(segment: &str) -> Result<String, ()> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| ())
}

/// A path whose rejection is an `ApiError` (the URI itself was checked by
/// [`readable_uri`]; what is left is a path of the wrong shape).
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(ApiError::Rejected {
                status: rejection.status(),
                detail: format!("path: {}", rejection.body_text()),
            }),
        }
    }
}

/// A raw body whose rejection (too large, unreadable) is an `ApiError`.
pub struct ApiBytes(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBytes {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::body::Bytes::from_request(req, state).await {
            Ok(bytes) => Ok(ApiBytes(bytes)),
            Err(rejection) => Err(ApiError::Rejected {
                status: rejection.status(),
                detail: rejection.body_text(),
            }),
        }
    }
}

/// A query string read strictly: every parameter must be consumed, so an
/// unknown one is refused rather than ignored.
pub struct Query(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Query {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let raw = parts.uri.query().unwrap_or("");
        Ok(Query(
            form_urlencoded::parse(raw.as_bytes())
                .into_owned()
                .collect(),
        ))
    }
}

impl Query {
    /// Every value of a repeatable parameter, parsed.
    pub fn all<T: FromStr<Err = String>>(&mut self, name: &str) -> Result<Vec<T>, ApiError> {
        let (taken, rest) = std::mem::take(&mut self.0)
            .into_iter()
            .partition(|(k, _)| k == name);
        self.0 = rest;
        taken
            .into_iter()
            .map(|(_, v): (String, String)| {
                v.parse()
                    .map_err(|e| ApiError::invalid(format!("query `{name}`"), e))
            })
            .collect()
    }

    /// A parameter given at most once.
    pub fn one<T: FromStr>(&mut self, name: &str) -> Result<Option<T>, ApiError>
    where
        T::Err: std::fmt::Display,
    {
        let values = self.all::<Raw>(name)?;
        match values.as_slice() {
            [] => Ok(None),
            [Raw(v)] => v
                .parse()
                .map(Some)
                .map_err(|e| ApiError::invalid(format!("query `{name}`"), e)),
            _ => Err(ApiError::invalid(
                format!("query `{name}`"),
                "given more than once",
            )),
        }
    }

    /// An integer parameter within `min..=max`, or `default`.
    pub fn int(&mut self, name: &str, default: i64, min: i64, max: i64) -> Result<i64, ApiError> {
        let value = self.one::<i64>(name)?.unwrap_or(default);
        if !(min..=max).contains(&value) {
            return Err(ApiError::invalid(
                format!("query `{name}`"),
                format!("must be {min} to {max}"),
            ));
        }
        Ok(value)
    }

    /// Refuses any parameter nobody asked for.
    pub fn finish(self) -> Result<(), ApiError> {
        match self.0.first() {
            Some((k, _)) => Err(ApiError::invalid(
                format!("query `{k}`"),
                "unknown parameter",
            )),
            None => Ok(()),
        }
    }
}

struct Raw(String);

impl FromStr for Raw {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(Raw(s.to_owned()))
    }
}
