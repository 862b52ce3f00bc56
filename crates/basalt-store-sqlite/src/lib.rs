//! `basalt-store-sqlite`: the SQLite backend of [`basalt_store::Store`] (rusqlite, bundled
//! SQLite, WAL, one writer with group commit, a pool of reader threads).
//!
//! Key types: [`SqliteStore`] (open with [`SqliteStore::open`]), [`SqliteOptions`]
//! (defaults: `synchronous=FULL`, 4 readers), [`Synchronous`], [`SqliteStats`].
//!
//! Threads and connections:
//! - One writer thread owns the only read-write connection. It blocks for a write job,
//!   drains up to `max_batch - 1` more queued jobs, and runs them in one
//!   `BEGIN IMMEDIATE` … `COMMIT` (one fsync), each job inside its own `SAVEPOINT`, so a
//!   failing or panicking job is rolled back alone. A job is told its outcome only once
//!   `COMMIT` has returned; if `COMMIT` fails, every job in the batch gets the error.
//! - `readers` threads each own a `query_only` connection and take read jobs from one
//!   shared queue; each read job runs in its own read transaction (one snapshot).
//!   With `readers == 0` (and for [`SqliteStore::open_in_memory`]) reads run on the
//!   writer thread, between batches.
//!
//! - A checkpointer thread (its own connection) copies the WAL into the database file in
//!   the background; the writer checkpoints inline only the rest, once the WAL has
//!   reached `checkpoint_pages` and the checkpointer has caught up (see `checkpoint.rs`).
//!
//! Job queues are unbounded: back-pressure belongs above the store (request limits).
//!
//! At `synchronous=FULL` the writer connection opens its WAL through the `walbuf` VFS,
//! which hands a commit's frames to the OS in a few large writes instead of two per page
//! (`SqliteOptions::gather_wal_writes`; see `walbuf.rs` for why that is safe).
//!
//! Every connection gets: `journal_mode=WAL`, `synchronous` (FULL by default: a commit is
//! on stable storage when the job is told `Ok`), `busy_timeout`, `foreign_keys=ON`,
//! `temp_store=MEMORY`, `cache_size`, `journal_size_limit`, `trusted_schema=OFF`.
//!
//! Invariants: nothing outside this crate sees a rusqlite type or SQLite result code;
//! errors are mapped once, in `error.rs`. The bundled SQLite is ≥ 3.51.3 (the WAL-reset
//! fix), checked by a test. A job never runs twice.
//!
//! Known limit: deferred constraints (`DEFERRABLE INITIALLY DEFERRED` foreign keys,
//! `PRAGMA defer_foreign_keys`) are checked at `COMMIT`, so a job that leaves one violated
//! fails its whole batch (every job in it gets the error; nothing is committed). Basalt's
//! DDL declares no deferred constraints.

mod checkpoint;
mod conn;
mod error;
mod walbuf;
mod worker;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::{self, JoinHandle, ThreadId};
use std::time::Duration;

use basalt_store::{Dialect, ErrorKind, ReadJob, Store, StoreError, WriteJob};
use crossbeam_channel::Sender;
use parking_lot::{Mutex, RwLock};
use rusqlite::{Connection, OpenFlags};

use crate::error::{context, map_error};
use crate::worker::{Counters, Job};

/// How hard SQLite works to make a commit durable (`PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// The WAL is fsynced at every commit: a commit survives power loss. The default.
    #[default]
    Full,
    /// The WAL is fsynced only at checkpoints: a commit survives a process crash, but the
    /// last commits may be lost on power loss or an OS crash.
    Normal,
}

/// Options for [`SqliteStore::open`]. Build with struct update syntax over `default()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteOptions {
    /// Durability of a commit. Default: [`Synchronous::Full`].
    pub synchronous: Synchronous,
    /// Number of reader threads (one connection each). Default: the number of cores,
    /// between 2 and 8. `0` runs reads on the writer thread.
    pub readers: usize,
    /// How long a connection waits for a lock held by another process. Default: 5 s.
    pub busy_timeout: Duration,
    /// Page cache per connection, in KiB (`PRAGMA cache_size = -N`). Default: 16 MiB.
    pub cache_size_kib: u32,
    /// Size the WAL is truncated to after a checkpoint, in bytes. Default: 64 MiB.
    pub journal_size_limit: u64,
    /// Most write jobs in one group-commit transaction. Default: 256.
    pub max_batch: usize,
    /// Prepared statements cached per connection. Default: 128.
    pub statement_cache: usize,
    /// Gather the writer's WAL writes into one `write` per commit (see `walbuf.rs`).
    /// Used only with [`Synchronous::Full`], whose fsync at each commit is what makes it
    /// safe. Default: true.
    pub gather_wal_writes: bool,
    /// The writer checkpoints the WAL (copies it into the database file) inside a commit
    /// once it holds this many pages: at once without the checkpointer, else as soon as
    /// the checkpointer has caught up, and at 1.5x this in any case. `0` never
    /// checkpoints automatically (only at close). Replaces SQLite's `wal_autocheckpoint`
    /// (1,000) on the writer.
    /// Default: 4,000 (16 MiB at 4 KiB pages); see `checkpoint.rs`.
    pub checkpoint_pages: u32,
    /// A checkpointer thread (its own connection) copies the WAL in the background once
    /// it reaches 7/8 of `checkpoint_pages`, so that the writer's own checkpoint has
    /// little left to do. Default: true.
    pub background_checkpoint: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            synchronous: Synchronous::Full,
            readers: std::thread::available_parallelism()
                .map(std::num::NonZeroUsize::get)
                .unwrap_or(2)
                .clamp(2, 8),
            busy_timeout: Duration::from_secs(5),
            cache_size_kib: 16 * 1024,
            journal_size_limit: 64 * 1024 * 1024,
            max_batch: 256,
            statement_cache: 128,
            gather_wal_writes: true,
            checkpoint_pages: 4000,
            background_checkpoint: true,
        }
    }
}

/// Counters since the store was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SqliteStats {
    /// Successful `COMMIT`s (one per group-commit batch).
    pub commits: u64,
    /// Write jobs finished (committed, rolled back by themselves, or failed).
    pub write_jobs: u64,
    /// Write jobs finished with an error from the store (a failed transaction, a panic,
    /// a closed store). Jobs that rolled themselves back are not counted.
    pub failed_write_jobs: u64,
    /// Transactions that could not begin or commit.
    pub failed_batches: u64,
    /// Read jobs run.
    pub read_jobs: u64,
    /// WAL checkpoints the writer ran inside a commit (the WAL reached
    /// `checkpoint_pages`).
    pub inline_checkpoints: u64,
    /// WAL checkpoints the checkpointer thread completed.
    pub background_checkpoints: u64,
}

struct Channels {
    writes: Sender<Job>,
    /// `None` when reads go to the writer thread.
    reads: Option<Sender<Box<dyn ReadJob>>>,
}

#[derive(Default)]
struct Threads {
    writer: Option<JoinHandle<Connection>>,
    readers: Vec<JoinHandle<()>>,
    checkpointer: Option<JoinHandle<()>>,
}

/// The SQLite [`Store`]. Dropping it closes it (see [`Store::close`]).
pub struct SqliteStore {
    path: Option<PathBuf>,
    channels: RwLock<Option<Channels>>,
    threads: Mutex<Threads>,
    /// The worker threads' ids, to avoid joining a thread from itself.
    worker_ids: Mutex<Vec<ThreadId>>,
    counters: Arc<Counters>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Writer,
    Reader,
    /// The background checkpointer's connection: reads the WAL, writes the database file.
    Checkpointer,
    Memory,
}

fn unavailable() -> StoreError {
    StoreError::new(ErrorKind::Unavailable, "the sqlite store is closed")
}

fn open_connection(
    path: &Path,
    options: &SqliteOptions,
    role: Role,
) -> Result<Connection, StoreError> {
    let flags = match role {
        Role::Writer | Role::Memory => {
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
        }
        Role::Reader | Role::Checkpointer => {
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX
        }
    };
    let gather = role == Role::Writer
        && options.gather_wal_writes
        && options.synchronous == Synchronous::Full
        && walbuf::register();
    let conn = if gather {
        Connection::open_with_flags_and_vfs(path, flags, walbuf::NAME)
    } else {
        Connection::open_with_flags(path, flags)
    }
    .map_err(map_error)?;
    configure(&conn, options, role)?;
    conn.set_prepared_statement_cache_capacity(options.statement_cache);
    Ok(conn)
}

fn configure(conn: &Connection, options: &SqliteOptions, role: Role) -> Result<(), StoreError> {
    let journal = set_pragmas(conn, options, role).map_err(map_error)?;
    let expected = if role == Role::Memory {
        "memory"
    } else {
        "wal"
    };
    if !journal.eq_ignore_ascii_case(expected) {
        return Err(StoreError::new(
            ErrorKind::Other,
            format!("cannot enable WAL: journal_mode is {journal}, expected {expected}"),
        ));
    }
    Ok(())
}

/// Sets the per-connection pragmas; returns the journal mode in force.
/// How much of the database file each reader may map (256 MiB).
const READER_MMAP_BYTES: i64 = 256 << 20;

fn set_pragmas(conn: &Connection, options: &SqliteOptions, role: Role) -> rusqlite::Result<String> {
    conn.busy_timeout(options.busy_timeout)?;
    let journal: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    let synchronous = match options.synchronous {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", synchronous)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.pragma_update(None, "cache_size", -i64::from(options.cache_size_kib))?;
    let journal_size_limit = i64::try_from(options.journal_size_limit).unwrap_or(i64::MAX);
    conn.pragma_update(None, "journal_size_limit", journal_size_limit)?;
    conn.pragma_update(None, "trusted_schema", "OFF")?;
    if role == Role::Reader {
        conn.pragma_update(None, "query_only", "ON")?;
        // Readers map the file: one shared copy in the OS page cache instead of a
        // private page cache per connection that misses on large tables.
        conn.pragma_update(None, "mmap_size", READER_MMAP_BYTES)?;
    }
    Ok(journal)
}

fn spawn<T: Send + 'static>(
    name: String,
    body: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<T>, StoreError> {
    thread::Builder::new()
        .name(name)
        .spawn(body)
        .map_err(|error| {
            StoreError::new(
                ErrorKind::Other,
                format!("cannot start a sqlite thread: {error}"),
            )
        })
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and starts the writer and
    /// reader threads. The parent directory must exist.
    pub fn open(path: &Path, options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        let doing = format!("opening sqlite database {}", path.display());
        let writer = open_connection(path, &options, Role::Writer)
            .map_err(|error| context(error, &doing))?;
        let readers = (0..options.readers)
            .map(|_| open_connection(path, &options, Role::Reader))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| context(error, &doing))?;
        let checkpointer = if options.background_checkpoint && options.checkpoint_pages > 0 {
            Some(
                open_connection(path, &options, Role::Checkpointer)
                    .map_err(|error| context(error, &doing))?,
            )
        } else {
            None
        };
        tracing::info!(
            path = %path.display(),
            sqlite = Self::sqlite_version(),
            synchronous = ?options.synchronous,
            readers = options.readers,
            checkpoint_pages = options.checkpoint_pages,
            background_checkpoint = checkpointer.is_some(),
            "sqlite store opened"
        );
        Self::start(
            Some(path.to_owned()),
            writer,
            readers,
            checkpointer,
            &options,
        )
    }

    /// Opens a private in-memory database (for tests). It has one connection, so reads
    /// run on the writer thread; `options.readers` is ignored.
    pub fn open_in_memory(options: SqliteOptions) -> Result<SqliteStore, StoreError> {
        let writer = open_connection(Path::new(":memory:"), &options, Role::Memory)?;
        Self::start(None, writer, Vec::new(), None, &options)
    }

    fn start(
        path: Option<PathBuf>,
        mut writer: Connection,
        readers: Vec<Connection>,
        checkpointer: Option<Connection>,
        options: &SqliteOptions,
    ) -> Result<SqliteStore, StoreError> {
        let (write_tx, write_rx) = crossbeam_channel::unbounded();
        let (read_tx, read_rx) = crossbeam_channel::unbounded();
        let store = SqliteStore {
            path,
            channels: RwLock::new(Some(Channels {
                writes: write_tx,
                reads: if readers.is_empty() {
                    None
                } else {
                    Some(read_tx)
                },
            })),
            threads: Mutex::new(Threads::default()),
            worker_ids: Mutex::new(Vec::new()),
            counters: Arc::new(Counters::default()),
        };
        if store.path.is_some() {
            let policy = checkpoint::Policy::new(options.checkpoint_pages, checkpointer.is_some());
            let copied = checkpoint::Copied::default();
            let wake = match checkpointer {
                Some(conn) => {
                    let (wake, woken) = crossbeam_channel::bounded(1);
                    let counters = Arc::clone(&store.counters);
                    let copied = Arc::clone(&copied);
                    let handle = spawn("basalt-sqlite-checkpointer".into(), move || {
                        checkpoint::checkpointer_loop(conn, woken, counters, copied)
                    })?;
                    store.worker_ids.lock().push(handle.thread().id());
                    store.threads.lock().checkpointer = Some(handle);
                    Some(wake)
                }
                None => None,
            };
            checkpoint::install(
                &mut writer,
                policy,
                wake,
                Arc::clone(&store.counters),
                copied,
            )
            .map_err(map_error)?;
        }
        let counters = Arc::clone(&store.counters);
        let max_batch = options.max_batch;
        let handle = spawn("basalt-sqlite-writer".into(), move || {
            worker::write_loop(writer, write_rx, max_batch, counters)
        })?;
        store.worker_ids.lock().push(handle.thread().id());
        store.threads.lock().writer = Some(handle);
        for (idx, conn) in readers.into_iter().enumerate() {
            let jobs = read_rx.clone();
            let counters = Arc::clone(&store.counters);
            let handle = spawn(format!("basalt-sqlite-reader-{idx}"), move || {
                worker::read_loop(conn, jobs, counters)
            })?;
            store.worker_ids.lock().push(handle.thread().id());
            store.threads.lock().readers.push(handle);
        }
        Ok(store)
    }

    /// The version of the SQLite library in use (the bundled one), e.g. `"3.51.3"`.
    pub fn sqlite_version() -> &'static str {
        rusqlite::version()
    }

    /// The version of the SQLite library as a number, e.g. `3051003` for 3.51.3.
    pub fn sqlite_version_number() -> i32 {
        rusqlite::version_number()
    }

    /// The database file, or `None` for an in-memory store.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Counters since the store was opened.
    pub fn stats(&self) -> SqliteStats {
        let counters = &*self.counters;
        SqliteStats {
            commits: counters.commits.load(Ordering::Relaxed),
            write_jobs: counters.write_jobs.load(Ordering::Relaxed),
            failed_write_jobs: counters.failed_write_jobs.load(Ordering::Relaxed),
            failed_batches: counters.failed_batches.load(Ordering::Relaxed),
            read_jobs: counters.read_jobs.load(Ordering::Relaxed),
            inline_checkpoints: counters.inline_checkpoints.load(Ordering::Relaxed),
            background_checkpoints: counters.background_checkpoints.load(Ordering::Relaxed),
        }
    }
}

/// Final work on the writer connection once every other connection is closed.
fn checkpoint_and_close(conn: Connection) {
    if let Err(error) = conn.execute_batch("PRAGMA optimize;") {
        tracing::warn!(error = %map_error(error), "sqlite: PRAGMA optimize failed");
    }
    let checkpoint = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
            row.get::<_, i64>(0)
        })
        .map_err(map_error);
    match checkpoint {
        Ok(0) => tracing::debug!("sqlite: WAL checkpointed and truncated"),
        Ok(_) => tracing::warn!("sqlite: WAL checkpoint could not complete (busy)"),
        Err(error) => tracing::warn!(%error, "sqlite: WAL checkpoint failed"),
    }
    if let Err((_, error)) = conn.close() {
        tracing::warn!(error = %map_error(error), "sqlite: closing the writer connection failed");
    }
}

impl Store for SqliteStore {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn submit_read(&self, job: Box<dyn ReadJob>) {
        let guard = self.channels.read();
        let Some(channels) = guard.as_ref() else {
            drop(guard);
            return job.fail(unavailable());
        };
        let refused = match &channels.reads {
            Some(reads) => reads.send(job).err().map(|refused| refused.0),
            None => match channels.writes.send(Job::Read(job)) {
                Ok(()) => None,
                Err(refused) => match refused.0 {
                    Job::Read(job) => Some(job),
                    Job::Write(_) => None,
                },
            },
        };
        drop(guard);
        if let Some(job) = refused {
            job.fail(unavailable());
        }
    }

    fn submit_write(&self, job: Box<dyn WriteJob>) {
        let channels = self.channels.read();
        let refused = match channels.as_ref() {
            Some(channels) => match channels.writes.send(Job::Write(job)) {
                Ok(()) => None,
                Err(refused) => match refused.0 {
                    Job::Write(job) => Some(job),
                    Job::Read(_) => None,
                },
            },
            None => Some(job),
        };
        drop(channels);
        if let Some(job) = refused {
            job.finish(Err(unavailable()));
        }
    }

    /// Stops accepting jobs, lets the threads finish every queued job, joins them, then
    /// checkpoints the WAL (truncating it) and closes the writer connection. Idempotent.
    /// Called from inside a job (on one of this store's threads), it only stops accepting
    /// jobs: a thread cannot wait for itself.
    fn close(&self) {
        drop(self.channels.write().take());
        let me = thread::current().id();
        if self.worker_ids.lock().contains(&me) {
            tracing::debug!("sqlite: close called from a worker thread; not waiting");
            return;
        }
        let mut threads = self.threads.lock();
        for reader in threads.readers.drain(..) {
            if reader.join().is_err() {
                tracing::error!("sqlite: a reader thread panicked");
            }
        }
        if let Some(writer) = threads.writer.take() {
            let writer = writer.join();
            // The writer's connection holds the checkpointer's only wake-up sender: with
            // the hook removed (or the connection gone with a panic) the checkpointer
            // ends, and the final checkpoint below cannot find it holding the lock.
            let writer = writer.map(|mut conn| {
                checkpoint::uninstall(&mut conn);
                conn
            });
            if let Some(checkpointer) = threads.checkpointer.take()
                && checkpointer.join().is_err()
            {
                tracing::error!("sqlite: the checkpointer thread panicked");
            }
            match writer {
                Ok(conn) => checkpoint_and_close(conn),
                Err(_) => tracing::error!("sqlite: the writer thread panicked"),
            }
            tracing::info!(path = ?self.path, "sqlite store closed");
        }
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The writer connection gathers its WAL writes at FULL only; readers never do.
    #[test]
    fn only_the_writer_at_full_gathers_wal_writes() {
        let dir = std::env::temp_dir().join(format!("basalt-roles-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("data.db");
        let gathered = |role, synchronous, gather_wal_writes| {
            let options = SqliteOptions {
                synchronous,
                gather_wal_writes,
                ..SqliteOptions::default()
            };
            let conn = open_connection(&path, &options, role).expect("open");
            conn.execute_batch("CREATE TABLE IF NOT EXISTS t (x); SELECT * FROM t")
                .expect("wal opened");
            walbuf::counters(&conn).is_some()
        };
        assert!(gathered(Role::Writer, Synchronous::Full, true));
        assert!(!gathered(Role::Writer, Synchronous::Normal, true));
        assert!(!gathered(Role::Writer, Synchronous::Full, false));
        assert!(!gathered(Role::Reader, Synchronous::Full, true));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
