//! `basalt migrate-data`: a whole app copied from SQLite to PostgreSQL and back, then
//! served from the copy with the same answers, logins and tokens.

use reqwest::Method;
use serde_json::{Value as Json, json};

use crate::multinode::TestDb;
use crate::support::{TestApp, Who, run_cli, temp_dir};

/// Every record of each collection as the superuser sees it, in id order.
async fn snapshot(app: &TestApp, collections: &[&str]) -> Json {
    let mut out = serde_json::Map::new();
    for name in collections {
        let body = app
            .expect(
                200,
                Method::GET,
                &format!("/api/collections/{name}/records?perPage=500&sort=id&expand=author"),
                &Who::Superuser,
                None,
            )
            .await;
        out.insert(name.to_string(), body["items"].clone());
    }
    Json::Object(out)
}

#[tokio::test]
async fn an_app_moves_from_sqlite_to_postgres_and_back_unchanged() {
    let mut source = TestApp::spawn().await;
    let user_id = source.add_user("mover", "password123").await;
    let users_id = source
        .expect(
            200,
            Method::GET,
            "/api/collections/users",
            &Who::Superuser,
            None,
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    source
        .create_collection(json!({"name": "posts", "listRule": "", "viewRule": "author = @request.auth.id",
            "fields": [{"name": "title", "type": "text"}, {"name": "n", "type": "number"},
                       {"name": "ok", "type": "bool"}, {"name": "meta", "type": "json"},
                       {"name": "tags", "type": "select", "maxSelect": 3, "values": ["a", "b", "c"]},
                       {"name": "author", "type": "relation", "collectionId": users_id, "maxSelect": 1},
                       {"name": "when", "type": "date"}]}))
        .await;
    source
        .create_collection(json!({"name": "titles", "type": "view", "listRule": "",
            "viewQuery": "SELECT id, title, author FROM posts"}))
        .await;
    for i in 0..620 {
        source
            .create_record(
                "posts",
                json!({"title": format!("post {i}"), "n": i as f64 * 1.5, "ok": i % 2 == 0,
                       "meta": {"i": i, "nested": {"k": [1, 2]}}, "tags": ["a", "c"],
                       "author": user_id, "when": "2026-11-22 10:00:00.000Z"}),
            )
            .await;
    }
    source
        .expect(
            200,
            Method::PATCH,
            "/api/settings",
            &Who::Superuser,
            Some(json!({"meta": {"appName": "Moved App"}})),
        )
        .await;
    let before = snapshot(&source, &["posts", "users", "titles"]).await;
    let user_token = source.token(&Who::User("mover")).unwrap();
    let source_dir = source.data_dir();
    source.stop().await;

    // SQLite -> PostgreSQL.
    let db = TestDb::create().await;
    let out = run_cli(&[
        "migrate-data",
        "--from",
        source_dir.to_str().unwrap(),
        "--to",
        &db.url,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("posts: 620 records"), "{stdout}");
    assert!(stdout.contains("(verified)"), "{stdout}");
    assert!(stdout.contains("titles: view re-created"), "{stdout}");

    // A second copy into the same database is refused.
    let again = run_cli(&[
        "migrate-data",
        "--from",
        source_dir.to_str().unwrap(),
        "--to",
        &db.url,
    ]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("not empty"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    // Served from PostgreSQL: same records, settings, logins, and the old token works.
    let moved = TestApp::spawn_with(&["--db", &db.url]).await;
    assert_eq!(
        snapshot(&moved, &["posts", "users", "titles"]).await,
        before
    );
    let settings = moved
        .expect(200, Method::GET, "/api/settings", &Who::Superuser, None)
        .await;
    assert_eq!(settings["meta"]["appName"], "Moved App");
    moved
        .login("users", "mover@example.com", "password123")
        .await;
    let (status, own) = moved
        .request(
            Method::GET,
            &format!(
                "/api/collections/posts/records/{}",
                before["posts"][0]["id"].as_str().unwrap()
            ),
            &Who::Token(user_token),
            None,
        )
        .await;
    assert_eq!(
        status, 200,
        "a token from the SQLite app works on the copy: {own}"
    );

    // PostgreSQL -> a new SQLite dir.
    let root = temp_dir();
    let back = root.join("back");
    let out = run_cli(&[
        "migrate-data",
        "--from",
        &db.url,
        "--to",
        back.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let conn = rusqlite::Connection::open(back.join("data.db")).unwrap();
    let count: i64 = conn
        .query_row("SELECT COUNT(*) FROM posts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 620);
    let meta: String = conn
        .query_row("SELECT meta FROM posts WHERE title = 'post 7'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Json>(&meta).unwrap(),
        json!({"i": 7, "nested": {"k": [1, 2]}})
    );
    crate::support::remove_dir(&root);

    // Bad arguments.
    let missing = run_cli(&[
        "migrate-data",
        "--from",
        "/nonexistent/dir",
        "--to",
        &db.url,
    ]);
    assert!(!missing.status.success());
}
