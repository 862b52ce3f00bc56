//! Extractors: the caller (auth + request facts), and request bodies parsed the way
//! PocketBase parses them (JSON, urlencoded with type inference).

use std::collections::BTreeMap;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use basalt_core::{CoreError, RequestInfo, Upload};
use serde_json::{Map, Value as Json};

use crate::AppState;
use crate::error::ApiError;

/// The request as the services see it: auth, method, query, headers.
pub(crate) struct Caller(pub RequestInfo);

fn snake_header(name: &str) -> String {
    name.to_ascii_lowercase().replace('-', "_")
}

/// First value of every query parameter.
pub(crate) fn query_map(query: Option<&str>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(query) = query.filter(|q| !q.is_empty()) else {
        return out;
    };
    for (key, value) in form_urlencoded_pairs(query) {
        out.entry(key).or_insert(value);
    }
    out
}

/// Decodes `a=b&c=d` pairs.
pub(crate) fn form_urlencoded_pairs(text: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(text).unwrap_or_default()
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let resolved = parts
            .extensions
            .get::<crate::ratelimit::ResolvedAuth>()
            .map(|r| r.0.clone());
        let auth = match (
            resolved,
            parts
                .headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok()),
        ) {
            // Already resolved by the rate limiter.
            (Some(auth), _) => auth,
            // A database outage answers 503 rather than treating the caller as a guest.
            (None, Some(token)) if !token.trim().is_empty() => {
                state.app.try_authenticate(token).await?
            }
            _ => None,
        };
        let headers = parts
            .headers
            .iter()
            .filter_map(|(name, value)| {
                Some((
                    snake_header(name.as_str()),
                    value.to_str().ok()?.to_string(),
                ))
            })
            .collect();
        Ok(Caller(RequestInfo {
            auth,
            method: parts.method.as_str().to_string(),
            query: query_map(parts.uri.query()),
            headers,
            body: Map::new(),
            context: "default".into(),
        }))
    }
}

impl OptionalFromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, Self::Rejection> {
        <Caller as FromRequestParts<AppState>>::from_request_parts(parts, state)
            .await
            .map(Some)
    }
}

/// Infers a form value's type like PocketBase: booleans, canonical numbers, else text.
pub(crate) fn infer(text: &str) -> Json {
    match text {
        "true" => return Json::Bool(true),
        "false" => return Json::Bool(false),
        _ => {}
    }
    if let Ok(number) = text.parse::<f64>()
        && number.is_finite()
        && format_canonical(number) == text
        && let Some(n) = serde_json::Number::from_f64(number)
    {
        return Json::Number(n);
    }
    Json::String(text.to_string())
}

fn format_canonical(number: f64) -> String {
    if number.fract() == 0.0 && number.abs() < 1e15 {
        format!("{}", number as i64)
    } else {
        format!("{number}")
    }
}

/// Parses a request body into an object. `invalid` is the message for malformed input.
/// Uploaded files are ignored here (only record writes take files).
pub(crate) async fn parse_body(
    headers: &HeaderMap,
    bytes: &[u8],
    invalid: &str,
) -> Result<Map<String, Json>, ApiError> {
    parse_body_with_files(headers, bytes, invalid)
        .await
        .map(|(body, _)| body)
}

/// [`parse_body`] that also returns the files of a multipart body.
pub(crate) async fn parse_body_with_files(
    headers: &HeaderMap,
    bytes: &[u8],
    invalid: &str,
) -> Result<(Map<String, Json>, Vec<Upload>), ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok((Map::new(), Vec::new()));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        return parse_multipart(&content_type, bytes, invalid).await;
    }
    if content_type.starts_with("application/x-www-form-urlencoded") {
        let text = std::str::from_utf8(bytes).map_err(|_| ApiError::bad_request(invalid))?;
        let mut out = Map::new();
        for (key, value) in form_urlencoded_pairs(text) {
            add_form_value(&mut out, key, infer(&value));
        }
        return Ok((out, Vec::new()));
    }
    if !(content_type.is_empty()
        || content_type.starts_with("application/json")
        || content_type.contains("+json"))
    {
        return Err(ApiError(CoreError::bad_request(
            "Unsupported Content-Type.",
        )));
    }
    let mut stream = serde_json::Deserializer::from_slice(bytes).into_iter::<Json>();
    match stream.next() {
        Some(Ok(Json::Object(object))) => Ok((object, Vec::new())),
        Some(Ok(Json::Null)) => Ok((Map::new(), Vec::new())),
        _ => Err(ApiError::bad_request(invalid)),
    }
}

/// Adds a form value; repeated keys become arrays.
fn add_form_value(out: &mut Map<String, Json>, key: String, value: Json) {
    match out.get_mut(&key) {
        Some(Json::Array(items)) => items.push(value),
        Some(existing) => *existing = Json::Array(vec![existing.clone(), value]),
        None => {
            out.insert(key, value);
        }
    }
}

/// Parses `multipart/form-data`: text parts are type-inferred like urlencoded values,
/// every `@jsonPayload` part is a JSON object merged into the body, and parts with a
/// file name are returned as uploads under their form key.
async fn parse_multipart(
    content_type: &str,
    bytes: &[u8],
    invalid: &str,
) -> Result<(Map<String, Json>, Vec<Upload>), ApiError> {
    let boundary =
        multer::parse_boundary(content_type).map_err(|_| ApiError::bad_request(invalid))?;
    let data = axum::body::Bytes::copy_from_slice(bytes);
    let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(data) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut out = Map::new();
    let mut payloads = Vec::new();
    let mut uploads = Vec::new();
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|_| ApiError::bad_request(invalid))?
    {
        let name = field.name().unwrap_or_default().to_string();
        if let Some(filename) = field.file_name().map(str::to_string) {
            let bytes = field
                .bytes()
                .await
                .map_err(|_| ApiError::bad_request(invalid))?;
            uploads.push(Upload {
                key: name,
                filename,
                bytes,
            });
            continue;
        }
        let text = field
            .text()
            .await
            .map_err(|_| ApiError::bad_request(invalid))?;
        if name == "@jsonPayload" {
            match serde_json::from_str::<Json>(&text) {
                Ok(Json::Object(object)) => payloads.push(object),
                _ => return Err(ApiError::bad_request(invalid)),
            }
        } else {
            add_form_value(&mut out, name, infer(&text));
        }
    }
    for payload in payloads {
        for (key, value) in payload {
            out.insert(key, value);
        }
    }
    Ok((out, uploads))
}
