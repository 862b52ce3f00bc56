//! `GET/PATCH /api/settings` (superusers only).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value as Json_;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{Caller, parse_body};

/// Routes of this resource.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/settings", get(view).patch(update))
        .route("/api/settings/test/s3", post(test_s3))
}

async fn view(
    State(state): State<AppState>,
    Caller(info): Caller,
) -> Result<Json<Json_>, ApiError> {
    crate::collections::require_superuser(&info)?;
    Ok(Json(state.app.public_settings()))
}

async fn update(
    State(state): State<AppState>,
    Caller(info): Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Json_>, ApiError> {
    crate::collections::require_superuser(&info)?;
    let patch = parse_body(
        &headers,
        &body,
        "An error occurred while loading the submitted data.",
    )
    .await?;
    Ok(Json(state.app.update_settings(Json_::Object(patch)).await?))
}

async fn test_s3(
    State(state): State<AppState>,
    Caller(info): Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    crate::collections::require_superuser(&info)?;
    let input = parse_body(
        &headers,
        &body,
        "An error occurred while loading the submitted data.",
    )
    .await?;
    let filesystem = input
        .get("filesystem")
        .and_then(Json_::as_str)
        .unwrap_or_default();
    state.app.test_s3(filesystem).await?;
    Ok(StatusCode::NO_CONTENT)
}
