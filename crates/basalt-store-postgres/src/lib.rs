//! `basalt-store-postgres`: the PostgreSQL backend of [`basalt_store::Store`], on the
//! synchronous, pure-Rust `postgres` driver running in a pool of worker threads.
//!
//! Key types: [`PgStore`] (open with [`PgStore::connect`]), [`PgOptions`] (default pool of
//! 8 connections), [`PgStats`].
//!
//! - `pool_size` worker threads each own one connection and take jobs from one shared
//!   queue. Read jobs run in a read-only repeatable-read transaction (one snapshot); each
//!   write job runs in its own transaction: `BEGIN`, the job, `COMMIT`, or `ROLLBACK` when
//!   the job returns `false` or panics. There is no group commit: PostgreSQL already
//!   batches concurrent commits' WAL flushes. `synchronous_commit` is left on, so `Ok`
//!   means the commit is on stable storage.
//! - The job queue is unbounded: back-pressure belongs above the store (request limits).
//!   `BEGIN` and `COMMIT`/`ROLLBACK` add two round trips to every job; a statement costs
//!   one, plus one to prepare it when it is not in the connection's statement cache.
//! - A dropped connection is replaced on the worker's next job, so a server restart gives
//!   `Unavailable` errors while it lasts and then recovers by itself.
//! - Values bind to whatever parameter type the server inferred, and columns read back by
//!   their type; see `value.rs` for the table. Basalt's DDL uses `double precision`,
//!   never `numeric`; a numeric result (from `SUM`/`AVG`) decodes to `Int` or `Float`.
//! - Prepared statements are cached per connection and dropped when DDL runs through the
//!   store.
//!
//! Invariants: nothing outside this crate sees a driver type or a SQLSTATE; errors are
//! mapped once, in `error.rs`. A job never runs twice. Blocking driver calls happen only
//! on the worker threads, never on the caller's (possibly async) thread.
//!
//! Difference from SQLite: when a statement fails inside a job, PostgreSQL aborts the
//! job's transaction, so a job cannot carry on after a failed statement (unless it uses
//! its own `SAVEPOINT`); if it tries and then returns success, the job fails rather than
//! report a commit that did not happen.

mod conn;
mod error;
mod peers;
mod value;
mod worker;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::thread::{self, JoinHandle, ThreadId};
use std::time::Duration;

use basalt_store::{Dialect, ErrorKind, ReadJob, Store, StoreError, WriteJob};
use crossbeam_channel::Sender;
use parking_lot::{Mutex, RwLock};

pub use crate::peers::{
    CHANNEL, EVENT_RETENTION, MAX_INLINE, PeerSignal, PeerStats, PgPeers, SEND_DEADLINE,
};
use crate::worker::{Job, Shared, Worker};

/// Options for [`PgStore::connect`]. Build with struct update syntax over `default()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgOptions {
    /// Connections (and worker threads) in the pool. Default: 8.
    pub pool_size: usize,
    /// Timeout for opening a connection, unless the URL sets `connect_timeout`.
    /// Default: 5 s.
    pub connect_timeout: Duration,
    /// Prepared statements cached per connection. Default: 256.
    pub statement_cache: usize,
    /// `application_name` reported to the server, unless the URL sets one.
    /// Default: `basalt`.
    pub application_name: String,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            pool_size: 8,
            connect_timeout: Duration::from_secs(5),
            statement_cache: 256,
            application_name: "basalt".to_owned(),
        }
    }
}

/// Counters since the store was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PgStats {
    /// Connections opened, including the initial `pool_size` ones; more means reconnects.
    pub connections_opened: u64,
    /// Write transactions committed.
    pub commits: u64,
    /// Write jobs rolled back because they returned `false` or panicked.
    pub rollbacks: u64,
    /// Read jobs run.
    pub read_jobs: u64,
    /// Write jobs run.
    pub write_jobs: u64,
}

/// The PostgreSQL [`Store`]. Dropping it closes it (see [`Store::close`]).
pub struct PgStore {
    jobs: RwLock<Option<Sender<Job>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    worker_ids: Mutex<Vec<ThreadId>>,
    shared: Arc<Shared>,
}

fn unavailable() -> StoreError {
    StoreError::new(ErrorKind::Unavailable, "the postgres store is closed")
}

impl PgStore {
    /// Connects a pool of `options.pool_size` connections to `url` (a `postgres://` URL or
    /// a `key=value` connection string) and starts the workers. Fails if any of the
    /// initial connections fails: `Unavailable` if the server cannot be reached.
    pub fn connect(url: &str, options: PgOptions) -> Result<PgStore, StoreError> {
        let mut config: postgres::Config = url.parse().map_err(|error| {
            StoreError::new(ErrorKind::Other, format!("invalid postgres url: {error}"))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.connect_timeout);
        }
        if config.get_application_name().is_none() {
            config.application_name(&options.application_name);
        }
        let store = PgStore {
            jobs: RwLock::new(None),
            threads: Mutex::new(Vec::new()),
            worker_ids: Mutex::new(Vec::new()),
            shared: Arc::new(Shared::new(config)),
        };
        let (jobs_tx, jobs_rx) = crossbeam_channel::unbounded();
        *store.jobs.write() = Some(jobs_tx);
        // Each worker connects on its own thread: the driver blocks on a private runtime,
        // which must not happen on a caller that may be inside an async runtime.
        let (ready_tx, ready) = mpsc::channel();
        for idx in 0..options.pool_size.max(1) {
            let shared = Arc::clone(&store.shared);
            let jobs = jobs_rx.clone();
            let ready = ready_tx.clone();
            let statement_cache = options.statement_cache;
            let handle = thread::Builder::new()
                .name(format!("basalt-pg-{idx}"))
                .spawn(move || {
                    let client = match worker::connect(&shared) {
                        Ok(client) => {
                            let _ = ready.send(Ok(()));
                            Some(client)
                        }
                        Err(error) => {
                            let _ = ready.send(Err(error));
                            None
                        }
                    };
                    drop(ready);
                    Worker::new(shared, client, statement_cache).run(jobs);
                })
                .map_err(|error| {
                    StoreError::new(
                        ErrorKind::Other,
                        format!("cannot start a postgres thread: {error}"),
                    )
                })?;
            store.worker_ids.lock().push(handle.thread().id());
            store.threads.lock().push(handle);
        }
        drop(ready_tx);
        for outcome in ready {
            outcome?;
        }
        tracing::info!(pool_size = options.pool_size, "postgres store connected");
        Ok(store)
    }

    /// Counters since the store was opened.
    pub fn stats(&self) -> PgStats {
        let shared = &*self.shared;
        PgStats {
            connections_opened: shared.connections_opened.load(Ordering::Relaxed),
            commits: shared.commits.load(Ordering::Relaxed),
            rollbacks: shared.rollbacks.load(Ordering::Relaxed),
            read_jobs: shared.read_jobs.load(Ordering::Relaxed),
            write_jobs: shared.write_jobs.load(Ordering::Relaxed),
        }
    }

    /// Sends a job to the pool, or gives it back if the store is closed.
    fn send(&self, job: Job) -> Option<Job> {
        let guard = self.jobs.read();
        match guard.as_ref() {
            Some(jobs) => jobs.send(job).err().map(|refused| refused.0),
            None => Some(job),
        }
    }
}

impl Store for PgStore {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn submit_read(&self, job: Box<dyn ReadJob>) {
        match self.send(Job::Read(job)) {
            Some(Job::Read(job)) => job.fail(unavailable()),
            Some(Job::Write(job)) => job.finish(Err(unavailable())),
            None => {}
        }
    }

    fn submit_write(&self, job: Box<dyn WriteJob>) {
        match self.send(Job::Write(job)) {
            Some(Job::Read(job)) => job.fail(unavailable()),
            Some(Job::Write(job)) => job.finish(Err(unavailable())),
            None => {}
        }
    }

    /// Every connection drops its prepared statements before its next job.
    fn schema_changed(&self) {
        self.shared.schema_epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Stops accepting jobs, lets the workers finish every queued job, then joins them
    /// (closing their connections). Idempotent. Called from inside a job (on one of this
    /// store's threads), it only stops accepting jobs: a thread cannot wait for itself.
    fn close(&self) {
        drop(self.jobs.write().take());
        let me = thread::current().id();
        if self.worker_ids.lock().contains(&me) {
            tracing::debug!("postgres: close called from a worker thread; not waiting");
            return;
        }
        let mut threads = self.threads.lock();
        let joined = !threads.is_empty();
        for handle in threads.drain(..) {
            if handle.join().is_err() {
                tracing::error!("postgres: a worker thread panicked");
            }
        }
        if joined {
            tracing::info!("postgres store closed");
        }
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.close();
    }
}
