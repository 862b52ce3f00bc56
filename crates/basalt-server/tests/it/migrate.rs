//! `basalt migrate-data`: a whole app copied from SQLite to PostgreSQL and back, then
//! served from the copy with the same answers, logins, tokens and OAuth2 links (the
//! records of the `_externalAuths` collection, and the internal `_otps` and `_mfas`
//! rows).

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::{get, post};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value as Json, json};

use crate::multinode::TestDb;
use crate::support::{Body, TestApp, Who, run_cli, temp_dir};

const CLIENT_ID: &str = "migrate-client";
const CLIENT_SECRET: &str = "migrate-secret-0123456789";

/// A minimal OpenID Connect provider on loopback: `/token` accepts any code and answers
/// with an HS256 id_token (signed with the client secret) for the current user, whose
/// userinfo document `/userinfo` serves. No PKCE (the provider entry turns it off).
struct Provider {
    base: String,
    user: Arc<Mutex<Json>>,
}

impl Provider {
    async fn start() -> Provider {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let user = Arc::new(Mutex::new(Json::Null));
        let state = (base.clone(), user.clone());
        let router = axum::Router::new()
            .route(
                "/token",
                post(
                    |State((base, user)): State<(String, Arc<Mutex<Json>>)>| async move {
                        let now = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .unwrap()
                            .as_secs();
                        let sub = user.lock().unwrap()["sub"].clone();
                        let claims = json!({"iss": base, "sub": sub, "aud": CLIENT_ID,
                                        "exp": now + 300, "iat": now});
                        let id_token = jsonwebtoken::encode(
                            &Header::new(Algorithm::HS256),
                            &claims,
                            &EncodingKey::from_secret(CLIENT_SECRET.as_bytes()),
                        )
                        .unwrap();
                        axum::Json(json!({"access_token": "at-1", "token_type": "Bearer",
                                      "expires_in": 3600, "id_token": id_token}))
                    },
                ),
            )
            .route(
                "/userinfo",
                get(
                    |State((_, user)): State<(String, Arc<Mutex<Json>>)>| async move {
                        axum::Json(user.lock().unwrap().clone())
                    },
                ),
            )
            .with_state(state);
        tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        Provider { base, user }
    }

    /// The `oidc` entry of a collection's `oauth2.providers`.
    fn entry(&self) -> Json {
        json!({
            "name": "oidc", "clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET,
            "displayName": "Migrate IdP", "pkce": false,
            "authURL": format!("{}/authorize", self.base),
            "tokenURL": format!("{}/token", self.base),
            "userInfoURL": format!("{}/userinfo", self.base),
            "extra": {"issuers": [self.base]},
        })
    }

    /// `auth-with-oauth2` on `users` with the provider's current user.
    async fn sign_in(&self, app: &TestApp, who: &Who, user: Json) -> (u16, Json) {
        *self.user.lock().unwrap() = user;
        app.request(
            Method::POST,
            "/api/collections/users/auth-with-oauth2",
            who,
            Some(json!({"provider": "oidc", "code": "code-1",
                        "redirectURL": "http://127.0.0.1:1/cb", "codeVerifier": ""})),
        )
        .await
    }
}

/// The provider identity linked to the `mover` user. Its email is nobody's, so a
/// sign-in finds that user only through the link.
fn linked_identity() -> Json {
    json!({"sub": "sub-mover-1", "email": "elsewhere@example.com", "email_verified": false,
           "name": "Mover"})
}

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
    // A record with an uploaded file: its name is a column value and is copied; the
    // bytes under <dir>/storage are not.
    source
        .create_collection(
            json!({"name": "attachments", "listRule": "", "viewRule": "",
            "fields": [{"name": "doc", "type": "file", "maxSelect": 1, "maxSize": 1000}]}),
        )
        .await;
    let boundary = "migrateboundary";
    let upload = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"doc\"; filename=\"note.txt\"\r\n\
         Content-Type: text/plain\r\n\r\nmoved bytes\r\n--{boundary}--\r\n"
    );
    let (status, attachment) = source
        .send(
            Method::POST,
            "/api/collections/attachments/records",
            &Who::Superuser,
            &Body::Raw {
                content_type: format!("multipart/form-data; boundary={boundary}"),
                bytes: upload.into_bytes(),
            },
        )
        .await;
    assert_eq!(status, 200, "{attachment}");
    let file_path = format!(
        "/api/files/attachments/{}/{}",
        attachment["id"].as_str().unwrap(),
        attachment["doc"].as_str().unwrap()
    );
    // An OAuth2 link made with the real flow: the signed-in user links an identity.
    let provider = Provider::start().await;
    source
        .expect(
            200,
            Method::PATCH,
            "/api/collections/users",
            &Who::Superuser,
            Some(json!({"oauth2": {"enabled": true, "providers": [provider.entry()]}})),
        )
        .await;
    let (status, body) = provider
        .sign_in(&source, &Who::User("mover"), linked_identity())
        .await;
    assert_eq!(status, 200, "linking on the source: {body}");
    assert_eq!(body["record"]["id"], user_id.as_str());
    let before = snapshot(&source, &["posts", "users", "titles", "attachments"]).await;
    let user_token = source.token(&Who::User("mover")).unwrap();
    let source_dir = source.data_dir();
    source.stop().await;
    // An OTP and an MFA session under way (rows as the server writes them).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    {
        let conn = rusqlite::Connection::open(source_dir.join("data.db")).unwrap();
        conn.execute(
            "INSERT INTO _otps (id, collectionRef, recordRef, password, sentTo, failures, created) \
             VALUES ('otp1', ?1, ?2, 'hash-of-code', 'mover@example.com', 1, ?3)",
            rusqlite::params![users_id, user_id, now],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO _mfas (id, collectionRef, recordRef, method, created) \
             VALUES ('mfa1', ?1, ?2, 'password', ?3)",
            rusqlite::params![users_id, user_id, now],
        )
        .unwrap();
    }

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
    // The links are a collection (copied once, as one), OTPs and MFA internal rows.
    assert_eq!(stdout.matches("_externalAuths:").count(), 1, "{stdout}");
    assert!(
        stdout.contains("_externalAuths: 1 records, sha256 "),
        "{stdout}"
    );
    for table in ["_otps", "_mfas"] {
        assert!(
            stdout.contains(&format!("{table}: 1 rows, sha256 ")),
            "{stdout}"
        );
    }
    // The internal rows, as they are in PostgreSQL.
    let internal = internal_rows_pg(&db.url).await;
    assert_eq!(internal, expected_internal(&users_id, &user_id, now));

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
        snapshot(&moved, &["posts", "users", "titles", "attachments"]).await,
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

    // The file's record came over, its bytes did not, until the folder is copied.
    assert_eq!(
        moved
            .request(Method::GET, &file_path, &Who::Guest, None)
            .await
            .0,
        404
    );
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(source_dir.join("storage"))
        .arg(moved.data_dir())
        .status()
        .unwrap();
    assert!(status.success());
    let bytes = moved
        .builder(Method::GET, &file_path, &Who::Guest)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&bytes[..], b"moved bytes");

    // The link is used: the identity signs in to the same user, with no email match.
    let (status, body) = provider
        .sign_in(&moved, &Who::Guest, linked_identity())
        .await;
    assert_eq!(status, 200, "OAuth2 sign-in on the copy: {body}");
    assert_eq!(body["record"]["id"], user_id.as_str(), "{body}");
    assert_eq!(body["meta"]["isNew"], false, "{body}");
    drop(moved);

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
    assert_eq!(
        internal_rows_sqlite(&conn),
        expected_internal(&users_id, &user_id, now)
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

/// The columns compared in the link and internal tables, per table (the link's `id`,
/// `created` and `updated` were made by the server and are only checked to be set).
const INTERNAL_SQL: [(&str, &str); 3] = [
    (
        "_externalAuths",
        "SELECT \"collectionRef\", \"recordRef\", \"provider\", \"providerId\", \
         CAST(length(\"id\") AS TEXT), CAST(length(\"created\") AS TEXT), \
         CAST(length(\"updated\") AS TEXT) FROM \"_externalAuths\"",
    ),
    (
        "_otps",
        "SELECT \"id\", \"collectionRef\", \"recordRef\", \"password\", \"sentTo\", \
         CAST(\"failures\" AS TEXT), CAST(\"created\" AS TEXT) FROM \"_otps\"",
    ),
    (
        "_mfas",
        "SELECT \"id\", \"collectionRef\", \"recordRef\", \"method\", \
         CAST(\"created\" AS TEXT) FROM \"_mfas\"",
    ),
];

fn expected_internal(users_id: &str, user_id: &str, now: i64) -> Vec<(String, Vec<String>)> {
    let row = |table: &str, values: &[&str]| {
        (
            table.to_string(),
            values.iter().map(|v| v.to_string()).collect(),
        )
    };
    let now = now.to_string();
    vec![
        row(
            "_externalAuths",
            &[users_id, user_id, "oidc", "sub-mover-1", "15", "24", "24"],
        ),
        row(
            "_otps",
            &[
                "otp1",
                users_id,
                user_id,
                "hash-of-code",
                "mover@example.com",
                "1",
                &now,
            ],
        ),
        row("_mfas", &["mfa1", users_id, user_id, "password", &now]),
    ]
}

async fn internal_rows_pg(url: &str) -> Vec<(String, Vec<String>)> {
    let url = url.to_string();
    tokio::task::spawn_blocking(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let mut out = Vec::new();
        for (table, sql) in INTERNAL_SQL {
            for row in client.query(sql, &[]).unwrap() {
                let values = (0..row.len()).map(|i| row.get::<_, String>(i)).collect();
                out.push((table.to_string(), values));
            }
        }
        out
    })
    .await
    .unwrap()
}

fn internal_rows_sqlite(conn: &rusqlite::Connection) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for (table, sql) in INTERNAL_SQL {
        let mut statement = conn.prepare(sql).unwrap();
        let width = statement.column_count();
        let rows = statement
            .query_map([], |row| {
                (0..width)
                    .map(|i| row.get::<_, String>(i))
                    .collect::<Result<Vec<String>, _>>()
            })
            .unwrap();
        for values in rows {
            out.push((table.to_string(), values.unwrap()));
        }
    }
    out
}
