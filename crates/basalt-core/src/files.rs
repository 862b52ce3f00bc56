//! Files: uploads staged before a record write and committed with it, downloads with
//! protected-file tokens and thumbs, cleanup after writes and deletes, orphan sweeps.
//!
//! Order of a write with uploads: the uploads are validated and named outside the
//! transaction; their bytes are written to storage (durably, under fresh random names,
//! so nothing stored is ever overwritten); the transaction runs (rules, validation, the
//! row); on failure the new files are deleted, on success the files the write dropped
//! are. A crash between the two steps leaves unreferenced files, which the orphan sweep
//! removes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use basalt_files::{Storage, ThumbSize};
use basalt_schema::{Collection, FieldError, FieldErrors, FieldKind};
use basalt_sql::record;
use basalt_store::Conn;
use bytes::Bytes;
use serde_json::{Map, Value as Json, json};

use crate::app::App;
use crate::auth::TokenType;
use crate::error::CoreError;
use crate::realtime::{Action, Change};
use crate::records::{RequestInfo, list_of};

/// Default `maxSize` of a file field (5 MiB).
pub const DEFAULT_MAX_FILE_SIZE: u64 = 5 << 20;

/// An uploaded file as received: the form key it came under (`field`, `field+` or
/// `+field`), the client's file name, and its bytes.
#[derive(Debug, Clone)]
pub struct Upload {
    /// Form key.
    pub key: String,
    /// The client's file name.
    pub filename: String,
    /// Content.
    pub bytes: Bytes,
}

/// Uploads accepted for one record write, named and ready to store.
#[derive(Debug, Default, Clone)]
pub(crate) struct Staged {
    /// (field, stored name, bytes).
    files: Vec<(String, String, Bytes)>,
}

impl Staged {
    pub(crate) fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Stored names per field.
    pub(crate) fn names(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (field, name, _) in &self.files {
            out.entry(field.clone()).or_default().insert(name.clone());
        }
        out
    }

    /// The storage writes for a record.
    pub(crate) fn writes(&self, collection_id: &str, record_id: &str) -> Vec<(String, Bytes)> {
        self.files
            .iter()
            .map(|(_, name, bytes)| {
                (
                    basalt_files::file_key(collection_id, record_id, name),
                    bytes.clone(),
                )
            })
            .collect()
    }
}

fn max_size_of(kind: &FieldKind) -> u64 {
    match kind {
        FieldKind::File { max_size, .. } if *max_size > 0 => *max_size,
        _ => DEFAULT_MAX_FILE_SIZE,
    }
}

/// Validates and names `uploads`, adding each stored name to `body` under the key the
/// file came with (so `field`, `field+` and `+field` keep their meaning). Uploads under
/// keys that are not file fields (or hidden ones, for non-superusers) are ignored.
pub(crate) fn stage_uploads(
    collection: &Collection,
    body: &mut Map<String, Json>,
    uploads: Vec<Upload>,
    superuser: bool,
    errors: &mut FieldErrors,
) -> Staged {
    let mut staged = Staged::default();
    for upload in uploads {
        let name = upload
            .key
            .strip_suffix('+')
            .or_else(|| upload.key.strip_prefix('+'))
            .unwrap_or(&upload.key);
        let Some(field) = collection.field(name) else {
            continue;
        };
        let FieldKind::File { mime_types, .. } = &field.kind else {
            continue;
        };
        if (field.hidden && !superuser) || errors.contains_key(name) {
            continue;
        }
        let limit = max_size_of(&field.kind);
        if upload.bytes.len() as u64 > limit {
            errors.insert(
                name.to_string(),
                FieldError::with_params(
                    "validation_file_size_limit",
                    &format!(
                        "Failed to upload {} - the maximum allowed file size is {limit} bytes.",
                        upload.filename
                    ),
                    json!({"file": upload.filename, "maxSize": limit}),
                ),
            );
            continue;
        }
        let head = &upload.bytes[..upload.bytes.len().min(basalt_files::SNIFF_LEN)];
        let content_type = basalt_files::detect(head, &upload.filename);
        let fallback = basalt_files::extension_for(head, &content_type);
        let stored = basalt_files::stored_name(&upload.filename, fallback.as_deref());
        if let Some(allowed) = mime_types.as_ref().filter(|m| !m.is_empty()) {
            let base = basalt_files::base_type(&content_type);
            if !allowed.iter().any(|m| m.eq_ignore_ascii_case(base)) {
                errors.insert(
                    name.to_string(),
                    FieldError::new(
                        "validation_invalid_mime_type",
                        &format!(
                            "\"{stored}\" mime type must be one of: {}.",
                            allowed.join(", ")
                        ),
                    ),
                );
                continue;
            }
        }
        let mut list = body
            .get(&upload.key)
            .map(basalt_schema::to_list)
            .unwrap_or_default();
        list.push(stored.clone());
        body.insert(
            upload.key.clone(),
            Json::Array(list.into_iter().map(Json::String).collect()),
        );
        staged.files.push((name.to_string(), stored, upload.bytes));
    }
    staged
}

/// Adds `validation_invalid_file` for every name in a file field of `data` that is
/// neither in `current` nor one of this write's uploads.
pub(crate) fn check_file_names(
    collection: &Collection,
    current: &Map<String, Json>,
    data: &Map<String, Json>,
    uploaded: &BTreeMap<String, BTreeSet<String>>,
    errors: &mut FieldErrors,
) {
    for field in &collection.fields {
        if !matches!(field.kind, FieldKind::File { .. }) || errors.contains_key(&field.name) {
            continue;
        }
        let before = list_of(current.get(&field.name).unwrap_or(&Json::Null));
        let fresh = uploaded.get(&field.name);
        let invalid: Vec<String> = list_of(data.get(&field.name).unwrap_or(&Json::Null))
            .into_iter()
            .filter(|name| !before.contains(name) && !fresh.is_some_and(|f| f.contains(name)))
            .collect();
        if !invalid.is_empty() {
            errors.insert(
                field.name.clone(),
                FieldError::with_params(
                    "validation_invalid_file",
                    &format!("Invalid new files: [{}].", invalid.join(" ")),
                    json!({ "invalidFiles": invalid }),
                ),
            );
        }
    }
}

/// Storage keys a write drops: files of `before` no longer in `after`, and this write's
/// uploads that did not make it into `after` (a single-file field keeps the last one).
pub(crate) fn dropped_files(
    collection: &Collection,
    record_id: &str,
    before: &Map<String, Json>,
    after: &Map<String, Json>,
    uploaded: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<String> {
    let mut out = Vec::new();
    for field in &collection.fields {
        if !matches!(field.kind, FieldKind::File { .. }) {
            continue;
        }
        let kept = list_of(after.get(&field.name).unwrap_or(&Json::Null));
        let mut candidates = list_of(before.get(&field.name).unwrap_or(&Json::Null));
        candidates.extend(uploaded.get(&field.name).into_iter().flatten().cloned());
        for name in candidates {
            if !kept.contains(&name) {
                out.push(basalt_files::file_key(&collection.id, record_id, &name));
            }
        }
    }
    out
}

fn has_file_fields(collection: &Collection) -> bool {
    collection
        .fields
        .iter()
        .any(|f| matches!(f.kind, FieldKind::File { .. }))
}

fn record_id_ok(id: &str) -> bool {
    basalt_files::is_safe_name(id)
}

/// The file names a record references, over all its file fields.
fn referenced(collection: &Collection, data: &Map<String, Json>) -> BTreeSet<String> {
    collection
        .fields
        .iter()
        .filter(|f| matches!(f.kind, FieldKind::File { .. }))
        .flat_map(|f| list_of(data.get(&f.name).unwrap_or(&Json::Null)))
        .collect()
}

/// How long an unreferenced file must have existed before the sweep removes it
/// (uploads are written a moment before their record commits).
pub const ORPHAN_MIN_AGE: Duration = Duration::from_secs(3600);

/// The S3 settings object (`s3` or `backups.s3`) as a storage configuration.
fn s3_config(value: &Json) -> basalt_files::S3Config {
    let text = |key: &str| value[key].as_str().unwrap_or_default().to_string();
    basalt_files::S3Config {
        enabled: value["enabled"].as_bool().unwrap_or(false),
        bucket: text("bucket"),
        region: text("region"),
        endpoint: text("endpoint"),
        access_key: text("accessKey"),
        secret: text("secret"),
        force_path_style: value["forcePathStyle"].as_bool().unwrap_or(false),
    }
}

/// Field errors of an S3 settings object that is enabled without what it needs.
pub(crate) fn s3_errors(value: &Json) -> Option<Json> {
    if !value["enabled"].as_bool().unwrap_or(false) {
        return None;
    }
    let mut errors = Map::new();
    for key in ["bucket", "region", "endpoint", "accessKey", "secret"] {
        if value[key].as_str().unwrap_or_default().trim().is_empty() {
            errors.insert(
                key.to_string(),
                json!({"code": "validation_required", "message": "Cannot be blank."}),
            );
        }
    }
    if errors.is_empty()
        && let Err(error) = Storage::s3(&s3_config(value))
    {
        errors.insert(
            "endpoint".to_string(),
            json!({"code": "validation_invalid_s3", "message": crate::error::sentenize(&error.to_string())}),
        );
    }
    (!errors.is_empty()).then_some(Json::Object(errors))
}

impl App {
    /// Chooses the file storage from the settings: S3 when `s3.enabled`, else the
    /// local folder. Called at start and after every settings change.
    pub(crate) fn refresh_file_storage(&self) {
        let settings = self.settings();
        let config = s3_config(&settings["s3"]);
        let next = if config.enabled {
            match Storage::s3(&config) {
                Ok(storage) => Some(storage),
                Err(error) => {
                    tracing::warn!(%error, "S3 storage settings are unusable; keeping local storage");
                    self.inner.local_files.clone()
                }
            }
        } else {
            self.inner.local_files.clone()
        };
        *self.inner.files.write() = next;
    }

    /// `POST /api/settings/test/s3`: checks that the configured bucket (`storage` for
    /// uploads, `backups` for backups) can be written, read and deleted.
    pub async fn test_s3(&self, filesystem: &str) -> Result<(), CoreError> {
        let settings = self.settings();
        let value = match filesystem {
            "storage" => &settings["s3"],
            "backups" => &settings["backups"]["s3"],
            _ => {
                return Err(CoreError::invalid(
                    "Failed to load the submitted data.",
                    BTreeMap::from([(
                        "filesystem".to_string(),
                        json!({"code": "validation_in_invalid", "message": "Must be a valid value."}),
                    )]),
                ));
            }
        };
        let config = s3_config(value);
        if !config.enabled {
            return Err(CoreError::bad_request(
                "S3 storage filesystem is not enabled.",
            ));
        }
        let storage = Storage::s3(&config).map_err(|error| {
            CoreError::bad_request(&format!(
                "Failed to initialize the S3 storage. Raw error: {error}"
            ))
        })?;
        storage.check().await.map_err(|error| {
            CoreError::bad_request(&format!(
                "Failed to initialize the S3 storage. Raw error: {error}"
            ))
        })
    }

    /// The file storage in use: S3 when the settings enable it, else the local folder
    /// (`None` when neither is configured).
    pub fn files(&self) -> Option<Storage> {
        self.inner.files.read().clone()
    }

    fn storage_or_refuse(&self) -> Result<Storage, CoreError> {
        self.files()
            .ok_or_else(|| CoreError::bad_request("File storage is not configured."))
    }

    /// Writes staged uploads; on a failure the ones already written are removed.
    pub(crate) async fn store_uploads(&self, writes: &[(String, Bytes)]) -> Result<(), CoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        let storage = self.storage_or_refuse()?;
        for (index, (key, bytes)) in writes.iter().enumerate() {
            if let Err(error) = storage.put(key, bytes.clone()).await {
                self.discard_uploads(&writes[..index]).await;
                return Err(match error {
                    basalt_files::FileError::InvalidKey => CoreError::not_found(),
                    other => CoreError::internal(other),
                });
            }
        }
        Ok(())
    }

    /// Removes uploads of a write that did not commit.
    pub(crate) async fn discard_uploads(&self, writes: &[(String, Bytes)]) {
        let Some(storage) = self.files() else {
            return;
        };
        for (key, _) in writes {
            if let Err(error) = storage.delete(key).await {
                tracing::warn!(%key, %error, "could not remove an upload of a failed write");
            }
        }
    }

    /// After a commit: removes the files the write dropped (with their thumbs) and the
    /// folders of deleted records.
    pub(crate) async fn remove_dropped_files(&self, dropped: &[String], changes: &[Change]) {
        let Some(storage) = self.files() else {
            return;
        };
        for key in dropped {
            let thumbs = match key.rsplit_once('/') {
                Some((folder, name)) => format!("{folder}/thumbs_{name}"),
                None => continue,
            };
            for result in [
                storage.delete(key).await,
                storage.delete_prefix(&thumbs).await,
            ] {
                if let Err(error) = result {
                    tracing::warn!(%key, %error, "could not remove a dropped file");
                }
            }
        }
        for change in changes {
            if change.action != Action::Delete || !has_file_fields(&change.collection) {
                continue;
            }
            let Some(id) = change.record.get("id").and_then(Json::as_str) else {
                continue;
            };
            if !record_id_ok(id) {
                continue;
            }
            let folder = format!("{}/{id}", change.collection.id);
            if let Err(error) = storage.delete_prefix(&folder).await {
                tracing::warn!(%folder, %error, "could not remove a deleted record's files");
            }
        }
    }

    /// Removes a deleted collection's files.
    pub(crate) async fn remove_collection_files(&self, collection_id: &str) {
        if let Some(storage) = self.files()
            && let Err(error) = storage.delete_prefix(collection_id).await
        {
            tracing::warn!(%collection_id, %error, "could not remove a deleted collection's files");
        }
    }

    /// `POST /api/files/token`: a short-lived file token for the authenticated record.
    pub fn file_token(&self, info: &RequestInfo) -> Result<String, CoreError> {
        let auth = info.auth.as_ref().ok_or_else(|| {
            CoreError::Unauthorized("The request requires valid record authorization token.".into())
        })?;
        crate::auth::issue_token(&auth.collection, &auth.record, TokenType::File, None, false)
    }

    /// Resolves a download: checks the collection, record and file name, the protected
    /// file token and view rule, and makes the thumb when one is asked for and allowed.
    /// Returns the storage key to serve and the file name for `Content-Disposition`.
    pub async fn file_for_download(
        &self,
        collection: &str,
        record_id: &str,
        filename: &str,
        thumb: Option<&str>,
        token: Option<&str>,
    ) -> Result<(String, String), CoreError> {
        let storage = self.files().ok_or_else(CoreError::not_found)?;
        let collection = self
            .collection(collection)
            .ok_or_else(|| CoreError::NotFound("Missing or invalid collection context.".into()))?;
        if !record_id_ok(record_id) || !basalt_files::is_safe_name(filename) {
            return Err(CoreError::not_found());
        }
        let lookup = collection.clone();
        let id = record_id.to_string();
        let data = basalt_store::read(self.store().as_ref(), move |conn: &mut dyn Conn| {
            crate::auth::load_record(conn, &lookup, &id)
        })
        .await?
        .ok_or_else(CoreError::not_found)?;
        let field = collection
            .fields
            .iter()
            .find(|f| {
                matches!(f.kind, FieldKind::File { .. })
                    && list_of(data.get(&f.name).unwrap_or(&Json::Null))
                        .iter()
                        .any(|n| n == filename)
            })
            .ok_or_else(CoreError::not_found)?;
        let FieldKind::File {
            protected, thumbs, ..
        } = &field.kind
        else {
            return Err(CoreError::not_found());
        };
        if *protected {
            self.check_protected(&collection, record_id, token).await?;
        }
        // A view serves the file of the source record its column reads.
        let (owner_collection, owner_record) = if collection.is_view() {
            self.view_file_owner(&collection, &field.name, filename)
                .await?
        } else {
            (collection.id.clone(), record_id.to_string())
        };
        let (collection_id, record_id) = (owner_collection.as_str(), owner_record.as_str());
        let key = basalt_files::file_key(collection_id, record_id, filename);
        let Some(size) = thumb.filter(|t| !t.is_empty()) else {
            return Ok((key, filename.to_string()));
        };
        let allowed = size == "100x100" || thumbs.iter().flatten().any(|t| t == size);
        let Some(parsed) = ThumbSize::parse(size).filter(|_| allowed) else {
            return Ok((key, filename.to_string()));
        };
        if !basalt_files::thumb_source_ok(filename) {
            return Ok((key, filename.to_string()));
        }
        let thumb_key = basalt_files::thumb_key(collection_id, record_id, filename, size);
        match self.ensure_thumb(&storage, &key, &thumb_key, parsed).await {
            Ok(true) => Ok((thumb_key, format!("{size}_{filename}"))),
            Ok(false) => Ok((key, filename.to_string())),
            Err(error) => {
                tracing::warn!(%key, %size, %error, "thumb failed; serving the original");
                Ok((key, filename.to_string()))
            }
        }
    }

    /// The collection id and record id holding a file shown in a view's column.
    async fn view_file_owner(
        &self,
        view: &Collection,
        column: &str,
        filename: &str,
    ) -> Result<(String, String), CoreError> {
        let schema = self.schema();
        let sources: Vec<Collection> = schema.collections.iter().map(|c| (**c).clone()).collect();
        let origins =
            basalt_sql::view::view_columns(view.view_query.as_deref().unwrap_or_default());
        let (source, field) = crate::collections::source_of(&origins, &sources, column)
            .filter(|(_, f)| matches!(f.kind, FieldKind::File { .. }))
            .ok_or_else(CoreError::not_found)?;
        let (source, field) = (source.clone(), field.clone());
        let name = filename.to_string();
        let owner = basalt_store::read(self.store().as_ref(), move |conn: &mut dyn Conn| {
            let rows = conn.query(&record::referencing_ids(
                &source,
                &field,
                &name,
                conn.dialect(),
            ))?;
            let id = rows
                .rows
                .into_iter()
                .next()
                .map(|row| record::decode_row(&source, row))
                .and_then(|data| data.get("id").and_then(Json::as_str).map(str::to_string));
            Ok::<_, CoreError>(id.map(|id| (source.id.clone(), id)))
        })
        .await?;
        owner
            .filter(|(_, id)| record_id_ok(id))
            .ok_or_else(CoreError::not_found)
    }

    /// A protected file needs a file token whose record passes the view rule.
    async fn check_protected(
        &self,
        collection: &Arc<Collection>,
        record_id: &str,
        token: Option<&str>,
    ) -> Result<(), CoreError> {
        let auth = match token.filter(|t| !t.is_empty()) {
            Some(token) => self.verify_token(token, TokenType::File).await,
            None => None,
        };
        let info = RequestInfo {
            auth,
            method: "GET".into(),
            context: "protectedFile".into(),
            ..RequestInfo::default()
        };
        if info.is_superuser() {
            return Ok(());
        }
        let Some(rule) = collection.view_rule.clone() else {
            return Err(CoreError::not_found());
        };
        let rule = Some(rule).filter(|r| !r.is_empty());
        let schema = self.schema();
        let query = self.fetch_query(&schema, collection, rule.as_deref(), record_id, &info)?;
        let visible = basalt_store::read(self.store().as_ref(), move |conn: &mut dyn Conn| {
            Ok::<_, CoreError>(!conn.query(&query)?.rows.is_empty())
        })
        .await?;
        if visible {
            Ok(())
        } else {
            Err(CoreError::not_found())
        }
    }

    /// Makes the thumb at `thumb_key` unless it exists. `Ok(false)`: the original is gone.
    async fn ensure_thumb(
        &self,
        storage: &Storage,
        key: &str,
        thumb_key: &str,
        size: ThumbSize,
    ) -> Result<bool, CoreError> {
        if storage
            .exists(thumb_key)
            .await
            .map_err(CoreError::internal)?
        {
            return Ok(true);
        }
        // Bounded: at most one thumb per core is decoded at a time.
        let _permit = self
            .inner
            .thumbs
            .acquire()
            .await
            .map_err(CoreError::internal)?;
        if storage
            .exists(thumb_key)
            .await
            .map_err(CoreError::internal)?
        {
            return Ok(true);
        }
        let Some(source) = storage.get(key).await.map_err(CoreError::internal)? else {
            return Ok(false);
        };
        let rendered =
            tokio::task::spawn_blocking(move || basalt_files::render_thumb(&source, size))
                .await
                .map_err(CoreError::internal)?
                .map_err(CoreError::internal)?;
        storage
            .put(thumb_key, Bytes::from(rendered))
            .await
            .map_err(CoreError::internal)?;
        Ok(true)
    }

    /// Removes stored files that no record references and that are older than
    /// `min_age`: files of deleted collections and records, files no longer in their
    /// record, thumbs of such files, and leftover temporary files. Returns how many.
    pub async fn sweep_orphan_files(&self, min_age: Duration) -> Result<usize, CoreError> {
        let Some(storage) = self.files() else {
            return Ok(0);
        };
        let entries = storage.list("").await.map_err(CoreError::internal)?;
        let now = SystemTime::now();
        let schema = self.schema();
        // Group by collection and record, then ask the database once per record.
        let mut by_record: BTreeMap<(String, String), Vec<(String, String)>> = BTreeMap::new();
        let mut doomed = Vec::new();
        for entry in entries {
            if now.duration_since(entry.modified).unwrap_or_default() < min_age {
                continue;
            }
            let parts: Vec<&str> = entry.key.split('/').collect();
            if parts.len() < 3 || basalt_files::check_key(&entry.key).is_err() {
                doomed.push(entry.key);
                continue;
            }
            let (collection, record) = (parts[0].to_string(), parts[1].to_string());
            // The file a key belongs to: `c/r/name` or `c/r/thumbs_name/size_name`.
            let owner = match parts.len() {
                3 => parts[2].to_string(),
                4 => parts[2]
                    .strip_prefix("thumbs_")
                    .unwrap_or(parts[2])
                    .to_string(),
                _ => String::new(),
            };
            by_record
                .entry((collection, record))
                .or_default()
                .push((entry.key, owner));
        }
        for ((collection_id, record_id), files) in by_record {
            let keep = match schema.get(&collection_id) {
                Some(collection) if !collection.is_view() => {
                    let lookup = collection.clone();
                    let id = record_id.clone();
                    basalt_store::read(self.store().as_ref(), move |conn: &mut dyn Conn| {
                        crate::auth::load_record(conn, &lookup, &id)
                    })
                    .await?
                    .map(|data| referenced(collection, &data))
                    .unwrap_or_default()
                }
                _ => BTreeSet::new(),
            };
            for (key, owner) in files {
                if !keep.contains(&owner)
                    || key
                        .rsplit('/')
                        .next()
                        .is_some_and(|n| n.starts_with(".tmp-"))
                {
                    doomed.push(key);
                }
            }
        }
        let mut removed = 0;
        for key in doomed {
            match storage.delete(&key).await {
                Ok(()) => removed += 1,
                Err(error) => tracing::warn!(%key, %error, "could not sweep an orphan file"),
            }
        }
        Ok(removed)
    }
}

/// Files to drop after a collection update removed file fields: every stored name of
/// those fields, read inside the schema change's transaction before the columns go.
pub(crate) fn removed_field_files(
    conn: &mut dyn Conn,
    before: &Collection,
    after: &Collection,
) -> Result<Vec<String>, CoreError> {
    let gone: Vec<&basalt_schema::Field> = before
        .fields
        .iter()
        .filter(|f| matches!(f.kind, FieldKind::File { .. }))
        .filter(|f| {
            !after
                .fields
                .iter()
                .any(|a| a.id == f.id && matches!(a.kind, FieldKind::File { .. }))
        })
        .collect();
    if gone.is_empty() {
        return Ok(Vec::new());
    }
    let mut keys = Vec::new();
    let rows = conn.query(&record::select_all(before, conn.dialect()))?;
    for row in rows.rows {
        let data = record::decode_row(before, row);
        let id = data
            .get("id")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_string();
        for field in &gone {
            for name in list_of(data.get(&field.name).unwrap_or(&Json::Null)) {
                keys.push(basalt_files::file_key(&before.id, &id, &name));
            }
        }
    }
    Ok(keys)
}
