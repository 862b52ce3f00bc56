//! Request bodies: malformed JSON, content types, urlencoded and multipart forms
//! (`@jsonPayload`), and the body size limit (413).

use reqwest::Method;
use serde_json::{Value as Json, json};

use crate::support::scenario::{get, post};
use crate::support::{TestApp, Who, raw_http, raw_json, raw_status};

const GENERIC: &str = "Something went wrong while processing your request.";

async fn app_with_posts(extra: &[&str]) -> TestApp {
    let app = TestApp::spawn_with(extra).await;
    app.create_collection(json!({
        "name": "posts",
        "listRule": "", "viewRule": "", "createRule": "", "updateRule": "",
        "fields": [
            {"name": "title", "type": "text", "required": true},
            {"name": "views", "type": "number"},
            {"name": "active", "type": "bool"},
            {"name": "tags", "type": "select", "values": ["a", "b", "c"], "maxSelect": 3},
            {"name": "meta", "type": "json"}
        ]
    }))
    .await;
    app
}

fn multipart(boundary: &str, parts: &[(&str, &str)]) -> Vec<u8> {
    let mut body = String::new();
    for (name, value) in parts {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    body.into_bytes()
}

fn title_required() -> Json {
    json!({"status": 400, "message": "Failed to create record.", "data": {
        "title": {"code": "validation_required", "message": "Cannot be blank."}}})
}

#[tokio::test]
async fn bodies_json_forms_and_content_types() {
    let app = app_with_posts(&[]).await;
    let records = "/api/collections/posts/records";
    let boundary = "basaltboundary42";
    let form_type = format!("multipart/form-data; boundary={boundary}");
    app.check(vec![
        post("malformed JSON", records)
            .raw("application/json", "{\"title\": ")
            .error(400, GENERIC),
        post("a JSON array", records)
            .raw("application/json", "[{\"title\": \"x\"}]")
            .error(400, GENERIC),
        post("a JSON string", records)
            .raw("application/json", "\"title\"")
            .error(400, GENERIC),
        post("JSON null is no data", records)
            .raw("application/json", "null")
            .status(400)
            .snapshot(title_required()),
        post("an empty body is no data", records)
            .raw("application/json", "")
            .status(400)
            .snapshot(title_required()),
        post("text/plain with a body", records)
            .raw("text/plain", "title=x")
            .error(400, "Unsupported Content-Type."),
        post("octet-stream with a body", records)
            .raw("application/octet-stream", "{\"title\":\"x\"}")
            .error(400, "Unsupported Content-Type."),
        post("text/plain without a body is no data", records)
            .raw("text/plain", "")
            .status(400)
            .snapshot(title_required()),
        post("JSON with a charset", records)
            .raw(
                "application/json; charset=utf-8",
                "{\"title\": \"charset\"}",
            )
            .subset(json!({"title": "charset"})),
        post("urlencoded values are type-inferred", records)
            .raw(
                "application/x-www-form-urlencoded",
                "title=form&views=12&active=true&tags=a&tags=c",
            )
            .subset(json!({"title": "form", "views": 12, "active": true, "tags": ["a", "c"]})),
        post("urlencoded non-canonical numbers stay text", records)
            .raw("application/x-www-form-urlencoded", "title=007&views=1.0")
            .subset(json!({"title": "007", "views": 1})),
        post("multipart with @jsonPayload", records)
            .raw(
                &form_type,
                multipart(
                    boundary,
                    &[
                        ("title", "multi"),
                        ("views", "3"),
                        ("@jsonPayload", "{\"tags\": [\"b\"], \"meta\": {\"k\": 1}}"),
                        ("@jsonPayload", "{\"active\": true}"),
                    ],
                ),
            )
            .subset(
                json!({"title": "multi", "views": 3, "tags": ["b"], "meta": {"k": 1},
                           "active": true}),
            ),
        post("multipart with a broken @jsonPayload", records)
            .raw(
                &form_type,
                multipart(boundary, &[("@jsonPayload", "{nope")]),
            )
            .status(400),
        get(
            "only the valid bodies were stored",
            format!("{records}?fields=title"),
        )
        .subset(json!({"totalItems": 4, "items": [
                {"title": "charset"}, {"title": "form"}, {"title": "007"}, {"title": "multi"}]})),
    ])
    .await;
}

/// A JSON create body of exactly `size` bytes.
fn body_of(size: usize) -> String {
    let empty = json!({"title": "limit", "pad": ""}).to_string();
    assert!(size >= empty.len());
    json!({"title": "limit", "pad": "x".repeat(size - empty.len())}).to_string()
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    // Only text fields: PocketBase raises a record endpoint's limit by the maxSize of its
    // json/editor/file fields (see record_bodies_may_exceed_the_limit_by_the_fields_max_size),
    // so those would blur the boundary.
    let app = TestApp::spawn_with(&["--max-body", "1024"]).await;
    app.create_collection(json!({"name": "posts", "listRule": "", "createRule": "",
                                 "fields": [{"name": "title", "type": "text"}]}))
        .await;
    let records = "/api/collections/posts/records";
    let too_large = json!({"status": 413, "message": "Request entity too large.", "data": {}});
    assert_eq!(body_of(1024).len(), 1024);
    // Sent in one write each: reqwest's client may report a reset instead of the early 413
    // when it is still writing the body.
    for (name, path, who, body, expected) in [
        ("exactly the limit", records, Who::Guest, body_of(1024), 200),
        ("one byte over", records, Who::Guest, body_of(1025), 413),
        ("far over", records, Who::Guest, body_of(100_000), 413),
        (
            "over the limit on a superuser endpoint",
            "/api/collections",
            Who::Superuser,
            body_of(2000),
            413,
        ),
        (
            "over the limit on auth",
            "/api/collections/users/auth-with-password",
            Who::Guest,
            body_of(1025),
            413,
        ),
    ] {
        let (status, json) =
            app.raw_request("POST", path, &who, "application/json", body.as_bytes());
        assert_eq!(status, expected, "{name}: {json}");
        if expected == 413 {
            assert_eq!(json, too_large, "{name}");
        } else {
            assert_eq!(json["title"], "limit", "{name}: {json}");
        }
    }
    // A chunked body declares no length; it is still cut off at the limit.
    let chunk = "x".repeat(600);
    let body = format!("{{\"title\":\"chunked\",\"pad\":\"{chunk}{chunk}\"}}");
    let half = body.len() / 2;
    let request = format!(
        "POST {records} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         {:x}\r\n{}\r\n{:x}\r\n{}\r\n0\r\n\r\n",
        half,
        &body[..half],
        body.len() - half,
        &body[half..]
    );
    let response = raw_http(app.addr, request.as_bytes());
    assert_eq!(raw_status(&response), 413, "{response}");
    assert_eq!(raw_json(&response), too_large);
    let list = app
        .expect(
            200,
            Method::GET,
            &format!("{records}?fields=title"),
            &Who::Guest,
            None,
        )
        .await;
    assert_eq!(
        list["items"],
        json!([{"title": "limit"}]),
        "only the body at the limit was stored"
    );
}

/// Record create/update raise the body limit by the maxSize of the collection's
/// json/editor/file fields, like PocketBase's body-limit middleware; found by this suite,
/// fixed in 1be5986.
#[tokio::test]
async fn record_bodies_may_exceed_the_limit_by_the_fields_max_size() {
    let app = TestApp::spawn_with(&["--max-body", "1024"]).await;
    app.create_collection(json!({"name": "docs", "createRule": "", "fields": [
        {"name": "meta", "type": "json", "maxSize": 4096}
    ]}))
    .await;
    let body = json!({"meta": {"pad": "x".repeat(1980)}}).to_string();
    assert!(body.len() > 1024 && body.len() < 4096);
    let (status, json) = app.raw_request(
        "POST",
        "/api/collections/docs/records",
        &Who::Guest,
        "application/json",
        body.as_bytes(),
    );
    assert_eq!(status, 200, "a 2000-byte record body: {json}");
    assert_eq!(json["meta"]["pad"].as_str().map(str::len), Some(1980));
    let other = format!("{{\"name\":\"big\",\"pad\":\"{}\"}}", "x".repeat(2000));
    let (status, _) = app.raw_request(
        "POST",
        "/api/collections",
        &Who::Superuser,
        "application/json",
        other.as_bytes(),
    );
    assert_eq!(status, 413, "other endpoints keep the plain limit");
}
