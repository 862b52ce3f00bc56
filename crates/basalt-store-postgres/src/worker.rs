//! Pool worker threads: each owns at most one connection and takes jobs from the shared
//! queue. A read job runs in `BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY` (one
//! snapshot, no writes); a write job in its own `BEGIN` … `COMMIT` (`ROLLBACK` when it
//! returns `false`, fails, or panics).
//!
//! A lost connection is dropped and replaced on the next job. If the `BEGIN` that starts
//! a job finds the connection dead, the worker reconnects and retries once: the job has
//! not run yet, so it cannot run twice. A job whose connection dies mid-way fails with
//! `Unavailable` (for a write, its outcome is unknown if `COMMIT` was in flight).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use basalt_store::{ErrorKind, ReadJob, StoreError, WriteJob};
use crossbeam_channel::Receiver;
use postgres::{Client, NoTls};

use crate::conn::{PgConn, StatementCache};
use crate::error::{is_connection_lost, map_error};

/// Work for the pool.
pub(crate) enum Job {
    Read(Box<dyn ReadJob>),
    Write(Box<dyn WriteJob>),
}

/// State shared by the pool's workers.
pub(crate) struct Shared {
    pub(crate) config: postgres::Config,
    /// Bumped when DDL runs through the store; see `conn.rs`.
    pub(crate) schema_epoch: AtomicU64,
    pub(crate) connections_opened: AtomicU64,
    pub(crate) commits: AtomicU64,
    pub(crate) rollbacks: AtomicU64,
    pub(crate) read_jobs: AtomicU64,
    pub(crate) write_jobs: AtomicU64,
}

impl Shared {
    pub(crate) fn new(config: postgres::Config) -> Self {
        Shared {
            config,
            schema_epoch: AtomicU64::new(0),
            connections_opened: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            rollbacks: AtomicU64::new(0),
            read_jobs: AtomicU64::new(0),
            write_jobs: AtomicU64::new(0),
        }
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

const READ_BEGIN: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY";

pub(crate) struct Worker {
    shared: Arc<Shared>,
    client: Option<Client>,
    cache: StatementCache,
}

/// Opens a connection. A refused or unreachable server is `Unavailable`, and so is a
/// database that is not accepting connections for now (SQLSTATE 55000, `ALLOW_CONNECTIONS
/// false`); a server that answers with another error (bad password, missing database)
/// keeps its mapped kind.
pub(crate) fn connect(shared: &Shared) -> Result<Client, StoreError> {
    match shared.config.connect(NoTls) {
        Ok(client) => {
            bump(&shared.connections_opened);
            Ok(client)
        }
        Err(error) => {
            let mapped = map_error(&error);
            let kind = match error.as_db_error() {
                Some(db) if db.code().code() == "55000" => ErrorKind::Unavailable,
                Some(_) => mapped.kind(),
                None => ErrorKind::Unavailable,
            };
            Err(StoreError::new(
                kind,
                format!("cannot connect to postgres: {}", mapped.message()),
            ))
        }
    }
}

impl Worker {
    pub(crate) fn new(shared: Arc<Shared>, client: Option<Client>, statement_cache: usize) -> Self {
        Worker {
            shared,
            client,
            cache: StatementCache::new(statement_cache),
        }
    }

    pub(crate) fn run(mut self, jobs: Receiver<Job>) {
        for job in jobs {
            match job {
                Job::Read(job) => self.read(job),
                Job::Write(job) => self.write(job),
            }
        }
    }

    fn drop_client(&mut self) {
        self.client = None;
        self.cache.clear();
    }

    /// Starts a transaction, (re)connecting as needed; retries once on a dead connection.
    fn begin(&mut self, sql: &str) -> Result<(), StoreError> {
        for attempt in 0..2 {
            if self.client.as_ref().is_some_and(Client::is_closed) {
                self.drop_client();
            }
            let client = match &mut self.client {
                Some(client) => client,
                None => self.client.insert(connect(&self.shared)?),
            };
            match client.batch_execute(sql) {
                Ok(()) => {
                    self.cache.check_epoch(&self.shared.schema_epoch);
                    return Ok(());
                }
                Err(error) if is_connection_lost(&error) => {
                    self.drop_client();
                    tracing::warn!(%error, attempt, "postgres: connection lost; reconnecting");
                    if attempt == 1 {
                        return Err(map_error(&error));
                    }
                }
                Err(error) => return Err(map_error(&error)),
            }
        }
        Err(StoreError::new(
            ErrorKind::Unavailable,
            "postgres: cannot begin a transaction",
        ))
    }

    /// Ends the transaction with `ROLLBACK`, dropping the connection if that fails.
    fn rollback(&mut self) {
        let Some(client) = self.client.as_mut() else {
            return;
        };
        if let Err(error) = client.batch_execute("ROLLBACK") {
            tracing::warn!(%error, "postgres: ROLLBACK failed; dropping the connection");
            self.drop_client();
        }
    }

    fn read(&mut self, job: Box<dyn ReadJob>) {
        bump(&self.shared.read_jobs);
        if let Err(error) = self.begin(READ_BEGIN) {
            job.fail(error);
            return;
        }
        let Some(client) = self.client.as_mut() else {
            job.fail(StoreError::new(
                ErrorKind::Unavailable,
                "postgres: no connection",
            ));
            return;
        };
        let mut conn = PgConn::new(client, &mut self.cache, &self.shared.schema_epoch);
        if catch_unwind(AssertUnwindSafe(|| job.run(&mut conn))).is_err() {
            tracing::error!("postgres: a read job panicked");
        }
        if conn.lost {
            self.drop_client();
        } else {
            self.rollback();
        }
    }

    fn write(&mut self, mut job: Box<dyn WriteJob>) {
        bump(&self.shared.write_jobs);
        if let Err(error) = self.begin("BEGIN") {
            finish(job, Err(error));
            return;
        }
        let Some(client) = self.client.as_mut() else {
            finish(
                job,
                Err(StoreError::new(
                    ErrorKind::Unavailable,
                    "postgres: no connection",
                )),
            );
            return;
        };
        let mut conn = PgConn::new(client, &mut self.cache, &self.shared.schema_epoch);
        let keep = catch_unwind(AssertUnwindSafe(|| job.run(&mut conn)));
        let (failed, lost, ran_ddl) = (conn.failed, conn.lost, conn.ran_ddl);
        if lost {
            self.drop_client();
            let error = StoreError::new(
                ErrorKind::Unavailable,
                "postgres connection lost during a write job",
            );
            return finish(
                job,
                if matches!(keep, Ok(false)) {
                    Ok(())
                } else {
                    Err(error)
                },
            );
        }
        let result = match keep {
            Ok(true) if failed && !self.transaction_usable() => {
                self.rollback();
                Err(StoreError::new(
                    ErrorKind::Other,
                    "a statement failed inside the write job, so PostgreSQL aborted its transaction; \
                     nothing was committed",
                ))
            }
            Ok(true) => self.commit(),
            Ok(false) => {
                self.rollback();
                bump(&self.shared.rollbacks);
                Ok(())
            }
            Err(_) => {
                tracing::error!("postgres: a write job panicked; rolling back");
                self.rollback();
                bump(&self.shared.rollbacks);
                Err(StoreError::new(ErrorKind::Other, "write job panicked"))
            }
        };
        if ran_ddl {
            // Connections that prepared statements while the DDL was uncommitted drop them.
            self.shared.schema_epoch.fetch_add(1, Ordering::AcqRel);
        }
        finish(job, result);
    }

    /// After a failed statement, whether the job recovered (with its own savepoint) so
    /// that `COMMIT` would really commit rather than silently roll back.
    fn transaction_usable(&mut self) -> bool {
        self.client
            .as_mut()
            .is_some_and(|client| client.batch_execute("SELECT 1").is_ok())
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        let Some(client) = self.client.as_mut() else {
            return Err(StoreError::new(
                ErrorKind::Unavailable,
                "postgres: no connection",
            ));
        };
        match client.batch_execute("COMMIT") {
            Ok(()) => {
                bump(&self.shared.commits);
                Ok(())
            }
            Err(error) => {
                let mapped = map_error(&error);
                if is_connection_lost(&error) {
                    self.drop_client();
                } else {
                    self.rollback();
                }
                Err(mapped)
            }
        }
    }
}

fn finish(job: Box<dyn WriteJob>, result: Result<(), StoreError>) {
    if catch_unwind(AssertUnwindSafe(|| job.finish(result))).is_err() {
        tracing::error!("postgres: a write job panicked in finish");
    }
}
