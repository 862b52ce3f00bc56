//! `basalt-store`: the storage seam between the services and a database backend.
//!
//! Key types: [`Store`] (a backend, shared as `Arc<dyn Store>`), [`Conn`] (a connection
//! handed to a job), [`StoreError`] with [`ErrorKind`].
//!
//! Work is submitted as synchronous jobs that run on the backend's own threads, next to
//! the connection: a read job on a read connection, a write job inside a transaction.
//! This keeps blocking drivers off the async runtime and lets the SQLite backend batch
//! concurrent writes into one transaction and one fsync (group commit). Async callers
//! use [`read`] and [`write`], which wait on a oneshot channel.
//!
//! Invariants: no driver dependency here; nothing above this crate sees SQLite result
//! codes or SQLSTATEs, only [`ErrorKind`].

use std::fmt;

#[cfg(feature = "suite")]
pub mod suite;

pub use basalt_sql::{Dialect, SqlQuery, Value};

/// The result rows of a query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    /// Column names, in select order.
    pub columns: Vec<String>,
    /// The rows; each has one value per column.
    pub rows: Vec<Vec<Value>>,
}

/// What went wrong in storage, as the layers above need to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A unique constraint or index was violated.
    UniqueViolation,
    /// A foreign key was violated.
    ForeignKeyViolation,
    /// A NOT NULL constraint was violated.
    NotNullViolation,
    /// A CHECK constraint was violated.
    CheckViolation,
    /// The database is busy or locked; retrying may succeed.
    Busy,
    /// The backend is unreachable or shut down.
    Unavailable,
    /// Anything else.
    Other,
}

/// An error from a storage backend.
#[derive(Debug, Clone)]
pub struct StoreError {
    kind: ErrorKind,
    message: String,
    /// For constraint violations: the columns involved (`table.column` stripped to `column`).
    columns: Vec<String>,
    /// For constraint violations: the name of the constraint or index, when the backend says.
    constraint: Option<String>,
}

impl StoreError {
    /// Builds an error.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        StoreError {
            kind,
            message: message.into(),
            columns: Vec::new(),
            constraint: None,
        }
    }

    /// Builds a constraint error naming the columns involved.
    pub fn with_columns(mut self, columns: Vec<String>) -> Self {
        self.columns = columns;
        self
    }

    /// Names the violated constraint or index (for example a unique index on an expression,
    /// where there are no plain columns to report).
    pub fn with_constraint(mut self, constraint: impl Into<String>) -> Self {
        self.constraint = Some(constraint.into());
        self
    }

    /// What kind of error this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The columns involved in a constraint violation, when the backend says.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The name of the violated constraint or index, when the backend says. SQLite names
    /// only indexes on expressions and named CHECK constraints; PostgreSQL always names it.
    pub fn constraint(&self) -> Option<&str> {
        self.constraint.as_deref()
    }

    /// The backend's message (for logs, never for clients).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)?;
        if !self.columns.is_empty() {
            write!(f, " ({})", self.columns.join(", "))?;
        }
        if let Some(constraint) = &self.constraint {
            write!(f, " [{constraint}]")?;
        }
        Ok(())
    }
}

impl std::error::Error for StoreError {}

/// A connection as seen by a job. Synchronous: jobs run on the backend's threads.
pub trait Conn {
    /// The dialect of this connection.
    fn dialect(&self) -> Dialect;
    /// Runs a query and returns all rows.
    fn query(&mut self, query: &SqlQuery) -> Result<Rows, StoreError>;
    /// Runs a statement and returns the number of rows changed.
    fn execute(&mut self, query: &SqlQuery) -> Result<u64, StoreError>;
    /// Runs several statements without parameters (DDL, migrations).
    fn execute_batch(&mut self, sql: &str) -> Result<(), StoreError>;
}

/// A read job, type-erased. Runs once on a read connection.
pub trait ReadJob: Send {
    /// Runs the job. The job delivers its own result.
    fn run(self: Box<Self>, conn: &mut dyn Conn);
    /// Called instead of `run` when the backend cannot run the job.
    fn fail(self: Box<Self>, error: StoreError);
    /// `true` when the job runs exactly one statement, which is its own snapshot: a
    /// backend may then skip the explicit read transaction around it.
    fn single_statement(&self) -> bool {
        false
    }
}

/// A write job, type-erased. Runs inside a transaction (or a savepoint of a shared one).
pub trait WriteJob: Send {
    /// Runs the job. Returns `true` to keep its changes, `false` to roll them back.
    fn run(&mut self, conn: &mut dyn Conn) -> bool;
    /// Called once the transaction holding the job's changes has ended: `Ok` after a
    /// durable commit, `Err` if the commit (or the backend) failed. A job whose `run`
    /// returned `false` gets `Ok` here (its own error is what it reports).
    fn finish(self: Box<Self>, commit: Result<(), StoreError>);
}

/// A storage backend, shared as `Arc<dyn Store>`.
pub trait Store: Send + Sync + 'static {
    /// The SQL dialect the backend speaks.
    fn dialect(&self) -> Dialect;
    /// Queues a read job.
    fn submit_read(&self, job: Box<dyn ReadJob>);
    /// Queues a write job. The backend may run several queued jobs in one transaction,
    /// each in its own savepoint, so one job's failure never undoes another's work.
    fn submit_write(&self, job: Box<dyn WriteJob>);
    /// Waits until every queued job has finished and stops accepting new ones.
    fn close(&self);
    /// Tells the backend that the schema was changed by someone else (another node on
    /// the same database), so that per-connection caches of prepared statements are
    /// dropped. DDL run through the store itself needs no call.
    fn schema_changed(&self) {}
}

struct ReadOnce<F, T, E> {
    f: F,
    tx: tokio::sync::oneshot::Sender<Result<T, E>>,
    single: bool,
}

impl<F, T, E> ReadJob for ReadOnce<F, T, E>
where
    F: FnOnce(&mut dyn Conn) -> Result<T, E> + Send,
    T: Send,
    E: From<StoreError> + Send,
{
    fn run(self: Box<Self>, conn: &mut dyn Conn) {
        let this = *self;
        let _ = this.tx.send((this.f)(conn));
    }

    fn fail(self: Box<Self>, error: StoreError) {
        let _ = self.tx.send(Err(E::from(error)));
    }

    fn single_statement(&self) -> bool {
        self.single
    }
}

struct WriteOnce<F, T, E> {
    f: Option<F>,
    result: Option<Result<T, E>>,
    tx: tokio::sync::oneshot::Sender<Result<T, E>>,
}

impl<F, T, E> WriteJob for WriteOnce<F, T, E>
where
    F: FnOnce(&mut dyn Conn) -> Result<T, E> + Send,
    T: Send,
    E: From<StoreError> + Send,
{
    fn run(&mut self, conn: &mut dyn Conn) -> bool {
        let Some(f) = self.f.take() else {
            return false;
        };
        let result = f(conn);
        let keep = result.is_ok();
        self.result = Some(result);
        keep
    }

    fn finish(self: Box<Self>, commit: Result<(), StoreError>) {
        let this = *self;
        let outcome = match (this.result, commit) {
            (Some(Err(job_error)), _) => Err(job_error),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (Some(Ok(_)), Err(commit_error)) => Err(E::from(commit_error)),
            (None, Err(error)) => Err(E::from(error)),
            (None, Ok(())) => Err(E::from(StoreError::new(
                ErrorKind::Other,
                "write job never ran",
            ))),
        };
        let _ = this.tx.send(outcome);
    }
}

fn dropped() -> StoreError {
    StoreError::new(ErrorKind::Unavailable, "storage backend dropped the job")
}

/// Runs `f` on a read connection and returns its result.
pub async fn read<T, E, F>(store: &dyn Store, f: F) -> Result<T, E>
where
    F: FnOnce(&mut dyn Conn) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
{
    queue_read(store, f, false)
        .await
        .unwrap_or_else(|_| Err(E::from(dropped())))
}

/// Submits `f` as a read job; the receiver gets its result.
fn queue_read<T, E, F>(
    store: &dyn Store,
    f: F,
    single: bool,
) -> tokio::sync::oneshot::Receiver<Result<T, E>>
where
    F: FnOnce(&mut dyn Conn) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    store.submit_read(Box::new(ReadOnce { f, tx, single }));
    rx
}

/// [`read`] for a closure that runs exactly one statement (a point read). The statement
/// is its own snapshot, so the backend may run it without an explicit transaction. A
/// closure that runs more than one statement must use [`read`]: its statements could
/// then see different snapshots.
pub async fn read_single<T, E, F>(store: &dyn Store, f: F) -> Result<T, E>
where
    F: FnOnce(&mut dyn Conn) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
{
    queue_read(store, f, true)
        .await
        .unwrap_or_else(|_| Err(E::from(dropped())))
}

/// Runs `f` inside a write transaction and returns its result once the transaction
/// has committed durably. An `Err` from `f` rolls back `f`'s changes only.
pub async fn write<T, E, F>(store: &dyn Store, f: F) -> Result<T, E>
where
    F: FnOnce(&mut dyn Conn) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    store.submit_write(Box::new(WriteOnce {
        f: Some(f),
        result: None,
        tx,
    }));
    rx.await.unwrap_or_else(|_| Err(E::from(dropped())))
}

/// Blocking variant of [`read`] for callers outside an async runtime (CLI commands).
pub fn read_blocking<T, E, F>(store: &dyn Store, f: F) -> Result<T, E>
where
    F: FnOnce(&mut dyn Conn) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
{
    queue_read(store, f, false)
        .blocking_recv()
        .unwrap_or_else(|_| Err(E::from(dropped())))
}

/// Blocking variant of [`write`] for callers outside an async runtime (CLI commands).
pub fn write_blocking<T, E, F>(store: &dyn Store, f: F) -> Result<T, E>
where
    F: FnOnce(&mut dyn Conn) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    store.submit_write(Box::new(WriteOnce {
        f: Some(f),
        result: None,
        tx,
    }));
    rx.blocking_recv()
        .unwrap_or_else(|_| Err(E::from(dropped())))
}
