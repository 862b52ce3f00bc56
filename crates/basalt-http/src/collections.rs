//! `/api/collections/**` (superusers only).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{delete, get, put};
use basalt_core::{CoreError, RequestInfo, public_collection};
use serde_json::{Value as Json_, json};

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{Caller, parse_body};
use crate::fields::Picker;

/// Routes of this resource.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/collections", get(list).post(create))
        .route("/api/collections/import", put(import))
        .route("/api/collections/meta/scaffolds", get(scaffolds))
        .route(
            "/api/collections/{collection}",
            get(view).patch(update).delete(remove),
        )
        .route("/api/collections/{collection}/truncate", delete(truncate))
}

/// 401 for guests, 403 for non-superusers.
pub(crate) fn require_superuser(info: &RequestInfo) -> Result<(), ApiError> {
    match &info.auth {
        None => Err(ApiError(CoreError::Unauthorized(
            "The request requires valid record authorization token.".into(),
        ))),
        Some(auth) if !auth.is_superuser() => Err(ApiError(CoreError::Forbidden(
            "The authorized record is not allowed to perform this action.".into(),
        ))),
        Some(_) => Ok(()),
    }
}

async fn list(State(state): State<AppState>, Caller(info): Caller) -> Result<Response, ApiError> {
    require_superuser(&info)?;
    let params = crate::records::list_params(&info)?;
    let picker = Picker::parse(info.query.get("fields"))?;
    let result = state.app.list_collections(params, &info).await?;
    Ok(crate::records::list_response(result, picker))
}

async fn view(
    State(state): State<AppState>,
    Caller(info): Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    require_superuser(&info)?;
    let collection = state
        .app
        .collection(&name)
        .ok_or_else(|| ApiError(CoreError::not_found()))?;
    picked(&info, public_collection(&collection))
}

async fn create(
    State(state): State<AppState>,
    Caller(info): Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_superuser(&info)?;
    let input = parse_body(
        &headers,
        &body,
        "Failed to load the collection type data due to invalid formatting.",
    )
    .await?;
    picked(
        &info,
        state.app.create_collection(Json_::Object(input)).await?,
    )
}

async fn update(
    State(state): State<AppState>,
    Caller(info): Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_superuser(&info)?;
    let input = parse_body(
        &headers,
        &body,
        "Failed to load the submitted data due to invalid formatting.",
    )
    .await?;
    picked(
        &info,
        state
            .app
            .update_collection(&name, Json_::Object(input))
            .await?,
    )
}

async fn remove(
    State(state): State<AppState>,
    Caller(info): Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    require_superuser(&info)?;
    state.app.delete_collection(&name).await?;
    Ok(crate::no_content())
}

async fn truncate(
    State(state): State<AppState>,
    Caller(info): Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    require_superuser(&info)?;
    state.app.truncate_collection(&name).await?;
    Ok(crate::no_content())
}

async fn import(
    State(state): State<AppState>,
    Caller(info): Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_superuser(&info)?;
    let input = parse_body(
        &headers,
        &body,
        "An error occurred while loading the submitted data.",
    )
    .await?;
    let Some(Json_::Array(items)) = input.get("collections").cloned() else {
        return Err(ApiError(CoreError::invalid(
            "An error occurred while validating the submitted data.",
            [(
                "collections".to_string(),
                json!({"code": "validation_required", "message": "Cannot be blank."}),
            )]
            .into(),
        )));
    };
    let delete_missing = input
        .get("deleteMissing")
        .and_then(Json_::as_bool)
        .unwrap_or(false);
    state.app.import_collections(items, delete_missing).await?;
    Ok(crate::no_content())
}

async fn scaffolds(
    State(state): State<AppState>,
    Caller(info): Caller,
) -> Result<Response, ApiError> {
    require_superuser(&info)?;
    picked(&info, state.app.scaffolds())
}

/// A JSON response with the `fields` picker applied.
pub(crate) fn picked(info: &RequestInfo, value: Json_) -> Result<Response, ApiError> {
    let value = match Picker::parse(info.query.get("fields"))? {
        Some(picker) => picker.apply(value),
        None => value,
    };
    Ok(crate::json::response(axum::http::StatusCode::OK, &value))
}
