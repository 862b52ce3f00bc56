//! Auth endpoints of auth collections: password login, refresh, methods, the email
//! flows (verification, password reset, email change), impersonation, and the
//! settings' test email.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, response::Html};
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
        .route(
            "/api/collections/{collection}/request-verification",
            post(request_verification),
        )
        .route(
            "/api/collections/{collection}/confirm-verification",
            post(confirm_verification),
        )
        .route(
            "/api/collections/{collection}/request-password-reset",
            post(request_password_reset),
        )
        .route(
            "/api/collections/{collection}/confirm-password-reset",
            post(confirm_password_reset),
        )
        .route(
            "/api/collections/{collection}/request-email-change",
            post(request_email_change),
        )
        .route(
            "/api/collections/{collection}/confirm-email-change",
            post(confirm_email_change),
        )
        .route(
            "/api/collections/{collection}/impersonate/{id}",
            post(impersonate),
        )
        .route(
            "/api/collections/{collection}/request-otp",
            post(request_otp),
        )
        .route(
            "/api/collections/{collection}/auth-with-otp",
            post(auth_with_otp),
        )
        .route(
            "/api/collections/{collection}/auth-with-oauth2",
            post(auth_with_oauth2),
        )
        .route(
            "/api/oauth2-redirect",
            get(oauth2_redirect).post(oauth2_redirect),
        )
        .route("/api/settings/test/email", post(test_email))
}

const LOAD_FAILED: &str = "An error occurred while loading the submitted data.";

/// The collection of an email flow: unknown and non-auth collections answer with
/// PocketBase's two different 404 messages.
fn flow_collection(
    state: &AppState,
    name: &str,
) -> Result<std::sync::Arc<basalt_schema::Collection>, ApiError> {
    let collection = state
        .app
        .collection(name)
        .ok_or_else(|| ApiError::not_found("Missing or invalid collection context."))?;
    if !collection.is_auth() {
        return Err(ApiError::not_found(
            "Missing or invalid auth collection context.",
        ));
    }
    Ok(collection)
}

/// The body of a flow endpoint.
async fn flow_input(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<serde_json::Map<String, Json_>, ApiError> {
    parse_body(headers, body, LOAD_FAILED).await
}

/// A string input field; absent or null is empty, any other type does not load.
fn text_input(input: &serde_json::Map<String, Json_>, key: &str) -> Result<String, ApiError> {
    match input.get(key) {
        None | Some(Json_::Null) => Ok(String::new()),
        Some(Json_::String(text)) => Ok(text.clone()),
        Some(_) => Err(ApiError::bad_request(LOAD_FAILED)),
    }
}

async fn request_verification(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let collection = flow_collection(&state, &name)?;
    state.app.check_verification_collection(&collection)?;
    let input = flow_input(&headers, &body).await?;
    let email = text_input(&input, "email")?;
    state.app.request_verification(collection, &email).await?;
    Ok(crate::no_content())
}

async fn confirm_verification(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let collection = flow_collection(&state, &name)?;
    state.app.check_verification_collection(&collection)?;
    let input = flow_input(&headers, &body).await?;
    let token = text_input(&input, "token")?;
    state.app.confirm_verification(collection, &token).await?;
    Ok(crate::no_content())
}

async fn request_password_reset(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let collection = flow_collection(&state, &name)?;
    let input = flow_input(&headers, &body).await?;
    let email = text_input(&input, "email")?;
    state.app.request_password_reset(collection, &email).await?;
    Ok(crate::no_content())
}

async fn confirm_password_reset(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let collection = flow_collection(&state, &name)?;
    let input = flow_input(&headers, &body).await?;
    let token = text_input(&input, "token")?;
    let password = text_input(&input, "password")?;
    let confirm = text_input(&input, "passwordConfirm")?;
    state
        .app
        .confirm_password_reset(collection, &token, &password, &confirm)
        .await?;
    Ok(crate::no_content())
}

async fn request_email_change(
    State(state): State<AppState>,
    Caller(info): Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    // Any collection: the caller's auth is checked (by the service) before the body is
    // read, so a base collection or a foreign token answers 401/403 like PocketBase.
    let collection = state
        .app
        .collection(&name)
        .ok_or_else(|| ApiError::not_found("Missing or invalid collection context."))?;
    let same_collection = info
        .auth
        .as_ref()
        .is_some_and(|auth| auth.collection.id == collection.id);
    let input = if same_collection {
        flow_input(&headers, &body).await?
    } else {
        serde_json::Map::new()
    };
    let new_email = text_input(&input, "newEmail")?;
    state
        .app
        .request_email_change(collection, info.auth, &new_email)
        .await?;
    Ok(crate::no_content())
}

async fn confirm_email_change(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let collection = flow_collection(&state, &name)?;
    let input = flow_input(&headers, &body).await?;
    let token = text_input(&input, "token")?;
    let password = text_input(&input, "password")?;
    state
        .app
        .confirm_email_change(collection, &token, &password)
        .await?;
    Ok(crate::no_content())
}

async fn impersonate(
    State(state): State<AppState>,
    Caller(info): Caller,
    Path((name, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    crate::collections::require_superuser(&info)?;
    let collection = auth_collection(&state, &name)?;
    let input = flow_input(&headers, &body).await?;
    let result = state.app.impersonate(collection, &id, &input).await?;
    auth_response(&state, &info, result).await
}

async fn test_email(
    State(state): State<AppState>,
    Caller(info): Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    crate::collections::require_superuser(&info)?;
    let input = flow_input(&headers, &body).await?;
    state.app.send_test_email(&input).await?;
    Ok(crate::no_content())
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
    let mfa_id = mfa_id(&info, &input);
    let result = state
        .app
        .auth_with_password(
            collection,
            &text("identity"),
            &text("password"),
            identity_field,
            mfa_id.as_deref(),
        )
        .await?;
    auth_response(&state, &info, result).await
}

/// The MFA session id of a second-factor request: `mfaId` in the body or the query.
fn mfa_id(info: &RequestInfo, input: &serde_json::Map<String, Json_>) -> Option<String> {
    input
        .get("mfaId")
        .and_then(Json_::as_str)
        .map(str::to_string)
        .or_else(|| info.query.get("mfaId").cloned())
        .filter(|s| !s.is_empty())
}

async fn request_otp(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let collection = flow_collection(&state, &name)?;
    let input = flow_input(&headers, &body).await?;
    let email = text_input(&input, "email")?;
    let otp_id = state.app.request_otp(collection, &email).await?;
    Ok(axum::Json(json!({ "otpId": otp_id })).into_response())
}

async fn auth_with_otp(
    State(state): State<AppState>,
    Caller(info): Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let collection = flow_collection(&state, &name)?;
    let input = flow_input(&headers, &body).await?;
    let otp_id = text_input(&input, "otpId")?;
    let password = text_input(&input, "password")?;
    let mfa_id = mfa_id(&info, &input);
    let result = state
        .app
        .auth_with_otp(collection, &otp_id, &password, mfa_id.as_deref())
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
    let method = |value: &Json_, default: u64| {
        let enabled = value.get("enabled").and_then(Json_::as_bool) == Some(true);
        let duration = if enabled {
            value
                .get("duration")
                .and_then(Json_::as_u64)
                .unwrap_or(default)
        } else {
            0
        };
        json!({"enabled": enabled, "duration": duration})
    };
    let (oauth2, providers) = basalt_core::auth_method_providers(&collection);
    let body = json!({
        "password": {"enabled": password, "identityFields": if password { identity_fields.clone() } else { vec![] }},
        "oauth2": {"enabled": oauth2, "providers": providers.clone()},
        "mfa": method(&options.mfa, 600),
        "otp": method(&options.otp, 180),
        "authProviders": providers,
        "usernamePassword": password && identity_fields.iter().any(|f| f == "username"),
        "emailPassword": password && identity_fields.iter().any(|f| f == "email"),
    });
    picked(&info, body)
}

async fn auth_with_oauth2(
    State(state): State<AppState>,
    Caller(info): Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let collection = auth_collection(&state, &name)?;
    let input = flow_input(&headers, &body).await?;
    let create_data = match input.get("createData") {
        None | Some(Json_::Null) => serde_json::Map::new(),
        Some(Json_::Object(data)) => data.clone(),
        Some(_) => return Err(ApiError::bad_request(LOAD_FAILED)),
    };
    let oauth = basalt_core::OAuth2Input {
        provider: text_input(&input, "provider")?,
        code: text_input(&input, "code")?,
        code_verifier: text_input(&input, "codeVerifier")?,
        redirect_url: text_input(&input, "redirectURL")?,
        create_data,
    };
    let mfa_id = mfa_id(&info, &input);
    let (result, meta) = state
        .app
        .auth_with_oauth2(collection, &info, oauth, mfa_id.as_deref())
        .await?;
    let response = auth_response(&state, &info, result).await?;
    // `meta` goes next to `token` and `record` (unless `fields` left them out).
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|e| ApiError(CoreError::internal(e)))?;
    let mut value: Json_ =
        serde_json::from_slice(&bytes).map_err(|e| ApiError(CoreError::internal(e)))?;
    let wants_meta = info.query.get("fields").is_none_or(|f| {
        f.split(',')
            .any(|f| matches!(f.trim(), "*" | "meta") || f.trim().starts_with("meta."))
    });
    if let (Some(object), true) = (value.as_object_mut(), wants_meta) {
        object.insert("meta".into(), meta);
    }
    Ok((parts, axum::Json(value)).into_response())
}

/// `/api/oauth2-redirect`: the provider sends the browser here with `state` and `code`
/// (or `error`); they are forwarded to the realtime client whose id is the state and
/// that subscribed to `@oauth2` (the SDK's all-in-one flow).
async fn oauth2_redirect(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<std::net::SocketAddr>>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut params: std::collections::BTreeMap<String, String> =
        serde_urlencoded::from_str(query.as_deref().unwrap_or_default()).unwrap_or_default();
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if form
        && let Ok(posted) =
            serde_urlencoded::from_bytes::<std::collections::BTreeMap<String, String>>(&body)
    {
        params.extend(posted);
    }
    let field = |key: &str| params.get(key).cloned().unwrap_or_default();
    let (client_id, code, error) = (field("state"), field("code"), field("error"));
    if client_id.is_empty() {
        return redirect_page(StatusCode::BAD_REQUEST, "Missing OAuth2 state.");
    }
    let mut data = serde_json::Map::new();
    data.insert("state".into(), Json_::String(client_id.clone()));
    data.insert("code".into(), Json_::String(code.clone()));
    if !error.is_empty() {
        data.insert("error".into(), Json_::String(error.clone()));
    }
    let ip = peer.map(|Extension(ConnectInfo(addr))| addr.ip());
    let sent = state.app.realtime().send_to_subscriber(
        &client_id,
        ip,
        "@oauth2",
        &Json_::Object(data).to_string(),
    );
    if !sent {
        return redirect_page(
            StatusCode::NOT_FOUND,
            "Missing or invalid OAuth2 client (the state is unknown or expired).",
        );
    }
    if !error.is_empty() || code.is_empty() {
        return redirect_page(
            StatusCode::OK,
            "The provider refused the sign-in. You can close this window.",
        );
    }
    redirect_page(
        StatusCode::OK,
        "Sign-in completed. You can close this window and go back to the app.",
    )
}

fn redirect_page(status: StatusCode, text: &str) -> Response {
    let page = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>OAuth2</title></head>\
         <body><p>{text}</p><script>window.close()</script></body></html>"
    );
    (status, Html(page)).into_response()
}
