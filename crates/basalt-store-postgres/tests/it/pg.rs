//! PostgreSQL-only behaviour: typed binds, numeric and unsupported columns, reconnects,
//! busy mapping, statement-cache invalidation, aborted transactions.

use std::sync::Arc;
use std::time::Duration;

use basalt_store::{
    Conn, ErrorKind, Rows, SqlQuery, Store, StoreError, Value, read_blocking, write_blocking,
};
use basalt_store_postgres::{PgOptions, PgStore};

use crate::Fresh;

fn small() -> PgOptions {
    PgOptions {
        pool_size: 2,
        ..PgOptions::default()
    }
}

fn exec(store: &dyn Store, sql: &str, binds: Vec<Value>) -> Result<u64, StoreError> {
    let query = SqlQuery::with_binds(sql, binds);
    write_blocking(store, move |conn| conn.execute(&query))
}

fn select(store: &dyn Store, sql: &str, binds: Vec<Value>) -> Result<Rows, StoreError> {
    let query = SqlQuery::with_binds(sql, binds);
    read_blocking(store, move |conn| conn.query(&query))
}

fn single(store: &dyn Store, sql: &str) -> Value {
    let rows = select(store, sql, vec![]).expect("select");
    rows.rows
        .into_iter()
        .next()
        .and_then(|row| row.into_iter().next())
        .expect("one value")
}

fn text(value: &str) -> Value {
    Value::Text(value.to_owned())
}

#[test]
fn synchronous_commit_is_on() {
    let fresh = Fresh::with(small());
    assert_eq!(single(&*fresh.store, "SHOW synchronous_commit"), text("on"));
}

#[test]
fn values_bind_to_the_parameter_type_the_server_inferred() {
    let fresh = Fresh::with(small());
    let store = &*fresh.store;
    exec(
        store,
        "CREATE TABLE typed (id int4 PRIMARY KEY, small int2, real4 float4, dec numeric, label varchar(20), \
         doc jsonb, raw json, flag bool, code text)",
        vec![],
    )
    .expect("ddl");
    let insert = "INSERT INTO typed VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
    let changed = exec(
        store,
        insert,
        vec![
            Value::Int(1),
            Value::Int(7),
            Value::Int(3),
            Value::Float(1.25),
            Value::Int(42),
            text(r#"{"b": [1, 2], "a": null}"#),
            text(r#"{"keep":  "spacing"}"#),
            Value::Int(1),
            Value::Bool(false),
        ],
    )
    .expect("insert with converted binds");
    assert_eq!(changed, 1);
    exec(
        store,
        insert,
        vec![
            text("2"),
            Value::Null,
            Value::Float(0.5),
            Value::Int(10),
            text("x"),
            Value::Int(5),
            Value::Bool(true),
            text("true"),
            Value::Float(2.5),
        ],
    )
    .expect("insert with parsed text binds");
    let rows = select(store, "SELECT * FROM typed ORDER BY id", vec![]).expect("select");
    assert_eq!(
        rows.rows,
        vec![
            vec![
                Value::Int(1),
                Value::Int(7),
                Value::Float(3.0),
                Value::Float(1.25),
                text("42"),
                text(r#"{"a": null, "b": [1, 2]}"#),
                text(r#"{"keep":  "spacing"}"#),
                Value::Bool(true),
                text("false"),
            ],
            vec![
                Value::Int(2),
                Value::Null,
                Value::Float(0.5),
                Value::Int(10),
                text("x"),
                text("5"),
                text("true"),
                Value::Bool(true),
                text("2.5"),
            ],
        ]
    );
    // A parameter compared with an int2 column is inferred as int2 and range-checked.
    let error = select(
        store,
        "SELECT id FROM typed WHERE small = $1",
        vec![Value::Int(100_000)],
    )
    .expect_err("out of range for int2");
    assert_eq!(error.kind(), ErrorKind::Other);
    assert!(error.message().contains("out of range"), "{error}");
    let rows = select(
        store,
        "SELECT id FROM typed WHERE small = $1",
        vec![Value::Int(7)],
    )
    .expect("select");
    assert_eq!(rows.rows, vec![vec![Value::Int(1)]]);
}

#[test]
fn numeric_results_decode_to_int_or_float() {
    let fresh = Fresh::with(small());
    let store = &*fresh.store;
    write_blocking(store, |conn| {
        conn.execute_batch(
            "CREATE TABLE amounts (n bigint NOT NULL); INSERT INTO amounts VALUES (1), (2), (4)",
        )
    })
    .expect("ddl");
    let rows = select(
        store,
        "SELECT SUM(n), AVG(n), 12345678901234567890123::numeric, (-0.5)::numeric, 0::numeric, \
         'NaN'::numeric, $1::numeric FROM amounts",
        vec![Value::Float(0.1)],
    )
    .expect("select");
    let row = &rows.rows[0];
    assert_eq!(row[0], Value::Int(7));
    assert!(
        matches!(row[1], Value::Float(avg) if (avg - 7.0 / 3.0).abs() < 1e-12),
        "{:?}",
        row[1]
    );
    assert_eq!(row[2], Value::Float(1.2345678901234568e22));
    assert_eq!(row[3], Value::Float(-0.5));
    assert_eq!(row[4], Value::Int(0));
    assert!(
        matches!(row[5], Value::Float(nan) if nan.is_nan()),
        "{:?}",
        row[5]
    );
    assert_eq!(row[6], Value::Float(0.1));
}

#[test]
fn unsupported_column_type_is_an_error_naming_the_type() {
    let fresh = Fresh::with(small());
    let error =
        select(&*fresh.store, "SELECT now()", vec![]).expect_err("timestamptz is unsupported");
    assert_eq!(error.kind(), ErrorKind::Other);
    assert!(error.message().contains("timestamptz"), "{error}");
    assert_eq!(
        single(&*fresh.store, "SELECT now()::text IS NOT NULL"),
        Value::Bool(true)
    );
}

#[test]
fn unreachable_server_is_unavailable() {
    let error = PgStore::connect(
        "postgres://postgres@127.0.0.1:1/test",
        PgOptions {
            pool_size: 1,
            connect_timeout: Duration::from_secs(2),
            ..PgOptions::default()
        },
    )
    .err()
    .expect("nothing listens on port 1");
    assert_eq!(error.kind(), ErrorKind::Unavailable, "{error}");
}

#[test]
fn missing_database_is_reported_at_connect() {
    let url = crate::with_database(&crate::admin_url(), "basalt_no_such_database");
    let error = PgStore::connect(&url, small())
        .err()
        .expect("the database does not exist");
    assert!(
        error.message().contains("basalt_no_such_database"),
        "{error}"
    );
}

/// Terminating the server backends (as a restart does) costs at most the jobs in flight;
/// idle connections are replaced when next used, and the store recovers by itself.
#[test]
fn store_reconnects_after_its_backends_are_terminated() {
    let fresh = Fresh::with(small());
    let store: Arc<dyn Store> = fresh.store.clone();
    exec(
        &*store,
        "CREATE TABLE pings (id bigint PRIMARY KEY)",
        vec![],
    )
    .expect("ddl");
    let opened = fresh.store.stats().connections_opened;
    assert_eq!(opened, 2);
    assert!(fresh.db.terminate_backends() >= 1);
    std::thread::sleep(Duration::from_millis(100));
    for id in 0..10 {
        let res = exec(
            &*store,
            "INSERT INTO pings VALUES ($1)",
            vec![Value::Int(id)],
        );
        assert_eq!(
            res.map_err(|error| error.kind()),
            Ok(1),
            "write {id} after the backends were terminated"
        );
    }
    assert_eq!(
        single(&*store, "SELECT count(*) FROM pings"),
        Value::Int(10)
    );
    assert!(fresh.store.stats().connections_opened > opened);
}

/// A job whose connection dies under it fails with `Unavailable`; the next job succeeds.
#[test]
fn job_interrupted_by_a_lost_connection_fails_and_the_next_succeeds() {
    let fresh = Fresh::with(PgOptions {
        pool_size: 1,
        ..PgOptions::default()
    });
    let store: Arc<dyn Store> = fresh.store.clone();
    let sleeper = {
        let store = Arc::clone(&store);
        std::thread::spawn(move || single_or_error(&*store, "SELECT pg_sleep(5)::text"))
    };
    std::thread::sleep(Duration::from_millis(500));
    assert!(fresh.db.terminate_backends() >= 1);
    let interrupted = sleeper.join().expect("sleeper thread");
    assert!(
        matches!(
            interrupted.as_ref().map_err(StoreError::kind),
            Err(ErrorKind::Unavailable | ErrorKind::Other)
        ),
        "{interrupted:?}"
    );
    assert_eq!(single(&*store, "SELECT 1::int8"), Value::Int(1));
}

fn single_or_error(store: &dyn Store, sql: &str) -> Result<Rows, StoreError> {
    select(store, sql, vec![])
}

#[test]
fn deadlock_maps_to_busy() {
    let fresh = Fresh::with(small());
    let store: Arc<dyn Store> = fresh.store.clone();
    exec(
        &*store,
        "CREATE TABLE locks (id bigint PRIMARY KEY, n bigint)",
        vec![],
    )
    .expect("ddl");
    exec(&*store, "INSERT INTO locks VALUES (1, 0), (2, 0)", vec![]).expect("seed");
    let crossed = |first: i64, second: i64| {
        let store = Arc::clone(&store);
        std::thread::spawn(move || {
            write_blocking(&*store, move |conn: &mut dyn Conn| {
                let bump = "UPDATE locks SET n = n + 1 WHERE id = $1";
                conn.execute(&SqlQuery::with_binds(bump, vec![Value::Int(first)]))?;
                conn.query(&SqlQuery::new("SELECT pg_sleep(0.3)::text"))?;
                conn.execute(&SqlQuery::with_binds(bump, vec![Value::Int(second)]))
            })
        })
    };
    let (one, two) = (crossed(1, 2), crossed(2, 1));
    let results = [one.join().expect("thread"), two.join().expect("thread")];
    let kinds: Vec<_> = results
        .iter()
        .map(|res| res.as_ref().map_err(StoreError::kind).copied())
        .collect();
    assert!(kinds.contains(&Ok(1)), "{kinds:?}");
    assert!(kinds.contains(&Err(ErrorKind::Busy)), "{kinds:?}");
}

/// `SELECT *` statements cached on every connection survive a column added through the
/// store (the schema epoch drops them) and, after at most one error per connection, one
/// added behind the store's back.
#[test]
fn cached_statements_follow_schema_changes() {
    let fresh = Fresh::with(small());
    let store: Arc<dyn Store> = fresh.store.clone();
    exec(&*store, "CREATE TABLE wide (id bigint PRIMARY KEY)", vec![]).expect("ddl");
    exec(&*store, "INSERT INTO wide VALUES (1)", vec![]).expect("seed");
    let width = |store: &dyn Store| {
        select(store, "SELECT * FROM wide", vec![]).map(|rows| rows.columns.len())
    };
    for _ in 0..10 {
        assert_eq!(width(&*store).expect("select"), 1);
    }
    write_blocking(&*store, |conn| {
        conn.execute_batch("ALTER TABLE wide ADD COLUMN b text")
    })
    .expect("alter");
    for _ in 0..10 {
        assert_eq!(width(&*store).expect("select after in-store DDL"), 2);
    }
    fresh.db.direct("ALTER TABLE wide ADD COLUMN c text");
    let outcomes: Vec<_> = (0..10)
        .map(|_| width(&*store).map_err(|error| error.kind()))
        .collect();
    let failures = outcomes.iter().filter(|outcome| outcome.is_err()).count();
    assert!(failures <= 2, "{outcomes:?}");
    assert_eq!(outcomes.last(), Some(&Ok(3)), "{outcomes:?}");
}

/// PostgreSQL aborts a transaction at its first failed statement. A job that swallows
/// the error and returns success is told nothing was committed; a job that recovers with
/// its own savepoint commits.
#[test]
fn job_continuing_after_a_failed_statement_is_not_reported_committed() {
    let fresh = Fresh::with(small());
    let store = &*fresh.store;
    exec(store, "CREATE TABLE notes (id bigint PRIMARY KEY)", vec![]).expect("ddl");
    let insert =
        |id: i64| SqlQuery::with_binds("INSERT INTO notes VALUES ($1)", vec![Value::Int(id)]);
    exec(store, "INSERT INTO notes VALUES (1)", vec![]).expect("seed");
    let swallowed = write_blocking(store, move |conn| {
        let _ = conn.execute(&insert(1));
        let _ = conn.execute(&insert(2));
        Ok::<_, StoreError>(())
    });
    assert_eq!(
        swallowed.map_err(|error| error.kind()),
        Err(ErrorKind::Other)
    );
    let recovered = write_blocking(store, move |conn| {
        conn.execute_batch("SAVEPOINT attempt")?;
        if conn.execute(&insert(1)).is_err() {
            conn.execute_batch("ROLLBACK TO SAVEPOINT attempt")?;
        }
        conn.execute(&insert(3))
    });
    assert_eq!(recovered.map_err(|error| error.kind()), Ok(1));
    let rows = select(store, "SELECT id FROM notes ORDER BY id", vec![]).expect("select");
    assert_eq!(rows.rows, vec![vec![Value::Int(1)], vec![Value::Int(3)]]);
}
