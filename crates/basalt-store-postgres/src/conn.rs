//! [`Conn`] over a `postgres::Client` inside a transaction, with a per-connection cache
//! of prepared statements.
//!
//! Cached statements go stale when a table's columns change (`SELECT *` would then fail
//! with "cached plan must not change result type"). DDL run through this store bumps a
//! store-wide schema epoch, and every connection drops its cache when it sees a new
//! epoch; DDL from elsewhere is healed by dropping the cache on that error (the failing
//! job reports it once).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use basalt_store::{Conn, Dialect, Rows, SqlQuery, StoreError, Value};
use postgres::types::ToSql;
use postgres::{Client, Statement};

use crate::error::{is_connection_lost, map_error};
use crate::value::{PgBind, PgCell};

/// Prepared statements of one connection, by SQL text.
pub(crate) struct StatementCache {
    statements: HashMap<String, Statement>,
    capacity: usize,
    /// The schema epoch the cached statements were prepared under.
    epoch: u64,
}

impl StatementCache {
    pub(crate) fn new(capacity: usize) -> Self {
        StatementCache {
            statements: HashMap::new(),
            capacity,
            epoch: 0,
        }
    }

    pub(crate) fn clear(&mut self) {
        self.statements.clear();
    }

    /// Drops every statement if the schema changed since they were prepared.
    pub(crate) fn check_epoch(&mut self, epoch: &AtomicU64) {
        let current = epoch.load(Ordering::Acquire);
        if current != self.epoch {
            self.statements.clear();
            self.epoch = current;
        }
    }
}

/// A job's view of a pooled connection, inside the transaction the worker opened.
pub(crate) struct PgConn<'w> {
    client: &'w mut Client,
    cache: &'w mut StatementCache,
    epoch: &'w AtomicU64,
    /// A statement failed on the server, so PostgreSQL has aborted the transaction
    /// (unless the job recovered with its own savepoint).
    pub(crate) failed: bool,
    /// The connection is gone and must be replaced.
    pub(crate) lost: bool,
    /// The job ran DDL; the epoch is bumped again after its transaction ends.
    pub(crate) ran_ddl: bool,
}

impl<'w> PgConn<'w> {
    pub(crate) fn new(
        client: &'w mut Client,
        cache: &'w mut StatementCache,
        epoch: &'w AtomicU64,
    ) -> Self {
        PgConn {
            client,
            cache,
            epoch,
            failed: false,
            lost: false,
            ran_ddl: false,
        }
    }

    fn fail(&mut self, error: &postgres::Error) -> StoreError {
        if let Some(db) = error.as_db_error() {
            self.failed = true;
            if db.code().code() == "0A000" && db.message().contains("cached plan") {
                self.cache.clear();
            }
        }
        if is_connection_lost(error) {
            self.failed = true;
            self.lost = true;
        }
        map_error(error)
    }

    fn prepare(&mut self, sql: &str) -> Result<Statement, StoreError> {
        if let Some(statement) = self.cache.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self
            .client
            .prepare(sql)
            .map_err(|error| self.fail(&error))?;
        if self.cache.statements.len() >= self.cache.capacity {
            self.cache.statements.clear();
        }
        if self.cache.capacity > 0 {
            self.cache
                .statements
                .insert(sql.to_owned(), statement.clone());
        }
        Ok(statement)
    }

    fn schema_changed(&mut self) {
        self.ran_ddl = true;
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.cache.check_epoch(self.epoch);
    }
}

/// Whether a statement changes the schema (and so may invalidate cached statements).
fn is_ddl(sql: &str) -> bool {
    let first = sql
        .trim_start()
        .split(|ch: char| !ch.is_ascii_alphabetic())
        .next()
        .unwrap_or("");
    ["ALTER", "CREATE", "DROP", "TRUNCATE"]
        .iter()
        .any(|keyword| first.eq_ignore_ascii_case(keyword))
}

impl Conn for PgConn<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn query(&mut self, query: &SqlQuery) -> Result<Rows, StoreError> {
        let statement = self.prepare(&query.sql)?;
        let binds: Vec<PgBind<'_>> = query.binds.iter().map(PgBind).collect();
        let params: Vec<&(dyn ToSql + Sync)> = binds
            .iter()
            .map(|bind| bind as &(dyn ToSql + Sync))
            .collect();
        let found = self
            .client
            .query(&statement, &params)
            .map_err(|error| self.fail(&error))?;
        let columns: Vec<String> = statement
            .columns()
            .iter()
            .map(|column| column.name().to_owned())
            .collect();
        let mut rows = Vec::with_capacity(found.len());
        for row in &found {
            let mut values: Vec<Value> = Vec::with_capacity(columns.len());
            for idx in 0..row.len() {
                let cell: PgCell = row.try_get(idx).map_err(|error| map_error(&error))?;
                values.push(cell.0);
            }
            rows.push(values);
        }
        if is_ddl(&query.sql) {
            self.schema_changed();
        }
        Ok(Rows { columns, rows })
    }

    fn execute(&mut self, query: &SqlQuery) -> Result<u64, StoreError> {
        let statement = self.prepare(&query.sql)?;
        let binds: Vec<PgBind<'_>> = query.binds.iter().map(PgBind).collect();
        let params: Vec<&(dyn ToSql + Sync)> = binds
            .iter()
            .map(|bind| bind as &(dyn ToSql + Sync))
            .collect();
        let changed = self
            .client
            .execute(&statement, &params)
            .map_err(|error| self.fail(&error))?;
        if is_ddl(&query.sql) {
            self.schema_changed();
        }
        Ok(changed)
    }

    fn execute_batch(&mut self, sql: &str) -> Result<(), StoreError> {
        self.client
            .batch_execute(sql)
            .map_err(|error| self.fail(&error))?;
        self.schema_changed();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::is_ddl;

    #[test]
    fn ddl_is_recognised_by_its_first_keyword() {
        assert!(is_ddl("  alter TABLE t ADD COLUMN c text"));
        assert!(is_ddl("CREATE INDEX i ON t (a)"));
        assert!(is_ddl("DROP TABLE t"));
        assert!(!is_ddl("SELECT * FROM created"));
        assert!(!is_ddl("INSERT INTO t VALUES ($1)"));
    }
}
