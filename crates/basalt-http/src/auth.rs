//! Auth endpoints of auth collections (password login, refresh, methods).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use axum::routing::{get, post};
use basalt_core::{AuthResult, CoreError, RequestInfo, export_with};
use serde_json::{Value as Json_, json};

use crate::AppState;
use crate::collections::picked;
use crate::error::ApiError;
use crate::extract::{Caller, parse_body};

/// Routes of this resource.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/collections/{collection}/auth-with-password",
            post(auth_with_password),
        )
        .route(
            "/api/collections/{collection}/auth-refresh",
            post(auth_refresh),
        )
        .route(
            "/api/collections/{collection}/auth-methods",
            get(auth_methods),
        )
}

fn auth_collection(
    state: &AppState,
    name: &str,
) -> Result<std::sync::Arc<basalt_schema::Collection>, ApiError> {
    state
        .app
        .collection(name)
        .filter(|c| c.is_auth())
        .ok_or_else(|| ApiError::not_found("Missing or invalid auth collection context."))
}

async fn auth_response(
    state: &AppState,
    info: &RequestInfo,
    result: AuthResult,
) -> Result<Response, ApiError> {
    let record = export_with(
        &result.auth.collection,
        &result.auth.record,
        result.auth.is_superuser(),
        true,
    );
    // Expansion reads with the rights of the record that just authenticated.
    let mut as_record = info.clone();
    as_record.auth = Some(result.auth.clone());
    let mut records = [record];
    crate::records::expand(state, &result.auth.collection.id, &mut records, &as_record).await?;
    let [record] = records;
    picked(info, json!({"token": result.token, "record": record}))
}

async fn auth_with_password(
    State(state): State<AppState>,
    Caller(info): Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let collection = auth_collection(&state, &name)?;
    let input = parse_body(
        &headers,
        &body,
        "An error occurred while loading the submitted data.",
    )
    .await?;
    let text = |key: &str| {
        input
            .get(key)
            .and_then(Json_::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let identity_field = input
        .get("identityField")
        .and_then(Json_::as_str)
        .filter(|s| !s.is_empty());
    let result = state
        .app
        .auth_with_password(
            collection,
            &text("identity"),
            &text("password"),
            identity_field,
        )
        .await?;
    auth_response(&state, &info, result).await
}

async fn auth_refresh(
    State(state): State<AppState>,
    Caller(info): Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let collection = auth_collection(&state, &name)?;
    let Some(auth) = info.auth.clone() else {
        return Err(ApiError(CoreError::Unauthorized(
            "The request requires valid record authorization token.".into(),
        )));
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let result = state.app.auth_refresh(collection, auth, token).await?;
    auth_response(&state, &info, result).await
}

async fn auth_methods(
    State(state): State<AppState>,
    Caller(info): Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let collection = auth_collection(&state, &name)?;
    let options = collection
        .auth
        .clone()
        .ok_or_else(|| ApiError::not_found("Missing or invalid auth collection context."))?;
    let password = options.password_enabled();
    let identity_fields = options.identity_fields();
    let body = json!({
        "password": {"enabled": password, "identityFields": if password { identity_fields.clone() } else { vec![] }},
        "oauth2": {"enabled": false, "providers": []},
        "mfa": {"enabled": false, "duration": 0},
        "otp": {"enabled": false, "duration": 0},
        "authProviders": [],
        "usernamePassword": password && identity_fields.iter().any(|f| f == "username"),
        "emailPassword": password && identity_fields.iter().any(|f| f == "email"),
    });
    picked(&info, body)
}
