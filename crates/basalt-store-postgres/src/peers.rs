//! Notes between Basalt nodes sharing one database, over PostgreSQL `LISTEN`/`NOTIFY`.
//!
//! Each node runs two threads with a connection each, apart from the store's pool:
//!
//! - the notifier sends the node's notes in the order they were queued, batching what
//!   is queued into one `pg_notify` statement (one transaction, one round trip). A note
//!   longer than fits in a notification (PostgreSQL's limit is 8000 bytes) is written to
//!   the `_events` table and the notification carries its row id; rows older than
//!   [`EVENT_RETENTION`] are pruned. Sending from its own connection, outside the write
//!   transactions, keeps NOTIFY's commit-time queue lock off the writers' path.
//! - the listener `LISTEN`s on [`CHANNEL`], skips the node's own notes, and hands the
//!   others to the node through a bounded channel. After every (re)connection it first
//!   hands over [`PeerSignal::Connected`]: notes sent while it was away are lost, so the
//!   node reloads what it derives from the database.
//!
//! A notification's payload is `<node id>:<sequence>:<note>` or `<node id>:<sequence>:@<row
//! id in _events>`; the sequence keeps equal notes of one batch apart (PostgreSQL folds
//! identical notifications of one transaction into one).
//!
//! Both threads reconnect by themselves (with a growing delay, at most 2 s) after a lost
//! connection. A note that cannot be sent within [`SEND_DEADLINE`] is dropped and logged.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use basalt_store::StoreError;
use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;
use postgres::Client;
use postgres::fallible_iterator::FallibleIterator;
use tokio::sync::mpsc;

use crate::PgStore;
use crate::worker::Shared;

/// The notification channel.
pub const CHANNEL: &str = "basalt_peers";
/// Longest notification payload sent inline (PostgreSQL refuses 8000 bytes and more).
pub const MAX_INLINE: usize = 7900;
/// How long a row of `_events` is kept.
pub const EVENT_RETENTION: Duration = Duration::from_secs(600);
/// How long the notifier keeps trying to send a note before dropping it.
pub const SEND_DEADLINE: Duration = Duration::from_secs(10);
/// Most notes sent in one statement.
const BATCH: usize = 256;
/// How long the listener waits for a notification before checking its connection.
const LISTEN_TICK: Duration = Duration::from_millis(250);
/// How long an idle listener waits before it pings the server.
const PING_EVERY: Duration = Duration::from_secs(5);
/// Notes waiting for the node before the listener waits.
const INBOX: usize = 4096;

/// What the listener hands the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerSignal {
    /// A note from another node.
    Note(String),
    /// The listener (re)connected; notes sent while it was away are lost.
    Connected,
}

/// Counters since the link started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// Notes sent (inline or through `_events`).
    pub sent: u64,
    /// Notes sent through `_events`.
    pub sent_large: u64,
    /// Notes dropped after [`SEND_DEADLINE`].
    pub dropped: u64,
    /// Notes received from other nodes.
    pub received: u64,
    /// Listener connections opened (more than one means reconnects).
    pub listener_connections: u64,
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    sent_large: AtomicU64,
    dropped: AtomicU64,
    received: AtomicU64,
    listener_connections: AtomicU64,
}

/// This node's link to the other nodes on the database. Dropping it stops both threads.
pub struct PgPeers {
    node: String,
    outbox: Mutex<Option<Sender<String>>>,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// A random node id (std's per-process random hash keys, plus the process id).
fn node_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    format!("{:016x}", hasher.finish())
}

impl PgStore {
    /// Starts this node's link to the other nodes on the same database: returns the
    /// sending half and the receiver of what other nodes send. Connections are opened on
    /// the link's own threads (the first `Connected` says the listener is up).
    pub fn peers(&self) -> (PgPeers, mpsc::Receiver<PeerSignal>) {
        start(Arc::clone(&self.shared))
    }
}

fn start(shared: Arc<Shared>) -> (PgPeers, mpsc::Receiver<PeerSignal>) {
    let node = node_id();
    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    let (outbox, queued) = crossbeam_channel::unbounded();
    let (inbox, received) = mpsc::channel(INBOX);
    let mut threads = Vec::new();
    let notifier = Notifier {
        shared: Arc::clone(&shared),
        node: node.clone(),
        counters: Arc::clone(&counters),
        client: None,
        sequence: 0,
        last_prune: None,
    };
    match thread::Builder::new()
        .name("basalt-pg-notify".into())
        .spawn(move || notifier.run(queued))
    {
        Ok(handle) => threads.push(handle),
        Err(error) => tracing::error!(%error, "cannot start the notifier thread"),
    }
    let listener = Listener {
        shared,
        node: node.clone(),
        stop: Arc::clone(&stop),
        counters: Arc::clone(&counters),
        inbox,
    };
    match thread::Builder::new()
        .name("basalt-pg-listen".into())
        .spawn(move || listener.run())
    {
        Ok(handle) => threads.push(handle),
        Err(error) => tracing::error!(%error, "cannot start the listener thread"),
    }
    tracing::info!(node = %node, channel = CHANNEL, "peer link started");
    let peers = PgPeers {
        node,
        outbox: Mutex::new(Some(outbox)),
        stop,
        counters,
        threads: Mutex::new(threads),
    };
    (peers, received)
}

impl PgPeers {
    /// This node's id in notifications.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Queues a note for the other nodes; never blocks.
    pub fn send(&self, note: String) {
        if let Some(outbox) = self.outbox.lock().as_ref() {
            let _ = outbox.send(note);
        }
    }

    /// Counters since the link started.
    pub fn stats(&self) -> PeerStats {
        let c = &*self.counters;
        PeerStats {
            sent: c.sent.load(Ordering::Relaxed),
            sent_large: c.sent_large.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            received: c.received.load(Ordering::Relaxed),
            listener_connections: c.listener_connections.load(Ordering::Relaxed),
        }
    }

    /// Sends what is queued (trying up to [`SEND_DEADLINE`]), stops listening and joins
    /// both threads. Idempotent.
    pub fn close(&self) {
        drop(self.outbox.lock().take());
        self.stop.store(true, Ordering::Release);
        for handle in self.threads.lock().drain(..) {
            if handle.join().is_err() {
                tracing::error!("a peer link thread panicked");
            }
        }
    }
}

impl Drop for PgPeers {
    fn drop(&mut self) {
        self.close();
    }
}

fn open(shared: &Shared) -> Result<Client, StoreError> {
    crate::worker::connect(shared)
}

fn backoff(failures: u32) -> Duration {
    Duration::from_millis((50u64 << failures.min(6)).min(2000))
}

struct Notifier {
    shared: Arc<Shared>,
    node: String,
    counters: Arc<Counters>,
    client: Option<Client>,
    sequence: u64,
    last_prune: Option<Instant>,
}

const EVENTS_TABLE: &str = "CREATE TABLE IF NOT EXISTS \"_events\" (\
    \"id\" bigserial PRIMARY KEY, \
    \"created\" timestamptz NOT NULL DEFAULT now(), \
    \"payload\" text NOT NULL)";

impl Notifier {
    fn run(mut self, queued: Receiver<String>) {
        // Ends when the sending half is dropped and the queue is drained.
        while let Ok(first) = queued.recv() {
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match queued.try_recv() {
                    Ok(note) => batch.push(note),
                    Err(_) => break,
                }
            }
            self.send_batch(batch);
        }
    }

    fn payload(&mut self, body: &str) -> String {
        self.sequence += 1;
        format!("{}:{}:{body}", self.node, self.sequence)
    }

    fn send_batch(&mut self, notes: Vec<String>) {
        let deadline = Instant::now() + SEND_DEADLINE;
        let mut failures = 0;
        loop {
            match self.try_send(&notes) {
                Ok(()) => return,
                Err(error) => {
                    if Instant::now() + backoff(failures) > deadline {
                        self.counters
                            .dropped
                            .fetch_add(notes.len() as u64, Ordering::Relaxed);
                        tracing::warn!(%error, notes = notes.len(), "dropping notes for other nodes");
                        return;
                    }
                    if failures == 0 {
                        tracing::warn!(%error, "sending notes to other nodes failed; retrying");
                    }
                    thread::sleep(backoff(failures));
                    failures += 1;
                }
            }
        }
    }

    /// The connection, (re)opened as needed; `_events` exists once it is open.
    fn connection(&mut self) -> Result<Client, StoreError> {
        if let Some(client) = self.client.take().filter(|c| !c.is_closed()) {
            return Ok(client);
        }
        let mut client = open(&self.shared)?;
        // Serialised with other nodes doing the same: a concurrent twin of
        // CREATE TABLE IF NOT EXISTS can fail.
        client
            .batch_execute(&format!(
                "BEGIN; SELECT pg_advisory_xact_lock(hashtext('basalt _events')); \
                 {EVENTS_TABLE}; COMMIT"
            ))
            .map_err(|error| crate::error::map_error(&error))?;
        Ok(client)
    }

    /// One transaction: large notes into `_events`, then one `pg_notify` per note, in
    /// order (delivered when it commits).
    fn try_send(&mut self, notes: &[String]) -> Result<(), StoreError> {
        let mut client = self.connection()?;
        let first_sequence = self.sequence;
        let result = self.send_on(&mut client, notes);
        match &result {
            Ok(()) => {}
            Err(_) => {
                // Nothing was delivered: the sequence numbers are free again.
                self.sequence = first_sequence;
                if client.is_closed() || client.batch_execute("ROLLBACK").is_err() {
                    return result;
                }
            }
        }
        self.client = Some(client);
        result
    }

    fn send_on(&mut self, client: &mut Client, notes: &[String]) -> Result<(), StoreError> {
        let map = |error: postgres::Error| crate::error::map_error(&error);
        let mut payloads = Vec::with_capacity(notes.len());
        let mut large = 0u64;
        client.batch_execute("BEGIN").map_err(map)?;
        for note in notes {
            let inline = self.payload(note);
            if inline.len() <= MAX_INLINE {
                payloads.push(inline);
                continue;
            }
            let row = client
                .query_one(
                    "INSERT INTO \"_events\" (\"payload\") VALUES ($1) RETURNING \"id\"",
                    &[note],
                )
                .map_err(map)?;
            let id: i64 = row.get(0);
            self.sequence -= 1;
            payloads.push(self.payload(&format!("@{id}")));
            large += 1;
        }
        let prune = large > 0
            && self
                .last_prune
                .is_none_or(|at| at.elapsed() > EVENT_RETENTION / 10);
        if prune {
            client
                .execute(
                    "DELETE FROM \"_events\" WHERE \"created\" < now() - make_interval(secs => $1)",
                    &[&EVENT_RETENTION.as_secs_f64()],
                )
                .map_err(map)?;
        }
        client
            .execute(
                "SELECT pg_notify($1, p) FROM unnest($2::text[]) WITH ORDINALITY AS t(p, n) ORDER BY n",
                &[&CHANNEL, &payloads],
            )
            .map_err(map)?;
        client.batch_execute("COMMIT").map_err(map)?;
        if prune {
            self.last_prune = Some(Instant::now());
        }
        self.counters
            .sent
            .fetch_add(notes.len() as u64, Ordering::Relaxed);
        self.counters.sent_large.fetch_add(large, Ordering::Relaxed);
        Ok(())
    }
}

struct Listener {
    shared: Arc<Shared>,
    node: String,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    inbox: mpsc::Sender<PeerSignal>,
}

/// Why a listening session ended.
enum End {
    Stop,
    Lost(String),
}

impl Listener {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire) || self.inbox.is_closed()
    }

    fn run(self) {
        let mut failures = 0;
        while !self.stopping() {
            let mut client = match open(&self.shared) {
                Ok(client) => client,
                Err(error) => {
                    if failures == 0 {
                        tracing::warn!(%error, "peer listener cannot connect; retrying");
                    }
                    thread::sleep(backoff(failures));
                    failures += 1;
                    continue;
                }
            };
            if let Err(error) = client.batch_execute(&format!("LISTEN {CHANNEL}")) {
                tracing::warn!(%error, "peer listener: LISTEN failed; reconnecting");
                thread::sleep(backoff(failures));
                failures += 1;
                continue;
            }
            self.counters
                .listener_connections
                .fetch_add(1, Ordering::Relaxed);
            if failures > 0 {
                tracing::info!("peer listener reconnected");
            }
            failures = 0;
            if self.inbox.blocking_send(PeerSignal::Connected).is_err() {
                return;
            }
            match self.listen(&mut client) {
                End::Stop => return,
                End::Lost(reason) => {
                    tracing::warn!(reason = %reason, "peer listener lost its connection; reconnecting");
                }
            }
        }
    }

    fn listen(&self, client: &mut Client) -> End {
        let mut idle_since = Instant::now();
        loop {
            if self.stopping() {
                return End::Stop;
            }
            // Wait up to a tick for one notification, then take what else is buffered.
            let mut received = Vec::new();
            {
                let mut notifications = client.notifications();
                match notifications.timeout_iter(LISTEN_TICK).next() {
                    Ok(Some(first)) => received.push(first.payload().to_owned()),
                    Ok(None) => {}
                    Err(error) => return End::Lost(error.to_string()),
                }
                if !received.is_empty() {
                    let mut buffered = notifications.iter();
                    while received.len() < BATCH {
                        match buffered.next() {
                            Ok(Some(more)) => received.push(more.payload().to_owned()),
                            Ok(None) => break,
                            Err(error) => return End::Lost(error.to_string()),
                        }
                    }
                }
            }
            if received.is_empty() {
                if client.is_closed() {
                    return End::Lost("connection closed".into());
                }
                if idle_since.elapsed() >= PING_EVERY {
                    if let Err(error) = client.batch_execute("SELECT 1") {
                        return End::Lost(error.to_string());
                    }
                    idle_since = Instant::now();
                }
                continue;
            }
            idle_since = Instant::now();
            for payload in received {
                let Some(note) = self.note_of(client, &payload) else {
                    continue;
                };
                self.counters.received.fetch_add(1, Ordering::Relaxed);
                if self.inbox.blocking_send(PeerSignal::Note(note)).is_err() {
                    return End::Stop;
                }
            }
        }
    }

    /// The note in a payload from another node (reading `_events` for a large one);
    /// `None` for this node's own notes and for unreadable payloads.
    fn note_of(&self, client: &mut Client, payload: &str) -> Option<String> {
        let mut parts = payload.splitn(3, ':');
        let (node, _sequence, body) = (parts.next()?, parts.next()?, parts.next()?);
        if node == self.node {
            return None;
        }
        let Some(id) = body.strip_prefix('@') else {
            return Some(body.to_owned());
        };
        let id: i64 = id.parse().ok()?;
        match client.query_opt(
            "SELECT \"payload\" FROM \"_events\" WHERE \"id\" = $1",
            &[&id],
        ) {
            Ok(Some(row)) => Some(row.get(0)),
            Ok(None) => {
                tracing::warn!(id, "a large note was pruned before it was read");
                None
            }
            Err(error) => {
                tracing::warn!(%error, id, "reading a large note failed");
                None
            }
        }
    }
}
