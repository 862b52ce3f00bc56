//! `GET /api/collections/{c}/records`: paging, sort, filter operators, skipTotal, fields,
//! and the filter errors.

use serde_json::{Value as Json, json};

use crate::support::scenario::{Scenario, get};
use crate::support::{TestApp, Who};

const GENERIC: &str = "Something went wrong while processing your request.";

/// `posts` with five records, readable by everyone; `secret` is hidden.
pub async fn seeded_posts() -> TestApp {
    let app = TestApp::spawn().await;
    app.create_collection(json!({
        "name": "posts",
        "listRule": "",
        "viewRule": "",
        "fields": [
            {"name": "title", "type": "text", "required": true, "max": 20},
            {"name": "views", "type": "number"},
            {"name": "active", "type": "bool"},
            {"name": "tags", "type": "select", "values": ["a", "b", "c", "d"], "maxSelect": 4},
            {"name": "status", "type": "select", "values": ["draft", "live"], "maxSelect": 1},
            {"name": "secret", "type": "text", "hidden": true}
        ]
    }))
    .await;
    for (title, views, active, tags, status) in [
        ("alpha", 5, true, json!(["a", "b"]), "draft"),
        ("beta", 10, false, json!(["b"]), "live"),
        ("gamma", 15, true, json!([]), ""),
        ("delta", 20, false, json!(["c", "d"]), "live"),
        ("epsilon", 0, true, json!(["a"]), "draft"),
    ] {
        app.create_record(
            "posts",
            json!({"title": title, "views": views, "active": active, "tags": tags,
                   "status": status, "secret": format!("s-{title}")}),
        )
        .await;
    }
    app
}

/// The list envelope with only titles.
fn titled(titles: &[&str], total: i64) -> Json {
    json!({
        "items": titles.iter().map(|t| json!({"title": t})).collect::<Vec<_>>(),
        "totalItems": total,
    })
}

/// A guest list of `posts` titles with a URL-encoded filter.
fn filter(name: &str, expr: &str, titles: &[&str]) -> Scenario {
    get(
        name,
        format!(
            "/api/collections/posts/records?fields=title&filter={}",
            encode(expr)
        ),
    )
    .subset(titled(titles, titles.len() as i64))
}

/// Percent-encodes a query value.
pub fn encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[tokio::test]
async fn list_pages_clamps_and_echoes() {
    let app = seeded_posts().await;
    let all = ["alpha", "beta", "gamma", "delta", "epsilon"];
    let list = "/api/collections/posts/records";
    app.check(vec![
        get(
            "default page in insertion order",
            format!("{list}?fields=title"),
        )
        .snapshot(json!({
            "page": 1, "perPage": 30, "totalItems": 5, "totalPages": 1,
            "items": all.iter().map(|t| json!({"title": t})).collect::<Vec<_>>(),
        })),
        get(
            "guest record shape hides hidden fields",
            format!("{list}?perPage=1"),
        )
        .snapshot(json!({
            "page": 1, "perPage": 1, "totalItems": 5, "totalPages": 5,
            "items": [{"collectionId": "pbc_1125843985", "collectionName": "posts", "id": "[id]",
                       "title": "alpha", "views": 5, "active": true, "tags": ["a", "b"],
                       "status": "draft"}],
        })),
        get(
            "superusers see hidden fields",
            format!("{list}?perPage=1&fields=title,secret"),
        )
        .who(Who::Superuser)
        .subset(json!({"items": [{"title": "alpha", "secret": "s-alpha"}]})),
        get(
            "second page",
            format!("{list}?perPage=2&page=2&fields=title"),
        )
        .snapshot(json!({
            "page": 2, "perPage": 2, "totalItems": 5, "totalPages": 3,
            "items": [{"title": "gamma"}, {"title": "delta"}],
        })),
        get(
            "last partial page",
            format!("{list}?perPage=2&page=3&fields=title"),
        )
        .subset(json!({"page": 3, "items": [{"title": "epsilon"}]})),
        get("beyond the last page", format!("{list}?perPage=2&page=9")).snapshot(json!({
            "page": 9, "perPage": 2, "totalItems": 5, "totalPages": 3, "items": [],
        })),
        get(
            "perPage over 1000 is clamped and echoed",
            format!("{list}?perPage=5000&fields=id"),
        )
        .subset(json!({"perPage": 1000, "totalItems": 5})),
        get(
            "perPage 1000 is kept",
            format!("{list}?perPage=1000&fields=id"),
        )
        .subset(json!({"perPage": 1000})),
        get(
            "page 0 and negative perPage fall back",
            format!("{list}?page=0&perPage=-5&fields=id"),
        )
        .subset(json!({"page": 1, "perPage": 30})),
        get(
            "perPage 0 falls back",
            format!("{list}?perPage=0&fields=id"),
        )
        .subset(json!({"perPage": 30})),
        get("non-integer page", format!("{list}?page=abc")).error(400, GENERIC),
        get("non-integer perPage", format!("{list}?perPage=1.5")).error(400, GENERIC),
        get(
            "skipTotal=1",
            format!("{list}?skipTotal=1&perPage=2&fields=title"),
        )
        .snapshot(json!({
            "page": 1, "perPage": 2, "totalItems": -1, "totalPages": -1,
            "items": [{"title": "alpha"}, {"title": "beta"}],
        })),
        get("skipTotal=true", format!("{list}?skipTotal=true&fields=id"))
            .subset(json!({"totalItems": -1, "totalPages": -1})),
        get(
            "skipTotal=0 counts",
            format!("{list}?skipTotal=0&fields=id"),
        )
        .subset(json!({"totalItems": 5, "totalPages": 1})),
        get(
            "fields picks keys of items only",
            format!("{list}?perPage=1&fields=title,views"),
        )
        .snapshot(
            json!({"page": 1, "perPage": 1, "totalItems": 5, "totalPages": 5,
                             "items": [{"title": "alpha", "views": 5}]}),
        ),
        get(
            "fields=totalItems keeps the envelope",
            format!("{list}?perPage=2&fields=totalItems"),
        )
        .snapshot(
            json!({"page": 1, "perPage": 2, "totalItems": 5, "totalPages": 3,
                             "items": [{}, {}]}),
        ),
        get(
            "fields=* keeps everything",
            format!("{list}?perPage=1&fields=*"),
        )
        .subset(
            json!({"items": [{"title": "alpha", "tags": ["a", "b"], "collectionName": "posts"}]}),
        ),
        get("unknown collection", "/api/collections/nosuch/records")
            .error(404, "Missing collection context."),
        get(
            "collection by id",
            "/api/collections/pbc_1125843985/records?fields=id",
        )
        .subset(json!({"totalItems": 5})),
    ])
    .await;
}

#[tokio::test]
async fn list_sorts() {
    let app = seeded_posts().await;
    let list = "/api/collections/posts/records?fields=title&sort=";
    app.check(vec![
        get("sort -views", format!("{list}-views"))
            .subset(titled(&["delta", "gamma", "beta", "alpha", "epsilon"], 5)),
        get("sort title", format!("{list}title"))
            .subset(titled(&["alpha", "beta", "delta", "epsilon", "gamma"], 5)),
        get("sort +title", format!("{list}%2Btitle"))
            .subset(titled(&["alpha", "beta", "delta", "epsilon", "gamma"], 5)),
        get("sort on two keys", format!("{list}-active,title"))
            .subset(titled(&["alpha", "epsilon", "gamma", "beta", "delta"], 5)),
        get("sort -@rowid", format!("{list}-@rowid"))
            .subset(titled(&["epsilon", "delta", "gamma", "beta", "alpha"], 5)),
        get("sort @random", format!("{list}@random")).subset(json!({"totalItems": 5})),
        get("sort on an unknown field", format!("{list}nosuch")).error_any_message(400),
        get("sort on a hidden field as guest", format!("{list}secret")).error_any_message(400),
        get(
            "sort on a hidden field as superuser",
            format!("{list}-secret"),
        )
        .who(Who::Superuser)
        .subset(titled(&["gamma", "epsilon", "delta", "beta", "alpha"], 5)),
        get(
            "sort with @request as guest",
            format!("{list}@request.method"),
        )
        .error(403, "Only superusers can filter by @request."),
    ])
    .await;
}

#[tokio::test]
async fn list_filters_with_every_operator() {
    let app = seeded_posts().await;
    app.check(vec![
        filter("=", "title = 'beta'", &["beta"]),
        filter(
            "!=",
            "title != 'beta'",
            &["alpha", "gamma", "delta", "epsilon"],
        ),
        filter(">", "views > 10", &["gamma", "delta"]),
        filter(">=", "views >= 10", &["beta", "gamma", "delta"]),
        filter("<", "views < 10", &["alpha", "epsilon"]),
        filter("<=", "views <= 5", &["alpha", "epsilon"]),
        filter("~ contains", "title ~ 'ta'", &["beta", "delta"]),
        filter("~ is case-insensitive", "title ~ 'TA'", &["beta", "delta"]),
        filter("~ with an explicit %", "title ~ 'al%'", &["alpha"]),
        filter("!~", "title !~ 'a'", &["epsilon"]),
        filter("?= on :each", "tags:each ?= 'a'", &["alpha", "epsilon"]),
        // An empty list joins as one empty value, which is != 'a'.
        filter(
            "?!= on :each",
            "tags:each ?!= 'a'",
            &["alpha", "beta", "gamma", "delta"],
        ),
        filter("?> on :each", "tags:each ?> 'b'", &["delta"]),
        filter(
            "?>= on :each",
            "tags:each ?>= 'b'",
            &["alpha", "beta", "delta"],
        ),
        filter("?< on :each", "tags:each ?< 'b'", &["alpha", "epsilon"]),
        filter("?<= on :each", "tags:each ?<= 'a'", &["alpha", "epsilon"]),
        filter("?~ on the stored list", "tags ?~ 'c'", &["delta"]),
        filter(
            "?!~ on :each",
            "tags:each ?!~ 'a'",
            &["alpha", "beta", "delta"],
        ),
        filter("bool", "active = true", &["alpha", "gamma", "epsilon"]),
        filter("empty equals null", "status = null", &["gamma"]),
        filter("null equals empty", "status = ''", &["gamma"]),
        filter(
            "not empty",
            "status != ''",
            &["alpha", "beta", "delta", "epsilon"],
        ),
        filter("&&", "views > 1 && active = false", &["beta", "delta"]),
        filter(
            "|| binds looser than &&",
            "title = 'alpha' || title = 'beta' && views > 100",
            &["alpha"],
        ),
        filter(
            "parentheses",
            "(title = 'alpha' || title = 'beta') && views > 6",
            &["beta"],
        ),
        filter(
            "number against a numeric string",
            "views > '12'",
            &["gamma", "delta"],
        ),
        filter("text against a number matches nothing", "title = 1", &[]),
        filter("literal on the left", "10 < views", &["gamma", "delta"]),
        filter("double-quoted text", "title = \"gamma\"", &["gamma"]),
        filter(":length", "tags:length = 2", &["alpha", "delta"]),
        filter(
            "comments are ignored",
            "views = 0 // the zero one",
            &["epsilon"],
        ),
    ])
    .await;
}

#[tokio::test]
async fn list_filter_errors() {
    let app = seeded_posts().await;
    let list = |expr: &str| {
        format!(
            "/api/collections/posts/records?fields=title&filter={}",
            encode(expr)
        )
    };
    app.check(vec![
        get("incomplete expression", list("title =")).error_any_message(400),
        get("bare identifier", list("active")).error_any_message(400),
        get("unknown field", list("nosuch = 1")).error_any_message(400),
        get("unbalanced parenthesis", list("(views > 1")).error_any_message(400),
        get("hidden field as guest", list("secret = 's-alpha'")).error_any_message(400),
        get(
            "filter over 3500 bytes",
            list(&format!("title = '{}'", "x".repeat(3500))),
        )
        .error_any_message(400),
        get(
            "filter of 3500 bytes",
            list(&format!("title = '{}'", "x".repeat(3500 - 10))),
        )
        .subset(titled(&[], 0)),
        get("201 comparisons", list(&["views > 1"; 201].join(" && "))).error_any_message(400),
        get("200 comparisons", list(&["views > 1"; 200].join(" && ")))
            .subset(json!({"totalItems": 4})),
        get(
            "nine sort terms",
            format!(
                "/api/collections/posts/records?sort={}",
                ["title"; 9].join(",")
            ),
        )
        .error_any_message(400),
        get(
            "eight sort terms",
            format!(
                "/api/collections/posts/records?fields=title&sort={}",
                ["title"; 8].join(",")
            ),
        )
        .subset(json!({"totalItems": 5})),
        get(
            "skipTotal that is not a bool",
            "/api/collections/posts/records?skipTotal=maybe",
        )
        .error_any_message(400),
        get("hidden field as superuser", list("secret = 's-alpha'"))
            .who(Who::Superuser)
            .subset(titled(&["alpha"], 1)),
        get("@request as guest", list("@request.auth.id = ''"))
            .error(403, "Only superusers can filter by @request."),
        get(
            "@collection as guest",
            list("@collection.posts.title ?= 'alpha'"),
        )
        .error(403, "Only superusers can filter by @collection."),
        get(
            "@request as superuser",
            list("@request.method = 'GET' && views > 12"),
        )
        .who(Who::Superuser)
        .subset(titled(&["gamma", "delta"], 2)),
    ])
    .await;
}

#[tokio::test]
async fn fields_excerpt_strips_html() {
    let app = TestApp::spawn().await;
    app.create_collection(json!({"name": "pages", "listRule": "", "viewRule": "",
                                 "fields": [{"name": "body", "type": "editor"}]}))
        .await;
    let page = app
        .create_record(
            "pages",
            json!({"body": "<p>Hello <b>big</b> world of tests</p>"}),
        )
        .await;
    let id = page["id"].as_str().unwrap();
    app.check(vec![
        get(
            "excerpt with ellipsis",
            "/api/collections/pages/records?fields=body:excerpt(10,true)",
        )
        .subset(json!({"items": [{"body": "Hello big..."}]})),
        get(
            "excerpt without ellipsis",
            format!("/api/collections/pages/records/{id}?fields=id,body:excerpt(10)"),
        )
        .snapshot(json!({"id": id, "body": "Hello big"})),
    ])
    .await;
}

/// Guests cannot tell a hidden field from a missing one; found by this suite, fixed in
/// 1be5986.
#[tokio::test]
async fn a_hidden_field_in_a_guest_filter_is_not_disclosed() {
    let app = TestApp::spawn().await;
    app.create_collection(json!({"name": "posts", "listRule": "", "fields": [
        {"name": "title", "type": "text"},
        {"name": "secret", "type": "text", "hidden": true}
    ]}))
    .await;
    let (_, hidden) = app
        .request(
            reqwest::Method::GET,
            "/api/collections/posts/records?filter=secret%3D%27x%27",
            &Who::Guest,
            None,
        )
        .await;
    let (_, unknown) = app
        .request(
            reqwest::Method::GET,
            "/api/collections/posts/records?filter=secrets%3D%27x%27",
            &Who::Guest,
            None,
        )
        .await;
    let hidden_message = hidden["message"].as_str().unwrap_or_default();
    let unknown_message = unknown["message"].as_str().unwrap_or_default();
    assert_eq!(hidden["status"], 400, "{hidden}");
    assert!(
        !hidden_message.contains("hidden"),
        "the answer reveals a hidden field: {hidden}"
    );
    assert_eq!(
        hidden_message.replace("secret", "X"),
        unknown_message.replace("secrets", "X"),
        "hidden and unknown fields answer alike"
    );
}
