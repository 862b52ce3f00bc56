//! The outermost middleware: CORS and the security headers of every response.
//!
//! CORS as PocketBase answers it: any origin by default (`*`), or only the origins given
//! with `--origins` (the request's own origin is echoed back when it is one of them).
//! A preflight (`OPTIONS` with `Access-Control-Request-Method`) is answered here, before
//! rate limits and routing, with 204, the allowed methods, the requested headers echoed
//! and a max-age of a day. Written by hand rather than with tower-http's layer, which
//! cloned its whole configuration and rebuilt its `Vary` value for every request (~4% of
//! a view by id, callgrind).

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
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
const SECURITY_HEADERS: [(HeaderName, HeaderValue); 4] = [
    (
        HeaderName::from_static("x-xss-protection"),
        HeaderValue::from_static("1; mode=block"),
    ),
    (
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    ),
    (
        header::X_FRAME_OPTIONS,
        HeaderValue::from_static("SAMEORIGIN"),
    ),
    (
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    ),
];

/// Answers a CORS preflight itself; runs `inner` for every other request and adds
/// `Vary: Origin`, the allowed origin and the security headers to its response.
pub(crate) async fn edge<F, Fut>(origins: &Origins, req: Request, inner: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let allow_origin = origins.allow(req.headers().get(header::ORIGIN));
    let options = req.method() == Method::OPTIONS;
    let mut response = if options
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    {
        preflight(req.headers())
    } else {
        let mut response = inner(req).await;
        if options && response.status() == StatusCode::OK {
            *response.status_mut() = StatusCode::NO_CONTENT;
        }
        // Room for what is added below, so the map grows at most once.
        response.headers_mut().reserve(SECURITY_HEADERS.len() + 2);
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
        if file && name == header::X_FRAME_OPTIONS {
            continue;
        }
        headers.insert(name, value);
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
