//! The batch API: all-or-nothing, same rules as the plain endpoints, settings-bound.

use std::collections::BTreeMap;

use basalt_core::{BatchAction, BatchKind, RequestInfo};
use serde_json::{Value as Json, json};

use crate::{Harness, all, body, on_both_backends};

fn action(kind: BatchKind, id: Option<&str>, data: Json) -> BatchAction {
    BatchAction {
        kind,
        collection: "notes".into(),
        id: id.map(str::to_string),
        body: body(data),
        query: BTreeMap::new(),
        headers: BTreeMap::new(),
        uploads: Vec::new(),
    }
}

async fn setup(harness: &Harness, enabled: bool, max: u64) {
    harness
        .app
        .create_collection(json!({"name": "notes", "listRule": "", "viewRule": "", "createRule": "title != 'forbidden'",
            "updateRule": "", "deleteRule": "",
            "fields": [{"name": "title", "type": "text", "required": true}, {"name": "n", "type": "number"}]}))
        .await
        .expect("notes");
    harness
        .app
        .update_settings(json!({"batch": {"enabled": enabled, "maxRequests": max}}))
        .await
        .expect("settings");
}

async fn titles(harness: &Harness) -> Vec<String> {
    let list = harness
        .app
        .list_records("notes", all(), harness.superuser.clone())
        .await
        .expect("list");
    let mut titles: Vec<String> = list
        .items
        .iter()
        .filter_map(|r| r["title"].as_str().map(str::to_string))
        .collect();
    titles.sort();
    titles
}

on_both_backends!(
    a_batch_commits_every_action_in_order,
    |harness: Harness| async move {
        setup(&harness, true, 50).await;
        let id = "aaaaaaaaaaaaaaa";
        let results = harness
            .app
            .batch(
                vec![
                    action(
                        BatchKind::Create,
                        None,
                        json!({"id": id, "title": "first", "n": 1}),
                    ),
                    action(BatchKind::Update, Some(id), json!({"n+": 2})),
                    action(
                        BatchKind::Upsert,
                        None,
                        json!({"id": id, "title": "renamed"}),
                    ),
                    action(
                        BatchKind::Upsert,
                        None,
                        json!({"id": "bbbbbbbbbbbbbbb", "title": "second"}),
                    ),
                    action(BatchKind::Delete, Some("bbbbbbbbbbbbbbb"), json!({})),
                ],
                &RequestInfo::default(),
            )
            .await
            .expect("batch");
        let statuses: Vec<u16> = results.iter().map(|r| r.status).collect();
        assert_eq!(statuses, [200, 200, 200, 200, 204]);
        assert_eq!(
            results[1].record.as_ref().map(|r| r["n"].clone()),
            Some(json!(3))
        );
        assert_eq!(
            results[2].record.as_ref().map(|r| r["title"].clone()),
            Some(json!("renamed"))
        );
        assert_eq!(titles(&harness).await, ["renamed"]);
    }
);

on_both_backends!(
    a_failing_action_rolls_back_the_whole_batch,
    |harness: Harness| async move {
        setup(&harness, true, 50).await;
        for failing in [json!({"title": ""}), json!({"title": "forbidden"})] {
            let error = harness
                .app
                .batch(
                    vec![
                        action(BatchKind::Create, None, json!({"title": "kept?"})),
                        action(BatchKind::Create, None, failing),
                    ],
                    &RequestInfo::default(),
                )
                .await
                .expect_err("must fail");
            assert_eq!(error.status(), 400);
            let body = error.body();
            assert_eq!(body["message"], json!("Batch transaction failed."));
            assert_eq!(
                body["data"]["requests"]["1"]["code"],
                json!("batch_request_failed")
            );
            assert_eq!(
                body["data"]["requests"]["1"]["response"]["status"],
                json!(400)
            );
            assert!(titles(&harness).await.is_empty(), "nothing may be written");
        }
    }
);

on_both_backends!(
    batch_is_off_by_default_and_bounded_by_max_requests,
    |harness: Harness| async move {
        setup(&harness, false, 2).await;
        let one = || vec![action(BatchKind::Create, None, json!({"title": "x"}))];
        let error = harness
            .app
            .batch(one(), &RequestInfo::default())
            .await
            .expect_err("disabled");
        assert_eq!(error.status(), 403);
        harness
            .app
            .update_settings(json!({"batch": {"enabled": true}}))
            .await
            .expect("enable");
        let two = vec![
            action(BatchKind::Create, None, json!({"title": "a"})),
            action(BatchKind::Create, None, json!({"title": "b"})),
        ];
        assert!(
            harness
                .app
                .batch(two, &RequestInfo::default())
                .await
                .is_ok(),
            "N = maxRequests is allowed"
        );
        let three = vec![
            action(BatchKind::Create, None, json!({"title": "c"})),
            action(BatchKind::Create, None, json!({"title": "d"})),
            action(BatchKind::Create, None, json!({"title": "e"})),
        ];
        let error = harness
            .app
            .batch(three, &RequestInfo::default())
            .await
            .expect_err("N+1");
        assert_eq!(error.status(), 400);
        assert_eq!(titles(&harness).await, ["a", "b"]);
    }
);
