//! Ceiling probe: `ceiling ADDR DB_PATH`.
//! GET  /api/collections/posts/records/{id}  point read by primary key -> record JSON
//! POST /api/collections/posts/records       insert; one writer thread commits every queued
//!                                           insert in one transaction (WAL, synchronous=FULL)
use axum::{Json, Router, extract::Path, http::StatusCode, routing::{get, post}};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};
use std::{cell::RefCell, sync::mpsc, time::{SystemTime, UNIX_EPOCH}};
use tokio::sync::oneshot;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Job = (Value, oneshot::Sender<Result<Value, String>>);
static DB: std::sync::OnceLock<String> = std::sync::OnceLock::new();
static TX: std::sync::OnceLock<mpsc::Sender<Job>> = std::sync::OnceLock::new();
thread_local! { static CONN: RefCell<Option<Connection>> = const { RefCell::new(None) }; }

fn open() -> Connection {
    let c = Connection::open(DB.get().unwrap()).unwrap();
    c.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000;").unwrap();
    c
}

fn row_json(r: &rusqlite::Row) -> rusqlite::Result<Value> {
    Ok(json!({"collectionId": "pbc_ceiling", "collectionName": "posts",
        "id": r.get::<_, String>(0)?, "title": r.get::<_, String>(1)?, "body": r.get::<_, String>(2)?,
        "views": r.get::<_, f64>(3)?, "published": r.get::<_, bool>(4)?, "author": r.get::<_, String>(5)?,
        "created": r.get::<_, String>(6)?, "updated": r.get::<_, String>(7)?}))
}

async fn view(Path(id): Path<String>) -> Result<Json<Value>, StatusCode> {
    CONN.with(|c| {
        let mut c = c.borrow_mut();
        let c = c.get_or_insert_with(open);
        let mut st = c.prepare_cached("SELECT id,title,body,views,published,author,created,updated FROM posts WHERE id=?1").unwrap();
        st.query_row([&id], row_json).optional().unwrap()
    }).map(Json).ok_or(StatusCode::NOT_FOUND)
}

async fn create(Json(v): Json<Value>) -> Result<Json<Value>, (StatusCode, String)> {
    let (tx, rx) = oneshot::channel();
    TX.get().unwrap().send((v, tx)).unwrap();
    rx.await.unwrap().map(Json).map_err(|e| (StatusCode::BAD_REQUEST, e))
}

fn insert(c: &Connection, v: &Value, now: &str) -> Result<Value, String> {
    let id = v["id"].as_str().map(str::to_owned).unwrap_or_else(|| {
        format!("{:015x}", SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64 & 0xfff_ffff_ffff_ffff)
    });
    let mut st = c.prepare_cached("INSERT INTO posts VALUES (?1,?2,?3,?4,?5,?6,?7,?7) RETURNING *").map_err(|e| e.to_string())?;
    st.query_row(params![id, v["title"].as_str().unwrap_or(""), v["body"].as_str().unwrap_or(""),
        v["views"].as_f64().unwrap_or(0.0), v["published"].as_bool().unwrap_or(false),
        v["author"].as_str().unwrap_or(""), now], row_json).map_err(|e| e.to_string())
}

fn writer(rx: mpsc::Receiver<Job>) {
    let mut c = open();
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < 1024 { match rx.try_recv() { Ok(j) => batch.push(j), Err(_) => break } }
        let now = format!("{:?}", SystemTime::now());
        let t = c.transaction().unwrap();
        let out: Vec<_> = batch.iter().map(|(v, _)| {
            t.execute_batch("SAVEPOINT j").unwrap();
            let r = insert(&t, v, &now);
            t.execute_batch(if r.is_ok() { "RELEASE j" } else { "ROLLBACK TO j; RELEASE j" }).unwrap();
            r
        }).collect();
        t.commit().unwrap();
        for ((_, reply), r) in batch.into_iter().zip(out) { let _ = reply.send(r); }
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    DB.set(args[2].clone()).unwrap();
    open().execute_batch("CREATE TABLE IF NOT EXISTS posts (id TEXT PRIMARY KEY, title TEXT NOT NULL, body TEXT NOT NULL, views REAL NOT NULL, published BOOLEAN NOT NULL, author TEXT NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL); CREATE INDEX IF NOT EXISTS posts_views ON posts(views);").unwrap();
    let (tx, rx) = mpsc::channel();
    TX.set(tx).unwrap();
    std::thread::spawn(move || writer(rx));
    let app = Router::new()
        .route("/api/collections/posts/records/{id}", get(view))
        .route("/api/collections/posts/records", post(create));
    let l = tokio::net::TcpListener::bind(&args[1]).await.unwrap();
    axum::serve(l, app).await.unwrap();
}
