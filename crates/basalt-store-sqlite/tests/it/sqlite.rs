//! SQLite-only behaviour: the bundled version, pragmas, durability across reopen,
//! group commit, and failures of a whole transaction.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use basalt_store::{
    Conn, ErrorKind, SqlQuery, Store, StoreError, Value, read_blocking, write_blocking,
};
use basalt_store_sqlite::{SqliteOptions, SqliteStore, Synchronous};

use crate::{Fresh, TempDir};

fn pragma(conn: &mut dyn Conn, name: &str) -> Result<Value, StoreError> {
    let rows = conn.query(&SqlQuery::new(format!("PRAGMA {name}")))?;
    Ok(rows
        .rows
        .into_iter()
        .next()
        .and_then(|row| row.into_iter().next())
        .unwrap_or(Value::Null))
}

fn exec(store: &dyn Store, sql: &str, binds: Vec<Value>) -> Result<u64, StoreError> {
    let query = SqlQuery::with_binds(sql, binds);
    write_blocking(store, move |conn| conn.execute(&query))
}

fn count(store: &dyn Store, table: &str) -> i64 {
    let query = SqlQuery::new(format!("SELECT COUNT(*) FROM {table}"));
    let rows = read_blocking(store, move |conn| conn.query(&query)).expect("count");
    match rows.rows[0][0] {
        Value::Int(n) => n,
        ref other => panic!("count {other:?}"),
    }
}

fn integrity_ok(store: &dyn Store) {
    let check =
        read_blocking(store, |conn| pragma(conn, "integrity_check")).expect("integrity_check");
    assert_eq!(check, Value::Text("ok".into()));
}

/// The size of `data.db-wal` in `dir` (0 when there is none).
fn wal_len(dir: &TempDir) -> u64 {
    std::fs::metadata(dir.path().join("data.db-wal")).map_or(0, |meta| meta.len())
}

/// The WAL-reset race (sqlite.org/wal.html#walresetbug) is fixed in 3.51.3.
#[test]
fn bundled_sqlite_has_the_wal_reset_fix() {
    let version = SqliteStore::sqlite_version_number();
    assert!(
        version >= 3_051_003,
        "bundled SQLite {} is older than 3.51.3",
        SqliteStore::sqlite_version()
    );
}

#[test]
fn wal_full_sync_and_safety_pragmas_are_in_force_on_every_connection() {
    let fresh = Fresh::with(SqliteOptions::default());
    let expected = [
        ("journal_mode", Value::Text("wal".into())),
        ("synchronous", Value::Int(2)),
        ("foreign_keys", Value::Int(1)),
        ("temp_store", Value::Int(2)),
        ("trusted_schema", Value::Int(0)),
        ("busy_timeout", Value::Int(5000)),
        ("cache_size", Value::Int(-16384)),
        ("journal_size_limit", Value::Int(64 * 1024 * 1024)),
    ];
    let read_names = expected.clone();
    let on_reader = read_blocking(&*fresh.store, move |conn| {
        let mut values = Vec::new();
        for (name, _) in &read_names {
            values.push(pragma(conn, name)?);
        }
        values.push(pragma(conn, "query_only")?);
        Ok::<_, StoreError>(values)
    })
    .expect("read pragmas on a reader");
    let write_names = expected.clone();
    let on_writer = write_blocking(&*fresh.store, move |conn| {
        let mut values = Vec::new();
        for (name, _) in &write_names {
            values.push(pragma(conn, name)?);
        }
        values.push(pragma(conn, "query_only")?);
        Ok::<_, StoreError>(values)
    })
    .expect("read pragmas on the writer");
    let mut want: Vec<Value> = expected.iter().map(|(_, value)| value.clone()).collect();
    want.push(Value::Int(1));
    assert_eq!(on_reader, want, "reader connection");
    *want.last_mut().expect("query_only") = Value::Int(0);
    assert_eq!(on_writer, want, "writer connection");
}

#[test]
fn synchronous_normal_is_opt_in() {
    let fresh = Fresh::with(SqliteOptions {
        synchronous: Synchronous::Normal,
        ..SqliteOptions::default()
    });
    let level = write_blocking(&*fresh.store, |conn| pragma(conn, "synchronous")).expect("pragma");
    assert_eq!(level, Value::Int(1));
}

#[test]
fn data_survives_close_and_reopen_and_the_wal_is_truncated() {
    let dir = TempDir::new();
    let path = dir.path().join("data.db");
    let store = SqliteStore::open(&path, SqliteOptions::default()).expect("open");
    exec(
        &store,
        "CREATE TABLE kept (id INTEGER PRIMARY KEY, body TEXT)",
        vec![],
    )
    .expect("ddl");
    for id in 0..10 {
        exec(
            &store,
            "INSERT INTO kept VALUES (?1, ?2)",
            vec![Value::Int(id), Value::Text(format!("row {id}"))],
        )
        .expect("insert");
    }
    store.close();
    assert_eq!(wal_len(&dir), 0, "close checkpoints and truncates the WAL");

    let store = SqliteStore::open(&path, SqliteOptions::default()).expect("reopen");
    assert_eq!(count(&store, "kept"), 10);
    exec(
        &store,
        "INSERT INTO kept VALUES (?1, ?2)",
        vec![Value::Int(10), Value::Null],
    )
    .expect("insert");
    drop(store); // Dropping without close() also shuts down cleanly.

    let store = SqliteStore::open(&path, SqliteOptions::default()).expect("reopen after drop");
    assert_eq!(count(&store, "kept"), 11);
    integrity_ok(&store);
}

#[test]
fn group_commit_batches_concurrent_writes() {
    let fresh = Fresh::with(SqliteOptions::default());
    let store: Arc<dyn Store> = fresh.store.clone();
    exec(
        &*store,
        "CREATE TABLE hits (id INTEGER PRIMARY KEY)",
        vec![],
    )
    .expect("ddl");
    let before = fresh.store.stats();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for id in 0..200i64 {
            let store = Arc::clone(&store);
            set.spawn(async move {
                let insert =
                    SqlQuery::with_binds("INSERT INTO hits (id) VALUES (?1)", vec![Value::Int(id)]);
                basalt_store::write(&*store, move |conn| conn.execute(&insert)).await
            });
        }
        while let Some(joined) = set.join_next().await {
            assert_eq!(joined.expect("task").expect("insert"), 1);
        }
    });
    let after = fresh.store.stats();
    let commits = after.commits - before.commits;
    assert_eq!(after.write_jobs - before.write_jobs, 200);
    assert!(
        commits < 20,
        "200 concurrent inserts took {commits} commits"
    );
    assert_eq!(count(&*store, "hits"), 200);
}

/// Holds the writer thread busy until the returned sender is dropped or signalled, so
/// that jobs submitted meanwhile queue up and share the next batch.
fn hold_writer(store: &Arc<dyn Store>) -> (mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (started_tx, started) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let store = Arc::clone(store);
    let handle = std::thread::spawn(move || {
        write_blocking(&*store, move |_conn| {
            let _ = started_tx.send(());
            let _ = released.recv_timeout(Duration::from_secs(10));
            Ok::<_, StoreError>(())
        })
        .expect("the holding job commits");
    });
    started.recv().expect("the holding job started");
    (release, handle)
}

fn submit_all(
    store: &Arc<dyn Store>,
    jobs: Vec<SqlQuery>,
) -> Vec<std::thread::JoinHandle<Result<u64, StoreError>>> {
    let handles: Vec<_> = jobs
        .into_iter()
        .map(|query| {
            let store = Arc::clone(store);
            std::thread::spawn(move || write_blocking(&*store, move |conn| conn.execute(&query)))
        })
        .collect();
    // Give every thread time to queue its job behind the held writer.
    std::thread::sleep(Duration::from_millis(200));
    handles
}

/// Deferred constraints are checked at COMMIT, so the whole batch fails and every job in
/// it is told so (nothing is silently lost or half-applied).
#[test]
fn failed_commit_fails_every_job_in_the_batch() {
    let fresh = Fresh::with(SqliteOptions::default());
    let store: Arc<dyn Store> = fresh.store.clone();
    write_blocking(&*store, |conn| {
        conn.execute_batch(
            "CREATE TABLE parent (id INTEGER PRIMARY KEY); CREATE TABLE child (id INTEGER PRIMARY KEY, \
             parent_id INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)",
        )
    })
    .expect("ddl");
    let (release, holder) = hold_writer(&store);
    let mut jobs = vec![SqlQuery::with_binds(
        "INSERT INTO child VALUES (1, ?1)",
        vec![Value::Int(999)],
    )];
    jobs.extend(
        (0..5)
            .map(|id| SqlQuery::with_binds("INSERT INTO parent VALUES (?1)", vec![Value::Int(id)])),
    );
    let handles = submit_all(&store, jobs);
    drop(release);
    holder.join().expect("holder");
    for handle in handles {
        let res = handle.join().expect("job thread");
        assert_eq!(
            res.map_err(|error| error.kind()),
            Err(ErrorKind::ForeignKeyViolation)
        );
    }
    assert_eq!(count(&*store, "parent"), 0);
    assert_eq!(count(&*store, "child"), 0);
    assert_eq!(fresh.store.stats().failed_batches, 1);
    assert_eq!(
        exec(
            &*store,
            "INSERT INTO parent VALUES (?1)",
            vec![Value::Int(1)]
        )
        .expect("later write"),
        1
    );
}

/// A job that ends the shared transaction itself breaks the batch: the jobs that ran in
/// it fail (their outcome is unknown to the caller), jobs not yet run go to the next
/// transaction, and the writer keeps going.
#[test]
fn job_ending_the_transaction_fails_without_stopping_the_writer() {
    let fresh = Fresh::with(SqliteOptions::default());
    let store: Arc<dyn Store> = fresh.store.clone();
    exec(&*store, "CREATE TABLE log (id INTEGER PRIMARY KEY)", vec![]).expect("ddl");
    let (release, holder) = hold_writer(&store);
    let rogue = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || write_blocking(&*store, |conn| conn.execute_batch("COMMIT")))
    };
    std::thread::sleep(Duration::from_millis(100));
    let later = submit_all(&store, vec![SqlQuery::new("INSERT INTO log VALUES (1)")]);
    drop(release);
    holder.join().expect("holder");
    let rogue = rogue.join().expect("rogue thread");
    assert_eq!(rogue.map_err(|error| error.kind()), Err(ErrorKind::Other));
    for handle in later {
        assert_eq!(
            handle
                .join()
                .expect("job thread")
                .expect("the job queued after still commits"),
            1
        );
    }
    assert_eq!(count(&*store, "log"), 1);
}

#[test]
fn another_writer_holding_the_lock_maps_to_busy() {
    let fresh = Fresh::with(SqliteOptions::default());
    let store: Arc<dyn Store> = fresh.store.clone();
    exec(
        &*store,
        "CREATE TABLE spot (id INTEGER PRIMARY KEY)",
        vec![],
    )
    .expect("ddl");
    let other = SqliteStore::open(
        &fresh.dir.path().join("data.db"),
        SqliteOptions {
            busy_timeout: Duration::from_millis(50),
            readers: 1,
            ..SqliteOptions::default()
        },
    )
    .expect("second store on the same file");
    let (release, holder) = hold_writer(&store);
    let res = exec(&other, "INSERT INTO spot VALUES (1)", vec![]);
    drop(release);
    holder.join().expect("holder");
    assert_eq!(res.map_err(|error| error.kind()), Err(ErrorKind::Busy));
    assert_eq!(
        exec(&other, "INSERT INTO spot VALUES (1)", vec![]).expect("after release"),
        1
    );
}

#[test]
fn open_in_a_missing_directory_fails_with_the_path() {
    let dir = TempDir::new();
    let path = dir.path().join("missing").join("data.db");
    let error = SqliteStore::open(&path, SqliteOptions::default())
        .err()
        .expect("open must fail");
    assert!(error.message().contains("missing"), "{error}");
}

#[test]
fn parameters_bind_by_number_and_rows_come_back_by_stored_type() {
    let store = SqliteStore::open_in_memory(SqliteOptions::default()).expect("open");
    let query = SqlQuery::with_binds(
        "SELECT ?2, ?1, ?3, typeof(?4), ?5, ?6",
        vec![
            Value::Int(1),
            Value::Text("two".into()),
            Value::Float(2.5),
            Value::Bool(true),
            Value::Null,
            Value::Blob(vec![9]),
        ],
    );
    let rows = read_blocking(&store, move |conn| conn.query(&query)).expect("select");
    assert_eq!(
        rows.rows,
        vec![vec![
            Value::Text("two".into()),
            Value::Int(1),
            Value::Float(2.5),
            Value::Text("integer".into()),
            Value::Null,
            Value::Blob(vec![9]),
        ]]
    );
}

#[test]
fn bundled_sqlite_has_the_math_functions_geo_distance_needs() {
    let store = SqliteStore::open_in_memory(SqliteOptions::default()).expect("open");
    let query = SqlQuery::new(
        "SELECT ROUND(2 * 6371 * ASIN(SQRT(POWER(SIN(RADIANS(90) / 2), 2) + COS(RADIANS(0)) * COS(RADIANS(90)))), 3)",
    );
    let value = read_blocking(&store, move |conn| {
        Ok::<_, StoreError>(conn.query(&query)?.rows.remove(0).remove(0))
    })
    .expect("math functions are built in");
    assert_eq!(value, Value::Float(10007.543));
}

/// A job run with `read` keeps one snapshot for all its statements; a `read_single` job
/// runs without the explicit transaction (that is its point), so a second statement in it
/// would see a commit made in between. This is why `read_single` is for one statement.
#[test]
fn single_statement_jobs_run_without_a_read_transaction() {
    let fresh = Fresh::with(SqliteOptions::default());
    let store: Arc<dyn Store> = fresh.store.clone();
    exec(
        &*store,
        "CREATE TABLE seen (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)",
        vec![],
    )
    .expect("create");
    exec(&*store, "INSERT INTO seen (id, n) VALUES (1, 0)", vec![]).expect("insert");
    for (single, expected) in [(false, (0, 0)), (true, (0, 1))] {
        let (first_tx, first_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let reader_store = Arc::clone(&store);
        let reader = std::thread::spawn(move || {
            let job = move |conn: &mut dyn Conn| {
                let read = |conn: &mut dyn Conn| {
                    let rows = conn.query(&SqlQuery::new("SELECT n FROM seen WHERE id = 1"))?;
                    match rows.rows[0][0] {
                        Value::Int(n) => Ok::<_, StoreError>(n),
                        ref other => panic!("n {other:?}"),
                    }
                };
                let before = read(conn)?;
                first_tx.send(()).expect("signal");
                go_rx.recv().expect("go");
                Ok::<_, StoreError>((before, read(conn)?))
            };
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                if single {
                    basalt_store::read_single(&*reader_store, job).await
                } else {
                    basalt_store::read(&*reader_store, job).await
                }
            })
        });
        first_rx.recv().expect("the job ran its first statement");
        exec(&*store, "UPDATE seen SET n = n + 1 WHERE id = 1", vec![]).expect("update");
        go_tx.send(()).expect("go");
        let seen = reader.join().expect("reader thread").expect("read job");
        assert_eq!(seen, expected, "single = {single}");
        exec(&*store, "UPDATE seen SET n = 0 WHERE id = 1", vec![]).expect("reset");
    }
}

/// Inserts `rows` rows of ~3 KiB, one commit each (so at least one WAL page per commit),
/// and returns the largest WAL file size seen along the way.
fn fill_wal(fresh: &Fresh, rows: i64) -> u64 {
    exec(
        &*fresh.store,
        "CREATE TABLE big (id INTEGER PRIMARY KEY, body TEXT)",
        vec![],
    )
    .expect("ddl");
    let mut largest = 0;
    for id in 0..rows {
        exec(
            &*fresh.store,
            "INSERT INTO big VALUES (?1, ?2)",
            vec![Value::Int(id), Value::Text("x".repeat(3000))],
        )
        .expect("insert");
        largest = largest.max(wal_len(&fresh.dir));
    }
    largest
}

/// A WAL frame at the default 4 KiB page size: a 24-byte header and the page.
const FRAME: u64 = 24 + 4096;

#[test]
fn the_writer_and_the_checkpointer_keep_the_wal_near_checkpoint_pages() {
    let fresh = Fresh::with(SqliteOptions {
        checkpoint_pages: 64,
        ..SqliteOptions::default()
    });
    let largest = fill_wal(&fresh, 600);
    let stats = fresh.store.stats();
    assert!(stats.inline_checkpoints > 0, "{stats:?}");
    // Woken once per WAL generation, not only the first time.
    assert!(stats.background_checkpoints >= 2, "{stats:?}");
    // Without checkpoints 600 commits of one or two pages each make a WAL of 600+ frames.
    assert!(
        largest <= 32 + 2 * 64 * FRAME,
        "the WAL grew to {largest} bytes ({stats:?})"
    );
    assert_eq!(count(&*fresh.store, "big"), 600);
    integrity_ok(&*fresh.store);
}

#[test]
fn without_the_checkpointer_the_writer_checkpoints_alone() {
    let fresh = Fresh::with(SqliteOptions {
        checkpoint_pages: 64,
        background_checkpoint: false,
        ..SqliteOptions::default()
    });
    let largest = fill_wal(&fresh, 300);
    let stats = fresh.store.stats();
    assert!(stats.inline_checkpoints > 0, "{stats:?}");
    assert_eq!(stats.background_checkpoints, 0);
    // The writer checkpoints at 64 pages and the next commit restarts the log.
    assert!(
        largest <= 32 + 70 * FRAME,
        "the WAL grew to {largest} bytes ({stats:?})"
    );
    assert_eq!(count(&*fresh.store, "big"), 300);
    integrity_ok(&*fresh.store);
}

#[test]
fn checkpoint_pages_zero_leaves_the_wal_to_close() {
    let dir = TempDir::new();
    let path = dir.path().join("data.db");
    let options = SqliteOptions {
        checkpoint_pages: 0,
        ..SqliteOptions::default()
    };
    let fresh = Fresh {
        store: Arc::new(SqliteStore::open(&path, options.clone()).expect("open")),
        dir,
    };
    let largest = fill_wal(&fresh, 300);
    let stats = fresh.store.stats();
    assert_eq!(stats.inline_checkpoints, 0);
    assert_eq!(stats.background_checkpoints, 0);
    assert!(largest >= 300 * FRAME, "the WAL is only {largest} bytes");
    fresh.store.close();
    assert_eq!(wal_len(&fresh.dir), 0);
    let store = SqliteStore::open(&path, options).expect("reopen");
    assert_eq!(count(&store, "big"), 300);
    integrity_ok(&store);
}

#[test]
fn the_checkpointer_copies_the_wal_once_commits_stop() {
    let fresh = Fresh::with(SqliteOptions::default());
    // 100 commits: far below the 3,500 pages that wake the checkpointer.
    fill_wal(&fresh, 100);
    assert_eq!(fresh.store.stats().inline_checkpoints, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while fresh.store.stats().background_checkpoints == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint after the writes stopped"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Everything was copied: a checkpoint now finds every frame already checkpointed.
    let (log, copied) = read_blocking(&*fresh.store, |conn| {
        let rows = conn.query(&SqlQuery::new("PRAGMA wal_checkpoint(PASSIVE)"))?;
        Ok::<_, StoreError>((rows.rows[0][1].clone(), rows.rows[0][2].clone()))
    })
    .expect("checkpoint");
    assert_eq!(log, copied);
    assert_eq!(count(&*fresh.store, "big"), 100);
}
