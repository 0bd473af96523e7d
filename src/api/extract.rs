//! Request extractors: bearer-token auth with scopes, JSON bodies that fail
//! with `{"detail"}`, and strict query strings.

use std::marker::PhantomData;
use std::str::FromStr;

use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
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

/// A JSON body whose every rejection is an `ApiError`.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(ApiJson(value))
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
