//! The broker: connected clients, their subscriptions and stored auth, a bounded queue
//! per client, and the connection caps.
//!
//! Locks: the registry lock is taken before a client's own locks, never the other way
//! round, and none is held across an `.await` or while waking a task. Sending never
//! waits: a client whose queue is full is dropped (its stream ends), so a slow reader
//! cannot hold up writers or other clients.
//!
//! A client's queue is a `VecDeque` and the waker of its stream behind one small lock:
//! a send is one lock, a push and at most one wake-up. (A tokio channel per client did
//! the same with a semaphore, a block list and an atomic waker, each its own cache lines
//! to miss when one event goes to 10,000 clients.)

use std::collections::VecDeque;
use std::collections::{HashMap, HashSet};
use std::future::{Future, poll_fn};
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use basalt_schema::random_string;
use parking_lot::{Mutex, RwLock};
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};

use super::topic::Subscription;
use crate::auth::Auth;
use crate::error::CoreError;

/// Realtime limits and timeouts, fixed at start-up.
#[derive(Debug, Clone)]
pub struct RealtimeConfig {
    /// Connected clients at most (further connects get 503). Default 20,000.
    pub max_clients: usize,
    /// Connected clients per client IP at most (further connects get 429). Default
    /// 10,000: high, because every client behind one reverse proxy shares its address.
    pub max_clients_per_ip: usize,
    /// Messages queued per client; a client whose queue is full is dropped. Default 256.
    pub client_buffer: usize,
    /// A stream is closed after this long without any message. Default 5 minutes.
    pub idle_timeout: Duration,
    /// A stream is closed after this long in any case. Default 30 minutes.
    pub max_lifetime: Duration,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        RealtimeConfig {
            max_clients: 20_000,
            max_clients_per_ip: 10_000,
            client_buffer: 256,
            idle_timeout: Duration::from_secs(5 * 60),
            max_lifetime: Duration::from_secs(30 * 60),
        }
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectError {
    /// The total cap is reached (or the server is shutting down): 503.
    Full,
    /// The cap of the client's address is reached: 429.
    TooManyForAddress,
}

/// One SSE message without its `id:` line: `event:<name>\ndata:<json>\n\n`. Encoded
/// once and shared by every client that receives it.
#[derive(Debug, Clone)]
pub struct Message(Arc<[u8]>);

impl Message {
    /// Builds a message. `event` must not contain line breaks (subscriptions that do are
    /// refused); `data` is compact JSON, which has none.
    pub(crate) fn new(event: &str, data: &str) -> Message {
        let mut bytes = Vec::with_capacity(event.len() + data.len() + 14);
        bytes.extend_from_slice(b"event:");
        bytes.extend_from_slice(event.as_bytes());
        bytes.extend_from_slice(b"\ndata:");
        bytes.extend_from_slice(data.as_bytes());
        bytes.extend_from_slice(b"\n\n");
        Message(bytes.into())
    }

    /// The encoded bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for Message {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// A connected client as the broker keeps it.
pub(crate) struct Client {
    pub(crate) id: Arc<str>,
    ip: Option<IpAddr>,
    closed: AtomicBool,
    queue: Mutex<Queue>,
    pub(crate) state: Mutex<ClientState>,
}

/// Messages waiting for a client's stream, and the stream's waker.
#[derive(Default)]
struct Queue {
    messages: VecDeque<Message>,
    /// The stream's task, while it waits for a message.
    waker: Option<Waker>,
    /// Set when the client is removed: its stream ends at once, queued messages or
    /// not, and nothing more is queued.
    ended: bool,
}

/// What a client asked for, and as whom.
#[derive(Default)]
pub(crate) struct ClientState {
    /// The auth stored by its last subscribe call.
    pub(crate) auth: Option<Arc<Auth>>,
    /// Its subscriptions, without duplicates.
    pub(crate) subscriptions: Vec<Arc<Subscription>>,
    /// The collection keys it is indexed under (changed with the registry lock held).
    indexed: Vec<String>,
}

/// A subscription of a client that matches a change.
pub(crate) struct Target {
    pub(crate) client: Arc<Client>,
    pub(crate) auth: Option<Arc<Auth>>,
    pub(crate) subscription: Arc<Subscription>,
}

#[derive(Default)]
struct Registry {
    clients: HashMap<Arc<str>, Arc<Client>>,
    per_ip: HashMap<IpAddr, usize>,
    /// Collection name or id as written in topics → clients with such a topic.
    by_collection: HashMap<String, HashMap<Arc<str>, Arc<Client>>>,
}

struct Shared {
    config: RealtimeConfig,
    registry: RwLock<Registry>,
    closing: AtomicBool,
    dropped_slow: AtomicU64,
    queue: OnceLock<mpsc::Sender<super::dispatch::Job>>,
}

/// The realtime broker of an app. Cheap to clone.
#[derive(Clone)]
pub struct Broker(Arc<Shared>);

/// Counters for tests and diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RealtimeStats {
    /// Connected clients.
    pub clients: usize,
    /// Clients dropped because their queue was full.
    pub dropped_slow: u64,
}

impl Broker {
    pub(crate) fn new(config: RealtimeConfig) -> Broker {
        Broker(Arc::new(Shared {
            config,
            registry: RwLock::new(Registry::default()),
            closing: AtomicBool::new(false),
            dropped_slow: AtomicU64::new(0),
            queue: OnceLock::new(),
        }))
    }

    /// The limits in force.
    pub fn config(&self) -> &RealtimeConfig {
        &self.0.config
    }

    /// Current counters.
    pub fn stats(&self) -> RealtimeStats {
        RealtimeStats {
            clients: self.0.registry.read().clients.len(),
            dropped_slow: self.0.dropped_slow.load(Ordering::Relaxed),
        }
    }

    /// Registers a new client connecting from `ip` (`None` when unknown).
    pub fn connect(&self, ip: Option<IpAddr>) -> Result<Connection, ConnectError> {
        let config = &self.0.config;
        let mut registry = self.0.registry.write();
        if self.0.closing.load(Ordering::Acquire) || registry.clients.len() >= config.max_clients {
            return Err(ConnectError::Full);
        }
        if let Some(ip) = ip
            && registry.per_ip.get(&ip).copied().unwrap_or(0) >= config.max_clients_per_ip
        {
            return Err(ConnectError::TooManyForAddress);
        }
        let id: Arc<str> = loop {
            let candidate: Arc<str> = Arc::from(random_string(40));
            if !registry.clients.contains_key(&candidate) {
                break candidate;
            }
        };
        let client = Arc::new(Client {
            id: id.clone(),
            ip,
            closed: AtomicBool::new(false),
            queue: Mutex::new(Queue::default()),
            state: Mutex::new(ClientState::default()),
        });
        registry.clients.insert(id, client.clone());
        if let Some(ip) = ip {
            *registry.per_ip.entry(ip).or_insert(0) += 1;
        }
        let now = Instant::now();
        let deadline = now + config.max_lifetime;
        Ok(Connection {
            broker: self.clone(),
            client,
            greeted: false,
            idle: config.idle_timeout,
            deadline,
            last_message: now,
            timer: Box::pin(tokio::time::sleep_until(
                (now + config.idle_timeout).min(deadline),
            )),
        })
    }

    /// Closes every stream and refuses new ones (graceful shutdown).
    pub fn shutdown(&self) {
        self.0.closing.store(true, Ordering::Release);
        let clients: Vec<Arc<Client>> = self.0.registry.read().clients.values().cloned().collect();
        for client in clients {
            self.remove(&client);
        }
    }

    fn find(&self, client_id: &str) -> Option<Arc<Client>> {
        self.0.registry.read().clients.get(client_id).cloned()
    }

    /// Replaces a client's subscriptions and stores its auth. Errors: 404 unknown
    /// client, 400 another address, 403 another auth than the one stored before.
    pub(crate) fn set_subscriptions(
        &self,
        client_id: &str,
        ip: Option<IpAddr>,
        auth: Option<Auth>,
        subscriptions: &[String],
    ) -> Result<Arc<Client>, CoreError> {
        let client = self
            .find(client_id)
            .filter(|c| !c.closed.load(Ordering::Acquire))
            .ok_or_else(|| CoreError::NotFound("Missing or invalid client id.".into()))?;
        if let (Some(bound), Some(ip)) = (client.ip, ip)
            && bound != ip
        {
            return Err(CoreError::bad_request("Invalid realtime client."));
        }
        let mut seen = HashSet::new();
        let parsed: Vec<Arc<Subscription>> = subscriptions
            .iter()
            .filter(|raw| !raw.contains(['\r', '\n']) && seen.insert(raw.as_str()))
            .filter_map(|raw| Subscription::parse(raw))
            .map(Arc::new)
            .collect();
        {
            let mut state = client.state.lock();
            if let Some(stored) = &state.auth {
                let same = auth.as_ref().is_some_and(|new| same_auth(new, stored));
                if !same {
                    return Err(CoreError::Forbidden(
                        "The current and the previous request authorization don't match.".into(),
                    ));
                }
            }
            state.auth = auth.map(Arc::new);
            state.subscriptions = parsed;
        }
        self.reindex(&client);
        Ok(client)
    }

    /// Brings the collection index in line with the client's subscriptions.
    fn reindex(&self, client: &Arc<Client>) {
        let mut registry = self.0.registry.write();
        let registered = registry
            .clients
            .get(&client.id)
            .is_some_and(|c| Arc::ptr_eq(c, client));
        let mut state = client.state.lock();
        let mut wanted: Vec<String> = if registered {
            state
                .subscriptions
                .iter()
                .map(|s| s.collection.clone())
                .collect()
        } else {
            Vec::new()
        };
        wanted.sort();
        wanted.dedup();
        for key in &state.indexed {
            if !wanted.contains(key)
                && let Some(set) = registry.by_collection.get_mut(key)
            {
                set.remove(&client.id);
                if set.is_empty() {
                    registry.by_collection.remove(key);
                }
            }
        }
        for key in &wanted {
            registry
                .by_collection
                .entry(key.clone())
                .or_default()
                .insert(client.id.clone(), client.clone());
        }
        state.indexed = wanted;
    }

    /// Ends a client's stream now, queued messages or not, and forgets the client: when
    /// it is killed (too slow, shutdown) or its stream was dropped. Idempotent.
    fn remove(&self, client: &Arc<Client>) {
        client.closed.store(true, Ordering::Release);
        let waker = {
            let mut queue = client.queue.lock();
            queue.ended = true;
            queue.messages.clear();
            queue.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        let mut registry = self.0.registry.write();
        let registered = registry
            .clients
            .get(&client.id)
            .is_some_and(|c| Arc::ptr_eq(c, client));
        if registered {
            registry.clients.remove(&client.id);
            if let Some(ip) = client.ip
                && let Some(count) = registry.per_ip.get_mut(&ip)
            {
                *count -= 1;
                if *count == 0 {
                    registry.per_ip.remove(&ip);
                }
            }
        }
        let mut state = client.state.lock();
        for key in std::mem::take(&mut state.indexed) {
            if let Some(set) = registry.by_collection.get_mut(&key) {
                set.remove(&client.id);
                if set.is_empty() {
                    registry.by_collection.remove(&key);
                }
            }
        }
    }

    /// Queues a message for a client without waiting; a full queue (`client_buffer`
    /// messages) drops the client.
    pub(crate) fn send(&self, client: &Arc<Client>, message: Message) {
        let waker = {
            let mut queue = client.queue.lock();
            if queue.ended {
                return;
            }
            if queue.messages.len() >= self.0.config.client_buffer.max(1) {
                // Ended under the lock, so a concurrent sender neither queues nor counts.
                queue.ended = true;
                drop(queue);
                self.0.dropped_slow.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(client = %client.id, "realtime client too slow, dropped");
                self.remove(client);
                return;
            }
            queue.messages.push_back(message);
            queue.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Sends `data` as an `event:<topic>` message to one client, if it is connected and
    /// subscribed to exactly `topic` (the OAuth2 redirect's `@oauth2`). A client bound to
    /// another address than `ip` is not sent to. Returns whether it was queued.
    pub fn send_to_subscriber(
        &self,
        client_id: &str,
        ip: Option<IpAddr>,
        topic: &str,
        data: &str,
    ) -> bool {
        let Some(client) = self.find(client_id) else {
            return false;
        };
        if client.closed.load(Ordering::Acquire) || topic.contains(['\r', '\n']) {
            return false;
        }
        if let (Some(bound), Some(ip)) = (client.ip, ip)
            && bound != ip
        {
            return false;
        }
        let subscribed = client
            .state
            .lock()
            .subscriptions
            .iter()
            .any(|s| &*s.raw == topic);
        if !subscribed {
            return false;
        }
        self.send(&client, Message::new(topic, data));
        true
    }

    /// Whether any client has a topic on this collection.
    pub(crate) fn watches(&self, name: &str, id: &str) -> bool {
        let registry = self.0.registry.read();
        registry.by_collection.contains_key(name) || registry.by_collection.contains_key(id)
    }

    /// Whether any client is connected.
    pub(crate) fn has_clients(&self) -> bool {
        !self.0.registry.read().clients.is_empty()
    }

    /// Every subscription matching a change of record `record_id` of the collection
    /// named `name` with id `id`, with its client's stored auth.
    pub(crate) fn targets(&self, name: &str, id: &str, record_id: &str) -> Vec<Target> {
        let clients: Vec<Arc<Client>> = {
            let registry = self.0.registry.read();
            let by_name = registry.by_collection.get(name);
            let by_id = registry.by_collection.get(id).filter(|_| id != name);
            let mut clients: Vec<Arc<Client>> = by_name
                .into_iter()
                .flat_map(|m| m.values().cloned())
                .collect();
            if let Some(by_id) = by_id {
                clients.extend(
                    by_id
                        .iter()
                        .filter(|(key, _)| !by_name.is_some_and(|m| m.contains_key(*key)))
                        .map(|(_, c)| c.clone()),
                );
            }
            clients
        };
        let mut targets = Vec::new();
        for client in clients {
            if client.closed.load(Ordering::Acquire) {
                continue;
            }
            let state = client.state.lock();
            for subscription in &state.subscriptions {
                let collection_matches =
                    subscription.collection == name || subscription.collection == id;
                let record_matches = subscription
                    .record
                    .as_deref()
                    .is_none_or(|wanted| wanted == record_id);
                if collection_matches && record_matches {
                    targets.push(Target {
                        client: client.clone(),
                        auth: state.auth.clone(),
                        subscription: subscription.clone(),
                    });
                }
            }
        }
        targets
    }

    /// Every client authenticated as this record becomes a guest.
    pub(crate) fn forget_auth(&self, collection_id: &str, record_id: &str) {
        self.update_auth(collection_id, record_id, |_| None);
    }

    /// Clients authenticated as this record keep it, with its current values.
    pub(crate) fn refresh_auth(&self, auth: &Auth) {
        let fresh = Arc::new(auth.clone());
        self.update_auth(&auth.collection.id, auth.id(), |_| Some(fresh.clone()));
    }

    /// The client becomes a guest if it still holds `auth`.
    pub(crate) fn forget_auth_of(&self, client: &Client, auth: &Auth) {
        let mut state = client.state.lock();
        if state.auth.as_ref().is_some_and(|a| same_auth(a, auth)) {
            state.auth = None;
        }
    }

    fn update_auth(
        &self,
        collection_id: &str,
        record_id: &str,
        change: impl Fn(&Arc<Auth>) -> Option<Arc<Auth>>,
    ) {
        let clients: Vec<Arc<Client>> = self.0.registry.read().clients.values().cloned().collect();
        for client in clients {
            let mut state = client.state.lock();
            let matches = state
                .auth
                .as_ref()
                .is_some_and(|a| a.collection.id == collection_id && a.id() == record_id);
            if matches && let Some(current) = state.auth.take() {
                state.auth = change(&current);
            }
        }
    }

    /// The dispatcher queue, started on first use by `start`.
    pub(crate) fn queue(
        &self,
        start: impl FnOnce() -> mpsc::Sender<super::dispatch::Job>,
    ) -> &mpsc::Sender<super::dispatch::Job> {
        self.0.queue.get_or_init(start)
    }
}

/// Whether two auths are the same record of the same collection.
fn same_auth(a: &Auth, b: &Auth) -> bool {
    a.collection.id == b.collection.id && a.id() == b.id()
}

/// A connected client's end: its messages, in order, until the stream must end.
/// Dropping it unregisters the client.
pub struct Connection {
    broker: Broker,
    client: Arc<Client>,
    greeted: bool,
    idle: Duration,
    deadline: Instant,
    last_message: Instant,
    /// One timer for the whole stream, re-armed only when it fires (no timer churn per
    /// message): it ends the stream past the lifetime or after `idle` without messages.
    timer: Pin<Box<Sleep>>,
}

impl Connection {
    /// The 40-character client id.
    pub fn client_id(&self) -> &str {
        &self.client.id
    }

    /// The next message: `PB_CONNECT` first, then queued events. `None` when the stream
    /// must end: idle for the idle timeout, past the lifetime, dropped as too slow, or
    /// the server is shutting down.
    pub async fn recv(&mut self) -> Option<Message> {
        let mut one = Vec::with_capacity(1);
        if self.recv_many(&mut one, 1).await {
            one.pop()
        } else {
            None
        }
    }

    /// Appends up to `limit` messages (at least one) to `out`, waiting for the first;
    /// `false` when the stream must end (see [`Connection::recv`]).
    pub async fn recv_many(&mut self, out: &mut Vec<Message>, limit: usize) -> bool {
        poll_fn(|cx| self.poll_recv_many(cx, out, limit)).await
    }

    /// [`Connection::recv_many`] as a poll: `Ready(true)` once messages were appended,
    /// `Ready(false)` when the stream must end, `Pending` (the task is woken by the next
    /// message, a kill or the stream's timer) otherwise.
    pub fn poll_recv_many(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut Vec<Message>,
        limit: usize,
    ) -> Poll<bool> {
        if !self.greeted {
            self.greeted = true;
            let data = format!("{{\"clientId\":\"{}\"}}", self.client.id);
            out.push(Message::new("PB_CONNECT", &data));
            return Poll::Ready(true);
        }
        loop {
            {
                let mut queue = self.client.queue.lock();
                // Killed clients end at once, even with messages still queued.
                if queue.ended {
                    return Poll::Ready(false);
                }
                if !queue.messages.is_empty() {
                    // A stream that always has a message never waits on its timer, so
                    // the lifetime is checked here too.
                    let now = Instant::now();
                    if now >= self.deadline {
                        return Poll::Ready(false);
                    }
                    let take = queue.messages.len().min(limit.max(1));
                    out.extend(queue.messages.drain(..take));
                    drop(queue);
                    self.last_message = now;
                    return Poll::Ready(true);
                }
                match &mut queue.waker {
                    Some(waker) if waker.will_wake(cx.waker()) => {}
                    slot => *slot = Some(cx.waker().clone()),
                }
            }
            match self.timer.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) => {
                    let now = Instant::now();
                    let idle_end = self.last_message + self.idle;
                    if now >= self.deadline || now >= idle_end {
                        return Poll::Ready(false);
                    }
                    self.timer.as_mut().reset(idle_end.min(self.deadline));
                }
            }
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.broker.remove(&self.client);
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("client_id", &self.client.id)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(client_buffer: usize) -> Broker {
        Broker::new(RealtimeConfig {
            client_buffer,
            ..RealtimeConfig::default()
        })
    }

    /// Connects and reads `PB_CONNECT`; returns the connection and its broker-side client.
    async fn connected(broker: &Broker) -> (Connection, Arc<Client>) {
        let mut connection = broker.connect(None).expect("connect");
        let hello = connection.recv().await.expect("PB_CONNECT");
        assert!(hello.bytes().starts_with(b"event:PB_CONNECT\ndata:"));
        let client = broker.find(connection.client_id()).expect("registered");
        (connection, client)
    }

    fn event(n: usize) -> Message {
        Message::new("notes/*", &format!("{{\"n\":{n}}}"))
    }

    #[tokio::test]
    async fn a_queue_holds_client_buffer_messages_and_one_more_drops_the_client() {
        let broker = broker(3);
        let (mut connection, client) = connected(&broker).await;
        for n in 0..3 {
            broker.send(&client, event(n));
        }
        assert_eq!(broker.stats().dropped_slow, 0, "3 of 3 queued: kept");
        let mut out = Vec::new();
        assert!(connection.recv_many(&mut out, 10).await);
        let got: Vec<&[u8]> = out.iter().map(Message::bytes).collect();
        assert_eq!(got, [event(0).bytes(), event(1).bytes(), event(2).bytes()]);

        for n in 3..7 {
            broker.send(&client, event(n));
        }
        let stats = broker.stats();
        assert_eq!(
            stats.dropped_slow, 1,
            "the 4th queued message drops the client"
        );
        assert_eq!(stats.clients, 0);
        assert!(
            connection.recv().await.is_none(),
            "a dropped client's stream ends without its queued messages"
        );
        broker.send(&client, event(7));
        assert_eq!(
            broker.stats().dropped_slow,
            1,
            "a dropped client is not dropped again"
        );
    }

    #[tokio::test]
    async fn recv_many_takes_at_most_limit_in_order() {
        let broker = broker(16);
        let (mut connection, client) = connected(&broker).await;
        for n in 0..5 {
            broker.send(&client, event(n));
        }
        let mut out = Vec::new();
        assert!(connection.recv_many(&mut out, 2).await);
        assert!(connection.recv_many(&mut out, 2).await);
        assert!(connection.recv_many(&mut out, 2).await);
        let got: Vec<Vec<u8>> = out.iter().map(|m| m.bytes().to_vec()).collect();
        let want: Vec<Vec<u8>> = (0..5).map(|n| event(n).bytes().to_vec()).collect();
        assert_eq!(got, want);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiting_stream_is_woken_by_a_send_and_by_shutdown() {
        let broker = broker(16);
        let (mut connection, client) = connected(&broker).await;
        let reader = tokio::spawn(async move {
            let first = connection.recv().await.map(|m| m.bytes().to_vec());
            let second = connection.recv().await.map(|m| m.bytes().to_vec());
            (first, second)
        });
        // Give the reader time to park on an empty queue before each wake-up.
        tokio::time::sleep(Duration::from_millis(50)).await;
        broker.send(&client, event(1));
        tokio::time::sleep(Duration::from_millis(50)).await;
        broker.shutdown();
        let (first, second) = tokio::time::timeout(Duration::from_secs(5), reader)
            .await
            .expect("woken")
            .expect("reader");
        assert_eq!(first.as_deref(), Some(event(1).bytes()));
        assert_eq!(second, None, "shutdown ends the stream");
        assert!(broker.connect(None).is_err(), "no connects after shutdown");
    }

    #[tokio::test]
    async fn a_stream_that_is_never_idle_still_ends_at_its_lifetime() {
        let broker = Broker::new(RealtimeConfig {
            max_lifetime: Duration::from_millis(300),
            idle_timeout: Duration::from_secs(60),
            ..RealtimeConfig::default()
        });
        let (mut connection, client) = connected(&broker).await;
        let started = std::time::Instant::now();
        let mut delivered = 0;
        // A message is always waiting when the stream is polled; at most 4 s of them.
        for n in 0..200 {
            broker.send(&client, event(n));
            if connection.recv().await.is_none() {
                break;
            }
            delivered += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let lived = started.elapsed();
        assert!(delivered >= 1, "messages flow before the lifetime ends");
        assert!(delivered < 200, "the stream ended ({delivered} messages)");
        assert!(
            lived >= Duration::from_millis(300) && lived < Duration::from_secs(3),
            "ended after {lived:?}"
        );
    }

    #[tokio::test]
    async fn a_dropped_connection_unregisters_and_takes_no_more_messages() {
        let broker = broker(2);
        let (connection, client) = connected(&broker).await;
        drop(connection);
        assert_eq!(broker.stats().clients, 0);
        for n in 0..5 {
            broker.send(&client, event(n));
        }
        assert_eq!(
            broker.stats().dropped_slow,
            0,
            "nothing queued for a gone client"
        );
        assert!(client.queue.lock().messages.is_empty());
    }
}
