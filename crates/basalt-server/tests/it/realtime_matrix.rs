//! The realtime leak matrix over real SSE connections: {create, update, delete} ×
//! {`*`, bare collection, record id, with filter, with expand (+fields)} × {guest, owner,
//! other user, superuser}, on a private and a public record; and 50 subscribers with
//! mixed rights receiving one change.
//!
//! The oracle is the REST API itself: a subscriber must receive an event exactly when it
//! could read the record at that moment with the same parameters (a list filtered to the
//! record for `*`, a view for an id; for a delete, just before the delete), and the
//! event's record must equal what REST returns to it, byte for byte after parsing.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Value as Json, json};

use crate::realtime::{QUIET, Sse, encode, with_options};
use crate::support::{TestApp, Who};

const USERS: &str = "_pb_users_auth_";

/// One subscription and how REST answers the same question.
#[derive(Debug, Clone)]
struct Topic {
    raw: String,
    record: Option<String>,
    query: BTreeMap<&'static str, String>,
}

fn topic(record: Option<&str>, query: &[(&'static str, &str)]) -> Topic {
    let base = match record {
        Some(id) => format!("posts/{id}"),
        None => "posts/*".to_string(),
    };
    let query: BTreeMap<&'static str, String> =
        query.iter().map(|(k, v)| (*k, v.to_string())).collect();
    let raw = if query.is_empty() {
        base
    } else {
        with_options(&base, json!({ "query": query }))
    };
    Topic {
        raw,
        record: record.map(str::to_string),
        query,
    }
}

/// Every subscription form the matrix covers, for records `p` and `q`.
fn topics(p: &str, q: &str) -> Vec<Topic> {
    let expand = [("expand", "owner,category")];
    let mut list = vec![
        topic(None, &[]),
        topic(Some(p), &[]),
        topic(Some(q), &[]),
        topic(None, &[("filter", "title ~ 'hello'")]),
        topic(None, &[("filter", "title ~ 'nomatch'")]),
        topic(None, &[("filter", "secret = 's1'")]),
        topic(None, &[("filter", "@request.auth.id != ''")]),
        topic(None, &[("filter", "owner.email ~ 'example'")]),
        topic(None, &expand),
        topic(Some(p), &expand),
        topic(
            Some(q),
            &[
                ("expand", "owner,category"),
                ("fields", "id,title,expand.owner.email,expand.category"),
            ],
        ),
    ];
    // The bare collection form behaves like `/*`.
    list.push(Topic {
        raw: "posts".into(),
        record: None,
        query: BTreeMap::new(),
    });
    list
}

/// What REST shows `who` for this topic and record now: the record, or `None`.
async fn oracle(app: &TestApp, who: &Who, topic: &Topic, id: &str) -> Option<Json> {
    let mut params: Vec<String> = topic
        .query
        .iter()
        .filter(|(key, _)| **key != "filter")
        .map(|(key, value)| format!("{key}={}", encode(value)))
        .collect();
    let path = match &topic.record {
        Some(record) if record != id => return None,
        Some(_) => format!("/api/collections/posts/records/{id}"),
        None => {
            let filter = match topic.query.get("filter") {
                Some(filter) => format!("id = '{id}' && ({filter})"),
                None => format!("id = '{id}'"),
            };
            params.push(format!("filter={}", encode(&filter)));
            "/api/collections/posts/records".to_string()
        }
    };
    let url = format!("{path}?{}", params.join("&"));
    let (status, body) = app.request(Method::GET, &url, who, None).await;
    match (status, &topic.record) {
        (200, Some(_)) => Some(body),
        (200, None) => body["items"]
            .as_array()
            .and_then(|items| match items.as_slice() {
                [one] => Some(one.clone()),
                _ => None,
            }),
        _ => None,
    }
}

/// The expected `(event name, data)` pairs of a subscriber, sorted.
async fn expected(
    app: &TestApp,
    who: &Who,
    topics: &[Topic],
    id: &str,
    action: &str,
) -> Vec<(String, Json)> {
    let mut out = Vec::new();
    for topic in topics {
        if let Some(record) = oracle(app, who, topic, id).await {
            out.push((
                topic.raw.clone(),
                json!({"action": action, "record": record}),
            ));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

async fn received(sse: &mut Sse) -> Vec<(String, Json)> {
    let mut out: Vec<(String, Json)> = sse
        .drain(QUIET)
        .await
        .into_iter()
        .map(|event| {
            assert_eq!(event.id, sse.client_id, "the id line is the client id");
            (event.name, event.data)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Users (rules: only oneself), categories (public, with a hidden field), posts.
async fn setup(app: &TestApp) -> (String, String) {
    app.expect(
        200,
        Method::PATCH,
        "/api/collections/users",
        &Who::Superuser,
        Some(json!({"listRule": "id = @request.auth.id", "viewRule": "id = @request.auth.id"})),
    )
    .await;
    let owner = app.add_user("owner", "password123").await;
    let other = app.add_user("other", "password123").await;
    let categories = app
        .create_collection(json!({"name": "categories", "listRule": "", "viewRule": "",
            "fields": [{"name": "name", "type": "text"}, {"name": "internal", "type": "text", "hidden": true}]}))
        .await;
    let owner_or_editor = "owner = @request.auth.id || editors.id ?= @request.auth.id";
    app.create_collection(json!({"name": "posts",
        "listRule": format!("public = true || {owner_or_editor}"),
        "viewRule": owner_or_editor,
        "createRule": owner_or_editor, "updateRule": owner_or_editor, "deleteRule": owner_or_editor,
        "fields": [
            {"name": "title", "type": "text"},
            {"name": "secret", "type": "text", "hidden": true},
            {"name": "public", "type": "bool"},
            {"name": "owner", "type": "relation", "collectionId": USERS, "maxSelect": 1},
            {"name": "editors", "type": "relation", "collectionId": USERS, "maxSelect": 10},
            {"name": "category", "type": "relation", "collectionId": categories["id"], "maxSelect": 1}]}))
        .await;
    let category = app
        .create_record(
            "categories",
            json!({"name": "news", "internal": "do not leak"}),
        )
        .await;
    let _ = other;
    (owner, category["id"].as_str().unwrap().to_string())
}

fn contains_key(value: &Json, key: &str) -> bool {
    match value {
        Json::Object(map) => map.contains_key(key) || map.values().any(|v| contains_key(v, key)),
        Json::Array(items) => items.iter().any(|v| contains_key(v, key)),
        _ => false,
    }
}

#[tokio::test]
async fn the_leak_matrix() {
    let app = TestApp::spawn().await;
    let (owner, category) = setup(&app).await;
    let p = "privaterecord01";
    let q = "publicrecord001";
    let topics = topics(p, q);
    let raws: Vec<String> = topics.iter().map(|t| t.raw.clone()).collect();
    let who = [
        ("guest", Who::Guest),
        ("owner", Who::User("owner")),
        ("other", Who::User("other")),
        ("superuser", Who::Superuser),
    ];
    let mut streams = Vec::new();
    for (_, who) in &who {
        let sse = Sse::connect(&app.base).await;
        sse.subscribe(&app, who, &raws).await;
        streams.push(sse);
    }
    let mut totals: BTreeMap<&str, usize> = BTreeMap::new();
    let mut table = Vec::new();
    for (id, public) in [(p, false), (q, true)] {
        for action in ["create", "update", "delete"] {
            // The oracle reads the state the event must reflect: after a create or an
            // update, before a delete.
            let mut before = Vec::new();
            if action == "delete" {
                for (_, who) in &who {
                    before.push(expected(&app, who, &topics, id, action).await);
                }
            }
            let path = format!("/api/collections/posts/records/{id}");
            match action {
                "create" => {
                    app.create_record(
                        "posts",
                        json!({"id": id, "title": "hello", "secret": "s1", "public": public,
                            "owner": owner, "category": category}),
                    )
                    .await;
                }
                "update" => {
                    app.expect(
                        200,
                        Method::PATCH,
                        &path,
                        &Who::User("owner"),
                        Some(json!({"title": "hello again"})),
                    )
                    .await;
                }
                _ => {
                    app.expect(204, Method::DELETE, &path, &Who::User("owner"), None)
                        .await;
                }
            }
            for (at, (label, who)) in who.iter().enumerate() {
                let want = if action == "delete" {
                    before[at].clone()
                } else {
                    expected(&app, who, &topics, id, action).await
                };
                let got = received(&mut streams[at]).await;
                assert_eq!(
                    got,
                    want,
                    "{action} of the {} record as {label}",
                    if public { "public" } else { "private" }
                );
                for (name, data) in &got {
                    if *label != "superuser" {
                        assert!(
                            !contains_key(data, "secret") && !contains_key(data, "internal"),
                            "hidden field sent to {label} under {name}: {data}"
                        );
                    }
                }
                *totals.entry(label).or_default() += got.len();
                table.push((id, action, *label, got.len()));
            }
        }
    }
    eprintln!("events per (record, action, subscriber): {table:?}");
    // The matrix is not vacuous: everyone with rights got events, and the rights differ.
    assert_eq!(
        totals["guest"],
        3 * 4,
        "guests: the public record's list topics only"
    );
    assert_eq!(totals["other"], totals["guest"]);
    assert!(totals["owner"] > totals["guest"]);
    assert!(totals["superuser"] > totals["owner"]);
    for (id, _, label, count) in &table {
        if *id == p && (*label == "guest" || *label == "other") {
            assert_eq!(*count, 0, "the private record reached {label}");
        }
    }
}

#[tokio::test]
async fn fifty_subscribers_with_mixed_rights_each_get_exactly_their_payload() {
    let app = TestApp::spawn().await;
    let (owner, category) = setup(&app).await;
    let editor = app.add_user("editor", "password123").await;
    app.add_user("stranger", "password123").await;
    let id = "sharedrecord001";
    app.create_record(
        "posts",
        json!({"id": id, "title": "hello", "secret": "s1", "public": false,
            "owner": owner, "editors": [editor], "category": category}),
    )
    .await;
    let all = topics(id, "otherrecord0001");
    let kinds = [
        Who::Guest,
        Who::User("owner"),
        Who::User("other"),
        Who::User("editor"),
        Who::User("stranger"),
        Who::Superuser,
    ];
    let mut subscribers = Vec::new();
    for n in 0..50 {
        let who = kinds[n % kinds.len()].clone();
        // Each subscriber takes a different slice of the subscription forms.
        let mine: Vec<Topic> = all
            .iter()
            .enumerate()
            .filter(|(at, _)| (at + n) % 3 != 0)
            .map(|(_, t)| t.clone())
            .collect();
        let raws: Vec<String> = mine.iter().map(|t| t.raw.clone()).collect();
        let sse = Sse::connect(&app.base).await;
        sse.subscribe(&app, &who, &raws).await;
        subscribers.push((who, mine, sse));
    }
    // One change, seen by all 50 at once.
    app.expect(
        200,
        Method::PATCH,
        &format!("/api/collections/posts/records/{id}"),
        &Who::User("editor"),
        Some(json!({"title": "hello world"})),
    )
    .await;
    // Read all 50 streams at once, then ask the oracle for each.
    let readers: Vec<_> = subscribers
        .into_iter()
        .map(|(who, mine, mut sse)| {
            tokio::spawn(async move {
                let got = received(&mut sse).await;
                (who, mine, got)
            })
        })
        .collect();
    let mut delivered = 0;
    let mut receiving = 0;
    for reader in readers {
        let (who, mine, got) = reader.await.unwrap();
        let want = expected(&app, &who, &mine, id, "update").await;
        assert_eq!(got, want, "subscriber as {who:?}");
        delivered += got.len();
        receiving += usize::from(!got.is_empty());
    }
    eprintln!("{delivered} messages to {receiving} of 50 subscribers");
    assert!(
        receiving >= 25,
        "owner, editor and superuser subscribers receive ({receiving})"
    );
}
