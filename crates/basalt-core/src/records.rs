//! The records service: list, view, create, update, delete, with the collection's API
//! rules enforced inside the same transaction as the write.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use basalt_schema::{
    Collection, Field, FieldError, FieldErrors, FieldKind, RuleKind, SchemaLookup, now_datetime,
    random_id,
};
use basalt_sql::record;
use basalt_store::{Conn, ErrorKind, StoreError};
use serde_json::{Map, Value as Json};

use crate::app::App;
use crate::auth::{Auth, new_token_key};
use crate::error::CoreError;
use crate::realtime::{Action, Change};
use crate::schema::Schema;

/// What the services know about the request, for rules and visibility.
#[derive(Debug, Clone, Default)]
pub struct RequestInfo {
    /// The authenticated caller, if any.
    pub auth: Option<Auth>,
    /// HTTP method.
    pub method: String,
    /// First value of each query parameter.
    pub query: BTreeMap<String, String>,
    /// Headers, keys lower snake_case.
    pub headers: BTreeMap<String, String>,
    /// The submitted body (after modifiers are resolved).
    pub body: Map<String, Json>,
    /// `default`, `realtime`, `batch`, ...
    pub context: String,
}

impl RequestInfo {
    /// Whether the caller is a superuser.
    pub fn is_superuser(&self) -> bool {
        self.auth.as_ref().is_some_and(Auth::is_superuser)
    }
}

impl ListResult {
    /// The page envelope for `items` of a list whose total is `total` (-1 when skipped).
    pub(crate) fn page_of(params: &ListParams, total: i64, items: Vec<Json>) -> ListResult {
        let total_pages = if total < 0 {
            -1
        } else {
            (total + params.per_page - 1) / params.per_page
        };
        ListResult {
            page: params.page,
            per_page: params.per_page,
            total_items: total,
            total_pages,
            items,
        }
    }
}

/// A record write prepared outside the transaction and applied inside one; returns
/// the stored record (none for deletes) and the changes to publish after commit.
pub(crate) struct WriteOp {
    pub(crate) collection: Arc<Collection>,
    pub(crate) apply: WriteFn,
    /// Uploaded files to store before the transaction (storage key, bytes).
    pub(crate) uploads: Vec<(String, bytes::Bytes)>,
}

/// The transactional part of a record write.
pub(crate) type WriteFn = Box<dyn FnOnce(&mut dyn Conn) -> Result<Written, CoreError> + Send>;

/// What a write job returns: the stored record (none for deletes) and the record
/// changes to publish to realtime subscribers once the transaction has committed.
pub(crate) struct Written {
    pub(crate) record: Option<Map<String, Json>>,
    pub(crate) changes: Vec<Change>,
    /// Storage keys of files this write dropped (removed once it commits).
    pub(crate) dropped_files: Vec<String>,
}

/// List parameters after parsing.
#[derive(Debug, Clone, Default)]
pub struct ListParams {
    /// 1-based page.
    pub page: i64,
    /// Page size (1..=1000).
    pub per_page: i64,
    /// Raw sort text.
    pub sort: Option<String>,
    /// Raw filter text.
    pub filter: Option<String>,
    /// Skip the COUNT query.
    pub skip_total: bool,
}

/// One page of records.
#[derive(Debug, Clone)]
pub struct ListResult {
    /// Page number.
    pub page: i64,
    /// Page size.
    pub per_page: i64,
    /// Total matching rows, or -1 when skipped.
    pub total_items: i64,
    /// Total pages, or -1 when skipped.
    pub total_pages: i64,
    /// Exported records.
    pub items: Vec<Json>,
}

fn failed_create() -> CoreError {
    CoreError::bad_request("Failed to create record.")
}

/// Turns a unique violation into `validation_not_unique` on the involved fields.
pub(crate) fn unique_error(
    collection: &Collection,
    error: &StoreError,
    message: &str,
) -> Option<CoreError> {
    if error.kind() != ErrorKind::UniqueViolation {
        return None;
    }
    let mut columns: Vec<String> = error
        .columns()
        .iter()
        .filter(|c| collection.field(c).is_some())
        .cloned()
        .collect();
    if columns.is_empty() {
        let constraint = error.message().to_string();
        for sql in &collection.indexes {
            if let Some(index) = basalt_schema::parse_index(sql)
                && constraint.contains(&index.name)
            {
                columns = index.columns.clone();
            }
        }
    }
    if columns.is_empty() {
        columns.push("id".into());
    }
    let errors: FieldErrors = columns
        .into_iter()
        .map(|c| (c, FieldError::not_unique()))
        .collect();
    Some(CoreError::validation(message, errors))
}

impl App {
    fn record_collection(&self, name_or_id: &str) -> Result<Arc<Collection>, CoreError> {
        self.collection(name_or_id)
            .ok_or_else(|| CoreError::NotFound("Missing collection context.".into()))
    }

    /// A collection records can be written to. PocketBase words a missing collection
    /// differently for create/update ("Missing or invalid ...") than for delete.
    fn writable_collection(
        &self,
        name_or_id: &str,
        upsert: bool,
    ) -> Result<Arc<Collection>, CoreError> {
        let collection = match self.collection(name_or_id) {
            Some(collection) => collection,
            None if upsert => {
                return Err(CoreError::NotFound(
                    "Missing or invalid collection context.".into(),
                ));
            }
            None => return self.record_collection(name_or_id),
        };
        if collection.is_view() {
            return Err(CoreError::bad_request("Unsupported collection type."));
        }
        Ok(collection)
    }

    /// Extra request body bytes a record write of this collection may carry: the sum of
    /// its json and editor fields' max sizes and its file fields' maxSize × maxSelect
    /// (PocketBase's rule; defaults apply to fields without a max size).
    pub fn record_body_allowance(&self, name_or_id: &str) -> usize {
        let Some(collection) = self.collection(name_or_id) else {
            return 0;
        };
        let total: u64 = collection
            .fields
            .iter()
            .map(|field| match &field.kind {
                FieldKind::Json { max_size, .. } => {
                    if *max_size == 0 {
                        1 << 20
                    } else {
                        *max_size
                    }
                }
                FieldKind::Editor { max_size, .. } => {
                    if *max_size == 0 {
                        5 << 20
                    } else {
                        *max_size
                    }
                }
                FieldKind::File {
                    max_size,
                    max_select,
                    ..
                } => (if *max_size == 0 { 5 << 20 } else { *max_size })
                    .saturating_mul((*max_select).max(1)),
                _ => 0,
            })
            .fold(0u64, u64::saturating_add);
        usize::try_from(total).unwrap_or(usize::MAX)
    }

    /// The request body limit of `/api/batch` (settings `batch.maxBodySize`, 0 = 128 MiB).
    pub fn batch_body_limit(&self) -> usize {
        let configured = self.settings()["batch"]["maxBodySize"]
            .as_u64()
            .unwrap_or(0);
        if configured == 0 {
            128 << 20
        } else {
            usize::try_from(configured).unwrap_or(usize::MAX)
        }
    }

    /// `GET /api/collections/{c}/records`.
    pub async fn list_records(
        &self,
        name_or_id: &str,
        params: ListParams,
        info: RequestInfo,
    ) -> Result<ListResult, CoreError> {
        let collection = self.record_collection(name_or_id)?;
        let superuser = info.is_superuser();
        let rule = collection.rule(RuleKind::List).map(str::to_string);
        if rule.is_none() && !superuser {
            return Err(CoreError::superusers_only());
        }
        if !superuser {
            for text in [&params.filter, &params.sort].into_iter().flatten() {
                if text.contains("@collection.") {
                    return Err(CoreError::Forbidden(
                        "Only superusers can filter by @collection.".into(),
                    ));
                }
                if text.contains("@request.") {
                    return Err(CoreError::Forbidden(
                        "Only superusers can filter by @request.".into(),
                    ));
                }
            }
        }
        let schema = self.schema();
        let queries = self.list_queries(&schema, &collection, rule.as_deref(), &params, &info)?;
        let export_collection = collection.clone();
        let (rows, total) = self.run_list(queries).await?;
        let rows: Vec<Map<String, Json>> = rows
            .rows
            .into_iter()
            .map(|row| record::decode_row(&export_collection, row))
            .collect();
        let items = self.export_rows(&export_collection, rows, &info).await?;
        Ok(ListResult::page_of(&params, total, items))
    }

    /// `GET /api/collections/{c}/records/{id}`.
    pub async fn view_record(
        &self,
        name_or_id: &str,
        id: &str,
        info: &RequestInfo,
    ) -> Result<Json, CoreError> {
        let collection = self.record_collection(name_or_id)?;
        let rule = self.rule_or_forbidden(&collection, RuleKind::View, info)?;
        let schema = self.schema();
        let query = self.fetch_query(&schema, &collection, rule.as_deref(), id, info)?;
        let lookup = collection.clone();
        let found = basalt_store::read_single(self.store().as_ref(), move |conn: &mut dyn Conn| {
            let rows = conn.query(&query)?;
            Ok::<_, CoreError>(
                rows.rows
                    .into_iter()
                    .next()
                    .map(|row| record::decode_row(&lookup, row)),
            )
        })
        .await?;
        let data = found.ok_or_else(CoreError::not_found)?;
        self.export_one(&collection, data, info).await
    }

    /// `None` = superuser bypass (or empty rule); `Some(rule)` = rule to apply; error for locked.
    fn rule_or_forbidden(
        &self,
        collection: &Collection,
        kind: RuleKind,
        info: &RequestInfo,
    ) -> Result<Option<String>, CoreError> {
        if info.is_superuser() {
            return Ok(None);
        }
        match collection.rule(kind) {
            None => Err(CoreError::superusers_only()),
            Some("") => Ok(None),
            Some(rule) => Ok(Some(rule.to_string())),
        }
    }

    /// Whether the record `id` of `collection` satisfies `rule` for this request.
    pub(crate) async fn record_matches_rule(
        &self,
        collection: &Arc<Collection>,
        id: &str,
        rule: &str,
        info: &RequestInfo,
    ) -> Result<bool, CoreError> {
        let schema = self.schema();
        let query = self.fetch_query(&schema, collection, Some(rule), id, info)?;
        basalt_store::read_single(self.store().as_ref(), move |conn: &mut dyn Conn| {
            Ok::<_, CoreError>(!conn.query(&query)?.rows.is_empty())
        })
        .await
    }

    /// `POST /api/collections/{c}/records`.
    pub async fn create_record(
        &self,
        name_or_id: &str,
        body: Map<String, Json>,
        info: RequestInfo,
    ) -> Result<Json, CoreError> {
        self.create_record_with_files(name_or_id, body, Vec::new(), &info)
            .await
    }

    /// `POST /api/collections/{c}/records` with uploaded files (multipart).
    pub async fn create_record_with_files(
        &self,
        name_or_id: &str,
        body: Map<String, Json>,
        uploads: Vec<crate::files::Upload>,
        info: &RequestInfo,
    ) -> Result<Json, CoreError> {
        let op = self.prepare_create(name_or_id, body, uploads, info).await?;
        self.run_write(op, info)
            .await
            .map(|exported| exported.unwrap_or(Json::Null))
    }

    /// Prepares a create: everything that needs no transaction (input, validation,
    /// password hashing); the relation checks, the create rule and the insert run in
    /// the returned operation, inside the write transaction.
    pub(crate) async fn prepare_create(
        &self,
        name_or_id: &str,
        mut body: Map<String, Json>,
        uploads: Vec<crate::files::Upload>,
        info: &RequestInfo,
    ) -> Result<WriteOp, CoreError> {
        let collection = self.writable_collection(name_or_id, true)?;
        let rule = self.rule_or_forbidden(&collection, RuleKind::Create, info)?;
        let superuser = info.is_superuser();
        let mut data = Map::new();
        for field in &collection.fields {
            data.insert(field.name.clone(), field.zero_value());
        }
        let mut errors = FieldErrors::new();
        let staged =
            crate::files::stage_uploads(&collection, &mut body, uploads, superuser, &mut errors);
        let uploaded = staged.names();
        let resolved = apply_input(&collection, &mut data, &body, superuser, true, &mut errors);
        let password = self
            .prepare_password(&collection, &body, &mut data, None, superuser, &mut errors)
            .await?;
        let _ = password;
        // Empty text fields with an autogenerate pattern (the id among them) are filled.
        for field in &collection.fields {
            if let FieldKind::Text {
                autogenerate_pattern,
                ..
            } = &field.kind
                && !autogenerate_pattern.is_empty()
                && data
                    .get(&field.name)
                    .and_then(Json::as_str)
                    .unwrap_or_default()
                    .is_empty()
            {
                let generated = basalt_schema::generate_from_pattern(autogenerate_pattern)
                    .or_else(|| (field.name == "id").then(random_id));
                if let Some(value) = generated {
                    data.insert(field.name.clone(), Json::String(value));
                }
            }
        }
        if collection.is_auth() {
            data.insert("tokenKey".into(), Json::String(new_token_key()));
            if !superuser
                && body.contains_key("verified")
                && body.get("verified") != Some(&Json::Bool(false))
            {
                errors.insert(
                    "verified".into(),
                    FieldError::new("validation_values_mismatch", "Values don't match."),
                );
            }
        }
        let now = now_datetime();
        for field in &collection.fields {
            if let FieldKind::Autodate {
                on_create: true, ..
            } = field.kind
            {
                data.insert(field.name.clone(), Json::String(now.clone()));
            }
        }
        crate::files::check_file_names(&collection, &Map::new(), &data, &uploaded, &mut errors);
        validate_all(&collection, &data, &mut errors);
        if !errors.is_empty() {
            return Err(CoreError::validation("Failed to create record.", errors));
        }
        let schema = self.schema();
        let id = data
            .get("id")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_string();
        let check = match &rule {
            Some(rule) => {
                // The rule sees the resolved body (`@request.body.*`).
                let mut rule_info = info.clone();
                rule_info.body = resolved;
                Some(self.create_check_query(&schema, &collection, rule, &data, &rule_info)?)
            }
            None => None,
        };
        let uploads = staged.writes(&collection.id, &id);
        let dropped_files =
            crate::files::dropped_files(&collection, &id, &Map::new(), &data, &uploaded);
        let write_collection = collection.clone();
        Ok(WriteOp {
            collection,
            uploads,
            apply: Box::new(move |conn: &mut dyn Conn| {
                check_relations(conn, &schema, &write_collection, &data)?;
                if let Some(check) = &check
                    && crate::rules::count_of(&conn.query(check)?) != 1
                {
                    return Err(failed_create());
                }
                if let Err(error) =
                    conn.execute(&record::insert(&write_collection, &data, conn.dialect()))
                {
                    return Err(unique_error(
                        &write_collection,
                        &error,
                        "Failed to create record.",
                    )
                    .unwrap_or_else(|| CoreError::from(error)));
                }
                let change =
                    Change::saved(write_collection.clone(), Action::Create, None, data.clone());
                Ok(Written {
                    record: Some(data),
                    changes: vec![change],
                    dropped_files,
                })
            }),
        })
    }

    /// `PATCH /api/collections/{c}/records/{id}`.
    pub async fn update_record(
        &self,
        name_or_id: &str,
        id: &str,
        body: Map<String, Json>,
        info: RequestInfo,
    ) -> Result<Json, CoreError> {
        self.update_record_with_files(name_or_id, id, body, Vec::new(), &info)
            .await
    }

    /// `PATCH /api/collections/{c}/records/{id}` with uploaded files (multipart).
    pub async fn update_record_with_files(
        &self,
        name_or_id: &str,
        id: &str,
        body: Map<String, Json>,
        uploads: Vec<crate::files::Upload>,
        info: &RequestInfo,
    ) -> Result<Json, CoreError> {
        let op = self
            .prepare_update(name_or_id, id, body, uploads, info)
            .await?;
        self.run_write(op, info)
            .await
            .map(|exported| exported.unwrap_or(Json::Null))
    }

    /// Prepares an update. The current row is read here only when a password change
    /// needs the stored hash; the modifiers, the update rule, validation and the write
    /// run in the returned operation on the row re-read inside the transaction.
    pub(crate) async fn prepare_update(
        &self,
        name_or_id: &str,
        id: &str,
        mut body: Map<String, Json>,
        uploads: Vec<crate::files::Upload>,
        info: &RequestInfo,
    ) -> Result<WriteOp, CoreError> {
        let collection = self.writable_collection(name_or_id, true)?;
        let rule = self.rule_or_forbidden(&collection, RuleKind::Update, info)?;
        let superuser = info.is_superuser();
        let mut pre_errors = FieldErrors::new();
        let staged = crate::files::stage_uploads(
            &collection,
            &mut body,
            uploads,
            superuser,
            &mut pre_errors,
        );
        if !staged.is_empty() && !basalt_files::is_safe_name(id) {
            return Err(CoreError::not_found());
        }
        let uploaded = staged.names();
        let uploads = staged.writes(&collection.id, id);
        let wants_password = collection.is_auth()
            && body
                .get("password")
                .and_then(Json::as_str)
                .is_some_and(|p| !p.is_empty());
        let current = if wants_password {
            let lookup = collection.clone();
            let target = id.to_string();
            basalt_store::read(self.store().as_ref(), move |conn: &mut dyn Conn| {
                crate::auth::load_record(conn, &lookup, &target)
            })
            .await?
            .ok_or_else(CoreError::not_found)?
        } else {
            Map::new()
        };
        // Password hashing is slow and async: done before the transaction, against the
        // stored hash read above. Everything that depends on the current values runs
        // inside the write job, on a row re-read there, so concurrent modifiers
        // (`views+`) never lose updates.
        // Whether the caller manages this record decides, before the transaction, whether
        // a new password needs the old one; the manage rule sees the submitted body. The
        // write job checks the rule again on the row and body it writes.
        let manager = superuser || {
            let mut manage_info = info.clone();
            manage_info.body = body.clone();
            self.is_self_manager(&collection, id, &manage_info).await?
        };
        let manage_rule = crate::auth_flows::manage_rule(&collection)
            .filter(|_| !superuser && info.auth.is_some())
            .map(str::to_string);
        let mut scratch = current.clone();
        let password_changed = self
            .prepare_password(
                &collection,
                &body,
                &mut scratch,
                Some(&current),
                manager,
                &mut pre_errors,
            )
            .await?;
        let new_hash = password_changed
            .then(|| scratch.get("password").cloned())
            .flatten();
        let skipped_old_password = manager && !superuser;
        let app = self.clone();
        let schema = self.schema();
        let target = id.to_string();
        let write_collection = collection.clone();
        // Only a rule reads the request (with the resolved body) inside the transaction.
        let rule_info = (rule.is_some() || manage_rule.is_some()).then(|| info.clone());
        Ok(WriteOp {
            collection,
            uploads,
            apply: Box::new(move |conn: &mut dyn Conn| {
                let collection = write_collection;
                let current = load_record_for_update(conn, &collection, &target)?
                    .ok_or_else(CoreError::not_found)?;
                let mut data = current.clone();
                let mut errors = pre_errors;
                let resolved =
                    apply_input(&collection, &mut data, &body, superuser, false, &mut errors);
                let mut rule_info = rule_info;
                if let Some(rule_info) = &mut rule_info {
                    rule_info.body = resolved;
                }
                // Whether the row, as it is in this transaction, passes `rule` for the
                // resolved body.
                let mut passes = |rule: &str| -> Result<bool, CoreError> {
                    let rule_info = rule_info
                        .as_ref()
                        .ok_or_else(|| CoreError::internal("update rule without its request"))?;
                    let check =
                        app.fetch_query(&schema, &collection, Some(rule), &target, rule_info)?;
                    Ok(!conn.query(&check)?.rows.is_empty())
                };
                if let Some(rule) = &rule
                    && !passes(rule)?
                {
                    return Err(CoreError::not_found());
                }
                // The manage rule again, so a manager's rights are not decided on stale
                // data.
                let manager = superuser
                    || match &manage_rule {
                        Some(manage) => passes(manage)?,
                        None => false,
                    };
                if password_changed && !manager && skipped_old_password {
                    errors.insert("oldPassword".into(), FieldError::required());
                }
                if data.get("id") != current.get("id") {
                    errors.insert(
                        "id".into(),
                        FieldError::new(
                            "validation_pk_change",
                            "The record primary key cannot be changed.",
                        ),
                    );
                    data.insert(
                        "id".into(),
                        current.get("id").cloned().unwrap_or(Json::Null),
                    );
                }
                if let Some(hash) = new_hash {
                    data.insert("password".into(), hash);
                }
                if collection.is_auth() {
                    let email_changed = data.get("email") != current.get("email");
                    if email_changed && !manager {
                        errors.insert(
                            "email".into(),
                            FieldError::new("validation_values_mismatch", "Values don't match."),
                        );
                    }
                    if data.get("verified") != current.get("verified") && !manager {
                        errors.insert(
                            "verified".into(),
                            FieldError::new("validation_values_mismatch", "Values don't match."),
                        );
                    }
                    if password_changed || email_changed {
                        data.insert("tokenKey".into(), Json::String(new_token_key()));
                    }
                }
                let now = now_datetime();
                for field in &collection.fields {
                    if let FieldKind::Autodate {
                        on_update: true, ..
                    } = field.kind
                    {
                        data.insert(field.name.clone(), Json::String(now.clone()));
                    }
                }
                crate::files::check_file_names(
                    &collection,
                    &current,
                    &data,
                    &uploaded,
                    &mut errors,
                );
                validate_all(&collection, &data, &mut errors);
                if !errors.is_empty() {
                    return Err(CoreError::validation("Failed to update record.", errors));
                }
                let dropped_files =
                    crate::files::dropped_files(&collection, &target, &current, &data, &uploaded);
                let changes: Map<String, Json> = data
                    .iter()
                    .filter(|(k, v)| current.get(*k) != Some(*v))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                check_relations(conn, &schema, &collection, &changes)?;
                if let Some(statement) =
                    record::update(&collection, &target, &changes, conn.dialect())
                    && let Err(error) = conn.execute(&statement)
                {
                    return Err(
                        unique_error(&collection, &error, "Failed to update record.")
                            .unwrap_or_else(|| CoreError::from(error)),
                    );
                }
                let change = Change::saved(
                    collection.clone(),
                    Action::Update,
                    Some(&current),
                    data.clone(),
                );
                Ok(Written {
                    record: Some(data),
                    changes: vec![change],
                    dropped_files,
                })
            }),
        })
    }

    /// Whether the caller satisfies the auth collection's `manageRule` for this record
    /// (then it may change email, password and verified without `oldPassword`).
    async fn is_self_manager(
        &self,
        collection: &Arc<Collection>,
        id: &str,
        info: &RequestInfo,
    ) -> Result<bool, CoreError> {
        self.has_manage_access(collection, id, info).await
    }

    /// `DELETE /api/collections/{c}/records/{id}`.
    pub async fn delete_record(
        &self,
        name_or_id: &str,
        id: &str,
        info: RequestInfo,
    ) -> Result<(), CoreError> {
        let op = self.prepare_delete(name_or_id, id, &info)?;
        self.run_write(op, &info).await.map(|_| ())
    }

    /// Prepares a delete: the delete rule, relation resolution (cascade, required
    /// references) and the delete itself run in the returned operation.
    pub(crate) fn prepare_delete(
        &self,
        name_or_id: &str,
        id: &str,
        info: &RequestInfo,
    ) -> Result<WriteOp, CoreError> {
        let collection = self.writable_collection(name_or_id, false)?;
        let rule = self.rule_or_forbidden(&collection, RuleKind::Delete, info)?;
        let schema = self.schema();
        let check = self.fetch_query(&schema, &collection, rule.as_deref(), id, info)?;
        let target = id.to_string();
        let write_collection = collection.clone();
        let app = self.clone();
        Ok(WriteOp {
            collection,
            uploads: Vec::new(),
            apply: Box::new(move |conn: &mut dyn Conn| {
                let Some(row) = conn.query(&check)?.rows.into_iter().next() else {
                    return Err(CoreError::not_found());
                };
                // Realtime recipients are decided before anything is deleted.
                let before = record::decode_row(&write_collection, row);
                let mut changes = vec![app.realtime_delete(conn, &write_collection, before)];
                delete_cascading(
                    conn,
                    &schema,
                    &write_collection,
                    &target,
                    0,
                    &app,
                    &mut changes,
                )?;
                Ok(Written {
                    record: None,
                    changes,
                    dropped_files: Vec::new(),
                })
            }),
        })
    }

    /// Runs one prepared write in its own transaction and exports its record.
    pub(crate) async fn run_write(
        &self,
        op: WriteOp,
        info: &RequestInfo,
    ) -> Result<Option<Json>, CoreError> {
        let WriteOp {
            collection,
            apply,
            uploads,
        } = op;
        self.store_uploads(&uploads).await?;
        let written = match basalt_store::write(self.store().as_ref(), apply).await {
            Ok(written) => written,
            Err(error) => {
                self.discard_uploads(&uploads).await;
                return Err(error);
            }
        };
        self.remove_dropped_files(&written.dropped_files, &written.changes)
            .await;
        self.publish(written.changes).await;
        match written.record {
            Some(data) => Ok(Some(self.export_one(&collection, data, info).await?)),
            None => Ok(None),
        }
    }

    /// Hashes `password` when present and checks `passwordConfirm`/`oldPassword`.
    /// Returns whether the password changes.
    async fn prepare_password(
        &self,
        collection: &Collection,
        body: &Map<String, Json>,
        data: &mut Map<String, Json>,
        current: Option<&Map<String, Json>>,
        superuser: bool,
        errors: &mut FieldErrors,
    ) -> Result<bool, CoreError> {
        let Some(field) = collection
            .field("password")
            .filter(|_| collection.is_auth())
            .cloned()
        else {
            return Ok(false);
        };
        let plain = body
            .get("password")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_string();
        if plain.is_empty() {
            if current.is_none() {
                errors.insert("password".into(), FieldError::required());
            }
            return Ok(false);
        }
        if let Err(error) = field.validate_password(&plain) {
            errors.insert("password".into(), error);
            return Ok(false);
        }
        if body.get("passwordConfirm").and_then(Json::as_str) != Some(plain.as_str()) {
            errors.insert(
                "passwordConfirm".into(),
                FieldError::new("validation_values_mismatch", "Values don't match."),
            );
        }
        if let (Some(current), false) = (current, superuser) {
            let old = body
                .get("oldPassword")
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_string();
            if old.is_empty() {
                errors.insert("oldPassword".into(), FieldError::required());
            } else {
                let hash = current
                    .get("password")
                    .and_then(Json::as_str)
                    .unwrap_or_default()
                    .to_string();
                if !self
                    .with_hashing(move || bcrypt::verify(old, &hash).unwrap_or(false))
                    .await?
                {
                    errors.insert(
                        "oldPassword".into(),
                        FieldError::new(
                            "validation_invalid_old_password",
                            "Missing or invalid old password.",
                        ),
                    );
                }
            }
        }
        if !errors.is_empty() {
            return Ok(false);
        }
        let cost = match &field.kind {
            FieldKind::Password { cost, .. } => *cost,
            _ => 0,
        };
        let hash = self
            .with_hashing(move || crate::auth::hash_password(&plain, cost))
            .await??;
        data.insert("password".into(), Json::String(hash));
        Ok(true)
    }

    /// Exports a record for a viewer: hidden fields, password and tokenKey removed, email
    /// shown only when visible, keys sorted, `collectionId`/`collectionName` added.
    pub fn export(
        &self,
        collection: &Collection,
        data: &Map<String, Json>,
        info: &RequestInfo,
    ) -> Json {
        let superuser = info.is_superuser();
        let is_self = info.auth.as_ref().is_some_and(|a| {
            a.collection.id == collection.id
                && Some(a.id()) == data.get("id").and_then(Json::as_str)
        });
        export_with(collection, data, superuser, is_self)
    }

    /// [`App::export_rows`] of one record.
    pub(crate) async fn export_one(
        &self,
        collection: &Arc<Collection>,
        data: Map<String, Json>,
        info: &RequestInfo,
    ) -> Result<Json, CoreError> {
        let mut one = self.export_rows(collection, vec![data], info).await?;
        Ok(one.pop().unwrap_or(Json::Null))
    }

    /// Exports records read for this caller: like [`App::export`] each, and an auth
    /// record's hidden email is shown to a caller that satisfies the collection's
    /// `manageRule` for it, as PocketBase does (one extra query, only when a manage rule
    /// exists, the caller is a signed-in non-superuser and some email is hidden).
    pub(crate) async fn export_rows(
        &self,
        collection: &Arc<Collection>,
        rows: Vec<Map<String, Json>>,
        info: &RequestInfo,
    ) -> Result<Vec<Json>, CoreError> {
        let managed = self.managed_ids(collection, &rows, info).await?;
        let superuser = info.is_superuser();
        let me = info
            .auth
            .as_ref()
            .filter(|a| a.collection.id == collection.id)
            .map(|a| a.id());
        Ok(rows
            .into_iter()
            .map(|data| {
                let id = data.get("id").and_then(Json::as_str);
                let shown = id.is_some_and(|id| Some(id) == me || managed.contains(id));
                export_owned(collection, data, superuser, shown)
            })
            .collect())
    }

    /// The ids among `rows` whose hidden email the caller may see as their manager.
    async fn managed_ids(
        &self,
        collection: &Arc<Collection>,
        rows: &[Map<String, Json>],
        info: &RequestInfo,
    ) -> Result<HashSet<String>, CoreError> {
        let Some(auth) = info.auth.as_ref().filter(|a| !a.is_superuser()) else {
            return Ok(HashSet::new());
        };
        let Some(rule) = crate::auth_flows::manage_rule(collection) else {
            return Ok(HashSet::new());
        };
        let hidden: Vec<String> = rows
            .iter()
            .filter(|row| {
                !row.get("emailVisibility")
                    .and_then(Json::as_bool)
                    .unwrap_or(false)
            })
            .filter_map(|row| row.get("id").and_then(Json::as_str))
            .filter(|id| !(auth.collection.id == collection.id && auth.id() == *id))
            .map(str::to_string)
            .collect();
        if hidden.is_empty() {
            return Ok(HashSet::new());
        }
        let ctx = crate::rules::request_context(info);
        let compiled = self.compiled_rule_for(collection, rule, &ctx)?;
        let query =
            basalt_sql::filter::SelectBuilder::new(self.store().dialect(), collection, &ctx)
                .filter(&compiled)
                .ids(hidden)
                .select_ids();
        basalt_store::read(self.store().as_ref(), move |conn: &mut dyn Conn| {
            Ok::<_, CoreError>(
                conn.query(&query)?
                    .rows
                    .into_iter()
                    .filter_map(|row| match row.into_iter().next() {
                        Some(basalt_sql::Value::Text(id)) => Some(id),
                        _ => None,
                    })
                    .collect(),
            )
        })
        .await
    }
}

/// Record export shared by every read path (also auth responses, where `is_self` is true).
pub fn export_with(
    collection: &Collection,
    data: &Map<String, Json>,
    superuser: bool,
    is_self: bool,
) -> Json {
    let email_shown = is_self || email_visible(data);
    let mut out = Map::new();
    for field in &collection.fields {
        if !exported(collection, field, superuser, email_shown) {
            continue;
        }
        out.insert(
            field.name.clone(),
            data.get(&field.name)
                .cloned()
                .unwrap_or_else(|| field.zero_value()),
        );
    }
    with_collection(collection, out)
}

/// [`export_with`] of a record the caller owns: its map is filtered in place instead of
/// copied (the list, view and expand paths export rows they just decoded).
fn export_owned(
    collection: &Collection,
    mut data: Map<String, Json>,
    superuser: bool,
    is_self: bool,
) -> Json {
    let email_shown = is_self || email_visible(&data);
    // Every field present (so no other key, the counts being equal) and none withheld
    // from this caller, the usual case for a base collection: nothing to drop or add.
    if data.len() == collection.fields.len()
        && collection.fields.iter().all(|field| {
            exported(collection, field, superuser, email_shown) && data.contains_key(&field.name)
        })
    {
        return with_collection(collection, data);
    }
    data.retain(|name, _| {
        collection
            .field(name)
            .is_some_and(|field| exported(collection, field, superuser, email_shown))
    });
    for field in &collection.fields {
        if !data.contains_key(&field.name) && exported(collection, field, superuser, email_shown) {
            data.insert(field.name.clone(), field.zero_value());
        }
    }
    with_collection(collection, data)
}

fn email_visible(data: &Map<String, Json>) -> bool {
    data.get("emailVisibility")
        .and_then(Json::as_bool)
        .unwrap_or(false)
}

/// Whether a field is part of a record's export: never passwords or the token key,
/// hidden fields for superusers only, an auth record's email when it may be shown.
fn exported(collection: &Collection, field: &Field, superuser: bool, email_shown: bool) -> bool {
    if matches!(field.kind, FieldKind::Password { .. })
        || (collection.is_auth() && field.name == "tokenKey")
    {
        return false;
    }
    if field.hidden && !superuser {
        return false;
    }
    !(collection.is_auth() && field.name == "email" && !(email_shown || superuser))
}

fn with_collection(collection: &Collection, mut out: Map<String, Json>) -> Json {
    out.insert("collectionId".into(), Json::String(collection.id.clone()));
    out.insert(
        "collectionName".into(),
        Json::String(collection.name.clone()),
    );
    Json::Object(out)
}

/// Applies body values and modifiers to `data`; returns the resolved body for rules:
/// the submitted keys with the modifiers of the collection's fields applied (`views+`
/// becomes `views`), and every key not applied to a field (unknown names, passwords,
/// ids, ...) as submitted, so `@request.body.*` sees what the client sent.
fn apply_input(
    collection: &Collection,
    data: &mut Map<String, Json>,
    body: &Map<String, Json>,
    superuser: bool,
    creating: bool,
    errors: &mut FieldErrors,
) -> Map<String, Json> {
    let mut keys: Vec<&String> = body.keys().collect();
    keys.sort_by_key(|k| k.len());
    let mut resolved = Map::new();
    for key in keys {
        let value = &body[key];
        let (name, modifier) = if let Some(name) = key.strip_suffix(":autogenerate") {
            (name, Some('a'))
        } else if let Some(name) = key.strip_suffix('+') {
            (name, Some('+'))
        } else if let Some(name) = key.strip_suffix('-') {
            (name, Some('-'))
        } else if let Some(name) = key.strip_prefix('+') {
            (name, Some('^'))
        } else {
            (key.as_str(), None)
        };
        let Some(field) = collection.field(name) else {
            keep(&mut resolved, key, value);
            continue;
        };
        if matches!(
            field.kind,
            FieldKind::Password { .. } | FieldKind::Autodate { .. }
        ) {
            keep(&mut resolved, key, value);
            continue;
        }
        if (field.hidden && !superuser) || (collection.is_auth() && name == "tokenKey") {
            keep(&mut resolved, key, value);
            continue;
        }
        if name == "id" && !creating {
            if value.as_str() != data.get("id").and_then(Json::as_str) {
                errors.insert(
                    "id".into(),
                    FieldError::new(
                        "validation_pk_change",
                        "The record primary key cannot be changed.",
                    ),
                );
            }
            keep(&mut resolved, key, value);
            continue;
        }
        // The current value matters only to a modifier; it is not copied for a plain set.
        let current = || {
            data.get(name)
                .cloned()
                .unwrap_or_else(|| field.zero_value())
        };
        let next = match (modifier, &field.kind) {
            (None, _) => field.normalize(value),
            (
                Some('a'),
                FieldKind::Text {
                    autogenerate_pattern,
                    ..
                },
            ) => {
                let prefix = field.normalize(value);
                let suffix =
                    basalt_schema::generate_from_pattern(autogenerate_pattern).unwrap_or_default();
                Json::String(format!("{}{suffix}", prefix.as_str().unwrap_or_default()))
            }
            (Some(op @ ('+' | '-')), FieldKind::Number { .. }) => {
                let delta = field.normalize(value).as_f64().unwrap_or(0.0);
                let base = current().as_f64().unwrap_or(0.0);
                basalt_schema::number_json(if op == '+' {
                    base + delta
                } else {
                    base - delta
                })
            }
            (
                Some(op),
                FieldKind::Select { .. } | FieldKind::Relation { .. } | FieldKind::File { .. },
            ) => {
                let mut list = crate::records::list_of(&current());
                let items = basalt_schema::to_list(value);
                match op {
                    '+' => list.extend(
                        items
                            .into_iter()
                            .filter(|i| !list.contains(i))
                            .collect::<Vec<_>>(),
                    ),
                    '^' => {
                        let mut front: Vec<String> =
                            items.into_iter().filter(|i| !list.contains(i)).collect();
                        front.extend(list);
                        list = front;
                    }
                    _ => list.retain(|i| !items.contains(i)),
                }
                field.normalize(&serde_json::json!(list))
            }
            _ => {
                keep(&mut resolved, key, value);
                continue;
            }
        };
        resolved.insert(name.to_string(), next.clone());
        data.insert(name.to_string(), next);
    }
    resolved
}

/// Keeps a body key that was not applied to a field in the rules' view of the body.
fn keep(resolved: &mut Map<String, Json>, key: &str, value: &Json) {
    resolved
        .entry(key.to_string())
        .or_insert_with(|| value.clone());
}

pub(crate) fn list_of(value: &Json) -> Vec<String> {
    match value {
        Json::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        Json::String(s) if !s.is_empty() => vec![s.clone()],
        _ => Vec::new(),
    }
}

fn validate_all(collection: &Collection, data: &Map<String, Json>, errors: &mut FieldErrors) {
    for field in &collection.fields {
        if errors.contains_key(&field.name) {
            continue;
        }
        if field.name == "tokenKey" && collection.is_auth() {
            continue;
        }
        // Validated where it is (a copy of every value was ~2% of a create).
        let zero;
        let value = match data.get(&field.name) {
            Some(value) => value,
            None => {
                zero = field.zero_value();
                &zero
            }
        };
        if let FieldKind::Text {
            primary_key: true, ..
        } = field.kind
            && let Some(forbidden) = value.as_str().and_then(forbidden_id_char)
        {
            errors.insert(
                field.name.clone(),
                FieldError::with_params(
                    "validation_pk_forbidden",
                    "The record primary key contains a forbidden character.",
                    serde_json::json!({ "forbidden": forbidden.to_string() }),
                ),
            );
            continue;
        }
        if let Err(error) = field.validate(value) {
            errors.insert(field.name.clone(), error);
        }
    }
}

/// The first character a record id may never hold (path separators, quotes, wildcards,
/// whitespace), checked before any pattern so custom id patterns cannot allow them.
fn forbidden_id_char(id: &str) -> Option<char> {
    id.chars()
        .find(|c| c.is_whitespace() || "./\\|\"'`<>:?*%$".contains(*c))
}

/// Re-reads a record inside a write job, locking its row where the backend needs it.
fn load_record_for_update(
    conn: &mut dyn Conn,
    collection: &Collection,
    id: &str,
) -> Result<Option<Map<String, Json>>, CoreError> {
    let query = record::select_by_id_for_update(collection, id, conn.dialect());
    let rows = conn.query(&query)?;
    Ok(rows
        .rows
        .into_iter()
        .next()
        .map(|row| record::decode_row(collection, row)))
}

/// Checks that every relation id in `data` exists in its target collection.
fn check_relations(
    conn: &mut dyn Conn,
    schema: &Schema,
    collection: &Collection,
    data: &Map<String, Json>,
) -> Result<(), CoreError> {
    let mut errors = FieldErrors::new();
    for field in &collection.fields {
        let (Some(target_id), Some(value)) = (field.relation_target(), data.get(&field.name))
        else {
            continue;
        };
        let ids = list_of(value);
        if ids.is_empty() {
            continue;
        }
        let Some(target) = schema.find(target_id) else {
            errors.insert(
                field.name.clone(),
                FieldError::new(
                    "validation_missing_rel_records",
                    "Failed to find all relation records with the provided ids.",
                ),
            );
            continue;
        };
        let found = conn
            .query(&record::existing_ids(target, &ids, conn.dialect()))?
            .rows
            .len();
        if found != ids.len() {
            errors.insert(
                field.name.clone(),
                FieldError::new(
                    "validation_missing_rel_records",
                    "Failed to find all relation records with the provided ids.",
                ),
            );
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(CoreError::validation("Failed to save record.", errors))
    }
}

/// Deletes a record after resolving every relation that points at it; the cascaded
/// deletes and updates are added to `events` (delete recipients decided first).
fn delete_cascading(
    conn: &mut dyn Conn,
    schema: &Schema,
    collection: &Collection,
    id: &str,
    depth: usize,
    app: &App,
    events: &mut Vec<Change>,
) -> Result<(), CoreError> {
    if depth > 32 {
        return Err(CoreError::bad_request(
            "Failed to delete record: the cascade is too deep.",
        ));
    }
    let dialect = conn.dialect();
    for other in &schema.collections {
        if other.is_view() {
            continue;
        }
        for field in other
            .fields
            .iter()
            .filter(|f| f.relation_target() == Some(collection.id.as_str()))
        {
            let rows = conn.query(&record::referencing_ids(other, field, id, dialect))?;
            for row in rows.rows {
                let data = record::decode_row(other, row);
                let other_id = data
                    .get("id")
                    .and_then(Json::as_str)
                    .unwrap_or_default()
                    .to_string();
                let mut remaining = list_of(data.get(&field.name).unwrap_or(&Json::Null));
                remaining.retain(|v| v != id);
                let cascade = matches!(
                    field.kind,
                    FieldKind::Relation {
                        cascade_delete: true,
                        ..
                    }
                );
                if remaining.is_empty() && cascade {
                    if !(other.id == collection.id && other_id == id) {
                        events.push(app.realtime_delete(conn, other, data));
                        delete_cascading(conn, schema, other, &other_id, depth + 1, app, events)?;
                    }
                } else if remaining.is_empty() && field.is_required() {
                    return Err(CoreError::bad_request(
                        "Failed to delete record. Make sure that the record is not part of a required relation reference.",
                    ));
                } else {
                    let mut changes = Map::new();
                    changes.insert(
                        field.name.clone(),
                        field.normalize(&serde_json::json!(remaining)),
                    );
                    if let Some(statement) = record::update(other, &other_id, &changes, dialect) {
                        conn.execute(&statement)?;
                        let mut after = data.clone();
                        after.extend(changes);
                        events.push(Change::saved(
                            other.clone(),
                            Action::Update,
                            Some(&data),
                            after,
                        ));
                    }
                }
            }
        }
    }
    conn.execute(&record::delete(collection, id, dialect))?;
    Ok(())
}
