//! Real databases for the tests: an in-memory SQLite and a fresh PostgreSQL database
//! (dropped at the end), both with the storage layout of the collections.

use std::error::Error;

use basalt_schema::{Collection, FieldKind};
use basalt_sql::{Dialect, SqlQuery, Value};
use postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use serde_json::{Map, Value as Json};

use crate::schema::TestSchema;

/// The column type of a field (the layout the DDL module uses).
fn column(field: &basalt_schema::Field, dialect: Dialect) -> String {
    let name = dialect.quote_ident(&field.name);
    let ty = match (&field.kind, dialect) {
        (
            FieldKind::Text {
                primary_key: true, ..
            },
            Dialect::Sqlite,
        ) => "TEXT PRIMARY KEY NOT NULL",
        (
            FieldKind::Text {
                primary_key: true, ..
            },
            Dialect::Postgres,
        ) => "TEXT COLLATE \"C\" PRIMARY KEY NOT NULL",
        (FieldKind::Number { .. }, Dialect::Sqlite) => "NUMERIC DEFAULT 0 NOT NULL",
        (FieldKind::Number { .. }, Dialect::Postgres) => "DOUBLE PRECISION DEFAULT 0 NOT NULL",
        (FieldKind::Bool { .. }, _) => "BOOLEAN DEFAULT FALSE NOT NULL",
        (FieldKind::Json { .. }, Dialect::Sqlite) => "JSON DEFAULT NULL",
        (FieldKind::Json { .. }, Dialect::Postgres) => "JSONB DEFAULT NULL",
        (FieldKind::GeoPoint { .. }, Dialect::Sqlite) => {
            "JSON DEFAULT '{\"lon\":0,\"lat\":0}' NOT NULL"
        }
        (FieldKind::GeoPoint { .. }, Dialect::Postgres) => {
            "JSONB DEFAULT '{\"lon\":0,\"lat\":0}' NOT NULL"
        }
        (_, Dialect::Sqlite) if field.is_multiple() => "JSON DEFAULT '[]' NOT NULL",
        (_, Dialect::Postgres) if field.is_multiple() => "JSONB DEFAULT '[]' NOT NULL",
        (_, Dialect::Sqlite) => "TEXT DEFAULT '' NOT NULL",
        (_, Dialect::Postgres) => "TEXT COLLATE \"C\" DEFAULT '' NOT NULL",
    };
    format!("{name} {ty}")
}

fn create_table(collection: &Collection, dialect: Dialect) -> String {
    let columns: Vec<String> = collection
        .fields
        .iter()
        .map(|f| column(f, dialect))
        .collect();
    format!(
        "CREATE TABLE {} ({})",
        dialect.quote_ident(&collection.name),
        columns.join(", ")
    )
}

fn insert(collection: &Collection, row: &Map<String, Json>, dialect: Dialect) -> SqlQuery {
    basalt_sql::record::insert(collection, row, dialect)
}

/// A database of one dialect.
pub(crate) trait Db {
    fn dialect(&self) -> Dialect;
    fn execute(&mut self, query: &SqlQuery) -> Result<(), Box<dyn Error>>;
    /// The first column of every row, as text.
    fn ids(&mut self, query: &SqlQuery) -> Result<Vec<String>, Box<dyn Error>>;
    fn count(&mut self, query: &SqlQuery) -> Result<i64, Box<dyn Error>>;
}

pub(crate) fn setup(db: &mut dyn Db, schema: &TestSchema, rows: &[(&str, Map<String, Json>)]) {
    for collection in &schema.collections {
        let sql = create_table(collection, db.dialect());
        db.execute(&SqlQuery::new(sql.clone()))
            .unwrap_or_else(|err| panic!("{sql}: {err}"));
    }
    for (name, row) in rows {
        let query = insert(schema.get(name), row, db.dialect());
        db.execute(&query)
            .unwrap_or_else(|err| panic!("{}: {err}", query.sql));
    }
}

/// A SQLite and a PostgreSQL database (`pg_name` names the latter) with the same tables
/// and rows.
pub(crate) fn both(
    schema: &TestSchema,
    rows: &[(&str, Map<String, Json>)],
    pg_name: &str,
) -> (Sqlite, Postgres) {
    let mut lite = Sqlite::new();
    setup(&mut lite, schema, rows);
    let mut pg = Postgres::new(pg_name);
    setup(&mut pg, schema, rows);
    (lite, pg)
}

pub(crate) struct Sqlite(rusqlite::Connection);

impl Sqlite {
    /// An in-memory database with the math functions `geoDistance` needs (the bundled
    /// SQLite is built without `SQLITE_ENABLE_MATH_FUNCTIONS`; PocketBase's has them).
    pub(crate) fn new() -> Sqlite {
        use rusqlite::functions::FunctionFlags;
        let conn = rusqlite::Connection::open_in_memory().expect("sqlite in memory");
        let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
        type Unary = (&'static str, fn(f64) -> f64);
        let unary: [Unary; 6] = [
            ("radians", f64::to_radians),
            ("sin", f64::sin),
            ("cos", f64::cos),
            ("asin", f64::asin),
            ("sqrt", f64::sqrt),
            ("floor", f64::floor),
        ];
        for (name, func) in unary {
            conn.create_scalar_function(name, 1, flags, move |ctx| {
                Ok(ctx.get::<Option<f64>>(0)?.map(func))
            })
            .expect("register math function");
        }
        conn.create_scalar_function("power", 2, flags, |ctx| {
            Ok(
                match (ctx.get::<Option<f64>>(0)?, ctx.get::<Option<f64>>(1)?) {
                    (Some(a), Some(b)) => Some(a.powf(b)),
                    _ => None,
                },
            )
        })
        .expect("register power");
        Sqlite(conn)
    }
}

fn sqlite_value(value: &Value) -> rusqlite::types::Value {
    use rusqlite::types::Value as V;
    match value {
        Value::Null => V::Null,
        Value::Bool(b) => V::Integer(i64::from(*b)),
        Value::Int(n) => V::Integer(*n),
        Value::Float(f) => V::Real(*f),
        Value::Text(t) => V::Text(t.clone()),
        Value::Blob(b) => V::Blob(b.clone()),
    }
}

impl Db for Sqlite {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn execute(&mut self, query: &SqlQuery) -> Result<(), Box<dyn Error>> {
        let params: Vec<rusqlite::types::Value> = query.binds.iter().map(sqlite_value).collect();
        self.0
            .execute(&query.sql, rusqlite::params_from_iter(params))?;
        Ok(())
    }

    fn ids(&mut self, query: &SqlQuery) -> Result<Vec<String>, Box<dyn Error>> {
        let params: Vec<rusqlite::types::Value> = query.binds.iter().map(sqlite_value).collect();
        let mut stmt = self.0.prepare(&query.sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(params), |row| {
            Ok(match row.get::<_, rusqlite::types::Value>(0)? {
                rusqlite::types::Value::Text(text) => text,
                other => format!("{other:?}"),
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn count(&mut self, query: &SqlQuery) -> Result<i64, Box<dyn Error>> {
        let params: Vec<rusqlite::types::Value> = query.binds.iter().map(sqlite_value).collect();
        Ok(self
            .0
            .query_row(&query.sql, rusqlite::params_from_iter(params), |row| {
                row.get(0)
            })?)
    }
}

/// A [`Value`] bound to whatever type PostgreSQL inferred for its placeholder.
#[derive(Debug)]
struct PgValue<'a>(&'a Value);

impl ToSql for PgValue<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        match (self.0, ty) {
            (Value::Null, _) => Ok(IsNull::Yes),
            (Value::Int(n), &Type::FLOAT8) => (*n as f64).to_sql(ty, out),
            (Value::Float(f), &Type::INT8) => (*f as i64).to_sql(ty, out),
            (Value::Int(n), _) => n.to_sql(ty, out),
            (Value::Float(f), _) => f.to_sql(ty, out),
            (Value::Bool(b), _) => b.to_sql(ty, out),
            (Value::Text(t), &Type::JSONB) => {
                out.extend_from_slice(&[1]);
                out.extend_from_slice(t.as_bytes());
                Ok(IsNull::No)
            }
            (Value::Text(t), _) => {
                out.extend_from_slice(t.as_bytes());
                Ok(IsNull::No)
            }
            (Value::Blob(b), _) => b.to_sql(ty, out),
        }
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

pub(crate) struct Postgres {
    client: postgres::Client,
    admin: postgres::Client,
    name: String,
}

pub(crate) fn pg_url() -> String {
    std::env::var("BASALT_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

impl Postgres {
    /// A fresh database on the test server (dropped with the value).
    pub(crate) fn new(tag: &str) -> Postgres {
        let url = pg_url();
        let mut admin = postgres::Client::connect(&url, postgres::NoTls)
            .unwrap_or_else(|err| panic!("PostgreSQL at {url} (set BASALT_TEST_PG_URL): {err}"));
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let name = format!(
            "basalt_filter_{tag}_{}_{}",
            std::process::id(),
            nanos % 1_000_000_000
        );
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .expect("create database");
        let mut config: postgres::Config = url.parse().expect("pg url");
        config.dbname(&name);
        let client = config
            .connect(postgres::NoTls)
            .expect("connect to the test database");
        Postgres {
            client,
            admin,
            name,
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.admin.batch_execute(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        ));
    }
}

impl Db for Postgres {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn execute(&mut self, query: &SqlQuery) -> Result<(), Box<dyn Error>> {
        let params: Vec<PgValue<'_>> = query.binds.iter().map(PgValue).collect();
        let refs: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        self.client.execute(&query.sql, &refs)?;
        Ok(())
    }

    fn ids(&mut self, query: &SqlQuery) -> Result<Vec<String>, Box<dyn Error>> {
        let params: Vec<PgValue<'_>> = query.binds.iter().map(PgValue).collect();
        let refs: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let rows = self.client.query(&query.sql, &refs)?;
        Ok(rows
            .iter()
            .map(|row| {
                row.try_get::<_, String>(0)
                    .unwrap_or_else(|_| format!("{:?}", row.get::<_, i32>(0)))
            })
            .collect())
    }

    fn count(&mut self, query: &SqlQuery) -> Result<i64, Box<dyn Error>> {
        let params: Vec<PgValue<'_>> = query.binds.iter().map(PgValue).collect();
        let refs: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        Ok(self.client.query_one(&query.sql, &refs)?.get(0))
    }
}
