//! PostgreSQL itself crashes under write load: a private cluster (its own `initdb`, port
//! and socket dir, never the shared server) is stopped with `pg_ctl stop -m immediate`
//! while two `basalt serve` nodes write to it, stays down for a while, and is started
//! again on the same port (crash recovery replays the WAL). Requests in the gap get 503
//! in PocketBase's error shape and nothing else; afterwards every acknowledged create is
//! in the database, both nodes serve again without a restart, and the peer link between
//! them is back.
//!
//! The cluster runs as the `postgres` OS user when the test runs as root (initdb refuses
//! root), through `runuser`; binaries from the newest `/usr/lib/postgresql/*/bin`. A
//! missing binary or a failing `initdb` fails the test.
//!
//! Checked by hand that it can fail: without the restart the writers' last writes are
//! 503s; with `synchronous_commit = off` (and a slow WAL writer) in the cluster's
//! config it found acknowledged writes missing after the crash.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value as Json, json};

use crate::realtime::Sse;
use crate::support::{TestApp, Who, remove_dir, temp_dir, upsert_superuser_on};

/// The newest `/usr/lib/postgresql/<version>/bin` that has `initdb`.
fn pg_bin_dir() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries under /usr/lib/postgresql (apt-get install postgresql)")
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, bin)| bin)
        .expect("no /usr/lib/postgresql/*/bin/initdb (apt-get install postgresql)")
}

/// Whether this process runs as root (the owner of `/proc/self` is its effective uid).
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A free loopback port (free when asked; PostgreSQL binds it moments later).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A PostgreSQL cluster of its own in a temp dir, on a loopback port; stopped
/// (immediately) and removed on drop, its log printed first when the test panicked.
pub(crate) struct PrivatePg {
    bin: PathBuf,
    root: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl PrivatePg {
    /// `initdb` (trust auth, `fsync` and `synchronous_commit` on) and start.
    pub(crate) fn start() -> PrivatePg {
        let root = temp_dir();
        std::fs::create_dir_all(root.join("sock")).expect("socket dir");
        let mut pg = PrivatePg {
            bin: pg_bin_dir(),
            root,
            port: 0,
            as_postgres: running_as_root(),
        };
        if pg.as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&pg.root)
                .status()
                .expect("running chown");
            assert!(status.success(), "chown of {} failed", pg.root.display());
        }
        let out = pg
            .command("initdb")
            .arg("-D")
            .arg(pg.data())
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"])
            .output()
            .expect("running initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // Another process can take the port between asking and binding: a few tries.
        for attempt in 0.. {
            pg.port = free_port();
            let conf = format!(
                "\n# basalt pg_fault test\nport = {}\nlisten_addresses = '127.0.0.1'\n\
                 unix_socket_directories = '{}'\nfsync = on\nsynchronous_commit = on\n\
                 full_page_writes = on\nmax_connections = 60\nshared_buffers = 32MB\n",
                pg.port,
                pg.root.join("sock").display()
            );
            use std::io::Write;
            std::fs::OpenOptions::new()
                .append(true)
                .open(pg.data().join("postgresql.conf"))
                .and_then(|mut f| f.write_all(conf.as_bytes()))
                .expect("writing postgresql.conf");
            if pg.try_pg_ctl_start() {
                break;
            }
            assert!(
                attempt < 3,
                "the private cluster did not start:\n{}",
                pg.log()
            );
        }
        pg
    }

    fn data(&self) -> PathBuf {
        self.root.join("pgdata")
    }

    /// A command for one of the server binaries, as `postgres` when we are root.
    fn command(&self, name: &str) -> Command {
        let program = self.bin.join(name);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    fn pg_ctl(&self, args: &[&str]) -> std::process::Output {
        self.command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.root.join("pg.log"))
            .args(args)
            .output()
            .expect("running pg_ctl")
    }

    fn try_pg_ctl_start(&self) -> bool {
        self.pg_ctl(&["-w", "-t", "20", "start"]).status.success()
    }

    /// `pg_ctl start` on the same data dir and port; waits until it accepts connections.
    pub(crate) fn start_again(&self) {
        assert!(
            self.try_pg_ctl_start(),
            "pg_ctl start failed:\n{}",
            self.log()
        );
    }

    /// `pg_ctl stop -m immediate`: every backend is killed, nothing is checkpointed.
    pub(crate) fn stop_immediate(&self) {
        let out = self.pg_ctl(&["-w", "stop", "-m", "immediate"]);
        assert!(
            out.status.success(),
            "pg_ctl stop failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    /// `postgres://postgres@127.0.0.1:PORT/<db>`.
    pub(crate) fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// The server log so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("pg.log")).unwrap_or_default()
    }

    /// Runs `f` on a connection to `db` on another thread (the sync driver must not
    /// block the runtime).
    pub(crate) async fn sql<T: Send + 'static>(
        &self,
        db: &str,
        f: impl FnOnce(&mut postgres::Client) -> T + Send + 'static,
    ) -> T {
        let url = self.url(db);
        tokio::task::spawn_blocking(move || {
            let mut client = postgres::Client::connect(&url, postgres::NoTls)
                .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
            f(&mut client)
        })
        .await
        .expect("sql thread")
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            eprintln!("--- private postgres log ---\n{}", tail.join("\n"));
        }
        let _ = self.pg_ctl(&["-w", "stop", "-m", "immediate"]);
        remove_dir(&self.root);
    }
}

/// One write's outcome: the record id when acknowledged (2xx), else the status (0 = no
/// answer) and body; and when it was answered.
type Outcome = (Result<String, (u16, Json)>, Instant);

/// Creates `items` records through the nodes in turn until `stop`.
async fn writer(
    nodes: Arc<Vec<TestApp>>,
    w: usize,
    stop: Arc<AtomicBool>,
    counter: Arc<AtomicU64>,
) -> Vec<Outcome> {
    let mut out = Vec::new();
    let mut i = w;
    while !stop.load(Ordering::Acquire) {
        let node = &nodes[i % nodes.len()];
        i += 1;
        let n = counter.fetch_add(1, Ordering::Relaxed);
        let sent = node
            .builder(
                Method::POST,
                "/api/collections/items/records",
                &Who::Superuser,
            )
            .header("content-type", "application/json")
            .body(json!({"n": n}).to_string())
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        let result = match sent {
            Ok(res) => {
                let status = res.status().as_u16();
                let body: Json = res.json().await.unwrap_or(Json::Null);
                if (200..300).contains(&status) {
                    Ok(body["id"].as_str().expect("an id").to_owned())
                } else {
                    Err((status, body))
                }
            }
            Err(_) => Err((0, Json::Null)),
        };
        let failed = result.is_err();
        out.push((result, Instant::now()));
        if failed {
            // A refused write comes back at once; do not spin on it.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    out
}

/// Every `items` id as the superuser sees it through `app`.
async fn listed_ids(app: &TestApp) -> std::collections::HashSet<String> {
    let mut ids = std::collections::HashSet::new();
    for page in 1.. {
        let body = app
            .expect(
                200,
                Method::GET,
                &format!("/api/collections/items/records?perPage=1000&page={page}&skipTotal=1"),
                &Who::Superuser,
                None,
            )
            .await;
        let items = body["items"].as_array().expect("items").clone();
        ids.extend(
            items
                .iter()
                .map(|r| r["id"].as_str().expect("id").to_owned()),
        );
        if items.len() < 1000 {
            break;
        }
    }
    ids
}

/// Waits until a create through `from` reaches a subscriber of `to` (the peer link).
async fn event_crosses(from: &TestApp, to: &TestApp, within: Duration) -> Duration {
    let mut sse = Sse::connect(&to.base).await;
    sse.subscribe(to, &Who::Superuser, &["items".to_owned()])
        .await;
    let start = Instant::now();
    loop {
        let record = from
            .expect(
                200,
                Method::POST,
                "/api/collections/items/records",
                &Who::Superuser,
                Some(json!({"n": -1})),
            )
            .await;
        let got = sse.next(Duration::from_millis(300)).await;
        if got.is_some_and(|e| e.data["record"]["id"] == record["id"]) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "no realtime event from {} to {} within {within:?}",
            from.base,
            to.base
        );
    }
}

#[tokio::test]
async fn postgres_stopped_immediately_and_restarted_under_write_load_loses_no_acknowledged_write() {
    let started = Instant::now();
    let pg = PrivatePg::start();
    let db = "basalt";
    pg.sql("postgres", move |c| {
        c.batch_execute(&format!("CREATE DATABASE {db}"))
    })
    .await
    .expect("create database");
    let url = pg.url(db);
    // The nodes log in their superuser on start: create it on the database first.
    upsert_superuser_on(&url);
    let a = TestApp::spawn_with(&["--db", &url]).await;
    let b = TestApp::spawn_with(&["--db", &url]).await;
    a.create_collection(json!({"name": "items", "fields": [{"name": "n", "type": "number"}]}))
        .await;
    // Node b learns of the collection through the peer link.
    let deadline = Instant::now() + Duration::from_secs(5);
    while b
        .request(
            Method::GET,
            "/api/collections/items/records?perPage=1",
            &Who::Superuser,
            None,
        )
        .await
        .0
        != 200
    {
        assert!(Instant::now() < deadline, "node b never saw items");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let setup = started.elapsed();

    let nodes = Arc::new(vec![a, b]);
    let stop = Arc::new(AtomicBool::new(false));
    let counter = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..8)
        .map(|w| tokio::spawn(writer(nodes.clone(), w, stop.clone(), counter.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let stopping = Instant::now();
    pg.stop_immediate();
    let stopped_at = Instant::now();
    let stop_took = stopped_at - stopping;
    // While it is down, a signed-in read is a 503 too (its token cannot be checked).
    for node in nodes.iter() {
        let (status, body) = node
            .request(
                Method::GET,
                "/api/collections/items/records",
                &Who::Superuser,
                None,
            )
            .await;
        assert_eq!(
            (status, &body["status"], &body["data"]),
            (503, &json!(503), &json!({})),
            "{} while postgres is down: {body}",
            node.base
        );
    }
    tokio::time::sleep(Duration::from_millis(1500).saturating_sub(stopped_at.elapsed())).await;
    let starting = Instant::now();
    pg.start_again();
    let restarted_at = Instant::now();
    let start_took = restarted_at - starting;
    let down = restarted_at - stopped_at;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    stop.store(true, Ordering::Release);

    let mut acked = Vec::new();
    let mut failed = Vec::new();
    let mut acked_after_restart = 0;
    for writer in writers {
        let outcomes = writer.await.expect("writer task");
        // Each writer's last write (well after the restart) was acknowledged: both nodes
        // recovered by themselves.
        let last = outcomes.last().expect("a writer wrote");
        assert!(
            last.0.is_ok(),
            "a writer's last write failed, {:?} after the restart: {:?}",
            last.1 - restarted_at,
            last.0
        );
        for (result, at) in outcomes {
            match result {
                Ok(id) => {
                    if at > restarted_at {
                        acked_after_restart += 1;
                    }
                    acked.push(id);
                }
                Err(failure) => failed.push((failure, at)),
            }
        }
    }
    assert!(
        !failed.is_empty(),
        "writes were refused while postgres was down"
    );
    for ((status, body), _) in &failed {
        assert_eq!(*status, 503, "only 503s while postgres is down: {body}");
        assert_eq!(body["status"], 503, "{body}");
        assert_eq!(body["data"], json!({}), "{body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
    }
    assert!(
        acked_after_restart >= 20,
        "writes went on after the restart: {acked_after_restart}"
    );

    // Every acknowledged create is there: in the table, and listed through both nodes.
    let stored: std::collections::HashSet<String> = pg
        .sql(db, |c| {
            c.query("SELECT id FROM items", &[])
                .expect("select ids")
                .iter()
                .map(|row| row.get::<_, String>(0))
                .collect()
        })
        .await;
    let missing: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes are missing after the crash: {missing:?}",
        missing.len(),
        acked.len()
    );
    // Writes cut off by the crash may have committed without an answer, no more.
    assert!(stored.len() <= acked.len() + failed.len());
    for node in nodes.iter() {
        assert_eq!(
            listed_ids(node).await,
            stored,
            "{} lists every row",
            node.base
        );
    }

    // The peer link reconnected both ways: a create through one node reaches a
    // subscriber on the other.
    let ab = event_crosses(&nodes[0], &nodes[1], Duration::from_secs(5)).await;
    let ba = event_crosses(&nodes[1], &nodes[0], Duration::from_secs(5)).await;
    // A schema change made through one node after the restart is enforced on the other.
    nodes[1]
        .expect(
            200,
            Method::PATCH,
            "/api/collections/items",
            &Who::Superuser,
            Some(json!({"listRule": ""})),
        )
        .await;
    let deadline = Instant::now() + Duration::from_secs(2);
    while nodes[0]
        .request(
            Method::GET,
            "/api/collections/items/records",
            &Who::Guest,
            None,
        )
        .await
        .0
        != 200
    {
        assert!(
            Instant::now() < deadline,
            "rule change did not reach node a"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "pg_fault: setup {setup:?}, postgres down {down:?} (stop {stop_took:?}, start with \
         recovery {start_took:?}); {} writes acknowledged \
         ({acked_after_restart} after the restart), {} answered 503; all {} rows present; \
         events a->b {ab:?}, b->a {ba:?} after the restart; total {:?}",
        acked.len(),
        failed.len(),
        stored.len(),
        started.elapsed()
    );
}
