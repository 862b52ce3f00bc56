//! `GET /api/files/{collection}/{record}/{filename}` (thumbs, ranges, conditional
//! requests, protected files) and `POST /api/files/token`.

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use basalt_core::CoreError;
use basalt_files::{Conditions, Decision, Payload};
use serde_json::json;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{Caller, query_map};

/// Marks a file download so the security headers layer leaves out `X-Frame-Options`.
#[derive(Clone, Copy)]
pub(crate) struct FileDownload;

/// The sandbox every served file gets.
const CSP: &str = "default-src 'none'; media-src 'self'; style-src 'unsafe-inline'; sandbox";

/// Routes of this resource.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/files/token", post(token))
        .route("/api/files/{collection}/{record}/{filename}", get(download))
}

async fn token(State(state): State<AppState>, Caller(info): Caller) -> Result<Response, ApiError> {
    let token = state.app.file_token(&info)?;
    Ok(Json(json!({ "token": token })).into_response())
}

fn truthy(value: Option<&String>) -> bool {
    matches!(
        value.map(String::as_str),
        Some("1" | "t" | "T" | "true" | "TRUE" | "True")
    )
}

/// Request headers as owned text, for the decision made next to the file.
#[derive(Default)]
struct OwnedConditions {
    values: [Option<String>; 6],
}

impl OwnedConditions {
    fn from(headers: &HeaderMap) -> OwnedConditions {
        let get = |name: header::HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        OwnedConditions {
            values: [
                get(header::IF_MATCH),
                get(header::IF_UNMODIFIED_SINCE),
                get(header::IF_NONE_MATCH),
                get(header::IF_MODIFIED_SINCE),
                get(header::RANGE),
                get(header::IF_RANGE),
            ],
        }
    }

    fn view(&self) -> Conditions<'_> {
        let [a, b, c, d, e, f] = &self.values;
        Conditions {
            if_match: a.as_deref(),
            if_unmodified_since: b.as_deref(),
            if_none_match: c.as_deref(),
            if_modified_since: d.as_deref(),
            range: e.as_deref(),
            if_range: f.as_deref(),
        }
    }
}

fn disposition(inline: bool, filename: &str) -> HeaderValue {
    let kind = if inline { "inline" } else { "attachment" };
    // Stored names are `[A-Za-z0-9_.-]` only, so no quoting issues can arise.
    HeaderValue::from_str(&format!("{kind}; filename=\"{filename}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

async fn download(
    State(state): State<AppState>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // Undecodable segments (invalid percent-encoded UTF-8) are simply not found.
    let Ok(Path((collection, record, filename))) = path else {
        return Err(ApiError(CoreError::not_found()));
    };
    let query = query_map(uri.query());
    let (key, name) = state
        .app
        .file_for_download(
            &collection,
            &record,
            &filename,
            query.get("thumb").map(String::as_str),
            query.get("token").map(String::as_str),
        )
        .await?;
    let storage = state.app.files().ok_or_else(CoreError::not_found)?;
    let conditions = OwnedConditions::from(&headers);
    let opened = storage
        .open(&key, move |meta| {
            basalt_files::decide(meta, &conditions.view())
        })
        .await
        .map_err(|error| match error {
            basalt_files::FileError::InvalidKey => CoreError::not_found(),
            other => CoreError::internal(other),
        })?
        .ok_or_else(CoreError::not_found)?;
    let content_type = basalt_files::detect(&opened.head, &name);
    let inline = !truthy(query.get("download")) && basalt_files::is_inline(&content_type);
    let meta = &opened.meta;
    let (status, body) = match opened.decision {
        Decision::Full => (StatusCode::OK, Some(opened.body)),
        Decision::Partial { .. } => (StatusCode::PARTIAL_CONTENT, Some(opened.body)),
        Decision::NotModified => (StatusCode::NOT_MODIFIED, None),
        Decision::PreconditionFailed => (StatusCode::PRECONDITION_FAILED, None),
        Decision::Unsatisfiable => (StatusCode::RANGE_NOT_SATISFIABLE, None),
    };
    let mut response = match body {
        Some(Payload::Bytes(bytes)) => Response::new(Body::from(bytes)),
        Some(Payload::Stream(stream)) => Response::new(Body::from_stream(stream)),
        None => Response::new(Body::empty()),
    };
    *response.status_mut() = status;
    let out = response.headers_mut();
    let text = |s: &str| HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""));
    out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    out.insert(header::ETAG, text(&meta.etag));
    out.insert(header::LAST_MODIFIED, text(&meta.last_modified()));
    out.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=2592000, stale-while-revalidate=86400"),
    );
    out.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    match opened.decision {
        Decision::Full | Decision::Partial { .. } => {
            out.insert(header::CONTENT_TYPE, text(&content_type));
            out.insert(header::CONTENT_DISPOSITION, disposition(inline, &name));
            let length = match opened.decision {
                Decision::Partial { start, end } => {
                    out.insert(
                        header::CONTENT_RANGE,
                        text(&format!("bytes {start}-{end}/{}", meta.size)),
                    );
                    end - start + 1
                }
                _ => meta.size,
            };
            out.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        }
        Decision::Unsatisfiable => {
            out.insert(
                header::CONTENT_RANGE,
                text(&format!("bytes */{}", meta.size)),
            );
        }
        _ => {}
    }
    response.extensions_mut().insert(FileDownload);
    Ok(response)
}
