//! `POST /api/batch`: routes each sub-request to a record action; the services run them
//! in one transaction.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use basalt_core::{BatchAction, BatchKind, CoreError, batch_failure};
use serde_json::{Value as Json_, json};

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{Caller, parse_body_with_files, query_map};
use crate::fields::Picker;

/// Routes of this resource.
pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/api/batch", post(batch))
}

/// Maps `METHOD /api/collections/{c}/records[/{id}][?query]` to an action.
fn route(index: usize, request: &Json_) -> Result<BatchAction, ApiError> {
    let unknown = || {
        ApiError(batch_failure(
            index,
            &CoreError::bad_request("Unknown batch request action."),
        ))
    };
    let method = request
        .get("method")
        .and_then(Json_::as_str)
        .unwrap_or_default()
        .to_ascii_uppercase();
    let url = request
        .get("url")
        .and_then(Json_::as_str)
        .unwrap_or_default();
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let rest = path.strip_prefix("/api/collections/").ok_or_else(unknown)?;
    let parts: Vec<&str> = rest.split('/').collect();
    let (collection, id) = match parts.as_slice() {
        [collection, "records"] if !collection.is_empty() => (*collection, None),
        [collection, "records", id] if !collection.is_empty() && !id.is_empty() => {
            (*collection, Some(id.to_string()))
        }
        _ => return Err(unknown()),
    };
    let kind = match (method.as_str(), id.is_some()) {
        ("POST", false) => BatchKind::Create,
        ("PUT", false) => BatchKind::Upsert,
        ("PATCH", true) => BatchKind::Update,
        ("DELETE", true) => BatchKind::Delete,
        _ => return Err(unknown()),
    };
    let body = match request.get("body") {
        Some(Json_::Object(body)) => body.clone(),
        None | Some(Json_::Null) => serde_json::Map::new(),
        Some(_) => {
            return Err(ApiError(batch_failure(
                index,
                &CoreError::bad_request("Invalid request body."),
            )));
        }
    };
    let headers: BTreeMap<String, String> = request
        .get("headers")
        .and_then(Json_::as_object)
        .map(|h| {
            h.iter()
                .filter_map(|(k, v)| {
                    Some((
                        k.to_ascii_lowercase().replace('-', "_"),
                        v.as_str()?.to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(BatchAction {
        kind,
        collection: collection.to_string(),
        id,
        body,
        query: query_map(Some(query)),
        headers,
        uploads: Vec::new(),
    })
}

/// The sub-request and field key of a batch upload: `requests.<i>.<key>` or
/// `requests[<i>].<key>`.
fn upload_target(form_key: &str) -> Option<(usize, String)> {
    let rest = form_key.strip_prefix("requests")?;
    let (index, key) = if let Some(rest) = rest.strip_prefix('[') {
        let (index, key) = rest.split_once(']')?;
        (index, key.strip_prefix('.')?)
    } else {
        rest.strip_prefix('.')?.split_once('.')?
    };
    if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) || key.is_empty() {
        return None;
    }
    Some((index.parse().ok()?, key.to_string()))
}

async fn batch(
    State(state): State<AppState>,
    Caller(info): Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (input, uploads) =
        parse_body_with_files(&headers, &body, "Invalid batch request data.").await?;
    let Some(Json_::Array(requests)) = input.get("requests") else {
        return Err(ApiError(CoreError::invalid(
            "Invalid batch request data.",
            [(
                "requests".to_string(),
                json!({"code": "validation_required", "message": "Cannot be blank."}),
            )]
            .into(),
        )));
    };
    let mut actions = requests
        .iter()
        .enumerate()
        .map(|(index, request)| route(index, request))
        .collect::<Result<Vec<_>, _>>()?;
    for mut upload in uploads {
        if let Some((index, key)) = upload_target(&upload.key)
            && let Some(action) = actions.get_mut(index)
        {
            upload.key = key;
            action.uploads.push(upload);
        }
    }
    let results = state.app.batch(actions, &info).await?;
    let mut out = Vec::with_capacity(results.len());
    for result in results {
        let body = match result.record {
            Some(record) => {
                let mut records = [record];
                crate::records::expand(&state, &result.collection, &mut records, &result.info)
                    .await?;
                let [record] = records;
                match Picker::parse(result.info.query.get("fields"))? {
                    Some(picker) => picker.apply(record),
                    None => record,
                }
            }
            None => Json_::Null,
        };
        let mut entry = serde_json::Map::new();
        entry.insert("body".into(), body);
        entry.insert("status".into(), Json_::from(result.status));
        out.push(Json_::Object(entry));
    }
    Ok(Json(Json_::Array(out)).into_response())
}
