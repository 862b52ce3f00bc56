//! `basalt migrate-data`: copies a whole app from one store to another (SQLite to
//! PostgreSQL or back): settings, every collection (ids, rules, options, token secrets)
//! and every record (password hashes and token keys included, so logins and issued
//! tokens keep working), then verifies each table by row count and checksum.
//!
//! The OAuth2 links are the records of the system collection `_externalAuths`, copied
//! with the other collections (so a provider sign-in finds the same record). The internal
//! auth tables go too, verified the same way: the short-lived `_otps` and `_mfas` (an OTP
//! or MFA step under way can finish on the target).
//!
//! The target must be new: only the default collections (`_externalAuths`,
//! `_superusers`, `users`, replaced by the source's), with no records and no rows in the
//! internal tables. Uploaded files are not copied: their names and metadata are
//! record values (copied), the bytes under `<dir>/storage` or in the S3 bucket are not;
//! share or copy that folder separately, or use S3. Peer notes (`_events`, PostgreSQL
//! only) are short-lived and are not copied.

use std::collections::BTreeMap;

use basalt_schema::Collection;
use basalt_sql::{SqlQuery, Value, ddl, record};
use basalt_store::Conn;
use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};

use crate::app::App;
use crate::error::CoreError;
use crate::schema;

/// Records copied per write transaction.
const PAGE: i64 = 500;

/// The internal tables copied after the records, with their columns.
const INTERNAL: &[(&str, &[&str])] = basalt_sql::authflow::INTERNAL_TABLES;

/// What was copied and verified, per collection: (name, rows, checksum).
#[derive(Debug, Clone, Default)]
pub struct MigrationReport {
    /// One entry per copied collection table, in copy order.
    pub tables: Vec<(String, u64, String)>,
    /// One entry per internal table (`_otps`, `_mfas`): (name, rows, checksum), verified
    /// like the collection tables.
    pub internal: Vec<(String, u64, String)>,
    /// View collections re-created on the target.
    pub views: Vec<String>,
}

fn page_query(collection: &Collection, after: &str, dialect: basalt_sql::Dialect) -> SqlQuery {
    let mut query = record::select_all(collection, dialect);
    let table = dialect.quote_ident(&collection.name);
    query.sql.push_str(&format!(
        " WHERE {table}.\"id\" > {} ORDER BY {table}.\"id\" LIMIT {PAGE}",
        dialect.placeholder(1)
    ));
    query.binds.push(Value::Text(after.to_string()));
    query
}

/// Reads one page of records after `after` (by id).
async fn read_page(
    app: &App,
    collection: &Collection,
    after: &str,
) -> Result<Vec<Map<String, Json>>, CoreError> {
    let collection = collection.clone();
    let after = after.to_string();
    basalt_store::read(app.store().as_ref(), move |conn: &mut dyn Conn| {
        let rows = conn.query(&page_query(&collection, &after, conn.dialect()))?;
        Ok::<_, CoreError>(
            rows.rows
                .into_iter()
                .map(|row| record::decode_row(&collection, row))
                .collect(),
        )
    })
    .await
}

fn last_id(page: &[Map<String, Json>]) -> String {
    page.last()
        .and_then(|r| r.get("id"))
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Row count and a SHA-256 over every record (in id order, canonical JSON).
async fn digest(app: &App, collection: &Collection) -> Result<(u64, String), CoreError> {
    let mut hasher = Sha256::new();
    let mut count = 0u64;
    let mut after = String::new();
    loop {
        let page = read_page(app, collection, &after).await?;
        if page.is_empty() {
            break;
        }
        for row in &page {
            hasher.update(Json::Object(row.clone()).to_string().as_bytes());
            hasher.update(b"\n");
            count += 1;
        }
        after = last_id(&page);
    }
    Ok((count, hex(hasher)))
}

/// One page of an internal table's rows after `after` (by id), columns in `columns` order.
async fn read_internal_page(
    app: &App,
    table: &'static str,
    columns: &'static [&'static str],
    after: &str,
) -> Result<Vec<Vec<Value>>, CoreError> {
    let after = after.to_string();
    basalt_store::read(app.store().as_ref(), move |conn: &mut dyn Conn| {
        let page =
            basalt_sql::authflow::internal_page(conn.dialect(), table, columns, &after, PAGE);
        Ok::<_, CoreError>(conn.query(&page)?.rows)
    })
    .await
}

fn internal_last_id(page: &[Vec<Value>]) -> String {
    match page.last().and_then(|row| row.first()) {
        Some(Value::Text(id)) => id.clone(),
        _ => String::new(),
    }
}

/// A value as canonical JSON for the checksum (both backends read these columns as text
/// and 64-bit integers).
fn value_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::Float(f) => Json::from(*f),
        Value::Text(t) => Json::String(t.clone()),
        Value::Blob(bytes) => Json::String(bytes.iter().map(|b| format!("{b:02x}")).collect()),
    }
}

/// Row count and a SHA-256 over every row of an internal table (in id order).
async fn internal_digest(
    app: &App,
    table: &'static str,
    columns: &'static [&'static str],
) -> Result<(u64, String), CoreError> {
    let mut hasher = Sha256::new();
    let mut count = 0u64;
    let mut after = String::new();
    loop {
        let page = read_internal_page(app, table, columns, &after).await?;
        if page.is_empty() {
            break;
        }
        for row in &page {
            let row = Json::Array(row.iter().map(value_json).collect());
            hasher.update(row.to_string().as_bytes());
            hasher.update(b"\n");
            count += 1;
        }
        after = internal_last_id(&page);
    }
    Ok((count, hex(hasher)))
}

fn hex(hasher: Sha256) -> String {
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl App {
    /// Copies this app into `target` (see the module docs) and verifies the copy.
    pub async fn migrate_into(&self, target: &App) -> Result<MigrationReport, CoreError> {
        // The target must hold nothing yet.
        for collection in target.collections() {
            let default = matches!(
                collection.id.as_str(),
                basalt_schema::SUPERUSERS_ID
                    | basalt_schema::USERS_ID
                    | basalt_schema::EXTERNAL_AUTHS_ID
            );
            if !default {
                return Err(CoreError::bad_request(&format!(
                    "The target is not empty: it has the collection \"{}\".",
                    collection.name
                )));
            }
            if !read_page(target, &collection, "").await?.is_empty() {
                return Err(CoreError::bad_request(&format!(
                    "The target is not empty: \"{}\" has records.",
                    collection.name
                )));
            }
        }
        for (table, columns) in INTERNAL {
            if !read_internal_page(target, table, columns, "")
                .await?
                .is_empty()
            {
                return Err(CoreError::bad_request(&format!(
                    "The target is not empty: \"{table}\" has rows."
                )));
            }
        }
        let sources: Vec<Collection> = self.collections().iter().map(|c| (**c).clone()).collect();
        let settings = self.settings().as_ref().clone();
        let defaults: Vec<Collection> =
            target.collections().iter().map(|c| (**c).clone()).collect();
        let tables: Vec<Collection> = sources.iter().filter(|c| !c.is_view()).cloned().collect();
        let schema_copy = tables.clone();
        basalt_store::write(target.store().as_ref(), move |conn: &mut dyn Conn| {
            let dialect = conn.dialect();
            for collection in &defaults {
                for statement in ddl::drop_collection(collection, dialect) {
                    conn.execute_batch(&statement)?;
                }
                schema::delete(conn, &collection.id)?;
            }
            for collection in &schema_copy {
                for statement in ddl::create_collection(collection, dialect) {
                    conn.execute_batch(&statement)?;
                }
                schema::insert(conn, collection)?;
            }
            crate::settings::save(conn, &settings, false)?;
            Ok::<_, CoreError>(())
        })
        .await?;
        let mut report = MigrationReport::default();
        for collection in &tables {
            let mut after = String::new();
            loop {
                let page = read_page(self, collection, &after).await?;
                if page.is_empty() {
                    break;
                }
                after = last_id(&page);
                let target_collection = collection.clone();
                basalt_store::write(target.store().as_ref(), move |conn: &mut dyn Conn| {
                    let dialect = conn.dialect();
                    for row in &page {
                        conn.execute(&record::insert(&target_collection, row, dialect))?;
                    }
                    Ok::<_, CoreError>(())
                })
                .await?;
            }
        }
        for (table, columns) in INTERNAL {
            let mut after = String::new();
            loop {
                let page = read_internal_page(self, table, columns, &after).await?;
                if page.is_empty() {
                    break;
                }
                after = internal_last_id(&page);
                basalt_store::write(target.store().as_ref(), move |conn: &mut dyn Conn| {
                    for row in page {
                        conn.execute(&basalt_sql::authflow::internal_insert(
                            conn.dialect(),
                            table,
                            columns,
                            row,
                        ))?;
                    }
                    Ok::<_, CoreError>(())
                })
                .await?;
            }
        }
        // Views last: their queries read the copied tables (a query written for one
        // database's SQL dialect may fail on the other; the error names the view).
        let views: Vec<Collection> = sources.iter().filter(|c| c.is_view()).cloned().collect();
        for view in views {
            let name = view.name.clone();
            basalt_store::write(target.store().as_ref(), move |conn: &mut dyn Conn| {
                let query = view.view_query.clone().unwrap_or_default();
                conn.execute_batch(&format!(
                    "CREATE VIEW {} AS {query}",
                    conn.dialect().quote_ident(&view.name)
                ))
                .map_err(|error| {
                    CoreError::bad_request(&format!(
                        "Failed to create the view \"{}\" on the target: {}",
                        view.name,
                        error.message()
                    ))
                })?;
                schema::insert(conn, &view)?;
                Ok::<_, CoreError>(())
            })
            .await?;
            report.views.push(name);
        }
        target.reload_schema().await?;
        target.reload_settings().await?;
        // Verify: the same rows, in the same order, with the same values.
        let mut mismatches = BTreeMap::new();
        for collection in &tables {
            let (count, sum) = digest(self, collection).await?;
            let (copied, copied_sum) = digest(target, collection).await?;
            if count != copied || sum != copied_sum {
                mismatches.insert(collection.name.clone(), (count, copied));
            }
            report.tables.push((collection.name.clone(), count, sum));
        }
        for (table, columns) in INTERNAL {
            let (count, sum) = internal_digest(self, table, columns).await?;
            let (copied, copied_sum) = internal_digest(target, table, columns).await?;
            if count != copied || sum != copied_sum {
                mismatches.insert((*table).to_string(), (count, copied));
            }
            report.internal.push(((*table).to_string(), count, sum));
        }
        if !mismatches.is_empty() {
            return Err(CoreError::bad_request(&format!(
                "The copy does not match the source (rows in source, target): {mismatches:?}"
            )));
        }
        Ok(report)
    }
}
