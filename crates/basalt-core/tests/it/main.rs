//! Service-level tests on real storage: every test runs on SQLite (a temp file) and on
//! PostgreSQL (a fresh database on loopback, dropped afterwards).

use std::sync::Arc;

use basalt_core::{App, AppConfig, Auth, ListParams, RequestInfo};
use basalt_store::Store;
use serde_json::{Map, Value as Json};

mod auth_flows;
mod batch;
mod concurrency;
mod expand;
mod realtime;
mod views;

/// A backend for one test; cleans up on drop.
pub(crate) enum Backend {
    Sqlite(std::path::PathBuf),
    Postgres { admin: String, name: String },
}

impl Drop for Backend {
    fn drop(&mut self) {
        match self {
            Backend::Sqlite(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Backend::Postgres { admin, name } => {
                let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                let _ = admin_sql(admin.clone(), sql);
            }
        }
    }
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{prefix}_{}_{nanos}", std::process::id())
}

pub(crate) fn sqlite() -> (Arc<dyn Store>, Backend) {
    let dir = std::env::temp_dir().join(unique("basalt_core_it"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let store = basalt_store_sqlite::SqliteStore::open(&dir.join("data.db"), Default::default())
        .expect("open sqlite");
    (Arc::new(store), Backend::Sqlite(dir))
}

/// Runs one admin statement on its own thread (the sync driver starts its own runtime,
/// which cannot nest inside the test's).
fn admin_sql(admin: String, sql: String) -> Result<(), String> {
    std::thread::spawn(move || {
        let mut client =
            postgres::Client::connect(&admin, postgres::NoTls).map_err(|e| e.to_string())?;
        client.batch_execute(&sql).map_err(|e| e.to_string())
    })
    .join()
    .map_err(|_| "admin thread panicked".to_string())?
}

pub(crate) fn postgres() -> (Arc<dyn Store>, Backend) {
    let admin = std::env::var("BASALT_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let name = unique("basalt_core_it");
    admin_sql(admin.clone(), format!("CREATE DATABASE {name}"))
        .expect("create a test database on loopback PostgreSQL");
    let base = admin
        .rsplit_once('/')
        .map(|(base, _)| base.to_string())
        .unwrap_or(admin.clone());
    let store =
        basalt_store_postgres::PgStore::connect(&format!("{base}/{name}"), Default::default())
            .expect("open postgres");
    (Arc::new(store), Backend::Postgres { admin, name })
}

/// An app plus a superuser caller.
pub(crate) struct Harness {
    pub(crate) app: App,
    pub(crate) superuser: RequestInfo,
}

/// Opens the app; the returned `Backend` must outlive the test body (the macro keeps it:
/// an `async move` body may capture only some fields of a harness and drop the rest early).
pub(crate) async fn harness((store, backend): (Arc<dyn Store>, Backend)) -> (Harness, Backend) {
    let app = App::open(store, AppConfig::default())
        .await
        .expect("open app");
    app.superuser_upsert("root@example.com", "pass123456")
        .await
        .expect("superuser");
    let collection = app.collection("_superusers").expect("superusers");
    let result = app
        .auth_with_password(collection, "root@example.com", "pass123456", None, None)
        .await
        .expect("login");
    let superuser = RequestInfo {
        auth: Some(result.auth),
        method: "POST".into(),
        ..RequestInfo::default()
    };
    (Harness { app, superuser }, backend)
}

pub(crate) fn body(value: Json) -> Map<String, Json> {
    match value {
        Json::Object(map) => map,
        _ => Map::new(),
    }
}

#[allow(dead_code)]
pub(crate) fn guest() -> RequestInfo {
    RequestInfo::default()
}

#[allow(dead_code)]
pub(crate) fn as_user(auth: Auth) -> RequestInfo {
    RequestInfo {
        auth: Some(auth),
        ..RequestInfo::default()
    }
}

#[allow(dead_code)]
pub(crate) fn all() -> ListParams {
    ListParams {
        page: 1,
        per_page: 1000,
        ..ListParams::default()
    }
}

/// Runs an async test body once per backend.
macro_rules! on_both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let (harness, backend) = crate::harness(crate::sqlite()).await;
                ($body)(harness).await;
                drop(backend);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let (harness, backend) = crate::harness(crate::postgres()).await;
                ($body)(harness).await;
                drop(backend);
            }
        }
    };
}
pub(crate) use on_both_backends;
