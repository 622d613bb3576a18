//! The one error shape front ends see: `{code, message, fields}`.

use serde::Serialize;

use crate::store::{FieldError, StoreError};

/// An error for the UI and the JSON channel. `code` is stable and translated by the UI;
/// `message` is English for logs; `fields` lists per-field validation failures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    /// Stable code, e.g. `invalid_account`, `not_found`, `store_unavailable`.
    pub code: &'static str,
    /// English explanation (never contains a password).
    pub message: String,
    /// Field errors, for validation failures.
    pub fields: Vec<FieldError>,
}

impl ApiError {
    /// An error with no field details.
    pub fn new(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { code, message: message.into(), fields: Vec::new() }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        let fields = match &e {
            StoreError::Invalid(f) | StoreError::InvalidAiAgent(f) => f.clone(),
            _ => Vec::new(),
        };
        ApiError { code: e.code(), message: e.to_string(), fields }
    }
}
