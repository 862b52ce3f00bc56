//! The one error type of the services, with variants that mean something to a client.
//!
//! Conversions are explicit: storage errors become `Internal` unless a caller maps a
//! specific kind (for example a unique violation into a field error) first.

use std::collections::BTreeMap;
use std::fmt;

use basalt_schema::FieldErrors;
use basalt_store::{ErrorKind, StoreError};
use serde_json::{Value as Json, json};

/// What a service call can fail with.
#[derive(Debug)]
pub enum CoreError {
    /// 400 with a message and PocketBase's nested `data` object.
    BadRequest {
        /// Sentenized message.
        message: String,
        /// Field errors (may be empty).
        data: BTreeMap<String, Json>,
    },
    /// 401.
    Unauthorized(String),
    /// 403.
    Forbidden(String),
    /// 404.
    NotFound(String),
    /// 413.
    TooLarge,
    /// 429.
    TooManyRequests(String),
    /// 401 `{"mfaId": ...}`: the first factor passed, a second one is required.
    MfaRequired(String),
    /// 503: the database is unavailable.
    Unavailable(String),
    /// 500: details go to the log only.
    Internal(String),
}

impl CoreError {
    /// 400 without field errors.
    pub fn bad_request(message: &str) -> CoreError {
        CoreError::BadRequest {
            message: message.to_string(),
            data: BTreeMap::new(),
        }
    }

    /// 400 with field errors.
    pub fn validation(message: &str, errors: FieldErrors) -> CoreError {
        CoreError::BadRequest {
            message: message.to_string(),
            data: errors
                .into_iter()
                .map(|(key, error)| (key, error.to_json()))
                .collect(),
        }
    }

    /// 400 with a nested error object.
    pub fn invalid(message: &str, data: BTreeMap<String, Json>) -> CoreError {
        CoreError::BadRequest {
            message: message.to_string(),
            data,
        }
    }

    /// 404 with PocketBase's default message.
    pub fn not_found() -> CoreError {
        CoreError::NotFound("The requested resource wasn't found.".into())
    }

    /// 403 for a locked (null) rule.
    pub fn superusers_only() -> CoreError {
        CoreError::Forbidden("Only superusers can perform this action.".into())
    }

    /// Internal error from anything displayable.
    pub fn internal(error: impl fmt::Display) -> CoreError {
        CoreError::Internal(error.to_string())
    }

    /// Logs `cause` (never sent to clients) and returns the error unchanged.
    pub fn with_log(self, cause: impl fmt::Display) -> CoreError {
        tracing::warn!(%cause, "request failed");
        self
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> u16 {
        match self {
            CoreError::BadRequest { .. } => 400,
            CoreError::Unauthorized(_) => 401,
            CoreError::Forbidden(_) => 403,
            CoreError::NotFound(_) => 404,
            CoreError::TooLarge => 413,
            CoreError::TooManyRequests(_) => 429,
            CoreError::MfaRequired(_) => 401,
            CoreError::Unavailable(_) => 503,
            CoreError::Internal(_) => 500,
        }
    }

    /// PocketBase's error body `{status, message, data}`; never leaks internals.
    pub fn body(&self) -> Json {
        if let CoreError::MfaRequired(id) = self {
            return json!({ "mfaId": id });
        }
        let (message, data) = match self {
            CoreError::BadRequest { message, data } => (message.as_str(), json!(data)),
            CoreError::Unauthorized(m)
            | CoreError::Forbidden(m)
            | CoreError::NotFound(m)
            | CoreError::TooManyRequests(m) => (m.as_str(), json!({})),
            CoreError::MfaRequired(_) => ("", json!({})),
            CoreError::TooLarge => ("Request entity too large.", json!({})),
            CoreError::Unavailable(_) => ("The database is temporarily unavailable.", json!({})),
            CoreError::Internal(_) => (
                "Something went wrong while processing your request.",
                json!({}),
            ),
        };
        json!({ "status": self.status(), "message": sentenize(message), "data": data })
    }
}

/// Upper-cases the first letter and ends the text with a period, like PocketBase.
pub fn sentenize(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 1);
    let mut chars = text.chars();
    if let Some(first) = chars.next() {
        out.extend(first.to_uppercase());
        out.push_str(chars.as_str());
    }
    if !out.is_empty() && !out.ends_with(['.', '?', '!']) {
        out.push('.');
    }
    out
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CoreError::Internal(detail) | CoreError::Unavailable(detail) => {
                write!(f, "{}: {detail}", self.status())
            }
            other => write!(f, "{}: {}", other.status(), other.body()),
        }
    }
}

impl std::error::Error for CoreError {}

impl From<StoreError> for CoreError {
    fn from(error: StoreError) -> CoreError {
        match error.kind() {
            ErrorKind::Unavailable | ErrorKind::Busy => CoreError::Unavailable(error.to_string()),
            _ => CoreError::Internal(error.to_string()),
        }
    }
}
