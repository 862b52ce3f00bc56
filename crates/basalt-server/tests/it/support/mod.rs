//! `TestApp`: the real `basalt` binary serving a throw-away data dir on 127.0.0.1:0.
//!
//! The superuser is created with `basalt superuser upsert` before the server starts; the
//! server prints `Server started at http://ADDR`, which gives the bound port. On drop the
//! server is killed and the data dir removed (its log is printed first when the test
//! panicked).

pub mod jwt;
pub mod redact;
pub mod scenario;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value as Json, json};

pub use scenario::{Body, Scenario, check};

/// The superuser created for every app.
pub const SU_EMAIL: &str = "root@example.com";
/// Its password.
pub const SU_PASSWORD: &str = "root-password-1";

/// Who sends a request.
#[derive(Clone, Debug)]
pub enum Who {
    /// No `Authorization` header.
    Guest,
    /// The superuser's token.
    Superuser,
    /// A user logged in with [`TestApp::add_user`] under this name.
    User(&'static str),
    /// A literal `Authorization` header value.
    Token(String),
}

/// Path of the binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_basalt")
}

/// A `basalt` command with no `BASALT_*` variable leaking in from the environment.
pub fn basalt() -> Command {
    let mut command = Command::new(bin());
    for (key, _) in std::env::vars() {
        if key.starts_with("BASALT_") {
            command.env_remove(key);
        }
    }
    command
}

/// Runs a CLI command to completion.
pub fn run_cli(args: &[&str]) -> Output {
    basalt()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running the basalt binary")
}

/// Creates the test superuser on a PostgreSQL database (as `TestApp::spawn` does on a
/// data dir), before nodes that log it in start on it.
pub fn upsert_superuser_on(url: &str) {
    let out = run_cli(&["superuser", "upsert", SU_EMAIL, SU_PASSWORD, "--db", url]);
    assert!(
        out.status.success(),
        "superuser upsert: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A fresh, unique directory under the system temp dir.
pub fn temp_dir() -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let dir = std::env::temp_dir().join(format!(
        "basalt-it-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("creating a temp dir");
    dir
}

/// The real server plus typed request helpers.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The bound address.
    pub addr: std::net::SocketAddr,
    root: PathBuf,
    serve_args: Vec<String>,
    child: Option<Child>,
    client: reqwest::Client,
    tokens: Mutex<HashMap<String, String>>,
}

impl TestApp {
    /// A server with default options.
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(&[]).await
    }

    /// A server started with extra `serve` arguments (`--max-body 1024`, `--origins ...`).
    pub async fn spawn_with(extra: &[&str]) -> TestApp {
        let root = temp_dir();
        let data = root.join("data");
        let data_arg = data.to_string_lossy().to_string();
        let out = run_cli(&[
            "superuser",
            "upsert",
            SU_EMAIL,
            SU_PASSWORD,
            "--dir",
            &data_arg,
        ]);
        assert!(
            out.status.success(),
            "superuser upsert failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut app = TestApp {
            base: String::new(),
            addr: "127.0.0.1:0".parse().expect("an address"),
            root,
            serve_args: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("a client"),
            tokens: Mutex::new(HashMap::new()),
        };
        app.start().await;
        let token = app.login("_superusers", SU_EMAIL, SU_PASSWORD).await;
        app.set_token("superuser", &token);
        app
    }

    /// The data dir the server runs on.
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(Child::id)
            .expect("a running server")
    }

    /// Starts the server (again) on the same data dir and waits until it is healthy.
    pub async fn start(&mut self) {
        assert!(self.child.is_none(), "the server is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("server.log"))
            .expect("opening the server log");
        let mut child = basalt()
            .args(["serve", "--http", "127.0.0.1:0", "--dir"])
            .arg(self.data_dir())
            .args(&self.serve_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawning basalt serve");
        let stdout = child.stdout.take().expect("piped stdout");
        self.child = Some(child);
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sender = Some(sender);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("Server started at http://")
                    && let Some(sender) = sender.take()
                {
                    let _ = sender.send(rest.trim().to_string());
                }
            }
        });
        let Ok(addr) = receiver.recv_timeout(Duration::from_secs(20)) else {
            panic!("the server did not start:\n{}", self.log());
        };
        self.addr = addr.parse().expect("a socket address");
        self.base = format!("http://{addr}");
        self.wait_healthy().await;
    }

    async fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let url = format!("{}/api/health", self.base);
            if let Ok(res) = self.client.get(url).send().await
                && res.status().as_u16() == 200
            {
                return;
            }
            assert!(Instant::now() < deadline, "never healthy:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Sends SIGTERM (without waiting).
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits for the server to exit (at most `timeout`) and returns its status.
    pub async fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        let mut child = self.child.take().expect("a running server");
        loop {
            if let Some(status) = child.try_wait().expect("waiting for the server") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the server did not exit in time:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Graceful stop: SIGTERM, then wait; asserts exit code 0.
    pub async fn stop(&mut self) {
        self.sigterm();
        let status = self.wait_exit(Duration::from_secs(10)).await;
        assert!(status.success(), "exit status {status}:\n{}", self.log());
    }

    /// Hard stop: SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The server's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("server.log")).unwrap_or_default()
    }

    /// Stores a token under a name usable as `Who::User(name)`.
    pub fn set_token(&self, name: &str, token: &str) {
        self.tokens
            .lock()
            .expect("tokens lock")
            .insert(name.to_string(), token.to_string());
    }

    /// The `Authorization` value for a caller.
    pub fn token(&self, who: &Who) -> Option<String> {
        let tokens = self.tokens.lock().expect("tokens lock");
        match who {
            Who::Guest => None,
            Who::Superuser => tokens.get("superuser").cloned(),
            Who::User(name) => Some(
                tokens
                    .get(*name)
                    .cloned()
                    .unwrap_or_else(|| panic!("no token for user {name}")),
            ),
            Who::Token(token) => Some(token.clone()),
        }
    }

    /// The superuser's token.
    pub fn superuser_token(&self) -> String {
        self.token(&Who::Superuser).expect("superuser token")
    }

    /// A request builder with the caller's token.
    pub fn builder(&self, method: Method, path: &str, who: &Who) -> reqwest::RequestBuilder {
        let mut builder = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = self.token(who) {
            builder = builder.header("authorization", token);
        }
        builder
    }

    /// Sends a request; the body is JSON when given. Returns the status and the JSON body
    /// (`Json::Null` for an empty body).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        who: &Who,
        body: Option<Json>,
    ) -> (u16, Json) {
        let body = match body {
            Some(value) => Body::Json(value),
            None => Body::None,
        };
        self.send(method, path, who, &body).await
    }

    /// Sends a request with any [`Body`].
    pub async fn send(&self, method: Method, path: &str, who: &Who, body: &Body) -> (u16, Json) {
        self.send_with_headers(method, path, who, body, &[]).await
    }

    /// Sends a request with any [`Body`] and extra headers.
    pub async fn send_with_headers(
        &self,
        method: Method,
        path: &str,
        who: &Who,
        body: &Body,
        headers: &[(String, String)],
    ) -> (u16, Json) {
        let mut builder = self.builder(method.clone(), path, who);
        for (name, value) in headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        builder = match body {
            Body::None => builder,
            Body::Json(value) => builder
                .header("content-type", "application/json")
                .body(value.to_string()),
            Body::Raw {
                content_type,
                bytes,
            } => {
                let builder = if content_type.is_empty() {
                    builder
                } else {
                    builder.header("content-type", content_type.as_str())
                };
                builder.body(bytes.clone())
            }
        };
        let res = builder
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.log()));
        let status = res.status().as_u16();
        let bytes = res.bytes().await.expect("reading the response");
        let json = if bytes.is_empty() {
            Json::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                Json::String(format!("<non-JSON> {}", String::from_utf8_lossy(&bytes)))
            })
        };
        (status, json)
    }

    /// Like [`TestApp::request`], but panics unless the status is `expected`.
    pub async fn expect(
        &self,
        expected: u16,
        method: Method,
        path: &str,
        who: &Who,
        body: Option<Json>,
    ) -> Json {
        let (status, json) = self.request(method.clone(), path, who, body).await;
        assert_eq!(status, expected, "{method} {path} as {who:?}: {json}");
        json
    }

    /// `POST /api/collections` as the superuser; panics unless 200.
    pub async fn create_collection(&self, collection: Json) -> Json {
        self.expect(
            200,
            Method::POST,
            "/api/collections",
            &Who::Superuser,
            Some(collection),
        )
        .await
    }

    /// Creates a record as the superuser; panics unless 200.
    pub async fn create_record(&self, collection: &str, body: Json) -> Json {
        self.expect(
            200,
            Method::POST,
            &format!("/api/collections/{collection}/records"),
            &Who::Superuser,
            Some(body),
        )
        .await
    }

    /// Creates a `users` record as the superuser and returns it.
    pub async fn create_user(&self, email: &str, password: &str) -> Json {
        self.create_record(
            "users",
            json!({"email": email, "password": password, "passwordConfirm": password}),
        )
        .await
    }

    /// `auth-with-password`; returns the token, panics unless 200.
    pub async fn login(&self, collection: &str, email: &str, password: &str) -> String {
        let body = self
            .expect(
                200,
                Method::POST,
                &format!("/api/collections/{collection}/auth-with-password"),
                &Who::Guest,
                Some(json!({"identity": email, "password": password})),
            )
            .await;
        body["token"].as_str().expect("a token").to_string()
    }

    /// Creates `users` record `<name>@example.com` with `password`, logs in, remembers the
    /// token as `Who::User(name)` and returns the record id.
    pub async fn add_user(&self, name: &'static str, password: &str) -> String {
        let email = format!("{name}@example.com");
        let record = self.create_user(&email, password).await;
        let token = self.login("users", &email, password).await;
        self.set_token(name, &token);
        record["id"].as_str().expect("an id").to_string()
    }

    /// Sends a request over a fresh connection in one write (`Connection: close`), so an
    /// early answer (413) never races the rest of the body; returns status and JSON.
    pub fn raw_request(
        &self,
        method: &str,
        path: &str,
        who: &Who,
        content_type: &str,
        body: &[u8],
    ) -> (u16, Json) {
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\n\
             Content-Length: {}\r\nConnection: close\r\n",
            body.len()
        );
        if let Some(token) = self.token(who) {
            request.push_str(&format!("Authorization: {token}\r\n"));
        }
        request.push_str("\r\n");
        let mut bytes = request.into_bytes();
        bytes.extend_from_slice(body);
        let response = raw_http(self.addr, &bytes);
        (raw_status(&response), raw_json(&response))
    }

    /// Checks scenarios against this app (see [`scenario::check`]).
    pub async fn check(&self, scenarios: Vec<Scenario>) {
        check(self, scenarios).await;
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            eprintln!(
                "--- server log ({}) ---\n{}",
                self.root.display(),
                tail.join("\n")
            );
        }
        remove_dir(&self.root);
    }
}

/// Removes a directory tree, ignoring errors.
pub fn remove_dir(path: &Path) {
    let _ = std::fs::remove_dir_all(path);
}

/// Sends raw bytes over a new TCP connection and returns the whole response text (the
/// request should say `Connection: close`).
pub fn raw_http(addr: std::net::SocketAddr, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connecting");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("setting a timeout");
    stream.write_all(request).expect("writing the request");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response).to_string()
}

/// The status code of a raw HTTP response.
pub fn raw_status(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"))
}

/// The JSON body of a raw HTTP response (handles a chunked body with one chunk or more).
pub fn raw_json(response: &str) -> Json {
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((response, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if size == 0 || tail.len() < size {
                break;
            }
            out.push_str(&tail[..size]);
            rest = tail[size..].trim_start_matches("\r\n");
        }
        out
    } else {
        body.to_string()
    };
    serde_json::from_str(&body).unwrap_or(Json::String(body))
}
