//! `ApiError`: the one error response, PocketBase's `{status, message, data}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use basalt_core::CoreError;

/// An error answered to a client. Internal details are logged, never sent.
#[derive(Debug)]
pub struct ApiError(pub CoreError);

impl From<CoreError> for ApiError {
    fn from(error: CoreError) -> Self {
        ApiError(error)
    }
}

impl ApiError {
    /// 400 with a message.
    pub fn bad_request(message: &str) -> ApiError {
        ApiError(CoreError::bad_request(message))
    }

    /// 404 with a message.
    pub fn not_found(message: &str) -> ApiError {
        ApiError(CoreError::NotFound(message.to_string()))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let CoreError::Internal(detail) | CoreError::Unavailable(detail) = &self.0 {
            tracing::error!(%detail, "request failed");
        }
        let status =
            StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(self.0.body())).into_response()
    }
}
