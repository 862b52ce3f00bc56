//! `basalt-http`: the thin axum layer speaking PocketBase's Web API.
//!
//! One module per resource, each with `router()`. Handlers extract typed input, call one
//! service method on `basalt_core::App`, and map the result to PocketBase's JSON.
//! Entry point: [`app`], used by the binary and by the tests.
//!
//! Invariants: no SQL and no storage types here; every error leaves through
//! [`error::ApiError`] in PocketBase's `{status, message, data}` shape.

mod auth;
mod batch;
mod collections;
mod edge;
pub mod error;
mod extract;
mod fields;
mod files;
mod health;
mod json;
mod ratelimit;
mod realtime;
mod records;
mod settings;

use std::sync::Arc;

use axum::Router;
use axum::body::HttpBody as _;
use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use basalt_core::{App, CoreError};

pub use error::ApiError;

/// HTTP options fixed at start-up.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Allowed CORS origins; empty = any (`*`).
    pub origins: Vec<String>,
    /// Default request body limit in bytes.
    pub max_body: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            origins: Vec::new(),
            max_body: 32 << 20,
        }
    }
}

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    /// The services.
    pub app: App,
    /// HTTP options (shared: the state is cloned for every request).
    pub config: std::sync::Arc<HttpConfig>,
    /// Rate limit counters (per node).
    pub(crate) limiter: std::sync::Arc<ratelimit::Limiter>,
}

/// Builds the whole router.
pub fn app(app: App, config: HttpConfig) -> Router {
    let origins = Arc::new(edge::Origins::from_config(&config.origins));
    let max_body = config.max_body;
    let state = AppState {
        app,
        config: std::sync::Arc::new(config),
        limiter: Default::default(),
    };
    Router::new()
        .merge(health::router())
        .merge(settings::router())
        .merge(collections::router())
        .merge(records::router())
        .merge(auth::router())
        .merge(batch::router())
        .merge(files::router())
        .merge(realtime::router())
        .fallback(not_found)
        .method_not_allowed_fallback(wrong_method)
        .with_state(state.clone())
        // One middleware for the whole edge (a layer per concern cost a boxed future and a
        // service clone per request each): CORS and security headers outside, then rate
        // limits, so a limited request's body is never read, then the body limit.
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            let state = state.clone();
            let origins = Arc::clone(&origins);
            async move {
                edge::edge(&origins, req, |mut req| async move {
                    if let Some(refused) = ratelimit::admit(&state, &mut req).await {
                        return refused;
                    }
                    let limit = body_limit(&state, &req, max_body);
                    limit_body(req, next, limit).await
                })
                .await
            }
        }))
}

/// The body limit of a request: the configured limit, raised like PocketBase's for
/// record writes by the collection's json/editor/file field sizes, and the batch
/// settings' `maxBodySize` for `/api/batch`.
fn body_limit(state: &AppState, req: &Request, max_body: usize) -> usize {
    let path = req.uri().path();
    if path == "/api/batch" {
        return state.app.batch_body_limit().max(max_body);
    }
    let writes = req.method() == Method::POST || req.method() == Method::PATCH;
    let collection = path
        .strip_prefix("/api/collections/")
        .and_then(|rest| rest.split_once('/'))
        .filter(|(_, tail)| *tail == "records" || tail.starts_with("records/"))
        .map(|(collection, _)| collection);
    match collection {
        Some(collection) if writes => {
            max_body.saturating_add(state.app.record_body_allowance(collection))
        }
        _ => max_body,
    }
}

/// Refuses bodies over the limit with 413 before any handler reads them.
async fn limit_body(req: Request, next: Next, max_body: usize) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max_body) {
        return ApiError(CoreError::TooLarge).into_response();
    }
    // Nothing to read (a GET, or a declared length of 0): nothing to buffer.
    if req.body().is_end_stream() {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    match axum::body::to_bytes(body, max_body).await {
        Ok(bytes) => {
            next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
                .await
        }
        Err(_) => ApiError(CoreError::TooLarge).into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("File not found.")
}

async fn wrong_method() -> ApiError {
    ApiError::not_found("The requested resource wasn't found.")
}

/// A 204 response.
pub(crate) fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}
