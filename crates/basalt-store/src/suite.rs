//! The storage conformance suite: behaviour every [`Store`] backend must share.
//!
//! Each test is a `pub fn(Arc<dyn Store>)` that receives a fresh, empty store and panics on
//! failure. A backend runs all of them with [`conformance_tests!`](crate::conformance_tests),
//! which expands to one `#[test]` per suite function, so the list of tests lives here only:
//!
//! ```text
//! struct Fresh { /* temp dir or database */ }
//! impl basalt_store::suite::Harness for Fresh { /* ... */ }
//! fn fresh() -> Fresh { /* ... */ }
//! basalt_store::conformance_tests!(fresh);
//! ```
//!
//! SQL differs per dialect only where it must (DDL types); everything else is shared.
//! Invariant: the suite uses only the public `basalt-store` API, never a backend type.

use std::sync::{Arc, mpsc};

use crate::{Conn, Dialect, ErrorKind, Rows, SqlQuery, Store, StoreError, Value, WriteJob};

/// A fresh, empty store for one test. Dropping the harness closes the store and removes
/// its data (temp directory, test database).
pub trait Harness {
    /// The store under test.
    fn store(&self) -> Arc<dyn Store>;
}

/// Expands to one `#[test]` per conformance test. `$fresh` is a function returning a
/// [`Harness`](crate::suite::Harness) over a fresh, empty store.
#[macro_export]
macro_rules! conformance_tests {
    ($fresh:path) => {
        $crate::conformance_tests!(@tests $fresh;
            round_trips_every_value_kind,
            reads_see_writes_once_write_returns,
            execute_reports_changed_rows_and_query_reports_columns,
            unique_violation_reports_columns_or_index,
            failed_jobs_do_not_undo_concurrent_jobs,
            concurrent_increments_are_not_lost,
            panicking_job_fails_alone,
            not_null_check_and_foreign_key_violations_are_mapped,
            read_jobs_cannot_write,
            single_statement_reads_see_each_commit_and_cannot_write,
            close_finishes_queued_jobs_and_refuses_new_ones,
        );
    };
    (@tests $fresh:path; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let harness = $fresh();
                $crate::suite::$name($crate::suite::Harness::store(&harness));
            }
        )*
    };
}

fn text(value: &str) -> Value {
    Value::Text(value.to_owned())
}

/// Unwraps a changed-row count, failing the test with the store's error.
fn changed(res: Result<u64, StoreError>) -> u64 {
    res.unwrap_or_else(|error| panic!("statement failed: {error}"))
}

fn sql(sql: &str, binds: Vec<Value>) -> SqlQuery {
    SqlQuery::with_binds(sql, binds)
}

/// Rewrites `?N` placeholders into the store's dialect; the suite writes SQLite style.
fn q(store: &dyn Store, text: &str, binds: Vec<Value>) -> SqlQuery {
    match store.dialect() {
        Dialect::Sqlite => sql(text, binds),
        Dialect::Postgres => sql(&text.replace('?', "$"), binds),
    }
}

/// Runs DDL, choosing the statement for the store's dialect.
fn ddl(store: &dyn Store, sqlite: &str, postgres: &str) {
    let text = match store.dialect() {
        Dialect::Sqlite => sqlite.to_owned(),
        Dialect::Postgres => postgres.to_owned(),
    };
    crate::write_blocking(store, move |conn| conn.execute_batch(&text))
        .expect("the suite's DDL must succeed");
}

fn exec(store: &dyn Store, text: &str, binds: Vec<Value>) -> Result<u64, StoreError> {
    let query = q(store, text, binds);
    crate::write_blocking(store, move |conn| conn.execute(&query))
}

fn select(store: &dyn Store, text: &str, binds: Vec<Value>) -> Rows {
    let query = q(store, text, binds);
    crate::read_blocking(store, move |conn| conn.query(&query))
        .expect("the suite's query must succeed")
}

fn count(store: &dyn Store, table: &str) -> i64 {
    let rows = select(store, &format!("SELECT COUNT(*) FROM {table}"), vec![]);
    match rows.rows.first().and_then(|row| row.first()) {
        Some(Value::Int(n)) => *n,
        other => panic!("COUNT(*) returned {other:?}"),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime for the suite")
}

/// Submits every job at once (all queued before any finishes) and returns the results in
/// submission order.
fn write_all<T, F>(store: &Arc<dyn Store>, jobs: Vec<F>) -> Vec<Result<T, StoreError>>
where
    F: FnOnce(&mut dyn Conn) -> Result<T, StoreError> + Send + 'static,
    T: Send + 'static,
{
    runtime().block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for (idx, job) in jobs.into_iter().enumerate() {
            let store = Arc::clone(store);
            set.spawn(async move { (idx, crate::write(&*store, job).await) });
        }
        let mut results: Vec<Option<Result<T, StoreError>>> =
            (0..set.len()).map(|_| None).collect();
        while let Some(joined) = set.join_next().await {
            let (idx, res) = joined.expect("a suite task must not panic");
            results[idx] = Some(res);
        }
        results
            .into_iter()
            .map(|res| res.expect("every job reports"))
            .collect()
    })
}

/// Every [`Value`] kind binds and reads back as itself (booleans read back as integers
/// on SQLite, which has no boolean type).
pub fn round_trips_every_value_kind(store: Arc<dyn Store>) {
    let store = &*store;
    ddl(
        store,
        "CREATE TABLE kinds (id INTEGER PRIMARY KEY, v_null TEXT, v_bool INTEGER, v_int INTEGER, \
         v_float REAL, v_text TEXT, v_blob BLOB)",
        "CREATE TABLE kinds (id BIGINT PRIMARY KEY, v_null TEXT, v_bool BOOLEAN, v_int BIGINT, \
         v_float DOUBLE PRECISION, v_text TEXT, v_blob BYTEA)",
    );
    let long_text = "x".repeat(100_000);
    let big_blob: Vec<u8> = (0..65_536u32).map(|i| (i % 251) as u8).collect();
    let cases: Vec<(bool, i64, f64, String, Vec<u8>)> = vec![
        (
            true,
            i64::MAX,
            1.5,
            "héllo wörld ✓ 🎉".to_owned(),
            vec![0, 1, 2, 255],
        ),
        (false, i64::MIN, -1e300, String::new(), Vec::new()),
        (
            true,
            0,
            f64::MIN_POSITIVE,
            "quote ' and \" and \\".to_owned(),
            vec![0],
        ),
        (false, -1, 0.1 + 0.2, long_text, big_blob),
    ];
    for (id, (flag, int, float, text, blob)) in cases.iter().enumerate() {
        let binds = vec![
            Value::Int(id as i64),
            Value::Null,
            Value::Bool(*flag),
            Value::Int(*int),
            Value::Float(*float),
            Value::Text(text.clone()),
            Value::Blob(blob.clone()),
        ];
        let changed = exec(
            store,
            "INSERT INTO kinds VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            binds,
        )
        .expect("insert of every value kind");
        assert_eq!(changed, 1);
    }
    let rows = select(store, "SELECT * FROM kinds ORDER BY id", vec![]);
    assert_eq!(
        rows.columns,
        [
            "id", "v_null", "v_bool", "v_int", "v_float", "v_text", "v_blob"
        ]
    );
    assert_eq!(rows.rows.len(), cases.len());
    for (id, ((flag, int, float, text, blob), row)) in cases.iter().zip(&rows.rows).enumerate() {
        let expected_flag = match store.dialect() {
            Dialect::Sqlite => Value::Int(i64::from(*flag)),
            Dialect::Postgres => Value::Bool(*flag),
        };
        let expected = vec![
            Value::Int(id as i64),
            Value::Null,
            expected_flag,
            Value::Int(*int),
            Value::Float(*float),
            Value::Text(text.clone()),
            Value::Blob(blob.clone()),
        ];
        assert_eq!(row, &expected, "row {id}");
    }
    // A boolean bind compares equal to the stored boolean on both backends.
    let rows = select(
        store,
        "SELECT id FROM kinds WHERE v_bool = ?1 ORDER BY id",
        vec![Value::Bool(true)],
    );
    assert_eq!(rows.rows, vec![vec![Value::Int(0)], vec![Value::Int(2)]]);
}

/// Once `write` has returned, every later read sees the write, and a job sees its own
/// uncommitted changes.
pub fn reads_see_writes_once_write_returns(store: Arc<dyn Store>) {
    let store = &*store;
    ddl(
        store,
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)",
        "CREATE TABLE notes (id BIGINT PRIMARY KEY, body TEXT NOT NULL)",
    );
    for id in 0..30i64 {
        let insert = q(
            store,
            "INSERT INTO notes (id, body) VALUES (?1, ?2)",
            vec![Value::Int(id), text("n")],
        );
        let probe = q(
            store,
            "SELECT COUNT(*) FROM notes WHERE id = ?1",
            vec![Value::Int(id)],
        );
        let seen_inside = crate::write_blocking(store, move |conn| {
            conn.execute(&insert)?;
            conn.query(&probe)
        })
        .expect("insert");
        assert_eq!(
            seen_inside.rows,
            vec![vec![Value::Int(1)]],
            "a job sees its own write"
        );
        assert_eq!(
            count(store, "notes"),
            id + 1,
            "a read after write {id} returned sees it"
        );
    }
}

/// `execute` returns the number of rows changed; `query` returns column names even when
/// there are no rows.
pub fn execute_reports_changed_rows_and_query_reports_columns(store: Arc<dyn Store>) {
    let store = &*store;
    ddl(
        store,
        "CREATE TABLE tally (id INTEGER PRIMARY KEY, grp TEXT NOT NULL)",
        "CREATE TABLE tally (id BIGINT PRIMARY KEY, grp TEXT NOT NULL)",
    );
    let inserted = exec(
        store,
        "INSERT INTO tally (id, grp) VALUES (1, 'a'), (2, 'a'), (3, 'b')",
        vec![],
    )
    .expect("insert");
    assert_eq!(inserted, 3);
    assert_eq!(
        changed(exec(
            store,
            "UPDATE tally SET grp = ?1 WHERE grp = ?2",
            vec![text("c"), text("a")]
        )),
        2
    );
    assert_eq!(
        changed(exec(
            store,
            "DELETE FROM tally WHERE id = ?1",
            vec![Value::Int(3)]
        )),
        1
    );
    assert_eq!(
        changed(exec(
            store,
            "DELETE FROM tally WHERE id = ?1",
            vec![Value::Int(3)]
        )),
        0
    );
    let empty = select(
        store,
        "SELECT id, grp AS label FROM tally WHERE id > ?1",
        vec![Value::Int(100)],
    );
    assert_eq!(empty.columns, ["id", "label"]);
    assert!(empty.rows.is_empty());
    // The same statement text after the table changed: the names are the table's new ones
    // (a backend that caches prepared statements must not report the old ones), also
    // after more distinct statements than its cache holds.
    let star = |store: &dyn Store| select(store, "SELECT * FROM tally", vec![]).columns;
    assert_eq!(star(store), ["id", "grp"]);
    ddl(
        store,
        "ALTER TABLE tally RENAME COLUMN grp TO kind",
        "ALTER TABLE tally RENAME COLUMN grp TO kind",
    );
    assert_eq!(star(store), ["id", "kind"]);
    ddl(
        store,
        "ALTER TABLE tally ADD COLUMN extra TEXT",
        "ALTER TABLE tally ADD COLUMN extra TEXT",
    );
    assert_eq!(star(store), ["id", "kind", "extra"]);
    for n in 0..40 {
        let rows = select(store, &format!("SELECT id AS c{n} FROM tally"), vec![]);
        assert_eq!(rows.columns, [format!("c{n}")]);
    }
    assert_eq!(star(store), ["id", "kind", "extra"]);
}

fn expect_kind(result: Result<u64, StoreError>, kind: ErrorKind) -> StoreError {
    match result {
        Err(error) if error.kind() == kind => error,
        other => panic!("expected {kind:?}, got {other:?}"),
    }
}

/// A unique violation reports the columns of a plain unique constraint, and the index
/// name for a unique index on an expression.
pub fn unique_violation_reports_columns_or_index(store: Arc<dyn Store>) {
    let store = &*store;
    ddl(
        store,
        "CREATE TABLE pairs (id INTEGER PRIMARY KEY, a TEXT NOT NULL, b TEXT NOT NULL, email TEXT, \
         UNIQUE (a, b)); CREATE UNIQUE INDEX idx_pairs_email ON pairs (lower(email));",
        "CREATE TABLE pairs (id BIGINT PRIMARY KEY, a TEXT NOT NULL, b TEXT NOT NULL, email TEXT, \
         UNIQUE (a, b)); CREATE UNIQUE INDEX idx_pairs_email ON pairs (lower(email));",
    );
    let insert = "INSERT INTO pairs (id, a, b, email) VALUES (?1, ?2, ?3, ?4)";
    let row = |id: i64, a: &str, b: &str, email: &str| {
        vec![Value::Int(id), text(a), text(b), text(email)]
    };
    assert_eq!(
        changed(exec(store, insert, row(1, "x", "y", "A@example.com"))),
        1
    );

    let error = expect_kind(
        exec(store, insert, row(2, "x", "y", "b@example.com")),
        ErrorKind::UniqueViolation,
    );
    assert_eq!(error.columns(), ["a", "b"], "{error}");

    let error = expect_kind(
        exec(store, insert, row(1, "p", "q", "c@example.com")),
        ErrorKind::UniqueViolation,
    );
    assert_eq!(error.columns(), ["id"], "{error}");

    let error = expect_kind(
        exec(store, insert, row(3, "p", "q", "a@EXAMPLE.com")),
        ErrorKind::UniqueViolation,
    );
    assert_eq!(error.constraint(), Some("idx_pairs_email"), "{error}");
    assert!(
        error.columns().is_empty(),
        "an expression has no columns: {error}"
    );

    assert_eq!(count(store, "pairs"), 1);
}

/// Many concurrent jobs, some failing (a unique violation, or a later statement failing
/// after an earlier one succeeded): each failure rolls back only its own job, and every
/// other job's write is kept, including jobs that shared a group-commit batch with it.
pub fn failed_jobs_do_not_undo_concurrent_jobs(store: Arc<dyn Store>) {
    ddl(
        &*store,
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
        "CREATE TABLE items (id BIGINT PRIMARY KEY, name TEXT NOT NULL UNIQUE)",
    );
    exec(
        &*store,
        "INSERT INTO items (id, name) VALUES (?1, ?2)",
        vec![Value::Int(0), text("taken")],
    )
    .expect("seed");
    let insert = |id: i64, name: &str| {
        q(
            &*store,
            "INSERT INTO items (id, name) VALUES (?1, ?2)",
            vec![Value::Int(id), text(name)],
        )
    };
    let jobs: Vec<_> = (1..=200i64)
        .map(|id| {
            let own = insert(id, &format!("item-{id}"));
            let clash = insert(id + 10_000, "taken");
            move |conn: &mut dyn Conn| -> Result<u64, StoreError> {
                match id % 4 {
                    0 => conn.execute(&clash),
                    1 => {
                        conn.execute(&own)?;
                        conn.execute(&clash)
                    }
                    _ => conn.execute(&own),
                }
            }
        })
        .collect();
    let results = write_all(&store, jobs);
    let mut kept = vec![0i64];
    for (idx, res) in results.into_iter().enumerate() {
        let id = idx as i64 + 1;
        if id % 4 <= 1 {
            let error = expect_kind(res, ErrorKind::UniqueViolation);
            assert_eq!(error.columns(), ["name"], "{error}");
        } else {
            assert_eq!(changed(res), 1, "job {id}");
            kept.push(id);
        }
    }
    let rows = select(&*store, "SELECT id FROM items ORDER BY id", vec![]);
    let ids: Vec<i64> = rows
        .rows
        .iter()
        .map(|row| match row.first() {
            Some(Value::Int(id)) => *id,
            other => panic!("id {other:?}"),
        })
        .collect();
    assert_eq!(ids, kept);
}

/// 100 concurrent `n = n + 1` jobs add exactly 100.
pub fn concurrent_increments_are_not_lost(store: Arc<dyn Store>) {
    ddl(
        &*store,
        "CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL); INSERT INTO counter VALUES (1, 0);",
        "CREATE TABLE counter (id BIGINT PRIMARY KEY, n BIGINT NOT NULL); INSERT INTO counter VALUES (1, 0);",
    );
    let jobs: Vec<_> = (0..100)
        .map(|_| {
            let bump = q(
                &*store,
                "UPDATE counter SET n = n + 1 WHERE id = ?1",
                vec![Value::Int(1)],
            );
            move |conn: &mut dyn Conn| conn.execute(&bump)
        })
        .collect();
    for res in write_all(&store, jobs) {
        assert_eq!(changed(res), 1);
    }
    let rows = select(&*store, "SELECT n FROM counter WHERE id = 1", vec![]);
    assert_eq!(rows.rows, vec![vec![Value::Int(100)]]);
}

/// A job that panics fails with an error, its changes are rolled back, and the jobs
/// around it (and later jobs) are unaffected.
pub fn panicking_job_fails_alone(store: Arc<dyn Store>) {
    ddl(
        &*store,
        "CREATE TABLE events (id INTEGER PRIMARY KEY)",
        "CREATE TABLE events (id BIGINT PRIMARY KEY)",
    );
    let jobs: Vec<_> = (0..20i64)
        .map(|id| {
            let insert = q(
                &*store,
                "INSERT INTO events (id) VALUES (?1)",
                vec![Value::Int(id)],
            );
            move |conn: &mut dyn Conn| {
                let changed = conn.execute(&insert)?;
                if id == 7 {
                    panic!("job 7 panics on purpose (conformance suite)");
                }
                Ok(changed)
            }
        })
        .collect();
    for (id, res) in write_all(&store, jobs).into_iter().enumerate() {
        if id == 7 {
            let error = res.expect_err("the panicking job fails");
            assert_eq!(error.kind(), ErrorKind::Other, "{error}");
        } else {
            assert_eq!(changed(res), 1, "job {id}");
        }
    }
    assert_eq!(count(&*store, "events"), 19);
    assert_eq!(
        changed(exec(
            &*store,
            "INSERT INTO events (id) VALUES (?1)",
            vec![Value::Int(7)]
        )),
        1
    );
    assert_eq!(count(&*store, "events"), 20);
}

/// NOT NULL, CHECK and FOREIGN KEY violations map to their kinds, with the column or
/// constraint name where both backends know it.
pub fn not_null_check_and_foreign_key_violations_are_mapped(store: Arc<dyn Store>) {
    let store = &*store;
    ddl(
        store,
        "CREATE TABLE parent (id INTEGER PRIMARY KEY); \
         CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent (id), \
         qty INTEGER NOT NULL CONSTRAINT qty_positive CHECK (qty > 0)); \
         INSERT INTO parent (id) VALUES (1);",
        "CREATE TABLE parent (id BIGINT PRIMARY KEY); \
         CREATE TABLE child (id BIGINT PRIMARY KEY, parent_id BIGINT REFERENCES parent (id), \
         qty BIGINT NOT NULL CONSTRAINT qty_positive CHECK (qty > 0)); \
         INSERT INTO parent (id) VALUES (1);",
    );
    let insert = "INSERT INTO child (id, parent_id, qty) VALUES (?1, ?2, ?3)";
    let error = expect_kind(
        exec(
            store,
            insert,
            vec![Value::Int(1), Value::Int(1), Value::Null],
        ),
        ErrorKind::NotNullViolation,
    );
    assert_eq!(error.columns(), ["qty"], "{error}");

    let error = expect_kind(
        exec(
            store,
            insert,
            vec![Value::Int(1), Value::Int(1), Value::Int(-1)],
        ),
        ErrorKind::CheckViolation,
    );
    assert_eq!(error.constraint(), Some("qty_positive"), "{error}");

    expect_kind(
        exec(
            store,
            insert,
            vec![Value::Int(1), Value::Int(999), Value::Int(1)],
        ),
        ErrorKind::ForeignKeyViolation,
    );

    assert_eq!(
        changed(exec(
            store,
            insert,
            vec![Value::Int(1), Value::Int(1), Value::Int(1)]
        )),
        1
    );
    expect_kind(
        exec(
            store,
            "DELETE FROM parent WHERE id = ?1",
            vec![Value::Int(1)],
        ),
        ErrorKind::ForeignKeyViolation,
    );
    assert_eq!(count(store, "child"), 1);
}

/// A read job runs on a connection that refuses to write.
pub fn read_jobs_cannot_write(store: Arc<dyn Store>) {
    let store = &*store;
    ddl(
        store,
        "CREATE TABLE quiet (id INTEGER PRIMARY KEY)",
        "CREATE TABLE quiet (id BIGINT PRIMARY KEY)",
    );
    let insert = q(
        store,
        "INSERT INTO quiet (id) VALUES (?1)",
        vec![Value::Int(1)],
    );
    let res = crate::read_blocking(store, move |conn| conn.execute(&insert));
    assert!(res.is_err(), "a read job wrote: {res:?}");
    assert_eq!(count(store, "quiet"), 0);
}

/// [`crate::read_single`] (a point read without an explicit transaction) sees each write
/// once it has returned, interleaves with ordinary reads on the same connections, and
/// cannot write either.
pub fn single_statement_reads_see_each_commit_and_cannot_write(store: Arc<dyn Store>) {
    ddl(
        &*store,
        "CREATE TABLE points (id INTEGER PRIMARY KEY, hits INTEGER NOT NULL)",
        "CREATE TABLE points (id BIGINT PRIMARY KEY, hits BIGINT NOT NULL)",
    );
    exec(
        &*store,
        "INSERT INTO points (id, hits) VALUES (1, 0)",
        vec![],
    )
    .expect("insert");
    let bump = q(
        &*store,
        "UPDATE points SET hits = hits + 1 WHERE id = 1",
        vec![],
    );
    let hits = q(
        &*store,
        "SELECT hits FROM points WHERE id = ?1",
        vec![Value::Int(1)],
    );
    runtime().block_on(async {
        for round in 1..=20i64 {
            let bump = bump.clone();
            crate::write(&*store, move |conn| conn.execute(&bump))
                .await
                .expect("bump");
            let probe = hits.clone();
            let seen = crate::read_single(&*store, move |conn| conn.query(&probe))
                .await
                .expect("single read");
            assert_eq!(seen.rows, vec![vec![Value::Int(round)]], "round {round}");
            // An ordinary read job on the same connections still gets its own snapshot.
            let probe = hits.clone();
            let twice = crate::read(&*store, move |conn| {
                Ok::<_, StoreError>((conn.query(&probe)?, conn.query(&probe)?))
            })
            .await
            .expect("read");
            assert_eq!(twice.0, twice.1);
            assert_eq!(twice.0.rows, vec![vec![Value::Int(round)]]);
        }
        let bump = bump.clone();
        let wrote = crate::read_single(&*store, move |conn| conn.execute(&bump)).await;
        assert!(
            wrote.is_err(),
            "a single-statement read job wrote: {wrote:?}"
        );
    });
    assert_eq!(
        select(&*store, &hits.sql, vec![Value::Int(1)]).rows,
        vec![vec![Value::Int(20)]]
    );
}

struct Probe {
    query: SqlQuery,
    done: mpsc::Sender<Result<(), StoreError>>,
    outcome: Result<(), StoreError>,
}

impl WriteJob for Probe {
    fn run(&mut self, conn: &mut dyn Conn) -> bool {
        self.outcome = conn.execute(&self.query).map(|_| ());
        self.outcome.is_ok()
    }

    fn finish(self: Box<Self>, commit: Result<(), StoreError>) {
        let _ = self.done.send(self.outcome.and(commit));
    }
}

/// `close` lets every queued job finish (and commit) before it returns; afterwards jobs
/// fail with `Unavailable`, and closing again is harmless.
pub fn close_finishes_queued_jobs_and_refuses_new_ones(store: Arc<dyn Store>) {
    ddl(
        &*store,
        "CREATE TABLE queued (id INTEGER PRIMARY KEY)",
        "CREATE TABLE queued (id BIGINT PRIMARY KEY)",
    );
    let (done, results) = mpsc::channel();
    for id in 0..100i64 {
        let query = q(
            &*store,
            "INSERT INTO queued (id) VALUES (?1)",
            vec![Value::Int(id)],
        );
        let outcome = Err(StoreError::new(ErrorKind::Other, "never ran"));
        store.submit_write(Box::new(Probe {
            query,
            done: done.clone(),
            outcome,
        }));
    }
    drop(done);
    store.close();
    let finished: Vec<_> = results.try_iter().collect();
    assert_eq!(
        finished.len(),
        100,
        "every queued job finished before close returned"
    );
    assert!(finished.iter().all(Result::is_ok), "{finished:?}");

    let write = exec(
        &*store,
        "INSERT INTO queued (id) VALUES (?1)",
        vec![Value::Int(1000)],
    );
    assert_eq!(
        write.map_err(|error| error.kind()),
        Err(ErrorKind::Unavailable)
    );
    let read = crate::read_blocking(&*store, |conn| conn.query(&SqlQuery::new("SELECT 1")));
    assert_eq!(
        read.map_err(|error| error.kind()),
        Err(ErrorKind::Unavailable)
    );
    store.close();
}
