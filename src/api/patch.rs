//! Partial updates: telling an absent JSON field from an explicit null.

use serde::{Deserialize, Deserializer};

use super::error::ApiError;

/// Deserializes a present field, null included, as `Some(..)`; with
/// `#[serde(default)]` an absent field stays `None`.
pub fn present<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A present JSON object or null, as `Some(..)`; anything else is refused.
pub fn present_object<'de, D>(d: D) -> Result<Option<Option<serde_json::Value>>, D::Error>
where
    D: Deserializer<'de>,
{
    crate::domain::agent::object_or_null(d).map(Some)
}

/// A field that may be changed but never cleared.
pub fn required<T>(field: &str, value: Option<Option<T>>) -> Result<Option<T>, ApiError> {
    match value {
        Some(None) => Err(ApiError::invalid(field, "cannot be null")),
        Some(Some(v)) => Ok(Some(v)),
        None => Ok(None),
    }
}
