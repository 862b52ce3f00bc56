//! `/api/collections/{collection}/records/**`.

use std::io::Write as _;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use basalt_core::{ListParams, ListResult, RequestInfo};
use serde_json::Value as Json_;

use crate::AppState;
use crate::collections::picked;
use crate::error::ApiError;
use crate::extract::{Caller, parse_body_with_files};
use crate::fields::Picker;

/// Routes of this resource.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/collections/{collection}/records",
            get(list).post(create),
        )
        .route(
            "/api/collections/{collection}/records/{id}",
            get(view).patch(update).delete(remove),
        )
}

/// Parses `page`, `perPage`, `sort`, `filter`, `skipTotal` like PocketBase.
pub(crate) fn list_params(info: &RequestInfo) -> Result<ListParams, ApiError> {
    let int = |key: &str, default: i64| -> Result<i64, ApiError> {
        match info
            .query
            .get(key)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
        {
            None => Ok(default),
            Some(text) => text.parse::<i64>().map_err(|_| {
                ApiError::bad_request("Something went wrong while processing your request.")
            }),
        }
    };
    let page = int("page", 1)?;
    let per_page = int("perPage", 30)?;
    let skip_total = match info.query.get("skipTotal").map(String::as_str) {
        None | Some("") => false,
        Some("1" | "t" | "T" | "true" | "TRUE" | "True") => true,
        Some("0" | "f" | "F" | "false" | "FALSE" | "False") => false,
        Some(_) => {
            return Err(ApiError::bad_request(
                "Something went wrong while processing your request.",
            ));
        }
    };
    Ok(ListParams {
        page: if page <= 0 { 1 } else { page },
        per_page: if per_page <= 0 {
            30
        } else {
            per_page.min(1000)
        },
        sort: info
            .query
            .get("sort")
            .filter(|s| !s.trim().is_empty())
            .cloned(),
        filter: info
            .query
            .get("filter")
            .filter(|s| !s.trim().is_empty())
            .cloned(),
        skip_total,
    })
}

/// The list envelope, with the picker applied to each item only.
pub(crate) fn list_response(result: ListResult, picker: Option<Picker>) -> Response {
    let items: Vec<Json_> = match picker {
        Some(picker) => result
            .items
            .into_iter()
            .map(|item| picker.apply(item))
            .collect(),
        None => result.items,
    };
    // Written straight from the items, in PocketBase's key order (items, page, perPage,
    // totalItems, totalPages): `json!` would deep-copy every record first.
    let mut out = Vec::with_capacity(256 + 768 * items.len());
    out.extend_from_slice(b"{\"items\":");
    crate::json::write_value(&mut out, &Json_::Array(items));
    for (key, value) in [
        ("page", result.page),
        ("perPage", result.per_page),
        ("totalItems", result.total_items),
        ("totalPages", result.total_pages),
    ] {
        // Writing to a Vec cannot fail.
        let _ = write!(out, ",\"{key}\":{value}");
    }
    out.push(b'}');
    crate::json::body_response(axum::http::StatusCode::OK, out)
}

/// Applies `?expand=` to exported records of a collection, when asked for.
pub(crate) async fn expand(
    state: &AppState,
    collection: &str,
    records: &mut [Json_],
    info: &RequestInfo,
) -> Result<(), ApiError> {
    let Some(text) = info.query.get("expand").filter(|t| !t.trim().is_empty()) else {
        return Ok(());
    };
    let Some(collection) = state.app.collection(collection) else {
        return Ok(());
    };
    state
        .app
        .expand_records(&collection, records, text, info)
        .await?;
    Ok(())
}

async fn list(
    State(state): State<AppState>,
    Caller(info): Caller,
    Path(collection): Path<String>,
) -> Result<Response, ApiError> {
    let params = list_params(&info)?;
    let picker = Picker::parse(info.query.get("fields"))?;
    let mut result = state
        .app
        .list_records(&collection, params, info.clone())
        .await?;
    expand(&state, &collection, &mut result.items, &info).await?;
    Ok(list_response(result, picker))
}

async fn view(
    State(state): State<AppState>,
    Caller(info): Caller,
    Path((collection, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let record = state.app.view_record(&collection, &id, &info).await?;
    let mut records = [record];
    expand(&state, &collection, &mut records, &info).await?;
    let [record] = records;
    picked(&info, record)
}

async fn create(
    State(state): State<AppState>,
    Caller(info): Caller,
    Path(collection): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (input, uploads) = parse_body_with_files(
        &headers,
        &body,
        "Something went wrong while processing your request.",
    )
    .await?;
    let record = state
        .app
        .create_record_with_files(&collection, input, uploads, &info)
        .await?;
    let mut records = [record];
    expand(&state, &collection, &mut records, &info).await?;
    let [record] = records;
    picked(&info, record)
}

async fn update(
    State(state): State<AppState>,
    Caller(info): Caller,
    Path((collection, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (input, uploads) = parse_body_with_files(
        &headers,
        &body,
        "Something went wrong while processing your request.",
    )
    .await?;
    let record = state
        .app
        .update_record_with_files(&collection, &id, input, uploads, &info)
        .await?;
    let mut records = [record];
    expand(&state, &collection, &mut records, &info).await?;
    let [record] = records;
    picked(&info, record)
}

async fn remove(
    State(state): State<AppState>,
    Caller(info): Caller,
    Path((collection, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    state.app.delete_record(&collection, &id, info).await?;
    Ok(crate::no_content())
}
