//! The threads that own connections: one writer doing group commit, and readers.
//!
//! Group commit: the writer blocks for one write job, then drains whatever else is queued
//! (up to `max_batch`), and runs the batch in one `BEGIN IMMEDIATE` … `COMMIT`, so the
//! whole batch costs one WAL fsync. Each job runs inside its own `SAVEPOINT`; a job that
//! returns `false` or panics is rolled back to its savepoint alone. Jobs learn their fate
//! (`finish`) only after `COMMIT` has returned.
//!
//! If the transaction itself breaks while a job runs (an I/O error makes SQLite roll it
//! back, or the job ended it), every job that already ran in it fails, and the jobs not
//! yet run go into the next transaction untouched: a job never runs twice.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use basalt_store::{ErrorKind, ReadJob, StoreError, WriteJob};
use crossbeam_channel::Receiver;
use rusqlite::Connection;

use crate::conn::SqliteConn;
use crate::error::map_error;

/// Work for the writer thread. Reads come here only when the store has no reader threads.
pub(crate) enum Job {
    Read(Box<dyn ReadJob>),
    Write(Box<dyn WriteJob>),
}

/// Counters shared by the worker threads; see [`crate::SqliteStats`].
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) commits: AtomicU64,
    pub(crate) write_jobs: AtomicU64,
    pub(crate) failed_write_jobs: AtomicU64,
    pub(crate) failed_batches: AtomicU64,
    pub(crate) read_jobs: AtomicU64,
    pub(crate) inline_checkpoints: AtomicU64,
    pub(crate) background_checkpoints: AtomicU64,
    /// Commits seen by the WAL hook (the checkpointer's idle check).
    pub(crate) wal_commits: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

/// Runs a fixed control statement (BEGIN, SAVEPOINT, ...) through the statement cache.
fn control(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(map_error)?;
    stmt.execute([]).map(|_| ()).map_err(map_error)
}

/// The writer thread's loop. Returns the connection once the channel is closed and
/// drained, so that `close` can checkpoint it.
pub(crate) fn write_loop(
    conn: Connection,
    jobs: Receiver<Job>,
    max_batch: usize,
    counters: Arc<Counters>,
) -> Connection {
    let max_batch = max_batch.max(1);
    let mut pending_read: Option<Box<dyn ReadJob>> = None;
    let mut batch: Vec<Box<dyn WriteJob>> = Vec::new();
    loop {
        if let Some(job) = pending_read.take() {
            run_read(&conn, job, &counters, true);
        }
        if batch.is_empty() {
            match jobs.recv() {
                Ok(Job::Write(job)) => batch.push(job),
                Ok(Job::Read(job)) => {
                    pending_read = Some(job);
                    continue;
                }
                Err(_) => break,
            }
        }
        while batch.len() < max_batch {
            match jobs.try_recv() {
                Ok(Job::Write(job)) => batch.push(job),
                Ok(Job::Read(job)) => {
                    pending_read = Some(job);
                    break;
                }
                Err(_) => break,
            }
        }
        batch = commit_batch(&conn, std::mem::take(&mut batch), &counters);
    }
    conn
}

enum Outcome {
    Kept,
    RolledBack,
    Panicked,
}

/// Runs one batch in one transaction. Returns the jobs that never ran (the transaction
/// broke before their turn); the caller runs them in the next batch.
fn commit_batch(
    conn: &Connection,
    batch: Vec<Box<dyn WriteJob>>,
    counters: &Counters,
) -> Vec<Box<dyn WriteJob>> {
    if let Err(error) = control(conn, "BEGIN IMMEDIATE") {
        tracing::warn!(%error, jobs = batch.len(), "sqlite: cannot begin a write transaction");
        bump(&counters.failed_batches, 1);
        finish_all(batch, &error, counters);
        return Vec::new();
    }
    let mut ran: Vec<(Box<dyn WriteJob>, Outcome)> = Vec::with_capacity(batch.len());
    let mut jobs = batch.into_iter();
    let mut broken = None;
    for mut job in jobs.by_ref() {
        match run_in_savepoint(conn, &mut *job) {
            Ok(outcome) => ran.push((job, outcome)),
            Err(error) => {
                ran.push((job, Outcome::Kept));
                broken = Some(error);
                break;
            }
        }
    }
    let not_run: Vec<_> = jobs.collect();
    let commit = match broken {
        Some(error) => Err(error),
        None => control(conn, "COMMIT"),
    };
    match commit {
        Ok(()) => {
            bump(&counters.commits, 1);
            for (job, outcome) in ran {
                let result = match outcome {
                    Outcome::Kept | Outcome::RolledBack => Ok(()),
                    Outcome::Panicked => {
                        Err(StoreError::new(ErrorKind::Other, "write job panicked"))
                    }
                };
                finish(job, result, counters);
            }
        }
        Err(error) => {
            tracing::warn!(%error, jobs = ran.len(), "sqlite: write transaction failed; rolling back");
            if !conn.is_autocommit()
                && let Err(rollback) = control(conn, "ROLLBACK")
            {
                tracing::error!(error = %rollback, "sqlite: ROLLBACK failed");
            }
            bump(&counters.failed_batches, 1);
            finish_all(ran.into_iter().map(|(job, _)| job), &error, counters);
        }
    }
    not_run
}

/// Runs a job inside `SAVEPOINT basalt_job`. `Err` means the enclosing transaction is
/// unusable (and the job's own fate is that of the transaction).
fn run_in_savepoint(conn: &Connection, job: &mut dyn WriteJob) -> Result<Outcome, StoreError> {
    control(conn, "SAVEPOINT basalt_job")?;
    let keep = catch_unwind(AssertUnwindSafe(|| job.run(&mut SqliteConn::new(conn))));
    if conn.is_autocommit() {
        return Err(StoreError::new(
            ErrorKind::Other,
            "the write transaction ended inside a job (I/O error, or the job ran COMMIT/ROLLBACK)",
        ));
    }
    let outcome = match keep {
        Ok(true) => return control(conn, "RELEASE basalt_job").map(|()| Outcome::Kept),
        Ok(false) => Outcome::RolledBack,
        Err(_) => {
            tracing::error!("sqlite: a write job panicked; rolling back its changes");
            Outcome::Panicked
        }
    };
    control(conn, "ROLLBACK TO basalt_job")?;
    control(conn, "RELEASE basalt_job")?;
    Ok(outcome)
}

fn finish_all(
    jobs: impl IntoIterator<Item = Box<dyn WriteJob>>,
    error: &StoreError,
    counters: &Counters,
) {
    for job in jobs {
        finish(job, Err(error.clone()), counters);
    }
}

fn finish(job: Box<dyn WriteJob>, result: Result<(), StoreError>, counters: &Counters) {
    bump(&counters.write_jobs, 1);
    if result.is_err() {
        bump(&counters.failed_write_jobs, 1);
    }
    if catch_unwind(AssertUnwindSafe(|| job.finish(result))).is_err() {
        tracing::error!("sqlite: a write job panicked in finish");
    }
}

/// A reader thread's loop: one read transaction per job.
pub(crate) fn read_loop(
    conn: Connection,
    jobs: Receiver<Box<dyn ReadJob>>,
    counters: Arc<Counters>,
) {
    for job in jobs {
        run_read(&conn, job, &counters, false);
    }
}

/// Runs a read job inside `BEGIN` … `ROLLBACK`, so all its statements see one snapshot;
/// a single-statement job runs in autocommit mode, where the statement is its own
/// snapshot (the BEGIN/ROLLBACK pair was ~5% of a view by id's CPU).
/// On the writer connection (`on_writer`), `query_only` is switched on for the job, as it
/// always is on reader connections.
fn run_read(conn: &Connection, job: Box<dyn ReadJob>, counters: &Counters, on_writer: bool) {
    bump(&counters.read_jobs, 1);
    if on_writer && let Err(error) = control(conn, "PRAGMA query_only = ON") {
        job.fail(error);
        return;
    }
    if !job.single_statement()
        && let Err(error) = control(conn, "BEGIN")
    {
        job.fail(error);
        return;
    }
    if catch_unwind(AssertUnwindSafe(|| job.run(&mut SqliteConn::new(conn)))).is_err() {
        tracing::error!("sqlite: a read job panicked");
    }
    if !conn.is_autocommit()
        && let Err(error) = control(conn, "ROLLBACK")
    {
        tracing::error!(%error, "sqlite: cannot end a read transaction");
    }
    if on_writer && let Err(error) = control(conn, "PRAGMA query_only = OFF") {
        tracing::error!(%error, "sqlite: cannot leave query_only on the writer connection");
    }
}
