//! The outermost middleware: CORS and the security headers of every response.
//!
//! CORS as PocketBase answers it: any origin by default (`*`), or only the origins given
//! with `--origins` (the request's own origin is echoed back when it is one of them).
//! A preflight (`OPTIONS` with `Access-Control-Request-Method`) is answered here, before
//! rate limits and routing, with 204, the allowed methods, the requested headers echoed
//! and a max-age of a day. Written by hand rather than with tower-http's layer, which
//! cloned its whole configuration and rebuilt its `Vary` value for every request (~4% of
//! a view by id, callgrind).

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

/// Which origins may call the API from a browser.
#[derive(Debug, Clone)]
pub(crate) enum Origins {
    /// Every origin (`Access-Control-Allow-Origin: *`).
    Any,
    /// Only these (each answered with its own origin).
    List(Vec<HeaderValue>),
}

impl Origins {
    /// From `--origins`: empty or containing `*` allows every origin.
    pub(crate) fn from_config(origins: &[String]) -> Origins {
        if origins.is_empty() || origins.iter().any(|o| o == "*") {
            return Origins::Any;
        }
        Origins::List(
            origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect(),
        )
    }

    /// The `Access-Control-Allow-Origin` value for a request from `origin`, if any.
    fn allow(&self, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
        match self {
            Origins::Any => Some(HeaderValue::from_static("*")),
            Origins::List(list) => origin.filter(|o| list.contains(o)).cloned(),
        }
    }
}

const ALLOW_METHODS: &str = "GET,HEAD,PUT,PATCH,POST,DELETE";
const MAX_AGE: &str = "86400";
const SECURITY_HEADERS: [(&str, &str); 4] = [
    ("x-xss-protection", "1; mode=block"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "SAMEORIGIN"),
    ("cross-origin-opener-policy", "same-origin"),
];

/// The middleware (see the module doc).
pub(crate) async fn edge(origins: Arc<Origins>, req: Request, next: Next) -> Response {
    let allow_origin = origins.allow(req.headers().get(header::ORIGIN));
    let method = req.method().clone();
    let mut response = if method == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        preflight(req.headers())
    } else {
        let mut response = next.run(req).await;
        if method == Method::OPTIONS && response.status() == StatusCode::OK {
            *response.status_mut() = StatusCode::NO_CONTENT;
        }
        response
            .headers_mut()
            .append(header::VARY, HeaderValue::from_static("Origin"));
        response
    };
    let file = response
        .extensions()
        .get::<crate::files::FileDownload>()
        .is_some();
    let headers = response.headers_mut();
    if let Some(value) = allow_origin {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    }
    for (name, value) in SECURITY_HEADERS {
        // Files may be framed by the app's pages (PocketBase drops the header too).
        if file && name == "x-frame-options" {
            continue;
        }
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    response
}

/// The answer to a preflight: 204 with the methods, the requested headers and max-age.
fn preflight(request: &HeaderMap) -> Response {
    let mut response = Response::new(axum::body::Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(ALLOW_METHODS),
    );
    if let Some(requested) = request.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, requested.clone());
    }
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(MAX_AGE),
    );
    headers.insert(
        header::VARY,
        HeaderValue::from_static(
            "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
        ),
    );
    response
}
