//! Compiling rules and client filters into queries (through `basalt_sql::compile`).

use std::sync::Arc;

use basalt_filter::{Limits, parse, parse_sort, parse_with};
use basalt_schema::{Collection, SchemaLookup};
use basalt_sql::compile::{Binds, Mode, RequestValues, compile, compile_sort};
use basalt_sql::{SqlQuery, Value, record};
use serde_json::{Map, Value as Json};
use time::OffsetDateTime;

use crate::app::App;
use crate::error::CoreError;
use crate::records::{ListParams, RequestInfo};
use crate::schema::Schema;

/// Small cache marker so compiled rules can be keyed later by schema version.
#[derive(Default)]
pub(crate) struct RuleCache;

fn request_values(info: &RequestInfo) -> RequestValues {
    let to_map = |source: &std::collections::BTreeMap<String, String>| -> Map<String, Json> {
        source
            .iter()
            .map(|(k, v)| (k.clone(), Json::String(v.clone())))
            .collect()
    };
    let auth = info.auth.as_ref().map(|auth| {
        let mut record = auth.record.clone();
        record.insert(
            "collectionId".into(),
            Json::String(auth.collection.id.clone()),
        );
        record.insert(
            "collectionName".into(),
            Json::String(auth.collection.name.clone()),
        );
        record
    });
    RequestValues {
        auth,
        body: info.body.clone(),
        query: to_map(&info.query),
        headers: to_map(&info.headers),
        method: info.method.clone(),
        context: if info.context.is_empty() {
            "default".into()
        } else {
            info.context.clone()
        },
    }
}

fn invalid_filter() -> CoreError {
    CoreError::bad_request("Something went wrong while processing your request.")
}

/// A list SELECT and, unless skipped, its COUNT.
pub(crate) struct ListQueries {
    pub(crate) select: SqlQuery,
    pub(crate) count: Option<SqlQuery>,
}

/// Builds the list queries: rule AND filter, sort, paging.
pub(crate) fn list_queries(
    app: &App,
    _schema: &Arc<Schema>,
    collection: &Collection,
    rule: Option<&str>,
    params: &ListParams,
    info: &RequestInfo,
) -> Result<ListQueries, CoreError> {
    let dialect = app.store().dialect();
    let superuser = info.is_superuser();
    let values = request_values(info);
    let now = OffsetDateTime::now_utc();
    let mut binds = Binds::new(dialect);
    let mut conditions = Vec::new();
    if let Some(rule) = rule.filter(|r| !r.trim().is_empty() && !superuser) {
        let expr = parse(rule).map_err(CoreError::internal)?;
        conditions.push(
            compile(&expr, collection, &values, Mode::Rule, now, &mut binds)
                .map_err(CoreError::internal)?,
        );
    }
    if let Some(filter) = &params.filter {
        let expr = parse_with(filter, &Limits::client_filter()).map_err(|_| invalid_filter())?;
        conditions.push(
            compile(
                &expr,
                collection,
                &values,
                Mode::Client { superuser },
                now,
                &mut binds,
            )
            .map_err(|_| invalid_filter())?,
        );
    }
    let order = match &params.sort {
        Some(sort) => {
            let terms = parse_sort(sort).map_err(|_| invalid_filter())?;
            compile_sort(&terms, collection, Mode::Client { superuser }, &mut binds)
                .map_err(|_| invalid_filter())?
        }
        None => String::new(),
    };
    let table = dialect.quote_ident(&collection.name);
    let where_sql = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    let filter_binds = binds.values.clone();
    let order_sql = if order.is_empty() {
        String::new()
    } else {
        format!(" ORDER BY {order}")
    };
    let offset = (params.page - 1) * params.per_page;
    let select = SqlQuery::with_binds(
        format!(
            "SELECT {} FROM {table}{where_sql}{order_sql} LIMIT {} OFFSET {}",
            record::select_columns(collection, dialect),
            params.per_page,
            offset
        ),
        binds.values,
    );
    let count = (!params.skip_total).then(|| {
        let used = count_placeholders(&where_sql);
        SqlQuery::with_binds(
            format!("SELECT COUNT(*) FROM {table}{where_sql}"),
            filter_binds[..used.min(filter_binds.len())].to_vec(),
        )
    });
    Ok(ListQueries { select, count })
}

/// Placeholders in a WHERE clause are numbered from 1 before any ORDER BY binds.
fn count_placeholders(sql: &str) -> usize {
    let mut max = 0;
    let bytes = sql.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'?' || bytes[i] == b'$' {
            let start = i + 1;
            let mut end = start;
            while end < bytes.len() && bytes[end].is_ascii_digit() {
                end += 1;
            }
            if let Ok(n) = sql[start..end].parse::<usize>() {
                max = max.max(n);
            }
            i = end.max(i + 1);
        } else {
            i += 1;
        }
    }
    max
}

/// `SELECT <fields> FROM t WHERE id = ? [AND rule]` for view/update/delete checks.
pub(crate) fn fetch_query(
    app: &App,
    _schema: &Arc<Schema>,
    collection: &Collection,
    rule: Option<&str>,
    id: &str,
    info: &RequestInfo,
) -> Result<SqlQuery, CoreError> {
    let dialect = app.store().dialect();
    let mut binds = Binds::new(dialect);
    let table = dialect.quote_ident(&collection.name);
    let id_placeholder = binds.push(Value::Text(id.to_string()));
    let mut sql = format!(
        "SELECT {} FROM {table} WHERE {table}.\"id\" = {id_placeholder}",
        record::select_columns(collection, dialect)
    );
    if let Some(rule) = rule.filter(|r| !r.trim().is_empty() && !info.is_superuser()) {
        let expr = parse(rule).map_err(CoreError::internal)?;
        let condition = compile(
            &expr,
            collection,
            &request_values(info),
            Mode::Rule,
            OffsetDateTime::now_utc(),
            &mut binds,
        )
        .map_err(CoreError::internal)?;
        sql.push_str(&format!(" AND ({condition})"));
    }
    Ok(SqlQuery::with_binds(sql, binds.values))
}

/// Checks that a rule parses and resolves against the collection (on collection save).
pub(crate) fn validate_rule(
    app: &App,
    _lookup: &dyn SchemaLookup,
    collection: &Collection,
    rule: &str,
) -> Result<(), String> {
    let expr = parse(rule).map_err(|e| e.to_string())?;
    let mut binds = Binds::new(app.store().dialect());
    compile(
        &expr,
        collection,
        &RequestValues::default(),
        Mode::Rule,
        OffsetDateTime::now_utc(),
        &mut binds,
    )
    .map_err(|e| e.to_string())?;
    Ok(())
}

impl App {
    /// `GET /api/collections` with filter/sort over id, name, type, system, created, updated.
    pub async fn list_collections(
        &self,
        params: ListParams,
        info: &RequestInfo,
    ) -> Result<crate::records::ListResult, CoreError> {
        let mut meta = Collection::new(basalt_schema::CollectionType::Base, "_collections");
        for name in ["name", "type", "created", "updated"] {
            meta.fields.push(basalt_schema::Field::new(
                name,
                basalt_schema::FieldKind::text(),
            ));
        }
        meta.fields.push(basalt_schema::Field::new(
            "system",
            basalt_schema::FieldKind::Bool { required: false },
        ));
        let schema = self.schema();
        let queries = list_queries(self, &schema, &meta, None, &params, info)?;
        let (rows, total) = basalt_store::read(
            self.store().as_ref(),
            move |conn: &mut dyn basalt_store::Conn| {
                let rows = conn.query(&queries.select)?;
                let total = match &queries.count {
                    Some(count) => match conn.query(count)?.rows.first().and_then(|r| r.first()) {
                        Some(Value::Int(n)) => *n,
                        _ => 0,
                    },
                    None => -1,
                };
                Ok::<_, CoreError>((rows, total))
            },
        )
        .await?;
        let items = rows
            .rows
            .into_iter()
            .filter_map(|row| {
                row.first()
                    .and_then(Value::as_str)
                    .and_then(|id| schema.get(id))
                    .map(|c| crate::collections::public_collection(c))
            })
            .collect();
        let total_pages = if total < 0 {
            -1
        } else {
            (total + params.per_page - 1) / params.per_page
        };
        Ok(crate::records::ListResult {
            page: params.page,
            per_page: params.per_page,
            total_items: total,
            total_pages,
            items,
        })
    }
}
