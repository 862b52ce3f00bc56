//! Concurrency guarantees: modifiers never lose updates, unique values never double,
//! and a rule check happens in the same transaction as its write.

use serde_json::json;

use crate::{Harness, body, on_both_backends};

async fn posts(harness: &Harness) {
    harness
        .app
        .create_collection(json!({
            "name": "posts",
            "listRule": "", "viewRule": "", "createRule": "", "updateRule": "",
            "fields": [
                {"name": "title", "type": "text"},
                {"name": "views", "type": "number"}
            ],
            "indexes": ["CREATE UNIQUE INDEX idx_posts_title ON posts (title)"]
        }))
        .await
        .expect("create collection");
}

on_both_backends!(
    hundred_concurrent_increments_end_exactly_plus_hundred,
    |harness: Harness| async move {
        posts(&harness).await;
        let created = harness
            .app
            .create_record(
                "posts",
                body(json!({"title": "counter", "views": 0})),
                harness.superuser.clone(),
            )
            .await
            .expect("create");
        let id = created["id"].as_str().expect("id").to_string();
        let mut tasks = Vec::new();
        for _ in 0..100 {
            let app = harness.app.clone();
            let id = id.clone();
            tasks.push(tokio::spawn(async move {
                app.update_record(
                    "posts",
                    &id,
                    body(json!({"views+": 1})),
                    basalt_core::RequestInfo::default(),
                )
                .await
            }));
        }
        for task in tasks {
            task.await.expect("join").expect("update");
        }
        let record = harness
            .app
            .view_record("posts", &id, &harness.superuser)
            .await
            .expect("view");
        assert_eq!(record["views"], json!(100));
    }
);

on_both_backends!(
    two_concurrent_creates_of_one_unique_value_give_one_success,
    |harness: Harness| async move {
        posts(&harness).await;
        let first = harness.app.create_record(
            "posts",
            body(json!({"title": "same"})),
            basalt_core::RequestInfo::default(),
        );
        let second = harness.app.create_record(
            "posts",
            body(json!({"title": "same"})),
            basalt_core::RequestInfo::default(),
        );
        let (a, b) = tokio::join!(first, second);
        let outcomes = [a.is_ok(), b.is_ok()];
        assert_eq!(outcomes.iter().filter(|ok| **ok).count(), 1, "{outcomes:?}");
        let error = a.err().or(b.err()).expect("one failed");
        assert_eq!(error.status(), 400);
        assert_eq!(
            error.body()["data"]["title"]["code"],
            json!("validation_not_unique")
        );
    }
);
