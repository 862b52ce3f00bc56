//! `expand`: forward, nested and back-relations, each hop through its own view rule.

use basalt_core::RequestInfo;
use serde_json::{Value as Json, json};

use crate::{Harness, all, body, on_both_backends};

/// authors (view: public, with a hidden `secret`), posts → author, comments → post,
/// and `locked` (view rule null) referenced by posts.
async fn graph(harness: &Harness) -> (String, String, String) {
    let app = &harness.app;
    let su = harness.superuser.clone();
    app.create_collection(json!({"name": "authors", "listRule": "", "viewRule": "",
        "fields": [{"name": "name", "type": "text"}, {"name": "secret", "type": "text", "hidden": true}]}))
        .await
        .expect("authors");
    app.create_collection(json!({"name": "locked", "fields": [{"name": "note", "type": "text"}]}))
        .await
        .expect("locked");
    let authors = app.collection("authors").expect("authors").id.clone();
    let locked = app.collection("locked").expect("locked").id.clone();
    app.create_collection(json!({"name": "posts", "listRule": "", "viewRule": "",
        "fields": [{"name": "title", "type": "text"},
                   {"name": "author", "type": "relation", "collectionId": authors, "maxSelect": 1},
                   {"name": "tags", "type": "relation", "collectionId": authors, "maxSelect": 5},
                   {"name": "hush", "type": "relation", "collectionId": locked, "maxSelect": 1}]}))
        .await
        .expect("posts");
    let posts = app.collection("posts").expect("posts").id.clone();
    app.create_collection(
        json!({"name": "comments", "listRule": "", "viewRule": "text != 'private'",
        "fields": [{"name": "text", "type": "text"},
                   {"name": "post", "type": "relation", "collectionId": posts, "maxSelect": 1}]}),
    )
    .await
    .expect("comments");
    let author = app
        .create_record(
            "authors",
            body(json!({"name": "ann", "secret": "s3cret"})),
            su.clone(),
        )
        .await
        .expect("author");
    let author_id = author["id"].as_str().expect("id").to_string();
    let hush = app
        .create_record("locked", body(json!({"note": "x"})), su.clone())
        .await
        .expect("locked rec");
    let post = app
        .create_record(
            "posts",
            body(
                json!({"title": "p", "author": author_id, "tags": [author_id], "hush": hush["id"]}),
            ),
            su.clone(),
        )
        .await
        .expect("post");
    let post_id = post["id"].as_str().expect("id").to_string();
    for text in ["one", "two", "private"] {
        app.create_record(
            "comments",
            body(json!({"text": text, "post": post_id})),
            su.clone(),
        )
        .await
        .expect("comment");
    }
    (
        author_id,
        post_id,
        hush["id"].as_str().expect("id").to_string(),
    )
}

async fn expanded(harness: &Harness, expand: &str, info: RequestInfo) -> Json {
    let collection = harness.app.collection("posts").expect("posts");
    let mut items = harness
        .app
        .list_records("posts", all(), info.clone())
        .await
        .expect("list")
        .items;
    harness
        .app
        .expand_records(&collection, &mut items, expand, &info)
        .await
        .expect("expand");
    items.into_iter().next().expect("one post")
}

on_both_backends!(
    forward_nested_and_back_relations_expand_with_each_hops_rules,
    |harness: Harness| async move {
        let (author_id, _post_id, _hush) = graph(&harness).await;
        let guest = RequestInfo::default();
        let post = expanded(
            &harness,
            "author,tags,hush,comments_via_post.post.author",
            guest.clone(),
        )
        .await;
        let expand = &post["expand"];
        assert_eq!(expand["author"]["id"], json!(author_id));
        assert_eq!(expand["author"]["name"], json!("ann"));
        assert!(
            expand["author"].get("secret").is_none(),
            "hidden field leaked through expand: {expand}"
        );
        assert_eq!(expand["tags"].as_array().map(Vec::len), Some(1));
        assert!(
            expand.get("hush").is_none(),
            "a null view rule must hide the relation: {expand}"
        );
        let comments = expand["comments_via_post"]
            .as_array()
            .expect("back-relation is an array");
        let texts: Vec<&str> = comments.iter().filter_map(|c| c["text"].as_str()).collect();
        assert_eq!(
            texts.len(),
            2,
            "the view rule of comments hides 'private': {texts:?}"
        );
        assert!(!texts.contains(&"private"));
        assert_eq!(
            comments[0]["expand"]["post"]["expand"]["author"]["name"],
            json!("ann")
        );

        let as_superuser = expanded(&harness, "author,hush", harness.superuser.clone()).await;
        assert_eq!(as_superuser["expand"]["author"]["secret"], json!("s3cret"));
        assert_eq!(as_superuser["expand"]["hush"]["note"], json!("x"));
    }
);

on_both_backends!(
    the_expand_key_appears_once_a_path_resolves,
    |harness: Harness| async move {
        graph(&harness).await;
        let guest = RequestInfo::default();
        for (expand, key_present) in [
            ("nosuchfield", false),
            ("hush", false),
            ("hush,author", true),
            ("author", true),
        ] {
            let post = expanded(&harness, expand, guest.clone()).await;
            assert_eq!(
                post.get("expand").is_some(),
                key_present,
                "expand={expand}: {post}"
            );
        }
        let post = expanded(&harness, "hush", harness.superuser.clone()).await;
        assert_eq!(post["expand"]["hush"]["note"], json!("x"));
    }
);
