//! Rules and client filters compiled through `basalt_sql::filter`, with compiled rules
//! cached per (collection, text, schema version, dialect, mode, caller's collection).

use std::sync::Arc;

use basalt_schema::{Collection, SchemaLookup};
use basalt_sql::filter::{
    AuthContext, CompileError, CompileErrorKind, CompileOptions, CompiledExpr, RequestContext,
    compile_rule, compile_sort, create_check,
};
use basalt_sql::{SqlQuery, Value};
use serde_json::{Map, Value as Json};

use crate::app::App;
use crate::error::CoreError;
use crate::records::{ListParams, RequestInfo};
use crate::schema::Schema;

/// How many compiled rules and filters are kept.
const RULE_CACHE_CAPACITY: usize = 4096;

/// The compiled-rule cache of an app.
pub(crate) struct RuleCache(basalt_sql::filter::RuleCache);

impl Default for RuleCache {
    fn default() -> Self {
        RuleCache(basalt_sql::filter::RuleCache::new(RULE_CACHE_CAPACITY))
    }
}

/// The request as the compiler sees it.
pub(crate) fn request_context(info: &RequestInfo) -> RequestContext {
    RequestContext {
        auth: info
            .auth
            .as_ref()
            .map(|auth| AuthContext::new(&auth.collection, auth.record.clone())),
        body: info.body.clone(),
        query: info.query.clone(),
        headers: info.headers.clone(),
        method: if info.method.is_empty() {
            "GET".into()
        } else {
            info.method.clone()
        },
        context: if info.context.is_empty() {
            "default".into()
        } else {
            info.context.clone()
        },
        now_unix_ms: (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64,
    }
}

/// The context of queries no rule or filter reads (a guest at time 0).
fn no_request() -> &'static RequestContext {
    static NONE: std::sync::LazyLock<RequestContext> =
        std::sync::LazyLock::new(|| RequestContext::guest(0));
    &NONE
}

/// A 400 for an invalid client `filter` or `sort`. PocketBase answers these with a
/// generic message and `data: {}`; Basalt keeps the empty `data` and says what is wrong
/// and where (the error names only the caller's own text and schema names).
fn invalid_param(param: &str, error: CompileError) -> CoreError {
    // A hidden field answers exactly like a field that does not exist, so a filter
    // cannot be used to discover hidden field names.
    let text = if error.kind() == CompileErrorKind::HiddenField {
        error
            .to_string()
            .replacen("cannot filter or sort by hidden field", "unknown field", 1)
    } else {
        error.to_string()
    };
    CoreError::bad_request(&format!("Invalid {param} parameter: {text}"))
}

/// A list SELECT and, unless skipped, its COUNT.
pub(crate) struct ListQueries {
    pub(crate) select: SqlQuery,
    pub(crate) count: Option<SqlQuery>,
}

impl App {
    pub(crate) fn compiled_rule(
        &self,
        schema: &Schema,
        collection: &Collection,
        rule: &str,
        ctx: &RequestContext,
    ) -> Result<Arc<CompiledExpr>, CoreError> {
        let options = CompileOptions::rule(self.store().dialect(), ctx);
        self.inner
            .rules
            .0
            .get(schema, collection, rule, &options, schema.version)
            .map_err(|error| {
                CoreError::internal(format!(
                    "stored rule of {} does not compile: {error}",
                    collection.name
                ))
            })
    }

    /// A compiled rule of any collection for the caller (expand, realtime).
    pub(crate) fn compiled_rule_for(
        &self,
        collection: &Collection,
        rule: &str,
        ctx: &RequestContext,
    ) -> Result<Arc<CompiledExpr>, CoreError> {
        let schema = self.schema();
        self.compiled_rule(&schema, collection, rule, ctx)
    }

    pub(crate) fn compiled_filter(
        &self,
        schema: &Schema,
        collection: &Collection,
        filter: &str,
        ctx: &RequestContext,
    ) -> Result<Arc<CompiledExpr>, CoreError> {
        let options = CompileOptions::client_filter(self.store().dialect(), ctx);
        self.inner
            .rules
            .0
            .get(schema, collection, filter, &options, schema.version)
            .map_err(|e| invalid_param("filter", e))
    }

    /// Builds the list queries: rule (unless superuser) AND filter, sort, paging.
    pub(crate) fn list_queries(
        &self,
        schema: &Schema,
        collection: &Collection,
        rule: Option<&str>,
        params: &ListParams,
        info: &RequestInfo,
    ) -> Result<ListQueries, CoreError> {
        let dialect = self.store().dialect();
        let ctx = request_context(info);
        let always = CompiledExpr::always(dialect);
        let rule = match rule.filter(|_| !ctx.is_superuser()) {
            Some(rule) => self.compiled_rule(schema, collection, rule, &ctx)?,
            None => Arc::new(always.clone()),
        };
        let filter = match &params.filter {
            Some(filter) => self.compiled_filter(schema, collection, filter, &ctx)?,
            None => Arc::new(always),
        };
        let sort = match &params.sort {
            Some(sort) => Some(
                compile_sort(
                    schema,
                    collection,
                    sort,
                    &CompileOptions::client_filter(dialect, &ctx),
                )
                .map_err(|e| invalid_param("sort", e))?,
            ),
            None => None,
        };
        let mut builder = schema
            .select(dialect, collection, &ctx)
            .filter(&rule)
            .filter(&filter);
        if let Some(sort) = &sort {
            builder = builder.sort(sort);
        }
        let offset = (params.page - 1).max(0) as u64 * params.per_page as u64;
        let select = builder.clone().page(params.per_page as u64, offset).list();
        let count = (!params.skip_total).then(|| builder.count());
        Ok(ListQueries { select, count })
    }

    /// `SELECT <fields> WHERE id = ? [AND rule]`: a record as the caller may see it.
    pub(crate) fn fetch_query(
        &self,
        schema: &Schema,
        collection: &Collection,
        rule: Option<&str>,
        id: &str,
        info: &RequestInfo,
    ) -> Result<SqlQuery, CoreError> {
        let dialect = self.store().dialect();
        let Some(rule) = rule.filter(|_| !info.is_superuser()) else {
            // No rule applies: nothing reads the request, so it is not copied.
            return Ok(schema
                .select(dialect, collection, no_request())
                .id(id)
                .list());
        };
        let ctx = request_context(info);
        let compiled = self.compiled_rule(schema, collection, rule, &ctx)?;
        Ok(schema
            .select(dialect, collection, &ctx)
            .filter(&compiled)
            .id(id)
            .list())
    }

    /// `SELECT COUNT(*)` of the new record under the create rule (1 = allowed).
    pub(crate) fn create_check_query(
        &self,
        schema: &Schema,
        collection: &Collection,
        rule: &str,
        record: &Map<String, Json>,
        info: &RequestInfo,
    ) -> Result<SqlQuery, CoreError> {
        let ctx = request_context(info);
        let compiled = self.compiled_rule(schema, collection, rule, &ctx)?;
        Ok(create_check(
            self.store().dialect(),
            collection,
            record,
            &compiled,
            &ctx,
        ))
    }
}

impl App {
    /// Runs a list query and, unless skipped, its count (-1) on one read connection.
    pub(crate) async fn run_list(
        &self,
        queries: ListQueries,
    ) -> Result<(basalt_store::Rows, i64), CoreError> {
        let skip_count = queries.count.is_none();
        let run = move |conn: &mut dyn basalt_store::Conn| {
            let rows = conn.query(&queries.select)?;
            let total = match &queries.count {
                Some(count) => count_of(&conn.query(count)?),
                None => -1,
            };
            Ok::<_, CoreError>((rows, total))
        };
        // The page and its count must see one snapshot; a page alone is one statement.
        if skip_count {
            basalt_store::read_single(self.store().as_ref(), run).await
        } else {
            basalt_store::read(self.store().as_ref(), run).await
        }
    }
}

/// The first column of the first row as a count.
pub(crate) fn count_of(rows: &basalt_store::Rows) -> i64 {
    match rows.rows.first().and_then(|row| row.first()) {
        Some(Value::Int(n)) => *n,
        Some(Value::Float(f)) => *f as i64,
        _ => 0,
    }
}

/// Checks that a rule parses and resolves against the collection (on collection save).
pub(crate) fn validate_rule(
    app: &App,
    lookup: &dyn SchemaLookup,
    collection: &Collection,
    rule: &str,
) -> Result<(), String> {
    let ctx = RequestContext::guest(0);
    let options = CompileOptions::rule(app.store().dialect(), &ctx);
    compile_rule(lookup, collection, rule, &options)
        .map(|_| ())
        .map_err(|error| error.to_string())
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
        let queries = self.list_queries(&schema, &meta, None, &params, info)?;
        let (rows, total) = self.run_list(queries).await?;
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
        Ok(crate::records::ListResult::page_of(&params, total, items))
    }
}
