//! View collections stay in step with their source tables.

use serde_json::json;

use crate::{Harness, on_both_backends};

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
