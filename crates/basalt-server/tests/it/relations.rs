//! Relation fields: existence checks, modifiers, and what deleting a referenced record
//! does (required refuses, cascadeDelete deletes, optional references are cleared).

use serde_json::json;

use crate::support::scenario::{delete, get, patch, post};
use crate::support::{TestApp, Who};

const MISSING: &str = "validation_missing_rel_records";

#[tokio::test]
async fn relations_are_checked_and_deletes_follow_the_options() {
    let app = TestApp::spawn().await;
    let posts = app
        .create_collection(json!({"name": "posts", "fields": [{"name": "title", "type": "text"}]}))
        .await;
    let posts_id = posts["id"].as_str().unwrap().to_string();
    let rel = |name: &str, required: bool, cascade: bool, max: u32| {
        json!({"name": name, "type": "relation", "collectionId": posts_id,
               "required": required, "cascadeDelete": cascade, "maxSelect": max})
    };
    for (collection, field) in [
        ("comments", rel("post", true, false, 1)),
        ("likes", rel("post", false, true, 1)),
        ("mentions", rel("post", false, false, 1)),
        ("bookmarks", rel("posts", false, false, 5)),
    ] {
        app.create_collection(json!({"name": collection, "fields": [field]}))
            .await;
    }
    let mut ids = Vec::new();
    for title in ["p1", "p2", "p3", "p4"] {
        let record = app.create_record("posts", json!({"title": title})).await;
        ids.push(record["id"].as_str().unwrap().to_string());
    }
    let [p1, p2, p3, p4] = [&ids[0], &ids[1], &ids[2], &ids[3]];
    let comment = app.create_record("comments", json!({"post": p1})).await;
    let like = app.create_record("likes", json!({"post": p2})).await;
    let mention = app.create_record("mentions", json!({"post": p3})).await;
    let bookmark = app
        .create_record("bookmarks", json!({"posts": [p3, p4]}))
        .await;
    let id = |v: &serde_json::Value| v["id"].as_str().unwrap().to_string();
    let (comment, like, mention, bookmark) = (id(&comment), id(&like), id(&mention), id(&bookmark));
    let su = Who::Superuser;
    let at = |collection: &str, id: &str| format!("/api/collections/{collection}/records/{id}");
    app.check(vec![
        post("unknown related id", "/api/collections/comments/records")
            .who(su.clone())
            .json(json!({"post": "nosuch000000000"}))
            .status(400)
            .snapshot(json!({"status": 400, "message": "[any]", "data": {"post": {
                "code": MISSING,
                "message": "Failed to find all relation records with the provided ids."}}})),
        post("one unknown id in a multiple relation", "/api/collections/bookmarks/records")
            .who(su.clone())
            .json(json!({"posts": [p1, "nosuch000000000"]}))
            .status(400)
            .subset(json!({"data": {"posts": {"code": MISSING}}})),
        post("required relation missing", "/api/collections/comments/records")
            .who(su.clone())
            .json(json!({}))
            .status(400)
            .subset(json!({"data": {"post": {"code": "validation_required"}}})),
        patch("update to an unknown id", at("mentions", &mention))
            .who(su.clone())
            .json(json!({"post": "nosuch000000000"}))
            .status(400)
            .subset(json!({"data": {"post": {"code": MISSING}}})),
        patch("relation posts+ appends", at("bookmarks", &bookmark))
            .who(su.clone())
            .json(json!({"posts+": p1}))
            .subset(json!({"posts": [p3, p4, p1]})),
        patch("relation posts- removes", at("bookmarks", &bookmark))
            .who(su.clone())
            .json(json!({"posts-": p1}))
            .subset(json!({"posts": [p3, p4]})),
        patch("relation posts+ with an unknown id", at("bookmarks", &bookmark))
            .who(su.clone())
            .json(json!({"posts+": "nosuch000000000"}))
            .status(400)
            .subset(json!({"data": {"posts": {"code": MISSING}}})),
        delete("a required reference refuses the delete", at("posts", p1))
            .who(su.clone())
            .error(400, "Failed to delete record. Make sure that the record is not part of a required relation reference."),
        get("the refused post is still there", at("posts", p1))
            .who(su.clone())
            .subset(json!({"title": "p1"})),
        get("and so is its comment", at("comments", &comment))
            .who(su.clone())
            .subset(json!({"post": p1})),
        delete("cascadeDelete", at("posts", p2)).who(su.clone()).no_content(),
        get("the like went with its post", at("likes", &like))
            .who(su.clone())
            .error(404, "The requested resource wasn't found."),
        delete("optional references are cleared", at("posts", p3))
            .who(su.clone())
            .no_content(),
        get("single optional relation emptied", at("mentions", &mention))
            .who(su.clone())
            .subset(json!({"post": ""})),
        get("multiple relation lost one id", at("bookmarks", &bookmark))
            .who(su.clone())
            .subset(json!({"posts": [p4]})),
        delete("the comment first", at("comments", &comment))
            .who(su.clone())
            .no_content(),
        delete("then the post can go", at("posts", p1))
            .who(su.clone())
            .no_content(),
    ])
    .await;
}

#[tokio::test]
async fn client_filters_through_relations_respect_the_joined_list_rule() {
    let app = TestApp::spawn().await;
    let alice = app.add_user("alice", "alice-password").await;
    app.add_user("bob", "bob-password1").await;
    app.expect(
        200,
        reqwest::Method::PATCH,
        &format!("/api/collections/users/records/{alice}"),
        &Who::Superuser,
        Some(json!({"name": "Alice"})),
    )
    .await;
    app.create_collection(json!({"name": "posts", "listRule": "", "fields": [
        {"name": "title", "type": "text"},
        {"name": "author", "type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 1},
        {"name": "tags", "type": "select", "values": ["a", "b", "c"], "maxSelect": 3}
    ]}))
    .await;
    for (title, tags) in [
        ("one", json!(["a", "b"])),
        ("two", json!(["b"])),
        ("three", json!(["c"])),
    ] {
        app.create_record(
            "posts",
            json!({"title": title, "author": alice, "tags": tags}),
        )
        .await;
    }
    let filter = |expr: &str| {
        format!(
            "/api/collections/posts/records?fields=title&filter={}",
            crate::records_list::encode(expr)
        )
    };
    app.check(vec![
        // users.listRule is `id = @request.auth.id`: a guest's join matches no user.
        get(
            "a guest filtering through the author",
            filter("author.name = 'Alice'"),
        )
        .subset(json!({"totalItems": 0})),
        get(
            "another user filtering through the author",
            filter("author.name = 'Alice'"),
        )
        .who(Who::User("bob"))
        .subset(json!({"totalItems": 0})),
        get(
            "the author filtering through themself",
            filter("author.name = 'Alice'"),
        )
        .who(Who::User("alice"))
        .subset(json!({"totalItems": 3})),
        get(
            "a superuser filtering through the author",
            filter("author.name = 'Alice'"),
        )
        .who(Who::Superuser)
        .subset(json!({"totalItems": 3})),
        get(
            "the id shortcut needs no join",
            filter(&format!("author.id = '{alice}'")),
        )
        .subset(json!({"totalItems": 3})),
        get(
            "multi-value matches are counted once",
            filter("tags:each ?= 'a' || tags:each ?= 'b'"),
        )
        .subset(json!({"totalItems": 2, "items": [{"title": "one"}, {"title": "two"}]})),
    ])
    .await;
}
