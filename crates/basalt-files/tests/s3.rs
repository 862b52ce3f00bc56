//! The S3 backend against a real S3-compatible server: moto in server mode, started on
//! loopback by these tests (`python3 -m pip install 'moto[server]'`; scripts/test.sh
//! installs it). Each test uses its own bucket.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use basalt_files::{Decision, FileError, Meta, Payload, S3Config, Storage};
use bytes::Bytes;
use futures_util::StreamExt;

/// Runs moto's server and exits when its standard input closes, which happens when
/// the test process ends however it ends, so no server outlives the tests.
const MOTO: &str = r#"
import os, sys, threading
def watch():
    sys.stdin.buffer.read()
    os._exit(0)
threading.Thread(target=watch, daemon=True).start()
from moto.server import main
main(["-H", "127.0.0.1", "-p", sys.argv[1]])
"#;

struct Moto {
    port: u16,
    // Held so the pipe to its standard input stays open while the tests run.
    _child: Mutex<Child>,
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

/// Sends one unsigned HTTP/1.1 request and returns the response's status code.
fn http(port: u16, method: &str, path: &str) -> std::io::Result<u16> {
    let body = b"";
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {response:?}")))
}

fn moto() -> &'static Moto {
    static MOTO_SERVER: OnceLock<Moto> = OnceLock::new();
    MOTO_SERVER.get_or_init(|| {
        let import = Command::new("python3")
            .args(["-c", "import moto.server"])
            .output()
            .expect("python3 must be installed to run the S3 tests");
        assert!(
            import.status.success(),
            "moto is not importable, so the S3 backend cannot be tested: install it with \
             `python3 -m pip install 'moto[server]'` (scripts/test.sh does). {}",
            String::from_utf8_lossy(&import.stderr)
        );
        let port = free_port();
        let log = std::env::temp_dir().join(format!("basalt-moto-{port}.log"));
        let mut child = Command::new("python3")
            .args(["-c", MOTO, &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("moto log file"))
            .spawn()
            .expect("start moto");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().expect("moto status") {
                panic!(
                    "moto exited ({status}) before serving: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            if http(port, "GET", "/").is_ok_and(|status| status == 200) {
                break;
            }
            assert!(Instant::now() < deadline, "moto did not start within 60s");
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto {
            port,
            _child: Mutex::new(child),
        }
    })
}

fn config(port: u16, bucket: &str) -> S3Config {
    S3Config {
        enabled: true,
        bucket: bucket.to_string(),
        region: "us-east-1".to_string(),
        endpoint: format!("http://127.0.0.1:{port}"),
        access_key: "test-key".to_string(),
        secret: "test-secret".to_string(),
        force_path_style: true,
    }
}

/// A storage over a fresh, empty bucket on the shared moto server.
fn bucket(name: &str) -> Storage {
    let moto = moto();
    let status = http(moto.port, "PUT", &format!("/{name}")).expect("create bucket");
    assert_eq!(status, 200, "create bucket {name}");
    Storage::s3(&config(moto.port, name)).expect("s3 storage")
}

async fn keys(storage: &Storage, prefix: &str) -> Vec<String> {
    let mut keys: Vec<String> = storage
        .list(prefix)
        .await
        .expect("list")
        .into_iter()
        .map(|entry| entry.key)
        .collect();
    keys.sort();
    keys
}

async fn drain(body: Payload) -> Vec<u8> {
    match body {
        Payload::Bytes(bytes) => bytes.to_vec(),
        Payload::Stream(mut stream) => {
            let mut out = Vec::new();
            while let Some(chunk) = stream.next().await {
                out.extend_from_slice(&chunk.expect("chunk"));
            }
            out
        }
    }
}

/// Opens `key` with a fixed decision and returns what `decide` was shown too.
async fn open(
    storage: &Storage,
    key: &str,
    decision: Decision,
) -> Option<(basalt_files::Opened, Meta)> {
    let seen = Arc::new(Mutex::new(None));
    let record = Arc::clone(&seen);
    let opened = storage
        .open(key, move |meta| {
            *record.lock().expect("lock") = Some(meta.clone());
            decision
        })
        .await
        .expect("open")?;
    let shown = seen
        .lock()
        .expect("lock")
        .take()
        .expect("decide was called");
    Some((opened, shown))
}

#[tokio::test]
async fn put_get_exists_delete() {
    let storage = bucket("round-trip");
    storage
        .put("c/r/a.txt", Bytes::from_static(b"0123456789"))
        .await
        .expect("put");
    assert!(storage.exists("c/r/a.txt").await.expect("exists"));
    assert!(!storage.exists("c/r/b.txt").await.expect("exists"));
    assert!(!storage.exists("c/r").await.expect("a folder is no file"));
    assert_eq!(
        storage.get("c/r/a.txt").await.expect("get").as_deref(),
        Some(&b"0123456789"[..])
    );
    assert!(storage.get("c/r/b.txt").await.expect("get").is_none());

    // A put replaces the object.
    storage
        .put("c/r/a.txt", Bytes::from_static(b"new"))
        .await
        .expect("replace");
    assert_eq!(
        storage.get("c/r/a.txt").await.expect("get").as_deref(),
        Some(&b"new"[..])
    );

    storage.delete("c/r/a.txt").await.expect("delete");
    assert!(!storage.exists("c/r/a.txt").await.expect("exists"));
    assert!(storage.get("c/r/a.txt").await.expect("get").is_none());
    storage.delete("c/r/a.txt").await.expect("delete twice");
    assert!(keys(&storage, "").await.is_empty());
}

#[tokio::test]
async fn open_full_partial_and_conditional() {
    let storage = bucket("open");
    storage
        .put("c/r/a.txt", Bytes::from_static(b"0123456789"))
        .await
        .expect("put");
    let before = SystemTime::now();

    let (full, meta) = open(&storage, "c/r/a.txt", Decision::Full)
        .await
        .expect("found");
    assert_eq!(meta.size, 10);
    assert!(
        meta.etag.len() > 2 && meta.etag.starts_with('"') && meta.etag.ends_with('"'),
        "a quoted, non-empty etag: {:?}",
        meta.etag
    );
    let age = before
        .duration_since(meta.modified)
        .unwrap_or(Duration::ZERO);
    assert!(
        age < Duration::from_secs(120),
        "Last-Modified is the upload time"
    );
    assert_eq!(full.meta, meta, "the decision saw the returned metadata");
    assert_eq!(full.decision, Decision::Full);
    assert_eq!(&full.head[..], b"0123456789");
    assert_eq!(drain(full.body).await, b"0123456789");

    let (partial, _) = open(
        &storage,
        "c/r/a.txt",
        Decision::Partial { start: 2, end: 4 },
    )
    .await
    .expect("found");
    assert_eq!(&partial.head[..], b"0123456789", "head is always the start");
    assert_eq!(drain(partial.body).await, b"234");

    let (tail, _) = open(
        &storage,
        "c/r/a.txt",
        Decision::Partial { start: 9, end: 9 },
    )
    .await
    .expect("found");
    assert_eq!(drain(tail.body).await, b"9");

    // A 304 answer still sniffs the content type from the head, but sends no body.
    let (not_modified, _) = open(&storage, "c/r/a.txt", Decision::NotModified)
        .await
        .expect("found");
    assert_eq!(&not_modified.head[..], b"0123456789");
    assert!(drain(not_modified.body).await.is_empty());

    // The decision is taken from the real metadata: decide() with the library's rules.
    let etag = meta.etag.clone();
    let opened = storage
        .open("c/r/a.txt", move |meta| {
            let conditions = basalt_files::Conditions {
                if_none_match: Some(&etag),
                ..Default::default()
            };
            basalt_files::decide(meta, &conditions)
        })
        .await
        .expect("open")
        .expect("found");
    assert_eq!(opened.decision, Decision::NotModified);

    // New content, new etag.
    storage
        .put("c/r/a.txt", Bytes::from_static(b"abcdefghij"))
        .await
        .expect("replace");
    let (_, changed) = open(&storage, "c/r/a.txt", Decision::NotModified)
        .await
        .expect("found");
    assert_ne!(changed.etag, meta.etag);
    assert_eq!(changed.size, 10);

    // An empty file and a missing one.
    storage
        .put("c/r/empty.txt", Bytes::new())
        .await
        .expect("put");
    let (empty, meta) = open(&storage, "c/r/empty.txt", Decision::Full)
        .await
        .expect("found");
    assert_eq!(meta.size, 0);
    assert!(empty.head.is_empty());
    assert!(drain(empty.body).await.is_empty());
    assert!(
        storage
            .open("c/r/missing.txt", |_| Decision::Full)
            .await
            .expect("open")
            .is_none()
    );
}

/// Runs `job` on another thread with its own runtime and waits for it: lets a `decide`
/// callback, which runs between the HEAD and the GET, change the bucket.
fn meanwhile<T: Send + 'static>(job: impl std::future::Future<Output = T> + Send + 'static) -> T {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(job)
    })
    .join()
    .expect("the job ran")
}

#[tokio::test]
async fn open_never_mixes_versions() {
    let storage = bucket("races");
    storage
        .put("c/r/a.txt", Bytes::from_static(b"first version"))
        .await
        .expect("put");

    // Replaced between the HEAD and the GET: the new bytes must not be sent under the
    // old version's size and etag.
    let other = storage.clone();
    let opened = storage
        .open("c/r/a.txt", move |_| {
            meanwhile(async move {
                other
                    .put("c/r/a.txt", Bytes::from_static(b"second, longer version"))
                    .await
            })
            .expect("replace");
            Decision::Full
        })
        .await;
    assert!(
        matches!(opened, Err(FileError::Io(_))),
        "a replaced object is refused, got {:?}",
        opened.map(|o| o.map(|o| o.meta))
    );
    assert_eq!(
        storage.get("c/r/a.txt").await.expect("get").as_deref(),
        Some(&b"second, longer version"[..]),
        "the replacement really happened"
    );

    // Deleted between the HEAD and the GET: not found.
    let other = storage.clone();
    let opened = storage
        .open("c/r/a.txt", move |_| {
            meanwhile(async move { other.delete("c/r/a.txt").await }).expect("delete");
            Decision::Partial { start: 1, end: 2 }
        })
        .await
        .expect("open");
    assert!(opened.is_none(), "a deleted object is not found");
}

#[tokio::test]
async fn large_bodies_stream() {
    let storage = bucket("large");
    let data: Vec<u8> = (0..(3u32 << 20)).map(|i| (i % 251) as u8).collect();
    storage
        .put("c/r/big.bin", Bytes::from(data.clone()))
        .await
        .expect("put");

    let (partial, meta) = open(
        &storage,
        "c/r/big.bin",
        Decision::Partial {
            start: 5,
            end: (2 << 20) + 4,
        },
    )
    .await
    .expect("found");
    assert_eq!(meta.size, 3 << 20);
    assert_eq!(partial.head.len(), basalt_files::SNIFF_LEN);
    assert_eq!(&partial.head[..], &data[..basalt_files::SNIFF_LEN]);
    assert!(
        matches!(partial.body, Payload::Stream(_)),
        "large ranges stream"
    );
    assert_eq!(drain(partial.body).await, &data[5..(2 << 20) + 5]);

    let (full, _) = open(&storage, "c/r/big.bin", Decision::Full)
        .await
        .expect("found");
    assert_eq!(&full.head[..], &data[..basalt_files::SNIFF_LEN]);
    assert!(
        matches!(full.body, Payload::Stream(_)),
        "large files stream"
    );
    assert_eq!(drain(full.body).await, data);
}

#[tokio::test]
async fn list_and_delete_prefix() {
    let storage = bucket("prefixes");
    let all = [
        "c/r/a.txt",
        "c/r/thumbs_a.txt/10x10_a.txt",
        "c/r2/b.txt",
        "c/rr/e.txt",
        "cx/r/d.txt",
    ];
    for key in all {
        storage
            .put(key, Bytes::from(key.as_bytes().to_vec()))
            .await
            .expect("put");
    }
    // Keys are relative to the storage root, as the local backend lists them.
    assert_eq!(keys(&storage, "").await, all);
    assert_eq!(
        keys(&storage, "c/r").await,
        ["c/r/a.txt", "c/r/thumbs_a.txt/10x10_a.txt"],
        "a prefix is a whole folder: c/r is not c/rr or c/r2"
    );
    assert_eq!(
        keys(&storage, "c/r/thumbs_a.txt").await,
        ["c/r/thumbs_a.txt/10x10_a.txt"]
    );
    assert!(keys(&storage, "nothing").await.is_empty());
    let entries = storage.list("").await.expect("list");
    let now = SystemTime::now();
    for entry in entries {
        let age = now.duration_since(entry.modified).unwrap_or(Duration::ZERO);
        assert!(age < Duration::from_secs(120), "{entry:?}");
    }

    storage
        .delete_prefix("c/r/thumbs_a.txt")
        .await
        .expect("delete thumbs");
    assert_eq!(
        keys(&storage, "").await,
        ["c/r/a.txt", "c/r2/b.txt", "c/rr/e.txt", "cx/r/d.txt"]
    );
    storage.delete_prefix("c/r").await.expect("delete record");
    assert_eq!(
        keys(&storage, "").await,
        ["c/r2/b.txt", "c/rr/e.txt", "cx/r/d.txt"]
    );
    storage.delete_prefix("c").await.expect("delete collection");
    assert_eq!(keys(&storage, "").await, ["cx/r/d.txt"]);
    storage
        .delete_prefix("missing")
        .await
        .expect("a missing prefix is fine");
    assert_eq!(keys(&storage, "").await, ["cx/r/d.txt"]);
}

const BAD_KEYS: [&str; 8] = [
    "", "../x", "c/../x", "/c/r/a", "c//a", "c/r/a b", "c/r/a%2f", "c/r/..",
];

/// Expects `FileError::InvalidKey` at once; a call that goes to the network instead
/// either fails otherwise or, against a silent listener, runs into the time limit.
async fn refused(
    what: &str,
    key: &str,
    call: impl std::future::Future<Output = Result<(), FileError>>,
) {
    match tokio::time::timeout(Duration::from_secs(5), call).await {
        Ok(Err(FileError::InvalidKey)) => {}
        Ok(other) => panic!("{what}({key:?}) was not refused: {other:?}"),
        Err(_) => panic!("{what}({key:?}) was not refused: it waited on the network"),
    }
}

async fn refuses(storage: &Storage, key: &'static str) {
    let put = storage.put(key, Bytes::from_static(b"x"));
    refused("put", key, put).await;
    refused("get", key, async { storage.get(key).await.map(drop) }).await;
    refused("exists", key, async { storage.exists(key).await.map(drop) }).await;
    let open = async {
        let opened = storage.open(key, |_| Decision::Full).await?;
        drop(opened.map(|o| o.meta));
        Ok(())
    };
    refused("open", key, open).await;
    refused("delete", key, storage.delete(key)).await;
    refused("delete_prefix", key, storage.delete_prefix(key)).await;
    if !key.is_empty() {
        refused("list", key, async { storage.list(key).await.map(drop) }).await;
    }
}

#[tokio::test]
async fn invalid_keys_never_reach_the_server() {
    // A listener that records whether anything connects to it.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let storage = Storage::s3(&config(port, "files")).expect("s3 storage");
    for key in BAD_KEYS {
        refuses(&storage, key).await;
    }
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "an invalid key caused a connection"
    );
    // The control: a valid key does reach it (the request then times out unanswered).
    let _ = tokio::time::timeout(Duration::from_secs(2), storage.exists("c/r/a.txt")).await;
    assert!(
        listener.accept().is_ok(),
        "a valid key should have connected"
    );

    // And against the real server: refused, nothing written.
    let storage = bucket("invalid-keys");
    for key in BAD_KEYS {
        refuses(&storage, key).await;
    }
    assert!(keys(&storage, "").await.is_empty());
}

#[tokio::test]
async fn check_reaches_the_bucket() {
    let storage = bucket("checked");
    storage.check().await.expect("the bucket is reachable");
    assert!(
        keys(&storage, "").await.is_empty(),
        "the probe is removed again"
    );

    let missing = Storage::s3(&config(moto().port, "no-such-bucket")).expect("s3 storage");
    let error = missing.check().await.expect_err("a missing bucket fails");
    assert!(matches!(error, FileError::Remote(_)), "{error:?}");

    // Nothing listening at all.
    let closed = Storage::s3(&config(free_port(), "checked")).expect("s3 storage");
    assert!(closed.check().await.is_err());
}
