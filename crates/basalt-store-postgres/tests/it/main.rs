//! Integration tests of the PostgreSQL backend: the shared conformance suite plus
//! PostgreSQL-only checks. Every test gets its own fresh database on the server named by
//! `BASALT_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/test`), dropped after.

mod peers;
mod pg;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use basalt_store::Store;
use basalt_store::suite::Harness;
use basalt_store_postgres::{PgOptions, PgStore};

pub(crate) fn admin_url() -> String {
    std::env::var("BASALT_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// `url` with its database replaced by `dbname` (URL or `key=value` form).
pub(crate) fn with_database(url: &str, dbname: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return format!("{url} dbname={dbname}");
    };
    let after_scheme = scheme_end + 3;
    let authority_end = url[after_scheme..]
        .find(['/', '?'])
        .map_or(url.len(), |at| after_scheme + at);
    let query = url[authority_end..]
        .find('?')
        .map_or("", |at| &url[authority_end + at..]);
    format!("{}/{dbname}{query}", &url[..authority_end])
}

/// A database created for one test and dropped (forcibly) afterwards.
pub(crate) struct TestDb {
    pub(crate) name: String,
    pub(crate) url: String,
}

impl TestDb {
    pub(crate) fn create() -> TestDb {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.subsec_nanos());
        let name = format!(
            "basalt_t_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = postgres::Client::connect(&admin_url(), postgres::NoTls)
            .expect("connect to the test server (set BASALT_TEST_PG_URL)");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create a test database");
        let url = with_database(&admin_url(), &name);
        TestDb { name, url }
    }

    /// Runs SQL on the test database over a separate, direct connection.
    pub(crate) fn direct(&self, sql: &str) {
        let mut client =
            postgres::Client::connect(&self.url, postgres::NoTls).expect("direct connection");
        client.batch_execute(sql).expect("direct SQL");
    }

    /// Terminates every server backend connected to this database (as a restart would).
    pub(crate) fn terminate_backends(&self) -> i64 {
        let mut admin =
            postgres::Client::connect(&admin_url(), postgres::NoTls).expect("admin connection");
        let rows = admin
            .query(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&self.name],
            )
            .expect("terminate backends");
        rows[0].get(0)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match postgres::Client::connect(&admin_url(), postgres::NoTls) {
            Ok(mut admin) => {
                if let Err(error) = admin.batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                )) {
                    eprintln!("dropping test database {}: {error}", self.name);
                }
            }
            Err(error) => eprintln!("dropping test database {}: {error}", self.name),
        }
    }
}

/// A store over a fresh database. Fields drop in order: the store closes first.
pub(crate) struct Fresh {
    pub(crate) store: Arc<PgStore>,
    pub(crate) db: TestDb,
}

impl Fresh {
    pub(crate) fn with(options: PgOptions) -> Fresh {
        let db = TestDb::create();
        let store = PgStore::connect(&db.url, options).expect("connect the store");
        Fresh {
            store: Arc::new(store),
            db,
        }
    }
}

impl Fresh {
    /// The first column of the first row of `sql` (an integer), over a direct connection.
    pub(crate) fn with_url_count(url: &str, sql: &str) -> i64 {
        let mut client = postgres::Client::connect(url, postgres::NoTls).expect("direct");
        client.query_one(sql, &[]).expect("query").get(0)
    }
}

impl Harness for Fresh {
    fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }
}

impl Drop for Fresh {
    fn drop(&mut self) {
        self.store.close();
    }
}

/// Small pools keep parallel tests well under the server's connection limit.
fn fresh() -> Fresh {
    Fresh::with(PgOptions {
        pool_size: 4,
        ..PgOptions::default()
    })
}

basalt_store::conformance_tests!(fresh);

#[test]
fn test_urls_point_at_the_fresh_database() {
    assert_eq!(
        with_database("postgres://u@h:5432/test", "x"),
        "postgres://u@h:5432/x"
    );
    assert_eq!(
        with_database("postgres://u@h/test?sslmode=disable", "x"),
        "postgres://u@h/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
    assert_eq!(
        with_database("host=h user=u", "x"),
        "host=h user=u dbname=x"
    );
}
