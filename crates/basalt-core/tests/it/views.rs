//! View collections stay in step with their source tables.

use serde_json::json;

use crate::{Harness, body, on_both_backends};

on_both_backends!(
    views_follow_their_sources_and_refuse_breaking_changes,
    |harness: Harness| async move {
        let app = &harness.app;
        app.create_collection(json!({"name": "src", "fields": [{"name": "title", "type": "text"}, {"name": "n", "type": "number"}]}))
        .await
        .expect("src");
        app.create_collection(
            json!({"name": "everything", "type": "view", "viewQuery": "SELECT * FROM src"}),
        )
        .await
        .expect("view *");
        app.create_collection(
            json!({"name": "titles", "type": "view", "viewQuery": "SELECT id, title FROM src"}),
        )
        .await
        .expect("view");
        let names = |collection: &str| -> Vec<String> {
            app.collection(collection)
                .expect("exists")
                .fields
                .iter()
                .map(|f| f.name.clone())
                .collect()
        };
        assert_eq!(names("everything"), ["id", "title", "n"]);

        let src = app.collection("src").expect("src");
        let mut fields = serde_json::to_value(&src.fields).expect("fields");
        fields
            .as_array_mut()
            .expect("array")
            .push(json!({"name": "extra", "type": "bool"}));
        app.update_collection("src", json!({"fields": fields}))
            .await
            .expect("add a field");
        assert_eq!(names("everything"), ["id", "title", "n", "extra"]);
        let extra = app
            .collection("everything")
            .expect("view")
            .field("extra")
            .map(|f| f.kind.type_name());
        assert_eq!(extra, Some("bool"));

        let without_title: Vec<_> = fields
            .as_array()
            .expect("array")
            .iter()
            .filter(|f| f["name"] != "title")
            .cloned()
            .collect();
        let error = app
            .update_collection("src", json!({"fields": without_title}))
            .await
            .expect_err("breaks the titles view");
        assert_eq!(error.status(), 400);
        assert_eq!(
            error.body()["data"]["_"]["code"],
            json!("validation_breaks_view")
        );
        assert!(
            app.collection("src").expect("src").field("title").is_some(),
            "the failed change must not apply"
        );
        assert_eq!(names("titles"), ["id", "title"]);
    }
);

on_both_backends!(
    view_columns_keep_their_source_fields_and_expand_through_them,
    |harness: Harness| async move {
        let app = &harness.app;
        let su = harness.superuser.clone();
        app.create_collection(json!({"name": "posts", "listRule": "", "viewRule": "",
            "fields": [{"name": "title", "type": "text"},
                       {"name": "tags", "type": "select", "maxSelect": 3, "values": ["a", "b", "c"]},
                       {"name": "cover", "type": "file", "maxSelect": 1, "protected": true},
                       {"name": "score", "type": "number"}]}))
        .await
        .expect("posts");
        let posts = app.collection("posts").expect("posts").id.clone();
        app.create_collection(json!({"name": "comments", "listRule": "", "viewRule": "",
            "fields": [{"name": "body", "type": "text"},
                       {"name": "post", "type": "relation", "collectionId": posts, "maxSelect": 1},
                       {"name": "mail", "type": "email", "hidden": true}]}))
            .await
            .expect("comments");
        app.create_collection(json!({"name": "threads", "type": "view", "listRule": "", "viewRule": "",
            "viewQuery": "SELECT c.id, c.post AS topic, p.title, p.tags, p.cover, c.mail, c.body || '!' AS loud, (SELECT COUNT(*) FROM comments) AS n FROM comments c JOIN posts p ON p.id = c.post"}))
        .await
        .expect("view");
        let view = app.collection("threads").expect("threads");
        let kind = |name: &str| serde_json::to_value(view.field(name).expect(name)).expect("json");
        assert_eq!(kind("topic")["type"], "relation");
        assert_eq!(kind("topic")["collectionId"], json!(posts));
        assert_eq!(kind("tags")["type"], "select");
        assert_eq!(kind("tags")["values"], json!(["a", "b", "c"]));
        assert_eq!(kind("tags")["maxSelect"], 3);
        assert_eq!(kind("cover")["type"], "file");
        assert_eq!(kind("cover")["protected"], true);
        assert_eq!(kind("title")["type"], "text");
        assert_eq!(kind("mail")["type"], "email");
        assert_eq!(kind("mail")["hidden"], true);
        // Expressions fall back to the declared type.
        assert_ne!(kind("loud")["type"], "relation");

        let post = app
            .create_record(
                "posts",
                body(json!({"title": "hello", "tags": ["a", "c"], "score": 3})),
                su.clone(),
            )
            .await
            .expect("post");
        let comment = app
            .create_record(
                "comments",
                body(json!({"body": "hi", "post": post["id"], "mail": "x@example.com"})),
                su.clone(),
            )
            .await
            .expect("comment");
        let guest = basalt_core::RequestInfo::default();
        let row = app
            .view_record("threads", comment["id"].as_str().expect("id"), &guest)
            .await
            .expect("view row");
        assert_eq!(row["topic"], post["id"]);
        assert_eq!(row["tags"], json!(["a", "c"]));
        assert!(
            row.get("mail").is_none(),
            "hidden source fields stay hidden: {row}"
        );

        // Expand follows the view's relation column through the target's view rule.
        let collection = app.collection("threads").expect("threads");
        let mut records = vec![row];
        app.expand_records(&collection, &mut records, "topic", &guest)
            .await
            .expect("expand");
        assert_eq!(records[0]["expand"]["topic"]["title"], "hello");

        // Filters through the relation column work as on a table.
        for (filter, expected) in [
            ("topic.title = 'hello'", 1),
            ("topic.title = 'other'", 0),
            ("tags:each ?= 'c'", 1),
            ("tags:each ?= 'b'", 0),
            ("tags:length = 2", 1),
        ] {
            let listed = app
                .list_records(
                    "threads",
                    basalt_core::ListParams {
                        page: 1,
                        per_page: 10,
                        filter: Some(filter.into()),
                        ..Default::default()
                    },
                    guest.clone(),
                )
                .await
                .expect("list");
            assert_eq!(listed.total_items, expected, "{filter}");
        }

        // Changing the source re-infers the view: a renamed select value list follows.
        let source = app.collection("posts").expect("posts");
        let mut fields = serde_json::to_value(&source.fields).expect("fields");
        for field in fields.as_array_mut().expect("array") {
            if field["name"] == "tags" {
                field["values"] = json!(["a", "b", "c", "d"]);
            }
        }
        app.update_collection("posts", json!({"fields": fields}))
            .await
            .expect("update posts");
        let view = app.collection("threads").expect("threads");
        let tags = serde_json::to_value(view.field("tags").expect("tags")).expect("json");
        assert_eq!(tags["values"], json!(["a", "b", "c", "d"]));
    }
);

on_both_backends!(
    changes_that_break_another_collections_rules_are_refused,
    |harness: Harness| async move {
        let app = &harness.app;
        app.create_collection(json!({"name": "flags", "fields": [{"name": "on", "type": "bool"}, {"name": "label", "type": "text"}]}))
            .await
            .expect("flags");
        app.create_collection(
            json!({"name": "gated", "listRule": "@collection.flags.on = true",
            "fields": [{"name": "t", "type": "text"}]}),
        )
        .await
        .expect("gated");
        let flags = app.collection("flags").expect("flags");
        let fields = serde_json::to_value(&flags.fields).expect("fields");
        let without_on: Vec<_> = fields
            .as_array()
            .expect("array")
            .iter()
            .filter(|f| f["name"] != "on")
            .cloned()
            .collect();
        let error = app
            .update_collection("flags", json!({"fields": without_on}))
            .await
            .expect_err("gated's listRule reads flags.on");
        assert_eq!(error.status(), 400);
        assert_eq!(
            error.body()["data"]["_"]["code"],
            json!("validation_breaks_rule")
        );
        assert!(
            app.collection("flags")
                .expect("flags")
                .field("on")
                .is_some()
        );
        // Removing a field no rule reads is fine.
        let without_label: Vec<_> = fields
            .as_array()
            .expect("array")
            .iter()
            .filter(|f| f["name"] != "label")
            .cloned()
            .collect();
        app.update_collection("flags", json!({"fields": without_label}))
            .await
            .expect("label is unused");
        // Deleting the collection a rule reads is refused too.
        let error = app
            .delete_collection("flags")
            .await
            .expect_err("gated reads flags");
        assert_eq!(
            error.body()["data"]["_"]["code"],
            json!("validation_breaks_rule")
        );
        // The list still works (no 500 from a rule that lost its field).
        let listed = app
            .list_records(
                "gated",
                basalt_core::ListParams {
                    page: 1,
                    per_page: 10,
                    ..Default::default()
                },
                basalt_core::RequestInfo::default(),
            )
            .await
            .expect("list");
        assert_eq!(listed.total_items, 0);
    }
);
