//! Rate limits from the settings: PocketBase's defaults and rule forms, path variants
//! and untrusted proxy headers that must not open a new bucket, audiences, superusers,
//! excluded and trusted-proxy addresses.

use reqwest::Method;
use serde_json::{Value as Json, json};

use crate::support::{TestApp, Who, raw_http, raw_json, raw_status};

/// A login attempt over a raw connection, so the request target is sent as written.
fn login_raw(app: &TestApp, target: &str, email: &str, extra_headers: &str) -> (u16, Json) {
    let body = json!({"identity": email, "password": "wrong-password"}).to_string();
    let request = format!(
        "POST {target} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n{extra_headers}\r\n{body}",
        body.len()
    );
    let response = raw_http(app.addr, request.as_bytes());
    (raw_status(&response), raw_json(&response))
}

async fn settings(app: &TestApp, patch: Json) {
    app.expect(
        200,
        Method::PATCH,
        "/api/settings",
        &Who::Superuser,
        Some(patch),
    )
    .await;
}

const LOGIN: &str = "/api/collections/users/auth-with-password";

#[tokio::test]
async fn logins_are_limited_whatever_the_spelling() {
    let app = TestApp::spawn().await;
    // Off by default.
    for _ in 0..4 {
        assert_eq!(login_raw(&app, LOGIN, "a@example.com", "").0, 400);
    }
    settings(&app, json!({"rateLimits": {"enabled": true}})).await;
    // PocketBase's default `*:auth` rule: 2 per 3 s.
    assert_eq!(login_raw(&app, LOGIN, "a@example.com", "").0, 400);
    assert_eq!(login_raw(&app, LOGIN, "b@example.com", "").0, 400);
    let (status, body) = login_raw(&app, LOGIN, "c@example.com", "");
    assert_eq!(status, 429);
    assert_eq!(
        body,
        json!({"status": 429, "message": "Too Many Requests.", "data": {}})
    );
    for target in [
        "/API/collections/users/auth-with-password",
        "//api/collections/users/auth-with-password",
        "/api/collections/users/auth-with-password/",
        "/api/collections/users%2Fauth-with-password",
        "/api/collections/users/auth-with-password?x=1",
        "/api/collections/USERS/auth-with-password",
    ] {
        assert_eq!(
            login_raw(&app, target, "d@example.com", "").0,
            429,
            "{target}"
        );
    }
    // Forged proxy headers from an untrusted peer change nothing.
    for header in [
        "X-Forwarded-For: 10.1.2.3\r\n",
        "X-Real-IP: 10.9.9.9\r\n",
        "Forwarded: for=10.4.4.4\r\n",
    ] {
        assert_eq!(
            login_raw(&app, LOGIN, "e@example.com", header).0,
            429,
            "{header}"
        );
    }
    // The same collection by id shares the bucket too.
    let users = app
        .expect(
            200,
            Method::GET,
            "/api/collections/users",
            &Who::Superuser,
            None,
        )
        .await;
    let by_id = format!(
        "/api/collections/{}/auth-with-password",
        users["id"].as_str().unwrap()
    );
    assert_eq!(login_raw(&app, &by_id, "f@example.com", "").0, 429);
    // Other endpoints are not affected by the auth rule.
    let (status, _) = app
        .request(Method::GET, "/api/health", &Who::Guest, None)
        .await;
    assert_eq!(status, 200);
    // The window passes.
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    assert_eq!(login_raw(&app, LOGIN, "a@example.com", "").0, 400);
}

#[tokio::test]
async fn rules_audiences_superusers_and_trusted_proxies() {
    let app = TestApp::spawn().await;
    app.add_user("member", "password123").await;
    app.create_collection(json!({"name": "notes", "listRule": "", "createRule": "",
        "fields": [{"name": "t", "type": "text"}]}))
        .await;
    settings(
        &app,
        json!({"rateLimits": {"enabled": true, "rules": [
            {"label": "notes:list", "audience": "@guest", "duration": 60, "maxRequests": 2},
            {"label": "GET /api/health", "audience": "", "duration": 60, "maxRequests": 3},
            {"label": "/api/", "audience": "", "duration": 60, "maxRequests": 1000}
        ]}}),
    )
    .await;
    let list = "/api/collections/notes/records";
    // Guests: 2, then 429; an authenticated user is not in that audience.
    for expected in [200, 200, 429] {
        let (status, _) = app.request(Method::GET, list, &Who::Guest, None).await;
        assert_eq!(status, expected);
    }
    for _ in 0..4 {
        let (status, _) = app
            .request(Method::GET, list, &Who::User("member"), None)
            .await;
        assert_eq!(status, 200);
    }
    // `METHOD /path` rules: N pass, N+1 does not; superusers are never limited.
    for expected in [200, 200, 200, 429] {
        let (status, _) = app
            .request(Method::GET, "/api/health", &Who::Guest, None)
            .await;
        assert_eq!(status, expected);
    }
    for _ in 0..5 {
        let (status, _) = app
            .request(Method::GET, "/api/health", &Who::Superuser, None)
            .await;
        assert_eq!(status, 200);
    }
    // A trusted proxy's header decides the client; untrusted, it did not (above).
    settings(
        &app,
        json!({"trustedProxy": {"headers": ["X-Forwarded-For"], "ips": ["127.0.0.1"]}}),
    )
    .await;
    for client in ["10.0.0.1", "10.0.0.2"] {
        for expected in [200, 200, 429] {
            let (status, _) = app
                .send_with_headers(
                    Method::GET,
                    list,
                    &Who::Guest,
                    &crate::support::scenario::Body::None,
                    &[("x-forwarded-for".into(), client.into())],
                )
                .await;
            assert_eq!(status, expected, "{client}");
        }
    }
    // Excluded addresses are not limited.
    settings(
        &app,
        json!({"trustedProxy": {"headers": [], "ips": []}, "rateLimits": {"excludedIPs": ["127.0.0.1"]}}),
    )
    .await;
    for _ in 0..5 {
        let (status, _) = app.request(Method::GET, list, &Who::Guest, None).await;
        assert_eq!(status, 200);
    }
}
