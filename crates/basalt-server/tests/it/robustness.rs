//! Hostile and odd client input: every answer is a 4xx in PocketBase's error shape, never
//! a 5xx, and the server keeps serving afterwards.

use reqwest::Method;
use serde_json::{Value as Json, json};

use crate::records_list::{encode, seeded_posts};
use crate::support::{Body, Who};

fn filter_path(expr: &str) -> String {
    format!("/api/collections/posts/records?filter={}", encode(expr))
}

#[tokio::test]
async fn hostile_input_never_causes_a_server_error() {
    let app = seeded_posts().await;
    let long_filter = format!("title = '{}'", "x".repeat(3500));
    let many_terms = ["views > 1"; 201].join(" && ");
    let deep = format!("{}views > 1{}", "(".repeat(200), ")".repeat(200));
    let nine_sorts = ["title"; 9].join(",");
    let json_body = |v: Json| Body::Json(v);
    let raw = |ct: &str, b: &[u8]| Body::Raw {
        content_type: ct.to_string(),
        bytes: b.to_vec(),
    };
    let cases: Vec<(&str, Method, String, Who, Body)> = vec![
        (
            "filter over 3500 bytes",
            Method::GET,
            filter_path(&long_filter),
            Who::Guest,
            Body::None,
        ),
        (
            "201 comparisons",
            Method::GET,
            filter_path(&many_terms),
            Who::Guest,
            Body::None,
        ),
        (
            "200 nested parentheses",
            Method::GET,
            filter_path(&deep),
            Who::Guest,
            Body::None,
        ),
        (
            "nine sort terms",
            Method::GET,
            format!("/api/collections/posts/records?sort={nine_sorts}"),
            Who::Guest,
            Body::None,
        ),
        (
            "sort term over 255 bytes",
            Method::GET,
            format!("/api/collections/posts/records?sort={}", "a".repeat(300)),
            Who::Guest,
            Body::None,
        ),
        (
            "quote injection in a filter",
            Method::GET,
            filter_path("title = '' OR 1=1 --'"),
            Who::Guest,
            Body::None,
        ),
        (
            "unterminated string",
            Method::GET,
            filter_path("title = 'abc"),
            Who::Guest,
            Body::None,
        ),
        (
            "unknown function",
            Method::GET,
            filter_path("nosuch(title) = 1"),
            Who::Guest,
            Body::None,
        ),
        (
            "deeply nested calls",
            Method::GET,
            filter_path("strftime('%Y', strftime('%Y', strftime('%Y', views))) = 1"),
            Who::Guest,
            Body::None,
        ),
        (
            "modifier on a plain field",
            Method::GET,
            filter_path("title:each = 'x'"),
            Who::Guest,
            Body::None,
        ),
        (
            "huge page number",
            Method::GET,
            "/api/collections/posts/records?page=99999999999999999999".into(),
            Who::Guest,
            Body::None,
        ),
        (
            "skipTotal that is not a bool",
            Method::GET,
            "/api/collections/posts/records?skipTotal=maybe".into(),
            Who::Guest,
            Body::None,
        ),
        (
            "bad fields modifier",
            Method::GET,
            "/api/collections/posts/records?fields=title:excerpt(abc)".into(),
            Who::Guest,
            Body::None,
        ),
        (
            "SQL in a collection name",
            Method::GET,
            "/api/collections/posts%22%3B%20DROP%20TABLE%20posts%3B--/records".into(),
            Who::Superuser,
            Body::None,
        ),
        (
            "SQL in a record id",
            Method::GET,
            "/api/collections/posts/records/x'%20OR%20'1'%3D'1".into(),
            Who::Guest,
            Body::None,
        ),
        (
            "percent-encoded slash in an id",
            Method::GET,
            "/api/collections/posts/records/..%2F..%2Fsettings".into(),
            Who::Guest,
            Body::None,
        ),
        (
            "NUL in a collection name",
            Method::GET,
            "/api/collections/%00/records".into(),
            Who::Guest,
            Body::None,
        ),
        (
            "very long id",
            Method::GET,
            format!("/api/collections/posts/records/{}", "a".repeat(5000)),
            Who::Guest,
            Body::None,
        ),
        (
            "record body that is a number",
            Method::POST,
            "/api/collections/posts/records".into(),
            Who::Superuser,
            raw("application/json", b"42"),
        ),
        (
            "invalid UTF-8 JSON",
            Method::POST,
            "/api/collections/posts/records".into(),
            Who::Superuser,
            raw("application/json", b"{\"title\": \"\xff\xfe\"}"),
        ),
        (
            "invalid UTF-8 form",
            Method::POST,
            "/api/collections/posts/records".into(),
            Who::Superuser,
            raw("application/x-www-form-urlencoded", b"title=%ff%fe"),
        ),
        (
            "multipart without a boundary",
            Method::POST,
            "/api/collections/posts/records".into(),
            Who::Superuser,
            raw("multipart/form-data", b"--x\r\n"),
        ),
        (
            "nested arrays for a select",
            Method::POST,
            "/api/collections/posts/records".into(),
            Who::Superuser,
            json_body(json!({"title": "x", "tags": [["a"]]})),
        ),
        (
            "object for a number",
            Method::POST,
            "/api/collections/posts/records".into(),
            Who::Superuser,
            json_body(json!({"title": "x", "views": {"a": 1}})),
        ),
        (
            "huge number",
            Method::POST,
            "/api/collections/posts/records".into(),
            Who::Superuser,
            raw("application/json", b"{\"title\": \"x\", \"views\": 1e999}"),
        ),
        (
            "id with forbidden characters",
            Method::POST,
            "/api/collections/posts/records".into(),
            Who::Superuser,
            json_body(json!({"id": "../../etc/passw", "title": "x"})),
        ),
        (
            "collection with a SQL name",
            Method::POST,
            "/api/collections".into(),
            Who::Superuser,
            json_body(json!({"name": "x\"; DROP TABLE posts; --"})),
        ),
        (
            "collection fields not a list",
            Method::POST,
            "/api/collections".into(),
            Who::Superuser,
            json_body(json!({"name": "odd", "fields": "title"})),
        ),
        (
            "field with a SQL name",
            Method::POST,
            "/api/collections".into(),
            Who::Superuser,
            json_body(
                json!({"name": "odd", "fields": [{"name": "a\" TEXT); DROP TABLE posts; --", "type": "text"}]}),
            ),
        ),
        (
            "index on another table",
            Method::POST,
            "/api/collections".into(),
            Who::Superuser,
            json_body(
                json!({"name": "odd2", "fields": [{"name": "a", "type": "text"}], "indexes": ["CREATE INDEX idx_x ON posts (title)"]}),
            ),
        ),
        (
            "index with an injected statement",
            Method::POST,
            "/api/collections".into(),
            Who::Superuser,
            json_body(
                json!({"name": "odd3", "fields": [{"name": "a", "type": "text"}], "indexes": ["CREATE INDEX idx_y ON odd3 (a); DROP TABLE posts"]}),
            ),
        ),
        (
            "settings with wrong types",
            Method::PATCH,
            "/api/settings".into(),
            Who::Superuser,
            json_body(json!({"meta": {"appName": 5}, "batch": "yes"})),
        ),
        (
            "auth with non-string credentials",
            Method::POST,
            "/api/collections/users/auth-with-password".into(),
            Who::Guest,
            json_body(json!({"identity": ["a"], "password": {"x": 1}})),
        ),
        (
            "a header that is not UTF-8",
            Method::GET,
            "/api/health".into(),
            Who::Token("\u{00ff}\u{00fe}".into()),
            Body::None,
        ),
    ];
    let mut failures = Vec::new();
    for (name, method, path, who, body) in &cases {
        let (status, json) = app.send(method.clone(), path, who, body).await;
        let well_formed = status < 300
            || (json["status"] == json!(status)
                && json["message"].is_string()
                && json["data"].is_object());
        if status >= 500 || !well_formed {
            failures.push(format!("`{name}` ({method} {path}): {status} {json}"));
        }
    }
    assert!(
        failures.is_empty(),
        "server errors or malformed answers:\n{}",
        failures.join("\n")
    );
    let (status, list) = app
        .request(
            Method::GET,
            "/api/collections/posts/records?fields=title",
            &Who::Guest,
            None,
        )
        .await;
    assert_eq!(status, 200);
    let titles: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|item| item["title"].as_str())
        .collect();
    assert_eq!(
        titles[..5],
        ["alpha", "beta", "gamma", "delta", "epsilon"],
        "the posts survived: {list}"
    );
}

#[tokio::test]
async fn odd_superuser_filters_are_4xx_or_2xx_never_5xx() {
    let app = seeded_posts().await;
    let exprs = [
        "@collection.nosuch.title = 'x'",
        "@collection.posts.nosuch = 'x'",
        "@collection.posts:alias.title ?= title",
        "@collection.posts.title ?= title && @collection.posts.views > 1",
        "@request.auth.id = ''",
        "@request.auth.nosuch.deeper = 1",
        "@request.body.title = 'x'",
        "@request.query.a.b.c = 1",
        "@request.headers.x_anything != ''",
        "title.nosuch = 1",
        "tags.nosuch = 1",
        "tags:each:lower = 'a'",
        "title:lower = 'alpha'",
        "tags:length > 'x'",
        "views:isset = true",
        "geoDistance(1, 2) < 5",
        "geoDistance(views, views, views, views) >= 0",
        "strftime(views, views) = 1",
        "strftime('%Y', created) = '2024'",
        "@now > '2020-01-01' && @yesterday < @tomorrow && @todayStart <= @todayEnd",
        "@second >= 0 && @weekday < 7 && @year > 2000",
        "null = null",
        "true = false || 1 = 1",
        "'a' ~ 'a'",
        "title ~ '%'",
        "title ~ '_'",
        "title ~ '\\\\'",
        "title = '\u{0000}'",
        "title = 'emoji 🦀'",
        "views > 1e308",
        "views = -0",
        "id = id",
        "collectionId = 'x'",
        "expand = 1",
    ];
    let mut failures = Vec::new();
    for expr in exprs {
        for who in [Who::Superuser, Who::Guest] {
            let path = format!("/api/collections/posts/records?filter={}", encode(expr));
            let (status, json) = app.request(Method::GET, &path, &who, None).await;
            let well_formed =
                status == 200 || (json["status"] == json!(status) && json["data"].is_object());
            if status >= 500 || !well_formed {
                failures.push(format!("{expr:?} as {who:?}: {status} {json}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
