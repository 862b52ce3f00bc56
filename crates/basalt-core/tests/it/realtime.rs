//! Realtime at the service level, on both backends: events only after commit, delete
//! recipients decided before the delete (cascades included), auth changes turning
//! clients into guests, the subscribe call's auth binding, and slow clients dropped.

use std::collections::BTreeMap;
use std::time::Duration;

use basalt_core::{
    App, AppConfig, Auth, BatchAction, BatchKind, Connection, RealtimeConfig, RequestInfo,
};
use serde_json::{Value as Json, json};

use crate::{Harness, as_user, body, guest, on_both_backends};

/// One received event: its name and its data.
#[derive(Debug, Clone, PartialEq)]
struct Event {
    name: String,
    data: Json,
}

fn parse(bytes: &[u8]) -> Event {
    let text = std::str::from_utf8(bytes).expect("utf-8 frame");
    let frame = text
        .strip_suffix("\n\n")
        .expect("a frame ends with a blank line");
    let (event, data) = frame.split_once('\n').expect("event and data lines");
    Event {
        name: event
            .strip_prefix("event:")
            .expect("event line")
            .to_string(),
        data: serde_json::from_str(data.strip_prefix("data:").expect("data line"))
            .expect("JSON data"),
    }
}

/// A connected client (its `PB_CONNECT` already read).
struct Client {
    conn: Connection,
    id: String,
}

async fn connect(app: &App) -> Client {
    let mut conn = app.realtime().connect(None).expect("connect");
    let hello = parse(conn.recv().await.expect("PB_CONNECT").bytes());
    assert_eq!(hello.name, "PB_CONNECT");
    let id = conn.client_id().to_string();
    assert_eq!(hello.data, json!({"clientId": id}));
    assert_eq!(id.len(), 40);
    assert!(id.chars().all(|c| c.is_ascii_alphanumeric()));
    Client { conn, id }
}

impl Client {
    async fn subscribe(&self, app: &App, auth: Option<Auth>, topics: &[&str]) {
        let topics: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
        app.realtime_subscribe(&self.id, None, auth, &topics)
            .await
            .expect("subscribe");
    }

    /// Every event until none arrives for `quiet`.
    async fn drain(&mut self, quiet: Duration) -> Vec<Event> {
        let mut out = Vec::new();
        while let Ok(Some(message)) = tokio::time::timeout(quiet, self.conn.recv()).await {
            out.push(parse(message.bytes()));
        }
        out
    }
}

const QUIET: Duration = Duration::from_millis(300);

async fn login(harness: &Harness, email: &str) -> Auth {
    let app = &harness.app;
    app.create_record(
        "users",
        body(json!({"email": email, "password": "password123", "passwordConfirm": "password123"})),
        harness.superuser.clone(),
    )
    .await
    .expect("user");
    app.auth_with_password(
        app.collection("users").expect("users"),
        email,
        "password123",
        None,
        None,
    )
    .await
    .expect("login")
    .auth
}

fn actions(events: &[Event]) -> Vec<(String, String, String)> {
    events
        .iter()
        .map(|e| {
            (
                e.name.clone(),
                e.data["action"].as_str().unwrap_or_default().to_string(),
                e.data["record"]["title"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

fn batch_create(title: &str) -> BatchAction {
    BatchAction {
        kind: BatchKind::Create,
        collection: "notes".into(),
        id: None,
        body: body(json!({ "title": title })),
        query: BTreeMap::new(),
        headers: BTreeMap::new(),
        uploads: Vec::new(),
    }
}

on_both_backends!(
    failed_and_rolled_back_writes_publish_nothing,
    |harness: Harness| async move {
        let app = &harness.app;
        let su = harness.superuser.clone();
        app.create_collection(json!({"name": "notes", "listRule": "", "viewRule": "",
            "createRule": "title != 'forbidden'", "updateRule": "@request.body.title != 'locked'",
            "fields": [{"name": "title", "type": "text"}],
            "indexes": ["CREATE UNIQUE INDEX idx_notes_title ON notes (title)"]}))
            .await
            .expect("notes");
        app.update_settings(json!({"batch": {"enabled": true}}))
            .await
            .expect("settings");
        let mut client = connect(app).await;
        client.subscribe(app, None, &["notes/*"]).await;
        let taken = app
            .create_record("notes", body(json!({"title": "taken"})), su.clone())
            .await
            .expect("create");
        assert_eq!(
            actions(&client.drain(QUIET).await),
            [("notes/*".into(), "create".into(), "taken".into())]
        );
        // A batch whose second action fails its rule: nothing commits, nothing is sent.
        app.batch(
            vec![batch_create("first"), batch_create("forbidden")],
            &guest(),
        )
        .await
        .expect_err("rolled back");
        // A batch whose second action violates the unique index.
        app.batch(
            vec![batch_create("second"), batch_create("taken")],
            &guest(),
        )
        .await
        .expect_err("rolled back");
        // A plain create failing its unique index, an update failing its rule.
        app.create_record("notes", body(json!({"title": "taken"})), su.clone())
            .await
            .expect_err("unique");
        app.create_record("notes", body(json!({"title": "forbidden"})), guest())
            .await
            .expect_err("rule");
        let id = taken["id"].as_str().expect("id");
        app.update_record("notes", id, body(json!({"title": "locked"})), guest())
            .await
            .expect_err("update rule");
        assert!(
            client.drain(QUIET).await.is_empty(),
            "no event for failed writes"
        );
        // The pipe still works, and the next event is the next committed write.
        app.batch(vec![batch_create("b1"), batch_create("b2")], &guest())
            .await
            .expect("batch");
        assert_eq!(
            actions(&client.drain(QUIET).await),
            [
                ("notes/*".into(), "create".into(), "b1".into()),
                ("notes/*".into(), "create".into(), "b2".into())
            ]
        );
    }
);

on_both_backends!(
    delete_recipients_are_decided_before_the_delete,
    |harness: Harness| async move {
        let app = &harness.app;
        let su = harness.superuser.clone();
        let owner = login(&harness, "owner@example.com").await;
        let other = login(&harness, "other@example.com").await;
        let users = app.collection("users").expect("users").id.clone();
        app.create_collection(json!({"name": "notes",
            "listRule": "owner = @request.auth.id", "viewRule": "owner = @request.auth.id",
            "deleteRule": "owner = @request.auth.id",
            "fields": [{"name": "title", "type": "text"},
                       {"name": "owner", "type": "relation", "collectionId": users, "maxSelect": 1}]}))
            .await
            .expect("notes");
        let notes = app.collection("notes").expect("notes").id.clone();
        app.create_collection(json!({"name": "comments", "listRule": "", "viewRule": "",
            "fields": [{"name": "title", "type": "text"},
                       {"name": "note", "type": "relation", "collectionId": notes, "maxSelect": 1, "cascadeDelete": true}]}))
            .await
            .expect("comments");
        app.create_collection(json!({"name": "boards", "listRule": "", "viewRule": "",
            "fields": [{"name": "title", "type": "text"},
                       {"name": "pinned", "type": "relation", "collectionId": notes, "maxSelect": 5}]}))
            .await
            .expect("boards");
        let note = app
            .create_record(
                "notes",
                body(json!({"title": "n", "owner": owner.id()})),
                su.clone(),
            )
            .await
            .expect("note");
        let note_id = note["id"].as_str().expect("id").to_string();
        let comment = app
            .create_record(
                "comments",
                body(json!({"title": "c", "note": note_id})),
                su.clone(),
            )
            .await
            .expect("comment");
        let board = app
            .create_record(
                "boards",
                body(json!({"title": "b", "pinned": [note_id]})),
                su.clone(),
            )
            .await
            .expect("board");

        let mut as_owner = connect(app).await;
        as_owner
            .subscribe(
                app,
                Some(owner.clone()),
                &["notes/*", &format!("notes/{note_id}")],
            )
            .await;
        let mut as_other = connect(app).await;
        as_other
            .subscribe(
                app,
                Some(other.clone()),
                &["notes/*", &format!("notes/{note_id}")],
            )
            .await;
        let mut as_guest = connect(app).await;
        as_guest
            .subscribe(app, None, &["notes/*", "comments/*", "boards/*"])
            .await;

        app.delete_record("notes", &note_id, as_user(owner.clone()))
            .await
            .expect("delete");

        let mut seen = as_owner.drain(QUIET).await;
        seen.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(seen.len(), 2, "{seen:?}");
        let expected_record = json!({"collectionId": notes, "collectionName": "notes",
            "id": note_id, "owner": owner.id(), "title": "n"});
        for (event, name) in seen
            .iter()
            .zip(["notes/*".to_string(), format!("notes/{note_id}")])
        {
            assert_eq!(event.name, name);
            assert_eq!(
                event.data,
                json!({"action": "delete", "record": expected_record})
            );
        }
        assert!(
            as_other.drain(QUIET).await.is_empty(),
            "other user must not see it"
        );
        // The guest may not see the note, but sees the cascaded comment delete and the
        // board whose relation lost the note.
        let mut guest_events = as_guest.drain(QUIET).await;
        guest_events.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(guest_events.len(), 2, "{guest_events:?}");
        assert_eq!(guest_events[0].name, "boards/*");
        assert_eq!(guest_events[0].data["action"], "update");
        assert_eq!(guest_events[0].data["record"]["id"], board["id"]);
        assert_eq!(guest_events[0].data["record"]["pinned"], json!([]));
        assert_eq!(guest_events[1].name, "comments/*");
        assert_eq!(guest_events[1].data["action"], "delete");
        assert_eq!(guest_events[1].data["record"], comment);
    }
);

on_both_backends!(
    auth_changes_turn_clients_into_guests,
    |harness: Harness| async move {
        let app = &harness.app;
        let su = harness.superuser.clone();
        app.update_collection("users", json!({"updateRule": "id = @request.auth.id"}))
            .await
            .expect("users");
        app.create_collection(
            json!({"name": "notes", "listRule": "@request.auth.id != ''",
            "viewRule": "@request.auth.id != ''", "fields": [{"name": "title", "type": "text"}]}),
        )
        .await
        .expect("notes");
        let create =
            |title: &str| app.create_record("notes", body(json!({ "title": title })), su.clone());
        let alice = login(&harness, "alice@example.com").await;
        let bob = login(&harness, "bob@example.com").await;
        let carol = login(&harness, "carol@example.com").await;
        let mut clients = Vec::new();
        for auth in [&alice, &bob, &carol] {
            let client = connect(app).await;
            client
                .subscribe(app, Some(auth.clone()), &["notes/*"])
                .await;
            clients.push(client);
        }
        create("one").await.expect("one");
        for client in clients.iter_mut() {
            assert_eq!(client.drain(QUIET).await.len(), 1);
        }

        // Alice changes her password: her client is a guest from now on.
        app.update_record(
            "users",
            alice.id(),
            body(json!({"password": "password456", "passwordConfirm": "password456", "oldPassword": "password123"})),
            as_user(alice.clone()),
        )
        .await
        .expect("password change");
        // Bob is deleted.
        app.delete_record("users", bob.id(), su.clone())
            .await
            .expect("delete bob");
        create("two").await.expect("two");
        assert!(clients[0].drain(QUIET).await.is_empty(), "alice is a guest");
        assert!(clients[1].drain(QUIET).await.is_empty(), "bob is gone");
        assert_eq!(
            clients[2].drain(QUIET).await.len(),
            1,
            "carol still sees it"
        );

        // A guest client may be bound to another auth now (no 403).
        clients[0]
            .subscribe(app, Some(carol.clone()), &["notes/*"])
            .await;
        // Changing the auth rule rotates the token secret: every stored auth is void.
        app.update_collection("users", json!({"authRule": "verified = false"}))
            .await
            .expect("auth rule");
        create("three").await.expect("three");
        assert!(clients[0].drain(QUIET).await.is_empty(), "secret rotated");
        assert!(clients[2].drain(QUIET).await.is_empty(), "secret rotated");
    }
);

on_both_backends!(
    the_subscribe_call_binds_the_client_to_one_auth,
    |harness: Harness| async move {
        let app = &harness.app;
        let alice = login(&harness, "alice@example.com").await;
        let bob = login(&harness, "bob@example.com").await;
        let client = connect(app).await;
        let topics = vec!["users/*".to_string()];
        let status = |result: Result<(), basalt_core::CoreError>| {
            result
                .err()
                .map(|e| (e.status(), e.body()["message"].clone()))
        };
        assert_eq!(
            status(app.realtime_subscribe("unknown", None, None, &topics).await),
            Some((404, json!("Missing or invalid client id.")))
        );
        // Guest, then a user: allowed (a guest may log in).
        assert_eq!(
            status(
                app.realtime_subscribe(&client.id, None, None, &topics)
                    .await
            ),
            None
        );
        assert_eq!(
            status(
                app.realtime_subscribe(&client.id, None, Some(alice.clone()), &topics)
                    .await
            ),
            None
        );
        let mismatch = Some((
            403,
            json!("The current and the previous request authorization don't match."),
        ));
        for other in [
            None,
            Some(bob.clone()),
            Some(harness.superuser.auth.clone().expect("su")),
        ] {
            assert_eq!(
                status(
                    app.realtime_subscribe(&client.id, None, other, &topics)
                        .await
                ),
                mismatch
            );
        }
        assert_eq!(
            status(
                app.realtime_subscribe(&client.id, None, Some(alice.clone()), &[])
                    .await
            ),
            None
        );
        // Another address than the stream's.
        let bound = app
            .realtime()
            .connect(Some("10.0.0.1".parse().expect("ip")))
            .expect("connect");
        assert_eq!(
            status(
                app.realtime_subscribe(
                    bound.client_id(),
                    Some("10.0.0.2".parse().expect("ip")),
                    None,
                    &topics
                )
                .await
            ),
            Some((400, json!("Invalid realtime client.")))
        );
        // A closed stream's id is unknown.
        let closed = bound.client_id().to_string();
        drop(bound);
        assert_eq!(
            status(app.realtime_subscribe(&closed, None, None, &topics).await),
            Some((404, json!("Missing or invalid client id.")))
        );
    }
);

async fn app_with(config: RealtimeConfig) -> (App, crate::Backend) {
    let (store, backend) = crate::sqlite();
    let app = App::open(
        store,
        AppConfig {
            realtime: config,
            ..AppConfig::default()
        },
    )
    .await
    .expect("open");
    app.create_collection(
        json!({"name": "notes", "listRule": "", "viewRule": "", "createRule": "",
        "fields": [{"name": "title", "type": "text"}]}),
    )
    .await
    .expect("notes");
    (app, backend)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_whose_queue_is_full_is_dropped_without_delaying_others() {
    let (app, _backend) = app_with(RealtimeConfig {
        client_buffer: 4,
        ..RealtimeConfig::default()
    })
    .await;
    let slow = connect(&app).await;
    slow.subscribe(&app, None, &["notes/*"]).await;
    let mut fast = connect(&app).await;
    fast.subscribe(&app, None, &["notes/*"]).await;
    // The fast client takes each event before the next create (so its queue of 4 never
    // fills, however the machine schedules the tasks); the slow one never reads.
    let mut got = 0;
    for n in 0..20 {
        app.create_record(
            "notes",
            body(json!({ "title": format!("n{n}") })),
            RequestInfo::default(),
        )
        .await
        .expect("create");
        match tokio::time::timeout(Duration::from_secs(5), fast.conn.recv()).await {
            Ok(Some(_)) => got += 1,
            other => panic!(
                "the fast client lost event {n}: {:?}",
                other.map(|m| m.is_some())
            ),
        }
    }
    assert_eq!(got, 20, "the fast client got everything");
    let stats = app.realtime().stats();
    assert_eq!(stats.dropped_slow, 1);
    assert_eq!(stats.clients, 1, "only the fast client is left");
    let mut slow = slow;
    assert!(
        slow.conn.recv().await.is_none(),
        "the slow client's stream ends"
    );
    let error = app
        .realtime_subscribe(&slow.id, None, None, &[])
        .await
        .expect_err("dropped");
    assert_eq!(error.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_caps_and_timeouts() {
    let (app, _backend) = app_with(RealtimeConfig {
        max_clients: 3,
        max_clients_per_ip: 2,
        idle_timeout: Duration::from_millis(300),
        max_lifetime: Duration::from_millis(900),
        ..RealtimeConfig::default()
    })
    .await;
    let broker = app.realtime();
    let ip = |s: &str| Some(s.parse().expect("ip"));
    let a1 = broker.connect(ip("10.0.0.1")).expect("1st of the address");
    let a2 = broker.connect(ip("10.0.0.1")).expect("2nd of the address");
    assert_eq!(
        broker.connect(ip("10.0.0.1")).err(),
        Some(basalt_core::ConnectError::TooManyForAddress)
    );
    let b1 = broker.connect(ip("10.0.0.2")).expect("3rd in total");
    assert_eq!(
        broker.connect(ip("10.0.0.3")).err(),
        Some(basalt_core::ConnectError::Full)
    );
    drop(a1);
    let a3 = broker.connect(ip("10.0.0.1")).expect("a slot was freed");
    drop((a2, b1, a3));
    assert_eq!(broker.stats().clients, 0);

    // Idle: no message for the idle timeout ends the stream.
    let mut idle = connect(&app).await;
    let started = tokio::time::Instant::now();
    assert!(idle.conn.recv().await.is_none());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(280) && waited < Duration::from_secs(2),
        "{waited:?}"
    );

    // Lifetime: a busy stream still ends at its lifetime.
    let mut busy = connect(&app).await;
    busy.subscribe(&app, None, &["notes/*"]).await;
    let started = tokio::time::Instant::now();
    let writer = {
        let app = app.clone();
        tokio::spawn(async move {
            for n in 0..15 {
                let _ = app
                    .create_record(
                        "notes",
                        body(json!({ "title": format!("t{n}") })),
                        RequestInfo::default(),
                    )
                    .await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let mut received = 0;
    while busy.conn.recv().await.is_some() {
        received += 1;
    }
    let lived = started.elapsed();
    assert!(received >= 3, "events flowed before the end ({received})");
    assert!(
        lived >= Duration::from_millis(850) && lived < Duration::from_millis(1500),
        "{lived:?}"
    );
    writer.abort();

    // Shutdown ends every stream and refuses new ones.
    let mut open = connect(&app).await;
    broker.shutdown();
    assert!(open.conn.recv().await.is_none());
    assert_eq!(
        broker.connect(None).err(),
        Some(basalt_core::ConnectError::Full)
    );
}

on_both_backends!(
    a_password_reset_turns_the_clients_into_guests,
    |harness: Harness| async move {
        let app = &harness.app;
        app.create_collection(
            json!({"name": "notes", "listRule": "@request.auth.id != ''",
            "fields": [{"name": "title", "type": "text"}]}),
        )
        .await
        .expect("notes");
        let dave = login(&harness, "dave@example.com").await;
        let mut client = connect(app).await;
        client
            .subscribe(app, Some(dave.clone()), &["notes/*"])
            .await;
        let users = app.collection("users").expect("users");
        let token = basalt_core::issue_token(
            &users,
            &dave.record,
            basalt_core::TokenType::PasswordReset,
            None,
            false,
        )
        .expect("token");
        app.confirm_password_reset(users, &token, "new-password", "new-password")
            .await
            .expect("reset");
        app.create_record(
            "notes",
            body(json!({"title": "after"})),
            harness.superuser.clone(),
        )
        .await
        .expect("create");
        assert!(client.drain(QUIET).await.is_empty(), "dave is a guest now");
    }
);
