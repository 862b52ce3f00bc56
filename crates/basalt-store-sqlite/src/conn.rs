//! [`Conn`] over a `rusqlite::Connection`: binds [`Value`]s and reads columns back by their
//! stored type (INTEGER → `Int`, REAL → `Float`, TEXT → `Text`, BLOB → `Blob`, NULL →
//! `Null`). Statements go through the connection's prepared-statement cache.

use basalt_store::{Conn, Dialect, Rows, SqlQuery, StoreError, Value};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ToSql, params_from_iter};

use crate::error::map_error;

/// A job's view of a connection; lives only while the job runs.
pub(crate) struct SqliteConn<'c> {
    conn: &'c Connection,
}

impl<'c> SqliteConn<'c> {
    pub(crate) fn new(conn: &'c Connection) -> Self {
        SqliteConn { conn }
    }
}

/// A [`Value`] as a SQLite parameter. Booleans bind as 0/1.
struct Bind<'v>(&'v Value);

impl ToSql for Bind<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self.0 {
            Value::Null => ValueRef::Null,
            Value::Bool(flag) => ValueRef::Integer(i64::from(*flag)),
            Value::Int(int) => ValueRef::Integer(*int),
            Value::Float(float) => ValueRef::Real(*float),
            Value::Text(text) => ValueRef::Text(text.as_bytes()),
            Value::Blob(blob) => ValueRef::Blob(blob),
        }))
    }
}

fn binds(query: &SqlQuery) -> impl rusqlite::Params + '_ {
    params_from_iter(query.binds.iter().map(Bind))
}

/// Text that is not valid UTF-8 (SQLite does not check) is read lossily rather than
/// failing the whole query.
fn read_value(cell: ValueRef<'_>) -> Value {
    match cell {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(int) => Value::Int(int),
        ValueRef::Real(float) => Value::Float(float),
        // `from_utf8` validates much faster than `from_utf8_lossy`; the lossy pass only
        // runs for text that is not valid UTF-8.
        ValueRef::Text(bytes) => Value::Text(match std::str::from_utf8(bytes) {
            Ok(text) => text.to_owned(),
            Err(_) => String::from_utf8_lossy(bytes).into_owned(),
        }),
        ValueRef::Blob(bytes) => Value::Blob(bytes.to_vec()),
    }
}

impl Conn for SqliteConn<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn query(&mut self, query: &SqlQuery) -> Result<Rows, StoreError> {
        let mut stmt = self.conn.prepare_cached(&query.sql).map_err(map_error)?;
        let mut rows = Vec::new();
        let mut cursor = stmt.query(binds(query)).map_err(map_error)?;
        while let Some(row) = cursor.next().map_err(map_error)? {
            // Width and names are read after the first step: a cached statement whose
            // table changed is prepared again by that step (before it, SQLite still
            // reports the old columns of a `SELECT *`).
            let width = row.as_ref().column_count();
            let mut values = Vec::with_capacity(width);
            for idx in 0..width {
                values.push(read_value(row.get_ref(idx).map_err(map_error)?));
            }
            rows.push(values);
        }
        drop(cursor);
        let columns = stmt.column_names().map(str::to_owned).collect();
        Ok(Rows { columns, rows })
    }

    fn execute(&mut self, query: &SqlQuery) -> Result<u64, StoreError> {
        let mut stmt = self.conn.prepare_cached(&query.sql).map_err(map_error)?;
        if stmt.column_count() == 0 {
            let changed = stmt.execute(binds(query)).map_err(map_error)?;
            return Ok(changed as u64);
        }
        // A statement that returns rows (`... RETURNING`, a pragma): run it to completion.
        let mut cursor = stmt.query(binds(query)).map_err(map_error)?;
        while cursor.next().map_err(map_error)?.is_some() {}
        drop(cursor);
        Ok(if stmt.readonly() {
            0
        } else {
            self.conn.changes()
        })
    }

    fn execute_batch(&mut self, sql: &str) -> Result<(), StoreError> {
        self.conn.execute_batch(sql).map_err(map_error)
    }
}
