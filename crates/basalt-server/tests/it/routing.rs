//! Routing quirks (404 bodies, trailing slashes, wrong methods), security headers and
//! CORS (preflight, `--origins`).

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::json;

use crate::support::scenario::{Scenario, delete, get, post};
use crate::support::{TestApp, Who};

const FILE_NOT_FOUND: &str = "File not found.";
const NOT_FOUND: &str = "The requested resource wasn't found.";

#[tokio::test]
async fn unknown_paths_trailing_slashes_and_wrong_methods() {
    let app = TestApp::spawn().await;
    app.create_collection(json!({"name": "posts", "listRule": "", "fields": []}))
        .await;
    let record = app.create_record("posts", json!({})).await;
    let id = record["id"].as_str().unwrap();
    app.check(vec![
        get("unknown api path", "/api/nope").error(404, FILE_NOT_FOUND),
        get("unknown path as superuser", "/api/nope/deeper")
            .who(Who::Superuser)
            .error(404, FILE_NOT_FOUND),
        get("unknown root path", "/nope.html").error(404, FILE_NOT_FOUND),
        get("health with a trailing slash", "/api/health/").error(404, FILE_NOT_FOUND),
        get("collections with a trailing slash", "/api/collections/")
            .who(Who::Superuser)
            .error(404, FILE_NOT_FOUND),
        get(
            "records with a trailing slash",
            "/api/collections/posts/records/",
        )
        .error(404, FILE_NOT_FOUND),
        get(
            "without the trailing slash",
            "/api/collections/posts/records",
        )
        .subset(json!({"totalItems": 1})),
        Scenario::new("PUT health", Method::PUT, "/api/health").error(404, NOT_FOUND),
        delete("DELETE settings", "/api/settings")
            .who(Who::Superuser)
            .error(404, NOT_FOUND),
        post(
            "POST to a record",
            format!("/api/collections/posts/records/{id}"),
        )
        .json(json!({}))
        .error(404, NOT_FOUND),
    ])
    .await;
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

fn assert_security_headers(headers: &HeaderMap, what: &str) {
    for (name, value) in [
        ("x-xss-protection", "1; mode=block"),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "SAMEORIGIN"),
        ("cross-origin-opener-policy", "same-origin"),
    ] {
        assert_eq!(
            header(headers, name),
            value,
            "{what}: {name} in {headers:?}"
        );
    }
    let vary: Vec<String> = headers
        .get_all("vary")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()))
        .collect();
    assert!(
        vary.iter().any(|v| v == "origin"),
        "{what}: Vary: Origin in {headers:?}"
    );
}

#[tokio::test]
async fn security_headers_on_every_response() {
    let app = TestApp::spawn().await;
    for (what, method, path, who) in [
        ("200", Method::GET, "/api/health", Who::Guest),
        ("401", Method::GET, "/api/settings", Who::Guest),
        ("404", Method::GET, "/api/nope", Who::Guest),
        ("400", Method::POST, "/api/collections", Who::Superuser),
    ] {
        let res = app
            .builder(method, path, &who)
            .header("content-type", "application/json")
            .body("{")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_str(), what);
        assert_eq!(
            header(res.headers(), "content-type"),
            "application/json",
            "{what}"
        );
        assert_security_headers(res.headers(), what);
    }
}

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    app.builder(
        Method::OPTIONS,
        "/api/collections/posts/records",
        &Who::Guest,
    )
    .header("origin", origin)
    .header("access-control-request-method", "PATCH")
    .header(
        "access-control-request-headers",
        "authorization,content-type",
    )
    .send()
    .await
    .unwrap()
}

#[tokio::test]
async fn cors_allows_any_origin_by_default() {
    let app = TestApp::spawn().await;
    let res = preflight(&app, "http://app.example").await;
    assert_eq!(res.status().as_u16(), 204);
    let headers = res.headers();
    assert_eq!(header(headers, "access-control-allow-origin"), "*");
    assert_eq!(
        header(headers, "access-control-allow-headers").to_ascii_lowercase(),
        "authorization,content-type",
        "requested headers are echoed: {headers:?}"
    );
    let methods = header(headers, "access-control-allow-methods").to_ascii_uppercase();
    for method in ["GET", "HEAD", "PUT", "PATCH", "POST", "DELETE"] {
        assert!(methods.contains(method), "{method} in {methods}");
    }
    assert!(res.bytes().await.unwrap().is_empty());
    let res = app
        .builder(Method::GET, "/api/health", &Who::Guest)
        .header("origin", "http://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(header(res.headers(), "access-control-allow-origin"), "*");
    assert_security_headers(res.headers(), "CORS GET");
}

#[tokio::test]
async fn cors_origins_flag_restricts_origins() {
    let app = TestApp::spawn_with(&["--origins", "https://a.example,https://b.example"]).await;
    let res = preflight(&app, "https://b.example").await;
    assert_eq!(res.status().as_u16(), 204);
    assert_eq!(
        header(res.headers(), "access-control-allow-origin"),
        "https://b.example"
    );
    let res = preflight(&app, "https://evil.example").await;
    assert!(
        res.headers().get("access-control-allow-origin").is_none(),
        "a foreign origin is not allowed: {:?}",
        res.headers()
    );
    for (origin, allowed) in [("https://a.example", true), ("https://evil.example", false)] {
        let res = app
            .builder(Method::GET, "/api/health", &Who::Guest)
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200, "the request itself is served");
        let got = res.headers().get("access-control-allow-origin");
        if allowed {
            assert_eq!(got.and_then(|v| v.to_str().ok()), Some(origin));
        } else {
            assert!(got.is_none(), "{origin}: {got:?}");
        }
    }
}
