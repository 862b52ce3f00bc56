//! Several real `basalt serve` processes on one fresh PostgreSQL database acting as one
//! app: realtime events cross nodes (with each subscriber's rules applied on the node it
//! is connected to, deletes included), schema, rule and settings changes are enforced on
//! the other nodes within a bounded poll, tokens work on every node, a SIGKILLed node
//! loses no acknowledged write, and losing the database under write load (every
//! connection terminated, then a second in which it refuses connections) gives only 503s
//! (PocketBase's error shape) until the nodes recover by themselves.
//! One test puts nginx in front as a round-robin load balancer.
//!
//! PostgreSQL: `BASALT_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/test`);
//! each test creates its own database and drops it afterwards. Timings measured here are
//! printed (`cargo nextest run -p basalt-server multinode --no-capture`).

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value as Json, json};

use crate::realtime::{QUIET, Sse, SseEvent};
use crate::support::{SU_EMAIL, SU_PASSWORD, basalt, remove_dir, temp_dir, upsert_superuser_on};

/// How long a change made on one node may take to be enforced on another.
const PROPAGATION: Duration = Duration::from_secs(2);

fn admin_url() -> String {
    std::env::var("BASALT_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// `url` with its database replaced by `name` (URL form only).
fn with_database(url: &str, name: &str) -> String {
    let after_scheme = url.find("://").map_or(0, |at| at + 3);
    let end = url[after_scheme..]
        .find(['/', '?'])
        .map_or(url.len(), |at| after_scheme + at);
    let query = url[end..].find('?').map_or("", |at| &url[end + at..]);
    format!("{}/{name}{query}", &url[..end])
}

/// Runs SQL as the admin on another thread (the sync driver must not block the runtime).
async fn admin_sql<T: Send + 'static>(
    url: String,
    f: impl FnOnce(&mut postgres::Client) -> T + Send + 'static,
) -> T {
    tokio::task::spawn_blocking(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("admin connect");
        f(&mut client)
    })
    .await
    .expect("admin thread")
}

/// A database created for one test, dropped (forcibly) on drop.
pub(crate) struct TestDb {
    name: String,
    pub(crate) url: String,
}

impl TestDb {
    pub(crate) async fn create() -> TestDb {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!("basalt_mn_{}_{nanos}", std::process::id());
        let sql = format!("CREATE DATABASE {name}");
        admin_sql(admin_url(), move |c| c.batch_execute(&sql))
            .await
            .expect("create the test database");
        TestDb {
            url: with_database(&admin_url(), &name),
            name,
        }
    }

    /// Runs a query on the test database and returns the first column of the first row.
    async fn scalar(&self, sql: &str) -> i64 {
        let sql = sql.to_owned();
        admin_sql(self.url.clone(), move |c| {
            c.query_one(&sql, &[]).expect("query").get::<_, i64>(0)
        })
        .await
    }

    /// Lets the database accept connections again, or not (`ALLOW_CONNECTIONS`): with
    /// `false` and [`TestDb::terminate_backends`], this database is down for its nodes
    /// while the shared server keeps serving every other test.
    async fn allow_connections(&self, allow: bool) {
        let sql = format!(
            "ALTER DATABASE {} WITH ALLOW_CONNECTIONS {allow}",
            self.name
        );
        admin_sql(admin_url(), move |c| c.batch_execute(&sql))
            .await
            .expect("alter database");
    }

    /// Terminates every server backend connected to this database (but nothing else on
    /// the shared server); returns how many.
    async fn terminate_backends(&self) -> i64 {
        let name = self.name.clone();
        admin_sql(admin_url(), move |c| {
            c.query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&name],
            )
            .expect("terminate")
            .get::<_, i64>(0)
        })
        .await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let url = admin_url();
        // Drop may run inside the runtime: use a plain thread.
        let _ = std::thread::spawn(move || {
            if let Ok(mut admin) = postgres::Client::connect(&url, postgres::NoTls) {
                let _ = admin.batch_execute(&sql);
            }
        })
        .join();
    }
}

/// One `basalt serve --db <test db>` process on 127.0.0.1:0.
struct Node {
    base: String,
    log: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn spawn(url: &str, log: PathBuf) -> (Child, std::sync::mpsc::Receiver<String>) {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let mut child = basalt()
            .args(["serve", "--http", "127.0.0.1:0", "--db", url])
            .env("BASALT_LOG", "info,basalt_store_postgres=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(file))
            .spawn()
            .expect("spawning basalt serve");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sender = Some(sender);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("Server started at http://")
                    && let Some(sender) = sender.take()
                {
                    let _ = sender.send(rest.trim().to_owned());
                }
            }
        });
        (child, receiver)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `n` nodes on one fresh database, a superuser, and a client.
struct Cluster {
    nodes: Vec<Node>,
    db: TestDb,
    dir: PathBuf,
    client: reqwest::Client,
    su: String,
}

impl Cluster {
    /// Starts `n` nodes at once on a fresh database (their first starts race on the
    /// bootstrap), then creates the superuser with the CLI and logs in on node 0.
    async fn start(n: usize) -> Cluster {
        let db = TestDb::create().await;
        let dir = temp_dir();
        let spawned: Vec<_> = (0..n)
            .map(|i| Node::spawn(&db.url, dir.join(format!("node{i}.log"))))
            .collect();
        let mut nodes = Vec::new();
        for (i, (child, started)) in spawned.into_iter().enumerate() {
            let log = dir.join(format!("node{i}.log"));
            let addr = started.recv_timeout(Duration::from_secs(20));
            let mut node = Node {
                base: String::new(),
                log,
                child: Some(child),
            };
            match addr {
                Ok(addr) => node.base = format!("http://{addr}"),
                Err(_) => panic!("node {i} did not start:\n{}", node.log()),
            }
            nodes.push(node);
        }
        upsert_superuser_on(&db.url);
        let mut cluster = Cluster {
            nodes,
            db,
            dir,
            client: reqwest::Client::new(),
            su: String::new(),
        };
        cluster.su = cluster.login(0, "_superusers", SU_EMAIL, SU_PASSWORD).await;
        cluster
    }

    fn base(&self, node: usize) -> &str {
        &self.nodes[node].base
    }

    /// A request to `base`; status and JSON body (`Null` when empty).
    async fn call(
        &self,
        base: &str,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Json>,
    ) -> Result<(u16, Json, reqwest::header::HeaderMap), reqwest::Error> {
        let mut request = self.client.request(method, format!("{base}{path}"));
        if let Some(token) = token {
            request = request.header("authorization", token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await?;
        let json = if bytes.is_empty() {
            Json::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Json::Null)
        };
        Ok((status, json, headers))
    }

    /// A request to node `node`; panics on a transport error.
    async fn req(
        &self,
        node: usize,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Json>,
    ) -> (u16, Json) {
        let (status, json, _) = self
            .call(self.base(node), method.clone(), path, token, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path} on node {node}: {e}"));
        (status, json)
    }

    /// Like [`Cluster::req`] but panics unless the status is `expected`.
    async fn expect(
        &self,
        expected: u16,
        node: usize,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Json>,
    ) -> Json {
        let (status, json) = self.req(node, method.clone(), path, token, body).await;
        assert_eq!(status, expected, "{method} {path} on node {node}: {json}");
        json
    }

    async fn login(&self, node: usize, collection: &str, email: &str, password: &str) -> String {
        let body = self
            .expect(
                200,
                node,
                Method::POST,
                &format!("/api/collections/{collection}/auth-with-password"),
                None,
                Some(json!({"identity": email, "password": password})),
            )
            .await;
        body["token"].as_str().expect("token").to_owned()
    }

    /// Creates `users` record `<name>@example.com` on `node`; returns its id.
    async fn add_user(&self, node: usize, name: &str) -> String {
        let body = self
            .expect(
                200,
                node,
                Method::POST,
                "/api/collections/users/records",
                Some(&self.su),
                Some(json!({"email": format!("{name}@example.com"),
                    "password": "password-123", "passwordConfirm": "password-123"})),
            )
            .await;
        body["id"].as_str().expect("id").to_owned()
    }

    /// Subscribes an open stream on `node` as `token`; panics unless 204.
    async fn subscribe(&self, node: usize, sse: &Sse, token: Option<&str>, topics: &[&str]) {
        let (status, body) = self
            .req(
                node,
                Method::POST,
                "/api/realtime",
                token,
                Some(json!({"clientId": sse.client_id, "subscriptions": topics})),
            )
            .await;
        assert_eq!(status, 204, "subscribe on node {node}: {body}");
    }

    fn logs(&self) -> String {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, node)| {
                let log = node.log();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                format!("--- node {i} ---\n{}", tail.join("\n"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        remove_dir(&self.dir);
    }
}

/// Polls `check` until it is true or `limit` passes; returns the time it took.
async fn within<F, Fut>(limit: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The next event on `sse`, which must arrive within 5 s.
async fn next_event(sse: &mut Sse, what: &str) -> SseEvent {
    sse.next(Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("no event for {what} within 5 s"))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Creates a collection through `node` and waits (at most [`PROPAGATION`]) until every
/// node serves its records: a schema change reaches the other nodes asynchronously.
async fn create_collection(cluster: &Cluster, node: usize, collection: Json) {
    let name = collection["name"].as_str().expect("name").to_owned();
    cluster
        .expect(
            200,
            node,
            Method::POST,
            "/api/collections",
            Some(&cluster.su),
            Some(collection),
        )
        .await;
    let path = format!("/api/collections/{name}/records");
    let (c, path) = (cluster, path.as_str());
    within(
        PROPAGATION,
        "the new collection on every node",
        || async move {
            let mut ready = true;
            for node in 0..c.nodes.len() {
                ready &= c.req(node, Method::GET, path, Some(&c.su), None).await.0 == 200;
            }
            ready
        },
    )
    .await;
}

async fn users_collection_id(cluster: &Cluster) -> String {
    let users = cluster
        .expect(
            200,
            0,
            Method::GET,
            "/api/collections/users",
            Some(&cluster.su),
            None,
        )
        .await;
    users["id"].as_str().expect("users id").to_owned()
}

#[tokio::test]
async fn realtime_events_cross_nodes_with_the_subscribers_rules() {
    let cluster = Cluster::start(3).await;
    let su = cluster.su.as_str();
    let users = users_collection_id(&cluster).await;
    let owner_only = "owner = @request.auth.id";
    create_collection(
        &cluster,
        0,
        json!({"name": "notes", "listRule": owner_only, "viewRule": owner_only,
            "fields": [{"name": "title", "type": "text", "max": 100000},
                {"name": "owner", "type": "relation", "collectionId": users, "maxSelect": 1}]}),
    )
    .await;
    let alice = cluster.add_user(0, "alice").await;
    let bob = cluster.add_user(0, "bob").await;
    // Alice's token comes from node 2 and is used on node 0.
    let alice_token = cluster
        .login(2, "users", "alice@example.com", "password-123")
        .await;

    let bob_note = "bobnote00000001";
    let mut sse = Sse::connect(cluster.base(0)).await;
    cluster
        .subscribe(
            0,
            &sse,
            Some(&alice_token),
            &["notes", &format!("notes/{bob_note}")],
        )
        .await;
    // A guest on node 0 subscribed to everything must see nothing at all.
    let mut guest = Sse::connect(cluster.base(0)).await;
    cluster
        .subscribe(0, &guest, None, &["notes", &format!("notes/{bob_note}")])
        .await;

    let notes = "/api/collections/notes/records";
    // Bob's record first, then Alice's, both through node 1: events from one node arrive
    // in order, so a leaked event for Bob's record would come before Alice's.
    cluster
        .expect(
            200,
            1,
            Method::POST,
            notes,
            Some(su),
            Some(json!({"id": bob_note, "title": "bob's", "owner": bob})),
        )
        .await;
    let sent = Instant::now();
    let created = cluster
        .expect(
            200,
            1,
            Method::POST,
            notes,
            Some(su),
            Some(json!({"title": "alice's", "owner": alice})),
        )
        .await;
    let event = next_event(&mut sse, "alice's create").await;
    let create_latency = sent.elapsed();
    let alice_note = created["id"].as_str().expect("id").to_owned();
    assert_eq!(event.name, "notes");
    assert_eq!(event.data["action"], "create");
    assert_eq!(event.data["record"]["id"], alice_note.as_str());
    assert_eq!(event.data["record"]["title"], "alice's");

    // Updates through node 2.
    for (id, title) in [(bob_note, "bob's v2"), (alice_note.as_str(), "alice's v2")] {
        cluster
            .expect(
                200,
                2,
                Method::PATCH,
                &format!("{notes}/{id}"),
                Some(su),
                Some(json!({"title": title})),
            )
            .await;
    }
    let event = next_event(&mut sse, "alice's update").await;
    assert_eq!(event.data["action"], "update");
    assert_eq!(event.data["record"]["id"], alice_note.as_str());
    assert_eq!(event.data["record"]["title"], "alice's v2");

    // Deletes through node 1: node 0 decides with the deleted record itself.
    let sent = Instant::now();
    for id in [bob_note, alice_note.as_str()] {
        cluster
            .expect(
                204,
                1,
                Method::DELETE,
                &format!("{notes}/{id}"),
                Some(su),
                None,
            )
            .await;
    }
    let event = next_event(&mut sse, "alice's delete").await;
    let delete_latency = sent.elapsed();
    assert_eq!(event.data["action"], "delete");
    assert_eq!(event.data["record"]["id"], alice_note.as_str());
    assert_eq!(event.data["record"]["title"], "alice's v2");

    // A record larger than a notification travels through `_events`.
    let big_title = "x".repeat(20_000);
    let big = cluster
        .expect(
            200,
            2,
            Method::POST,
            notes,
            Some(su),
            Some(json!({"title": big_title, "owner": alice})),
        )
        .await;
    let event = next_event(&mut sse, "a large record").await;
    assert_eq!(event.data["action"], "create");
    assert_eq!(event.data["record"]["id"], big["id"]);
    assert_eq!(
        event.data["record"]["title"].as_str().map(str::len),
        Some(20_000)
    );
    assert!(
        cluster.db.scalar("SELECT count(*) FROM \"_events\"").await >= 1,
        "the large note went through _events"
    );

    // Alice's password changes through node 1: her token key rotates, so node 0 forgets
    // the auth stored on her stream, and her next record (also through node 1, so its
    // note comes after) is not sent to what is now a guest's stream.
    cluster
        .expect(
            200,
            1,
            Method::PATCH,
            &format!("/api/collections/users/records/{alice}"),
            Some(su),
            Some(json!({"password": "password-456", "passwordConfirm": "password-456"})),
        )
        .await;
    cluster
        .expect(
            200,
            1,
            Method::POST,
            notes,
            Some(su),
            Some(json!({"title": "after the password change", "owner": alice})),
        )
        .await;

    let extra = sse.drain(QUIET).await;
    assert!(extra.is_empty(), "unexpected events: {extra:?}");
    let leaked = guest.drain(QUIET).await;
    assert!(leaked.is_empty(), "the guest got events: {leaked:?}");
    eprintln!(
        "cross-node realtime: create request on node 1 -> event on node 0 in {:.1} ms; \
         two deletes -> event in {:.1} ms",
        ms(create_latency),
        ms(delete_latency)
    );
}

#[tokio::test]
async fn schema_rule_and_settings_changes_are_enforced_on_the_other_nodes() {
    let cluster = Cluster::start(3).await;
    let c = &cluster;
    let su = cluster.su.as_str();
    cluster
        .expect(
            200,
            0,
            Method::POST,
            "/api/collections",
            Some(su),
            Some(json!({"name": "docs", "listRule": "", "viewRule": "",
                "fields": [{"name": "title", "type": "text"}]})),
        )
        .await;
    // The new collection is usable on node 2 right away (bounded poll).
    let docs = "/api/collections/docs/records";
    let took = within(PROPAGATION, "new collection on node 2", || async move {
        c.req(2, Method::GET, docs, None, None).await.0 == 200
    })
    .await;
    eprintln!(
        "collection created on node 0 usable on node 2 after {:.1} ms",
        ms(took)
    );
    for title in ["public", "secret"] {
        cluster
            .expect(
                200,
                1,
                Method::POST,
                docs,
                Some(su),
                Some(json!({"title": title})),
            )
            .await;
    }
    let listed = cluster.expect(200, 2, Method::GET, docs, None, None).await;
    assert_eq!(listed["totalItems"], 2);

    // A rule change on node 0 is enforced on node 2.
    cluster
        .expect(
            200,
            0,
            Method::PATCH,
            "/api/collections/docs",
            Some(su),
            Some(json!({"listRule": "title = \"public\""})),
        )
        .await;
    let took = within(PROPAGATION, "list rule on node 2", || async move {
        let (status, body) = c.req(2, Method::GET, docs, None, None).await;
        status == 200 && body["totalItems"] == 1 && body["items"][0]["title"] == "public"
    })
    .await;
    eprintln!(
        "list rule changed on node 0 enforced on node 2 after {:.1} ms",
        ms(took)
    );
    cluster
        .expect(
            200,
            0,
            Method::PATCH,
            "/api/collections/docs",
            Some(su),
            Some(json!({"listRule": null})),
        )
        .await;
    let took = within(
        PROPAGATION,
        "superuser-only rule on node 2",
        || async move { c.req(2, Method::GET, docs, None, None).await.0 == 403 },
    )
    .await;
    eprintln!(
        "listRule null on node 0 enforced on node 2 after {:.1} ms",
        ms(took)
    );
    // Node 1 too, and the superuser still lists everything there.
    let (status, _) = cluster.req(1, Method::GET, docs, None, None).await;
    assert_eq!(status, 403);
    let all = cluster
        .expect(200, 1, Method::GET, docs, Some(su), None)
        .await;
    assert_eq!(all["totalItems"], 2);

    // A new field added on node 0 is accepted and returned by node 2.
    let mut fields = cluster
        .expect(200, 0, Method::GET, "/api/collections/docs", Some(su), None)
        .await["fields"]
        .clone();
    fields
        .as_array_mut()
        .expect("fields")
        .push(json!({"name": "pages", "type": "number"}));
    cluster
        .expect(
            200,
            0,
            Method::PATCH,
            "/api/collections/docs",
            Some(su),
            Some(json!({"fields": fields})),
        )
        .await;
    let took = within(PROPAGATION, "new field on node 2", || async move {
        let (status, body) = c
            .req(
                2,
                Method::POST,
                docs,
                Some(su),
                Some(json!({"title": "with pages", "pages": 7})),
            )
            .await;
        status == 200 && body["pages"] == 7
    })
    .await;
    eprintln!(
        "field added on node 0 stored through node 2 after {:.1} ms",
        ms(took)
    );

    // Deleting the collection on node 1 makes it unknown on node 0.
    let took_delete = {
        cluster
            .expect(
                204,
                1,
                Method::DELETE,
                "/api/collections/docs",
                Some(su),
                None,
            )
            .await;
        within(PROPAGATION, "deleted collection on node 0", || async move {
            c.req(0, Method::GET, docs, Some(su), None).await.0 == 404
        })
        .await
    };
    eprintln!(
        "collection deleted on node 1 gone on node 0 after {:.1} ms",
        ms(took_delete)
    );

    // Settings changed on node 1 are served by node 2.
    cluster
        .expect(
            200,
            1,
            Method::PATCH,
            "/api/settings",
            Some(su),
            Some(json!({"meta": {"appName": "Shared name"}})),
        )
        .await;
    let took = within(PROPAGATION, "settings on node 2", || async move {
        let (status, body) = c.req(2, Method::GET, "/api/settings", Some(su), None).await;
        status == 200 && body["meta"]["appName"] == "Shared name"
    })
    .await;
    eprintln!(
        "settings changed on node 1 served by node 2 after {:.1} ms",
        ms(took)
    );
    // Concurrent settings patches through two nodes both land (merged in the database).
    let (a, b) = tokio::join!(
        cluster.req(
            0,
            Method::PATCH,
            "/api/settings",
            Some(su),
            Some(json!({"meta": {"senderName": "From node 0"}}))
        ),
        cluster.req(
            2,
            Method::PATCH,
            "/api/settings",
            Some(su),
            Some(json!({"batch": {"maxRequests": 77}}))
        ),
    );
    assert_eq!((a.0, b.0), (200, 200), "{a:?} {b:?}");
    within(
        PROPAGATION,
        "both settings patches on node 1",
        || async move {
            let (_, body) = c.req(1, Method::GET, "/api/settings", Some(su), None).await;
            body["meta"]["senderName"] == "From node 0"
                && body["batch"]["maxRequests"] == 77
                && body["meta"]["appName"] == "Shared name"
        },
    )
    .await;
}

#[tokio::test]
async fn tokens_issued_by_one_node_work_on_the_others() {
    let cluster = Cluster::start(3).await;
    // The superuser token was issued by node 0.
    for node in 0..3 {
        cluster
            .expect(
                200,
                node,
                Method::GET,
                "/api/collections",
                Some(&cluster.su),
                None,
            )
            .await;
    }
    let carol = cluster.add_user(0, "carol").await;
    let token = cluster
        .login(1, "users", "carol@example.com", "password-123")
        .await;
    let refresh = "/api/collections/users/auth-refresh";
    let refreshed = cluster
        .expect(200, 2, Method::POST, refresh, Some(&token), None)
        .await;
    assert_eq!(refreshed["record"]["id"], carol.as_str());
    // users' default view rule is `id = @request.auth.id`: node 2 knows who this is.
    let me = cluster
        .expect(
            200,
            2,
            Method::GET,
            &format!("/api/collections/users/records/{carol}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(me["email"], "carol@example.com");
    // A password change through node 0 rotates the token key: node 2 rejects the old
    // token, and a new login on node 2 works on node 1.
    cluster
        .expect(
            200,
            0,
            Method::PATCH,
            &format!("/api/collections/users/records/{carol}"),
            Some(&cluster.su),
            Some(json!({"password": "password-456", "passwordConfirm": "password-456"})),
        )
        .await;
    let (status, _) = cluster
        .req(2, Method::POST, refresh, Some(&token), None)
        .await;
    assert_eq!(status, 401, "the old token must be rejected on node 2");
    let fresh = cluster
        .login(2, "users", "carol@example.com", "password-456")
        .await;
    cluster
        .expect(200, 1, Method::POST, refresh, Some(&fresh), None)
        .await;
}

/// Writes `title` records through the nodes in turn until `stop`; returns the ids of
/// acknowledged (200) writes and the statuses of the others (0 = no answer).
async fn write_load(
    cluster: Arc<Cluster>,
    writer: usize,
    nodes: Vec<usize>,
    stop: Arc<AtomicBool>,
    counter: Arc<AtomicU64>,
) -> (Vec<String>, Vec<(usize, u16, Json)>) {
    let mut acked = Vec::new();
    let mut failed = Vec::new();
    let mut i = 0;
    while !stop.load(Ordering::Acquire) {
        let node = nodes[(writer + i) % nodes.len()];
        i += 1;
        let n = counter.fetch_add(1, Ordering::Relaxed);
        let result = cluster
            .call(
                cluster.base(node),
                Method::POST,
                "/api/collections/items/records",
                Some(&cluster.su),
                Some(json!({"n": n})),
            )
            .await;
        match result {
            Ok((200, body, _)) => acked.push(body["id"].as_str().expect("id").to_owned()),
            Ok((status, body, _)) => failed.push((node, status, body)),
            Err(_) => failed.push((node, 0, Json::Null)),
        }
    }
    (acked, failed)
}

/// Every record id of `items`, read through `node`.
async fn all_items(cluster: &Cluster, node: usize) -> HashSet<String> {
    let mut ids = HashSet::new();
    for page in 1.. {
        let body = cluster
            .expect(
                200,
                node,
                Method::GET,
                &format!("/api/collections/items/records?perPage=1000&page={page}&skipTotal=1"),
                Some(&cluster.su),
                None,
            )
            .await;
        let items = body["items"].as_array().expect("items").clone();
        for item in &items {
            ids.insert(item["id"].as_str().expect("id").to_owned());
        }
        if items.len() < 1000 {
            break;
        }
    }
    ids
}

async fn items_collection(cluster: &Cluster) {
    create_collection(
        cluster,
        0,
        json!({"name": "items", "listRule": null, "fields": [{"name": "n", "type": "number"}]}),
    )
    .await;
}

#[tokio::test]
async fn a_killed_node_loses_no_acknowledged_write_and_the_others_keep_serving() {
    let mut cluster = Cluster::start(3).await;
    items_collection(&cluster).await;
    let mut sse = Sse::connect(cluster.base(0)).await;
    let su = cluster.su.clone();
    let su = su.as_str();
    cluster.subscribe(0, &sse, Some(su), &["items"]).await;
    // Node 1's process is killed by hand below; the writers share the cluster.
    let mut victim = cluster.nodes[1].child.take().expect("node 1 runs");
    let cluster = Arc::new(cluster);

    let stop = Arc::new(AtomicBool::new(false));
    let counter = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            tokio::spawn(write_load(
                cluster.clone(),
                w,
                vec![0, 1, 2],
                stop.clone(),
                counter.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _ = victim.kill();
    let _ = victim.wait();
    let killed_at = counter.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Release);
    let mut acked = Vec::new();
    let mut failed = Vec::new();
    for writer in writers {
        let (a, f) = writer.await.expect("writer");
        acked.extend(a);
        failed.extend(f);
    }
    // Only node 1 failed, and only by not answering.
    for (node, status, body) in &failed {
        assert_eq!((*node, *status), (1, 0), "unexpected failure: {body}");
    }
    let total = counter.load(Ordering::Relaxed);
    assert!(
        total > killed_at + 20,
        "the others kept serving: {killed_at} writes before the kill, {total} in all"
    );
    for node in [0, 2] {
        let stored = all_items(&cluster, node).await;
        let missing: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
        assert!(
            missing.is_empty(),
            "node {node} misses acknowledged writes: {missing:?}"
        );
        // Writes in flight at the kill may have committed without an answer.
        assert!(
            stored.len() <= acked.len() + failed.len(),
            "no write stored twice"
        );
    }
    // Nodes 0 and 2 still talk: a write through node 2 reaches node 0's subscriber.
    let _ = sse.drain(Duration::from_millis(300)).await;
    let marker = cluster
        .expect(
            200,
            2,
            Method::POST,
            "/api/collections/items/records",
            Some(su),
            Some(json!({"n": -1})),
        )
        .await;
    let event = next_event(&mut sse, "a write on node 2 after the kill").await;
    assert_eq!(event.data["record"]["id"], marker["id"]);
    eprintln!(
        "kill test: {} acknowledged writes ({} before the kill), {} refused by the killed node, \
         all present on nodes 0 and 2",
        acked.len(),
        killed_at,
        failed.len()
    );
}

#[tokio::test]
async fn lost_database_connections_give_503s_then_recover_without_restart() {
    let cluster = Arc::new(Cluster::start(2).await);
    items_collection(&cluster).await;
    let c = &*cluster;
    let su = cluster.su.clone();
    let su = su.as_str();
    let stop = Arc::new(AtomicBool::new(false));
    let counter = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            tokio::spawn(write_load(
                cluster.clone(),
                w,
                vec![0, 1],
                stop.clone(),
                counter.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(800)).await;
    // 1. Transient: every connection of both nodes (pools, listeners, notifiers) is
    // terminated, three times.
    let mut terminated = 0;
    for _ in 0..3 {
        terminated += cluster.db.terminate_backends().await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert!(terminated >= 2 * 8, "terminated {terminated} backends");
    tokio::time::sleep(Duration::from_millis(500)).await;
    // 2. Sustained: the database refuses new connections for a second.
    cluster.db.allow_connections(false).await;
    terminated += cluster.db.terminate_backends().await;
    let down = Instant::now();
    // A signed-in caller whose token cannot be checked gets a 503, not a guest's 403.
    for node in 0..2 {
        let (status, body) = c
            .req(
                node,
                Method::GET,
                "/api/collections/items/records",
                Some(su),
                None,
            )
            .await;
        assert_eq!(
            (status, &body["status"], &body["data"]),
            (503, &json!(503), &json!({})),
            "node {node} during the outage: {body}"
        );
    }
    tokio::time::sleep(Duration::from_millis(1000).saturating_sub(down.elapsed())).await;
    cluster.db.allow_connections(true).await;
    let terminated_at = counter.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Release);
    let mut acked = Vec::new();
    let mut failed = Vec::new();
    for writer in writers {
        let (a, f) = writer.await.expect("writer");
        acked.extend(a);
        failed.extend(f);
    }
    assert!(!failed.is_empty(), "the outage refused writes");
    for (node, status, body) in &failed {
        assert_eq!(*status, 503, "node {node}: {body}");
        assert_eq!(body["status"], 503, "{body}");
        assert_eq!(body["data"], json!({}), "{body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
    }
    let total = counter.load(Ordering::Relaxed);
    assert!(
        total > terminated_at + 20,
        "writes went on after the outage"
    );
    let stored = all_items(&cluster, 0).await;
    let missing: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "acknowledged writes missing: {missing:?}"
    );

    // Both nodes serve writes again, and node 1's listener is back: an event for a write
    // through node 1 reaches node 0's subscriber, and node 0's for node 1's.
    for (from, to) in [(1, 0), (0, 1)] {
        let mut sse = Sse::connect(cluster.base(to)).await;
        cluster.subscribe(to, &sse, Some(su), &["items"]).await;
        let start = Instant::now();
        loop {
            let (status, body) = c
                .req(
                    from,
                    Method::POST,
                    "/api/collections/items/records",
                    Some(su),
                    Some(json!({"n": -2})),
                )
                .await;
            assert_eq!(status, 200, "{body}");
            let got = sse.next(Duration::from_millis(300)).await;
            if got.is_some_and(|e| e.data["record"]["id"] == body["id"]) {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "no event after the outage"
            );
        }
        let took = start.elapsed();
        eprintln!(
            "after the outage: node {from} -> node {to} event within {:.1} ms",
            ms(took)
        );
    }
    // A schema change after the outage still propagates.
    cluster
        .expect(
            200,
            1,
            Method::PATCH,
            "/api/collections/items",
            Some(su),
            Some(json!({"listRule": ""})),
        )
        .await;
    within(PROPAGATION, "rule change after the outage", || async {
        cluster
            .req(0, Method::GET, "/api/collections/items/records", None, None)
            .await
            .0
            == 200
    })
    .await;
    eprintln!(
        "database outage: {terminated} backends terminated, 1 s without connections; {} writes \
         acknowledged, {} answered 503",
        acked.len(),
        failed.len()
    );
}

/// nginx as a non-daemon on a loopback port with a generated config: `/api/realtime`
/// hashed by client address (the stream and its subscribe call must reach the same
/// node), everything else round-robin. Each response names its upstream in
/// `X-Upstream`.
struct Nginx {
    child: Child,
    base: String,
    dir: PathBuf,
}

fn nginx_binary() -> PathBuf {
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin"])
    {
        let candidate = Path::new(dir).join("nginx");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("nginx is not installed (scripts/test.sh installs it: apt-get install -y nginx)");
}

impl Nginx {
    /// Starts nginx on a free port; picks another port when the chosen one was taken
    /// before nginx bound it (nginx then exits).
    async fn start(upstreams: &[&str]) -> Nginx {
        for _ in 0..5 {
            if let Some(nginx) = Nginx::try_start(upstreams).await {
                return nginx;
            }
        }
        panic!("nginx did not start on any of 5 ports");
    }

    async fn try_start(upstreams: &[&str]) -> Option<Nginx> {
        let dir = temp_dir();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let servers: String = upstreams
            .iter()
            .map(|u| format!("    server {};\n", u.trim_start_matches("http://")))
            .collect();
        let d = dir.display();
        let config = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log warn;\nevents {{ worker_connections 512; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
             upstream basalt_rr {{\n{servers}  }}\n\
             upstream basalt_sticky {{\n    hash $remote_addr consistent;\n{servers}  }}\n\
             server {{\n    listen 127.0.0.1:{port};\n    add_header X-Upstream $upstream_addr always;\n\
             location /api/realtime {{\n      proxy_pass http://basalt_sticky;\n      proxy_http_version 1.1;\n\
             proxy_set_header Connection \"\";\n      proxy_buffering off;\n      proxy_read_timeout 1h;\n    }}\n\
             location / {{\n      proxy_pass http://basalt_rr;\n    }}\n  }}\n}}\n"
        );
        std::fs::write(dir.join("nginx.conf"), config).expect("nginx.conf");
        let child = std::process::Command::new(nginx_binary())
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting nginx");
        let mut nginx = Nginx {
            child,
            base: format!("http://127.0.0.1:{port}"),
            dir,
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if nginx.child.try_wait().ok().flatten().is_some() {
                eprintln!("nginx exited: {}", nginx.error_log());
                return None;
            }
            // Only nginx adds `X-Upstream`: another server that took the port does not.
            if let Ok(res) = client
                .get(format!("{}/api/health", nginx.base))
                .send()
                .await
                && res.status().as_u16() == 200
                && res.headers().contains_key("x-upstream")
            {
                return Some(nginx);
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not start: {}",
                nginx.error_log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- nginx error log ---\n{}", self.error_log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        remove_dir(&self.dir);
    }
}

#[tokio::test]
async fn behind_nginx_round_robin_a_subscriber_gets_the_writes_of_every_node() {
    let cluster = Cluster::start(3).await;
    let bases: Vec<&str> = (0..3).map(|i| cluster.base(i)).collect();
    let nginx = Nginx::start(&bases).await;
    create_collection(
        &cluster,
        0,
        json!({"name": "posts", "listRule": "", "viewRule": "",
            "fields": [{"name": "title", "type": "text"}]}),
    )
    .await;
    // Log in through the balancer: the token comes from whichever node answered.
    let (status, login, _) = cluster
        .call(
            &nginx.base,
            Method::POST,
            "/api/collections/_superusers/auth-with-password",
            None,
            Some(json!({"identity": SU_EMAIL, "password": SU_PASSWORD})),
        )
        .await
        .expect("login through nginx");
    assert_eq!(status, 200, "{login}");
    let token = login["token"].as_str().expect("token").to_owned();

    let mut sse = Sse::connect(&nginx.base).await;
    let (status, _, headers) = cluster
        .call(
            &nginx.base,
            Method::POST,
            "/api/realtime",
            None,
            Some(json!({"clientId": sse.client_id, "subscriptions": ["posts"]})),
        )
        .await
        .expect("subscribe through nginx");
    assert_eq!(status, 204);
    let stream_node = headers["x-upstream"].to_str().expect("header").to_owned();

    let mut upstreams = HashSet::new();
    let mut latencies = Vec::new();
    for i in 0..9 {
        let sent = Instant::now();
        let (status, body, headers) = cluster
            .call(
                &nginx.base,
                Method::POST,
                "/api/collections/posts/records",
                Some(&token),
                Some(json!({"title": format!("post {i}")})),
            )
            .await
            .expect("write through nginx");
        assert_eq!(status, 200, "{body}");
        let event = next_event(&mut sse, "a write through nginx").await;
        latencies.push(sent.elapsed());
        assert_eq!(event.data["record"]["id"], body["id"]);
        upstreams.insert(headers["x-upstream"].to_str().expect("header").to_owned());
    }
    assert_eq!(
        upstreams.len(),
        3,
        "round robin reached every node: {upstreams:?}"
    );
    assert!(upstreams.contains(&stream_node));
    assert!(sse.drain(QUIET).await.is_empty());
    latencies.sort();
    eprintln!(
        "through nginx: 9 writes over {} nodes, stream on {stream_node}; write -> event \
         median {:.1} ms, max {:.1} ms",
        upstreams.len(),
        ms(latencies[4]),
        ms(latencies[8])
    );
}
