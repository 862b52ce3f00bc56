//! Realtime over real SSE connections: the stream's framing and headers, the subscribe
//! call's validation and limits (N and N+1), auth binding, rights changes mid-stream,
//! no events for failed or rolled-back writes, slow clients, connection caps and
//! timeouts. `Sse` is a small SSE reader over reqwest's byte stream; the leak matrix and
//! the 50-subscriber test are in `realtime_matrix`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use basalt_core::{App, AppConfig, RealtimeConfig};
use basalt_http::HttpConfig;
use reqwest::Method;
use serde_json::{Value as Json, json};

use crate::support::{TestApp, Who};

/// How long a stream must stay silent before we conclude no more events come.
pub const QUIET: Duration = Duration::from_millis(400);

/// One SSE message.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    /// The `id:` line (always the client id).
    pub id: String,
    /// The `event:` name: the subscription string as sent.
    pub name: String,
    /// The parsed `data:` line.
    pub data: Json,
    /// The frame as received, without the blank line.
    pub raw: String,
}

/// An open `GET /api/realtime` stream.
pub struct Sse {
    response: reqwest::Response,
    buffer: Vec<u8>,
    /// The client id from `PB_CONNECT`.
    pub client_id: String,
    /// The `PB_CONNECT` frame.
    pub hello: SseEvent,
}

impl Sse {
    /// Opens a stream and reads `PB_CONNECT`; panics unless 200.
    pub async fn connect(base: &str) -> Sse {
        match Sse::try_connect(base).await {
            Ok(sse) => sse,
            Err((status, body)) => panic!("GET /api/realtime: {status} {body}"),
        }
    }

    /// Opens a stream; the status and JSON body when it is refused.
    pub async fn try_connect(base: &str) -> Result<Sse, (u16, Json)> {
        Sse::try_connect_with(base, &[]).await
    }

    /// [`Sse::try_connect`] with extra request headers.
    pub async fn try_connect_with(
        base: &str,
        headers: &[(&str, &str)],
    ) -> Result<Sse, (u16, Json)> {
        let mut request = reqwest::Client::new().get(format!("{base}/api/realtime"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("GET /api/realtime");
        let status = response.status().as_u16();
        if status != 200 {
            let body = response.json().await.unwrap_or(Json::Null);
            return Err((status, body));
        }
        let mut sse = Sse {
            response,
            buffer: Vec::new(),
            client_id: String::new(),
            hello: SseEvent {
                id: String::new(),
                name: String::new(),
                data: Json::Null,
                raw: String::new(),
            },
        };
        let hello = sse
            .next(Duration::from_secs(5))
            .await
            .expect("PB_CONNECT within 5 s");
        sse.client_id = hello.id.clone();
        sse.hello = hello;
        Ok(sse)
    }

    fn take_frame(&mut self) -> Option<SseEvent> {
        let end = self.buffer.windows(2).position(|w| w == b"\n\n")?;
        let frame: Vec<u8> = self.buffer.drain(..end + 2).collect();
        let raw = String::from_utf8(frame[..end].to_vec()).expect("utf-8 frame");
        let mut event = SseEvent {
            id: String::new(),
            name: String::new(),
            data: Json::Null,
            raw: raw.clone(),
        };
        for line in raw.split('\n') {
            let (field, value) = line.split_once(':').expect("field:value");
            match field {
                "id" => event.id = value.to_string(),
                "event" => event.name = value.to_string(),
                "data" => event.data = serde_json::from_str(value).expect("JSON data"),
                other => panic!("unexpected SSE field {other:?} in {raw:?}"),
            }
        }
        Some(event)
    }

    /// The next message within `wait`; `None` on timeout or when the stream ended.
    pub async fn next(&mut self, wait: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(event) = self.take_frame() {
                return Some(event);
            }
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Ok(Ok(Some(bytes))) => self.buffer.extend_from_slice(&bytes),
                _ => return None,
            }
        }
    }

    /// Every message until none arrives for `quiet`.
    pub async fn drain(&mut self, quiet: Duration) -> Vec<SseEvent> {
        let mut out = Vec::new();
        while let Some(event) = self.next(quiet).await {
            out.push(event);
        }
        out
    }

    /// Whether the server ends the stream within `wait` (messages before the end are
    /// discarded).
    pub async fn ends_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Ok(Ok(Some(_))) => continue,
                Ok(Ok(None)) | Ok(Err(_)) => return true,
                Err(_) => return false,
            }
        }
    }
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

/// `topic?options=<urlencoded JSON>`.
pub fn with_options(topic: &str, options: Json) -> String {
    format!("{topic}?options={}", encode(&options.to_string()))
}

/// Sub-scribes through any server with `POST /api/realtime`; returns status and body.
pub async fn subscribe_raw(base: &str, token: Option<&str>, body: Json) -> (u16, Json) {
    let mut request = reqwest::Client::new()
        .post(format!("{base}/api/realtime"))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(token) = token {
        request = request.header("authorization", token);
    }
    let response = request.send().await.expect("POST /api/realtime");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.expect("body");
    let json = if bytes.is_empty() {
        Json::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or(Json::Null)
    };
    (status, json)
}

impl Sse {
    /// Sets this client's subscriptions as `who` on the test app; panics unless 204.
    pub async fn subscribe(&self, app: &TestApp, who: &Who, topics: &[String]) {
        let (status, body) = self.try_subscribe(app, who, topics).await;
        assert_eq!(status, 204, "subscribe as {who:?}: {body}");
    }

    /// Sets this client's subscriptions as `who`; returns status and body.
    pub async fn try_subscribe(&self, app: &TestApp, who: &Who, topics: &[String]) -> (u16, Json) {
        app.request(
            Method::POST,
            "/api/realtime",
            who,
            Some(json!({"clientId": self.client_id, "subscriptions": topics})),
        )
        .await
    }
}

fn names(events: &[SseEvent]) -> Vec<String> {
    let mut names: Vec<String> = events.iter().map(|e| e.name.clone()).collect();
    names.sort();
    names
}

#[tokio::test]
async fn the_stream_is_framed_like_pocketbase() {
    let app = TestApp::spawn().await;
    // Byte-exact over a raw socket: headers and the PB_CONNECT frame.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    socket
        .write_all(b"GET /api/realtime HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut received = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !String::from_utf8_lossy(&received).contains("}\n\n") {
        assert!(Instant::now() < deadline, "no PB_CONNECT: {received:?}");
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed early");
        received.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8(received).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    for header in [
        "content-type: text/event-stream\r\n",
        "cache-control: no-store\r\n",
        "x-accel-buffering: no\r\n",
        "transfer-encoding: chunked",
    ] {
        assert!(head.contains(header), "missing {header:?} in {head}");
    }
    let mut frame = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if tail.len() < size {
            break;
        }
        frame.push_str(&tail[..size]);
        rest = tail[size..].trim_start_matches("\r\n");
    }
    let id = frame
        .strip_prefix("id:")
        .and_then(|r| r.split_once('\n'))
        .map(|(id, _)| id.to_string())
        .unwrap();
    assert_eq!(id.len(), 40);
    assert!(id.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(
        frame,
        format!("id:{id}\nevent:PB_CONNECT\ndata:{{\"clientId\":\"{id}\"}}\n\n")
    );

    // Event frames: `id` is the client id, the name is the subscription as sent.
    app.create_collection(json!({"name": "posts", "listRule": "", "viewRule": "",
        "fields": [{"name": "title", "type": "text"}]}))
        .await;
    let mut sse = Sse::connect(&app.base).await;
    let options = with_options("posts/*", json!({"query": {"fields": "id,title"}}));
    let topics = vec!["posts/*".to_string(), "posts".to_string(), options.clone()];
    sse.subscribe(&app, &Who::Guest, &topics).await;
    let record = app.create_record("posts", json!({"title": "hello"})).await;
    let events = sse.drain(QUIET).await;
    assert_eq!(names(&events), {
        let mut expected = topics.clone();
        expected.sort();
        expected
    });
    for event in &events {
        assert_eq!(event.id, sse.client_id);
        let expected_record = if event.name == options {
            json!({"id": record["id"], "title": "hello"})
        } else {
            record.clone()
        };
        assert_eq!(
            event.data,
            json!({"action": "create", "record": expected_record})
        );
        assert!(
            event.raw.contains("\ndata:{\"record\":{"),
            "record first, like PocketBase: {}",
            event.raw
        );
    }
}

#[tokio::test]
async fn subscribe_validates_its_input_and_limits_at_n_and_n_plus_1() {
    let app = TestApp::spawn().await;
    let sse = Sse::connect(&app.base).await;
    let invalid = "Something went wrong while processing your request.";
    let post = |body: Json| app.request(Method::POST, "/api/realtime", &Who::Guest, Some(body));
    let id = sse.client_id.clone();

    let (status, body) = post(json!({"clientId": id, "subscriptions": vec!["t"; 1000]})).await;
    assert_eq!(status, 204, "1000 topics: {body}");
    let (status, body) = post(json!({"clientId": id, "subscriptions": vec!["t"; 1001]})).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"status": 400, "message": invalid, "data": {"subscriptions": {
            "code": "validation_length_too_long", "message": "The length must be no more than 1000.",
            "params": {"max": 1000, "min": 0}}}})
    );
    let (status, _) = post(json!({"clientId": id, "subscriptions": ["t".repeat(2500)]})).await;
    assert_eq!(status, 204, "a 2500-character topic");
    let (status, body) =
        post(json!({"clientId": id, "subscriptions": ["ok", "t".repeat(2501)]})).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["data"]["subscriptions"]["1"],
        json!({"code": "validation_length_too_long", "message": "The length must be no more than 2500.",
            "params": {"max": 2500, "min": 0}})
    );
    let (status, body) = post(json!({"clientId": "x".repeat(255), "subscriptions": []})).await;
    assert_eq!(
        (status, body["message"].clone()),
        (404, json!("Missing or invalid client id.")),
        "a 255-character id is valid (and unknown)"
    );
    let (status, body) = post(json!({"clientId": "x".repeat(256), "subscriptions": []})).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["data"]["clientId"],
        json!({"code": "validation_length_out_of_range", "message": "The length must be between 1 and 255.",
            "params": {"max": 255, "min": 1}})
    );
    for body in [json!({}), json!({"clientId": ""})] {
        let (status, response) = post(body).await;
        assert_eq!(status, 400);
        assert_eq!(response["data"]["clientId"]["code"], "validation_required");
    }
    for body in [
        json!({"clientId": id, "subscriptions": "posts"}),
        json!({"clientId": 5, "subscriptions": []}),
        json!({"clientId": id, "subscriptions": [1]}),
    ] {
        let (status, response) = post(body.clone()).await;
        assert_eq!(
            (status, response),
            (400, json!({"status": 400, "message": invalid, "data": {}})),
            "{body}"
        );
    }
    for body in [
        json!({"clientId": id}),
        json!({"clientId": id, "subscriptions": null}),
        json!({"clientId": id, "subscriptions": ["", "posts", "posts"]}),
    ] {
        assert_eq!(post(body.clone()).await.0, 204, "{body}");
    }
    // Form bodies, as PocketBase accepts them.
    let (status, _) = app.raw_request(
        "POST",
        "/api/realtime",
        &Who::Guest,
        "application/x-www-form-urlencoded",
        format!("clientId={id}&subscriptions=posts&subscriptions=users").as_bytes(),
    );
    assert_eq!(status, 204);
    let (status, _) = app.raw_request(
        "POST",
        "/api/realtime",
        &Who::Guest,
        "application/json",
        b"{nope",
    );
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_client_is_bound_to_its_first_auth_and_a_bad_token_is_a_guest() {
    let app = TestApp::spawn().await;
    app.expect(
        200,
        Method::PATCH,
        "/api/collections/users",
        &Who::Superuser,
        Some(json!({"listRule": "id = @request.auth.id", "viewRule": "id = @request.auth.id"})),
    )
    .await;
    let alice = app.add_user("alice", "password123").await;
    app.add_user("bob", "password123").await;
    let mismatch = json!({"status": 403, "message": "The current and the previous request authorization don't match.", "data": {}});
    let topics = vec!["users/*".to_string()];

    // A forged or expired token on the subscribe call leaves the client a guest.
    let mut forged = Sse::connect(&app.base).await;
    let token = app.token(&Who::User("alice")).unwrap();
    let tampered = format!("{}x", token);
    forged.subscribe(&app, &Who::Token(tampered), &topics).await;
    forged
        .subscribe(&app, &Who::Token("garbage".into()), &topics)
        .await;
    app.expect(
        200,
        Method::PATCH,
        &format!("/api/collections/users/records/{alice}"),
        &Who::Superuser,
        Some(json!({"name": "changed"})),
    )
    .await;
    assert!(forged.drain(QUIET).await.is_empty(), "a guest sees nothing");

    // Guest first, then a user: fine; then another user, a guest or a bad token: 403.
    let mut sse = Sse::connect(&app.base).await;
    sse.subscribe(&app, &Who::Guest, &topics).await;
    sse.subscribe(&app, &Who::User("alice"), &topics).await;
    for who in [
        Who::User("bob"),
        Who::Guest,
        Who::Token("garbage".into()),
        Who::Superuser,
    ] {
        let (status, body) = sse.try_subscribe(&app, &who, &topics).await;
        assert_eq!((status, body), (403, mismatch.clone()), "as {who:?}");
    }
    app.expect(
        200,
        Method::PATCH,
        &format!("/api/collections/users/records/{alice}"),
        &Who::Superuser,
        Some(json!({"name": "again"})),
    )
    .await;
    let events = sse.drain(QUIET).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].data["record"]["email"], "alice@example.com");
    let (status, body) = app
        .request(
            Method::POST,
            "/api/realtime",
            &Who::Guest,
            Some(json!({"clientId": "nope", "subscriptions": []})),
        )
        .await;
    assert_eq!(
        (status, body),
        (
            404,
            json!({"status": 404, "message": "Missing or invalid client id.", "data": {}})
        )
    );
}

#[tokio::test]
async fn an_owner_change_mid_stream_stops_events_for_the_old_owner() {
    let app = TestApp::spawn().await;
    let alice = app.add_user("alice", "password123").await;
    let bob = app.add_user("bob", "password123").await;
    let users = "_pb_users_auth_";
    app.create_collection(json!({"name": "docs",
        "listRule": "owner = @request.auth.id", "viewRule": "owner = @request.auth.id",
        "fields": [{"name": "title", "type": "text"},
                   {"name": "owner", "type": "relation", "collectionId": users, "maxSelect": 1}]}))
        .await;
    let doc = app
        .create_record("docs", json!({"title": "v1", "owner": alice}))
        .await;
    let id = doc["id"].as_str().unwrap().to_string();
    let topics = vec!["docs/*".to_string(), format!("docs/{id}")];
    let mut as_alice = Sse::connect(&app.base).await;
    as_alice.subscribe(&app, &Who::User("alice"), &topics).await;
    let mut as_bob = Sse::connect(&app.base).await;
    as_bob.subscribe(&app, &Who::User("bob"), &topics).await;
    let path = format!("/api/collections/docs/records/{id}");
    let update = |body: Json| app.expect(200, Method::PATCH, &path, &Who::Superuser, Some(body));
    update(json!({"title": "v2"})).await;
    assert_eq!(as_alice.drain(QUIET).await.len(), 2);
    assert!(as_bob.drain(QUIET).await.is_empty());
    update(json!({"owner": bob})).await;
    assert!(
        as_alice.drain(QUIET).await.is_empty(),
        "the update that took the record away is not sent to the old owner"
    );
    let to_bob = as_bob.drain(QUIET).await;
    let mut expected = topics.clone();
    expected.sort();
    assert_eq!(names(&to_bob), expected);
    update(json!({"title": "v3"})).await;
    assert!(as_alice.drain(QUIET).await.is_empty());
    assert_eq!(as_bob.drain(QUIET).await.len(), 2);
}

#[tokio::test]
async fn a_password_change_makes_the_old_auth_a_guest() {
    let app = TestApp::spawn().await;
    app.expect(
        200,
        Method::PATCH,
        "/api/collections/users",
        &Who::Superuser,
        Some(json!({"updateRule": "id = @request.auth.id"})),
    )
    .await;
    let alice = app.add_user("alice", "password123").await;
    app.create_collection(
        json!({"name": "notes", "listRule": "@request.auth.id != ''",
        "viewRule": "@request.auth.id != ''", "fields": [{"name": "title", "type": "text"}]}),
    )
    .await;
    let topics = vec!["notes/*".to_string()];
    let mut sse = Sse::connect(&app.base).await;
    sse.subscribe(&app, &Who::User("alice"), &topics).await;
    app.create_record("notes", json!({"title": "one"})).await;
    assert_eq!(sse.drain(QUIET).await.len(), 1);
    let old_token = app.token(&Who::User("alice")).unwrap();
    app.expect(
        200,
        Method::PATCH,
        &format!("/api/collections/users/records/{alice}"),
        &Who::User("alice"),
        Some(json!({"password": "password456", "passwordConfirm": "password456", "oldPassword": "password123"})),
    )
    .await;
    app.create_record("notes", json!({"title": "two"})).await;
    assert!(
        sse.drain(QUIET).await.is_empty(),
        "no event under the old auth"
    );
    // The old token is dead: subscribing with it is a guest's call (no 403 either,
    // since the stored auth was dropped) and still sees nothing.
    sse.subscribe(&app, &Who::Token(old_token), &topics).await;
    app.create_record("notes", json!({"title": "three"})).await;
    assert!(sse.drain(QUIET).await.is_empty());
    // A fresh login works on the same client.
    let token = app.login("users", "alice@example.com", "password456").await;
    sse.subscribe(&app, &Who::Token(token), &topics).await;
    app.create_record("notes", json!({"title": "four"})).await;
    assert_eq!(sse.drain(QUIET).await.len(), 1);
}

#[tokio::test]
async fn failed_creates_and_rolled_back_batches_send_nothing() {
    let app = TestApp::spawn().await;
    app.expect(
        200,
        Method::PATCH,
        "/api/settings",
        &Who::Superuser,
        Some(json!({"batch": {"enabled": true}})),
    )
    .await;
    app.create_collection(json!({"name": "items", "listRule": "", "viewRule": "",
        "createRule": "title != 'forbidden'",
        "fields": [{"name": "title", "type": "text"}],
        "indexes": ["CREATE UNIQUE INDEX idx_items_title ON items (title)"]}))
        .await;
    app.create_record("items", json!({"title": "taken"})).await;
    let mut sse = Sse::connect(&app.base).await;
    sse.subscribe(&app, &Who::Guest, &["items/*".to_string()])
        .await;
    let create = |title: &str| json!({"method": "POST", "url": "/api/collections/items/records", "body": {"title": title}});
    for requests in [
        vec![create("a"), create("forbidden")],
        vec![create("b"), create("taken")],
    ] {
        let (status, _) = app
            .request(
                Method::POST,
                "/api/batch",
                &Who::Guest,
                Some(json!({ "requests": requests })),
            )
            .await;
        assert_eq!(status, 400);
    }
    let (status, _) = app
        .request(
            Method::POST,
            "/api/collections/items/records",
            &Who::Guest,
            Some(json!({"title": "taken"})),
        )
        .await;
    assert_eq!(status, 400, "unique violation");
    assert!(sse.drain(QUIET).await.is_empty());
    let (status, _) = app
        .request(
            Method::POST,
            "/api/batch",
            &Who::Guest,
            Some(json!({"requests": [create("c"), create("d")]})),
        )
        .await;
    assert_eq!(status, 200);
    let titles: Vec<Json> = sse
        .drain(QUIET)
        .await
        .iter()
        .map(|e| e.data["record"]["title"].clone())
        .collect();
    assert_eq!(titles, [json!("c"), json!("d")]);
}

/// An in-process server (the real router on a real socket) with custom realtime
/// limits; dropped with the runtime.
pub struct LocalServer {
    pub base: String,
    pub app: App,
    _dir: TempDir,
}

pub struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        crate::support::remove_dir(&self.0);
    }
}

pub async fn local_server(realtime: RealtimeConfig) -> LocalServer {
    let dir = crate::support::temp_dir();
    let store = basalt_store_sqlite::SqliteStore::open(&dir.join("data.db"), Default::default())
        .expect("sqlite");
    let app = App::open(
        Arc::new(store),
        AppConfig {
            realtime,
            ..AppConfig::default()
        },
    )
    .await
    .expect("app");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = basalt_http::app(app.clone(), HttpConfig::default());
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    LocalServer {
        base: format!("http://{addr}"),
        app,
        _dir: TempDir(dir),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_caps_at_n_and_n_plus_1() {
    let per_ip = local_server(RealtimeConfig {
        max_clients_per_ip: 3,
        ..RealtimeConfig::default()
    })
    .await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(Sse::connect(&per_ip.base).await);
    }
    let refused = Sse::try_connect(&per_ip.base).await.err();
    assert_eq!(
        refused,
        Some((
            429,
            json!({"status": 429, "message": "Too Many Requests.", "data": {}})
        ))
    );
    drop(open.pop());
    // The slot frees once the server sees the stream end.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match Sse::try_connect(&per_ip.base).await {
            Ok(sse) => {
                open.push(sse);
                break;
            }
            Err((429, _)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(other) => panic!("{other:?}"),
        }
    }

    let total = local_server(RealtimeConfig {
        max_clients: 2,
        ..RealtimeConfig::default()
    })
    .await;
    let _a = Sse::connect(&total.base).await;
    let _b = Sse::connect(&total.base).await;
    let (status, body) = Sse::try_connect(&total.base).await.err().unwrap();
    assert_eq!(status, 503);
    assert_eq!(body["status"], 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_address_cap_follows_trusted_proxy_headers_only() {
    let server = local_server(RealtimeConfig {
        max_clients_per_ip: 2,
        ..RealtimeConfig::default()
    })
    .await;
    let via = |ip: &'static str| [("x-forwarded-for", ip)];
    // Untrusted: a forged header does not make a new client.
    let mut open = Vec::new();
    for ip in ["10.0.0.1", "10.0.0.2"] {
        open.push(Sse::try_connect_with(&server.base, &via(ip)).await.unwrap());
    }
    let refused = Sse::try_connect_with(&server.base, &via("10.0.0.3")).await;
    assert_eq!(refused.err().map(|(status, _)| status), Some(429));
    drop(open);
    // Trusted proxy: the header's address is the client.
    server
        .app
        .update_settings(
            json!({"trustedProxy": {"headers": ["X-Forwarded-For"], "ips": ["127.0.0.1"]}}),
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut first = Vec::new();
    while first.len() < 2 {
        match Sse::try_connect_with(&server.base, &via("10.0.0.1")).await {
            Ok(sse) => first.push(sse),
            Err((429, _)) if Instant::now() < deadline => {
                // The earlier streams' slots free once the server sees them end.
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(other) => panic!("{other:?}"),
        }
    }
    let third = Sse::try_connect_with(&server.base, &via("10.0.0.1")).await;
    assert_eq!(third.err().map(|(status, _)| status), Some(429));
    let other = Sse::try_connect_with(&server.base, &via("10.0.0.2")).await;
    assert!(
        other.is_ok(),
        "another client behind the proxy has its own cap"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_lifetime_timeouts_end_the_stream() {
    let server = local_server(RealtimeConfig {
        idle_timeout: Duration::from_millis(500),
        max_lifetime: Duration::from_millis(1500),
        ..RealtimeConfig::default()
    })
    .await;
    let mut idle = Sse::connect(&server.base).await;
    let started = Instant::now();
    assert!(idle.ends_within(Duration::from_secs(3)).await);
    let lived = started.elapsed();
    assert!(lived >= Duration::from_millis(450), "{lived:?}");

    // Messages keep it alive past the idle timeout, but not past the lifetime.
    server
        .app
        .create_collection(json!({"name": "ticks", "listRule": "", "createRule": "",
            "fields": [{"name": "n", "type": "number"}]}))
        .await
        .unwrap();
    let mut busy = Sse::connect(&server.base).await;
    let started = Instant::now();
    let (status, _) = subscribe_raw(
        &server.base,
        None,
        json!({"clientId": busy.client_id, "subscriptions": ["ticks/*"]}),
    )
    .await;
    assert_eq!(status, 204);
    let writer = {
        let base = server.base.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            for n in 0..40 {
                let _ = client
                    .post(format!("{base}/api/collections/ticks/records"))
                    .json(&json!({ "n": n }))
                    .send()
                    .await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let mut received = 0;
    while busy.next(Duration::from_secs(3)).await.is_some() {
        received += 1;
    }
    let lived = started.elapsed();
    writer.abort();
    assert!(received >= 8, "events kept flowing ({received})");
    assert!(
        lived >= Duration::from_millis(1300) && lived < Duration::from_millis(2800),
        "{lived:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_is_dropped_and_does_not_delay_others() {
    let server = local_server(RealtimeConfig {
        client_buffer: 16,
        ..RealtimeConfig::default()
    })
    .await;
    let app = &server.app;
    app.create_collection(json!({"name": "blobs", "listRule": "", "createRule": "",
        "fields": [{"name": "n", "type": "number"}, {"name": "payload", "type": "json", "maxSize": 2000000}]}))
        .await
        .unwrap();
    // The slow client: a raw socket that subscribes and then never reads.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr: SocketAddr = server.base.trim_start_matches("http://").parse().unwrap();
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /api/realtime HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    while !String::from_utf8_lossy(&head).contains("PB_CONNECT") {
        let mut chunk = [0u8; 1024];
        let n = slow.read(&mut chunk).await.unwrap();
        head.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&head).to_string();
    let slow_id = text
        .split("id:")
        .nth(1)
        .and_then(|r| r.split('\n').next())
        .unwrap()
        .to_string();
    let (status, _) = subscribe_raw(
        &server.base,
        None,
        json!({"clientId": slow_id, "subscriptions": ["blobs/*"]}),
    )
    .await;
    assert_eq!(status, 204);
    let mut fast = Sse::connect(&server.base).await;
    let (status, _) = subscribe_raw(
        &server.base,
        None,
        json!({"clientId": fast.client_id, "subscriptions": ["blobs/*"]}),
    )
    .await;
    assert_eq!(status, 204);

    let payload = "x".repeat(100_000);
    let client = reqwest::Client::new();
    let mut worst_write = Duration::ZERO;
    let mut worst_delivery = Duration::ZERO;
    let mut writes = 0;
    let mut dropped_after = None;
    while writes < 400 {
        let started = Instant::now();
        let response = client
            .post(format!("{}/api/collections/blobs/records", server.base))
            .json(&json!({"n": writes, "payload": payload}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        worst_write = worst_write.max(started.elapsed());
        let event = fast
            .next(Duration::from_secs(5))
            .await
            .expect("the fast client gets every event");
        assert_eq!(event.data["record"]["n"], json!(writes));
        worst_delivery = worst_delivery.max(started.elapsed());
        writes += 1;
        if dropped_after.is_none() && app.realtime().stats().dropped_slow == 1 {
            dropped_after = Some(writes);
            // Keep writing a little to show nothing changes for the others.
            if writes > 40 {
                break;
            }
        }
        if dropped_after.is_some_and(|at| writes >= at + 20) {
            break;
        }
    }
    let dropped_after = dropped_after.expect("the slow client was dropped");
    eprintln!(
        "slow client dropped after {dropped_after} events of 100 kB; worst write {worst_write:?}, worst delivery {worst_delivery:?}"
    );
    assert!(worst_write < Duration::from_secs(1), "{worst_write:?}");
    assert!(
        worst_delivery < Duration::from_secs(1),
        "{worst_delivery:?}"
    );
    assert_eq!(
        app.realtime().stats().clients,
        1,
        "only the fast client is left"
    );
    let (status, _) = subscribe_raw(
        &server.base,
        None,
        json!({"clientId": slow_id, "subscriptions": []}),
    )
    .await;
    assert_eq!(status, 404, "the dropped client is gone");
    // Its stream ends: reading what the kernel buffered reaches the end of the body.
    let mut tail = Vec::new();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        let mut chunk = vec![0u8; 1 << 16];
        loop {
            let n = slow.read(&mut chunk).await.unwrap_or(0);
            if n == 0 {
                return true;
            }
            tail.extend_from_slice(&chunk[..n]);
            if tail.ends_with(b"0\r\n\r\n") {
                return true;
            }
        }
    })
    .await
    .unwrap_or(false);
    assert!(ended, "the slow client's stream was closed");
}
