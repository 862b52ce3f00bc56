//! The collections service: schema changes applied to the table and to `_collections`
//! in one transaction, then the in-memory schema is reloaded.

use std::collections::BTreeMap;
use std::sync::Arc;

use basalt_schema::{
    Collection, CollectionType, Field, FieldKind, now_datetime, validate_collection,
};
use basalt_sql::ddl;
use basalt_store::Conn;
use serde_json::{Map, Value as Json, json};

use crate::app::App;
use crate::error::CoreError;
use crate::schema::{self, CollectionList};

/// Removes write-only secrets from a collection's JSON.
pub fn public_collection(collection: &Collection) -> Json {
    let mut value = serde_json::to_value(collection).unwrap_or(Json::Null);
    if let Some(object) = value.as_object_mut() {
        for key in [
            "authToken",
            "passwordResetToken",
            "emailChangeToken",
            "verificationToken",
            "fileToken",
        ] {
            if let Some(config) = object.get_mut(key).and_then(Json::as_object_mut) {
                config.remove("secret");
            }
        }
        if let Some(providers) = object
            .get_mut("oauth2")
            .and_then(|o| o.get_mut("providers"))
            .and_then(Json::as_array_mut)
        {
            for provider in providers {
                if let Some(p) = provider.as_object_mut() {
                    p.remove("clientSecret");
                }
            }
        }
    }
    value
}

/// OAuth2 providers are shown without their client secret, so a provider saved back
/// without one (or with an empty one) keeps the stored secret of the same name.
fn keep_client_secrets(old: &Collection, merged: &mut Json) {
    let Some(before) = old
        .auth
        .as_ref()
        .and_then(|a| a.oauth2.get("providers"))
        .and_then(Json::as_array)
    else {
        return;
    };
    let Some(providers) = merged
        .get_mut("oauth2")
        .and_then(|o| o.get_mut("providers"))
        .and_then(Json::as_array_mut)
    else {
        return;
    };
    for provider in providers.iter_mut().filter_map(Json::as_object_mut) {
        if provider
            .get("clientSecret")
            .and_then(Json::as_str)
            .is_some_and(|s| !s.is_empty())
        {
            continue;
        }
        let name = provider.get("name").cloned();
        if let Some(secret) = before
            .iter()
            .find(|p| p.get("name") == name.as_ref())
            .and_then(|p| p.get("clientSecret"))
        {
            provider.insert("clientSecret".into(), secret.clone());
        }
    }
}

/// The first rule of another table collection that no longer compiles against `all`.
fn broken_rules(app: &App, all: &CollectionList, changed: &str) -> Option<Json> {
    for other in all.0.iter().filter(|c| c.id != changed && !c.is_view()) {
        let mut rules: Vec<(&str, &Option<String>)> = rule_keys()
            .into_iter()
            .zip([
                &other.list_rule,
                &other.view_rule,
                &other.create_rule,
                &other.update_rule,
                &other.delete_rule,
            ])
            .collect();
        if let Some(auth) = &other.auth {
            rules.push(("authRule", &auth.auth_rule));
            rules.push(("manageRule", &auth.manage_rule));
        }
        for (key, rule) in rules {
            if let Some(rule) = rule.as_deref().filter(|r| !r.trim().is_empty())
                && let Err(error) = crate::rules::validate_rule(app, all, other, rule)
            {
                return Some(json!({
                    "code": "validation_breaks_rule",
                    "message": crate::error::sentenize(&format!(
                        "The change breaks the {key} of collection \"{}\": {error}",
                        other.name
                    )),
                }));
            }
        }
    }
    None
}

fn rule_keys() -> [&'static str; 5] {
    [
        "listRule",
        "viewRule",
        "createRule",
        "updateRule",
        "deleteRule",
    ]
}

/// Fills in field ids (`type` + crc32(name), suffixed when taken) for fields without one.
fn assign_field_ids(collection: &mut Collection) {
    let mut taken: Vec<String> = collection
        .fields
        .iter()
        .map(|f| f.id.clone())
        .filter(|id| !id.is_empty())
        .collect();
    for field in &mut collection.fields {
        // Like PocketBase, a file field's unset lists are empty lists, not null.
        if let basalt_schema::FieldKind::File {
            mime_types, thumbs, ..
        } = &mut field.kind
            && !field.system
        {
            mime_types.get_or_insert_with(Vec::new);
            thumbs.get_or_insert_with(Vec::new);
        }
        if field.id.is_empty() {
            let base = basalt_schema::field_id(field.kind.type_name(), &field.name);
            let mut candidate = base.clone();
            let mut n = 2;
            while taken.contains(&candidate) {
                candidate = format!("{base}{n}");
                n += 1;
            }
            taken.push(candidate.clone());
            field.id = candidate;
        }
    }
}

/// Fills the keys an options object leaves out from its defaults, at every depth
/// (`otp: {enabled: true}` keeps the default code length and email template).
fn fill_defaults(given: &mut Json, defaults: &Json) {
    if let (Json::Object(given), Json::Object(defaults)) = (given, defaults) {
        for (key, value) in defaults {
            match given.get_mut(key) {
                Some(inner) => fill_defaults(inner, value),
                None => {
                    given.insert(key.clone(), value.clone());
                }
            }
        }
    }
}

fn parse_collection(value: Json) -> Result<Collection, CoreError> {
    serde_json::from_value::<Collection>(value).map_err(|error| {
        CoreError::invalid("Failed to load the submitted data due to invalid formatting.", BTreeMap::from([("_".to_string(), json!({"code": "validation_invalid_format", "message": sentence(&error.to_string())}))]))
    })
}

fn sentence(text: &str) -> String {
    crate::error::sentenize(text.split(" at line").next().unwrap_or(text))
}

impl App {
    /// Every collection, for `GET /api/collections`.
    pub fn collections(&self) -> Vec<Arc<Collection>> {
        self.schema().collections.clone()
    }

    /// `POST /api/collections`.
    pub async fn create_collection(&self, input: Json) -> Result<Json, CoreError> {
        let Json::Object(mut object) = input else {
            return Err(CoreError::bad_request("Failed to create collection."));
        };
        let kind = object
            .get("type")
            .and_then(Json::as_str)
            .unwrap_or("base")
            .to_string();
        object.entry("type").or_insert(json!("base"));
        if !matches!(kind.as_str(), "base" | "auth" | "view") {
            return Err(CoreError::invalid(
                "Failed to create collection.",
                BTreeMap::from([(
                    "type".to_string(),
                    json!({"code": "validation_in_invalid", "message": "Must be a valid value."}),
                )]),
            ));
        }
        if kind == "auth" {
            let defaults = serde_json::to_value(basalt_schema::AuthOptions::new_default())
                .unwrap_or(json!({}));
            if let Json::Object(defaults) = defaults {
                for (key, value) in defaults {
                    match object.get_mut(&key) {
                        Some(given) => fill_defaults(given, &value),
                        None => {
                            object.insert(key, value);
                        }
                    }
                }
            }
        }
        let mut collection = parse_collection(Json::Object(object))?;
        if collection.id.is_empty() {
            collection.id =
                basalt_schema::collection_id(collection.kind.as_str(), &collection.name);
        }
        collection.system = false;
        collection.ensure_system_fields();
        assign_field_ids(&mut collection);
        let now = now_datetime();
        collection.created = now.clone();
        collection.updated = now;
        let saved = self
            .save_collection(collection, None, "Failed to create collection.")
            .await?;
        Ok(public_collection(&saved))
    }

    /// `PATCH /api/collections/{c}`.
    pub async fn update_collection(
        &self,
        name_or_id: &str,
        patch: Json,
    ) -> Result<Json, CoreError> {
        let old = self
            .collection(name_or_id)
            .ok_or_else(CoreError::not_found)?;
        let Json::Object(patch) = patch else {
            return Err(CoreError::bad_request("Failed to update collection."));
        };
        let mut merged = serde_json::to_value(old.as_ref()).map_err(CoreError::internal)?;
        if let Some(object) = merged.as_object_mut() {
            for (key, value) in patch {
                if key == "id" || key == "created" || key == "updated" {
                    continue;
                }
                if key == "fields" {
                    object.insert(key, merge_fields(&old, value));
                } else if let (Some(Json::Object(existing)), Json::Object(incoming)) =
                    (object.get_mut(&key), &value)
                {
                    for (k, v) in incoming {
                        existing.insert(k.clone(), v.clone());
                    }
                } else {
                    object.insert(key, value);
                }
            }
        }
        keep_client_secrets(&old, &mut merged);
        let mut collection = parse_collection(merged)?;
        if old.system {
            let mut errors = BTreeMap::new();
            for (key, before, after) in [
                ("listRule", &old.list_rule, &collection.list_rule),
                ("viewRule", &old.view_rule, &collection.view_rule),
                ("createRule", &old.create_rule, &collection.create_rule),
                ("updateRule", &old.update_rule, &collection.update_rule),
                ("deleteRule", &old.delete_rule, &collection.delete_rule),
            ] {
                if before != after {
                    errors.insert(
                        key.to_string(),
                        json!({"code": "validation_collection_system_rule_change", "message": "System collection API rule cannot be changed."}),
                    );
                }
            }
            if old.id == basalt_schema::EXTERNAL_AUTHS_ID
                && !keeps_unique_indexes(&collection.indexes)
            {
                // OAuth2 sign-ins rely on both unique indexes (see `oauth2`).
                errors.insert(
                    "indexes".to_string(),
                    json!({"code": "validation_invalid_unique_system_field_index", "message": "Unique index definition on system fields (collectionRef) is invalid or missing.", "params": {"fieldName": "collectionRef"}}),
                );
            }
            if !errors.is_empty() {
                return Err(CoreError::invalid("Failed to update collection.", errors));
            }
        }
        // A changed authRule invalidates every auth token issued under the old rule
        // (like PocketBase): the auth token secret is rotated unless the request sets it.
        if let (Some(before), Some(after)) = (&old.auth, collection.auth.as_mut())
            && before.auth_rule != after.auth_rule
            && before.auth_token.secret == after.auth_token.secret
        {
            after.auth_token.secret = basalt_schema::random_string(50);
        }
        collection.id = old.id.clone();
        collection.system = old.system;
        collection.created = old.created.clone();
        collection.updated = now_datetime();
        collection.ensure_system_fields();
        assign_field_ids(&mut collection);
        let saved = self
            .save_collection(collection, Some(old), "Failed to update collection.")
            .await?;
        Ok(public_collection(&saved))
    }

    async fn save_collection(
        &self,
        collection: Collection,
        old: Option<Arc<Collection>>,
        message: &'static str,
    ) -> Result<Collection, CoreError> {
        let app = self.clone();
        // Held until the new snapshot is installed (see `App::reload_schema`).
        let _installing = self.inner.schema_install.lock().await;
        let saved = basalt_store::write(self.store().as_ref(), move |conn: &mut dyn Conn| {
            let mut collection = collection;
            let dialect = conn.dialect();
            if collection.is_view() {
                // The view is created first (inside this transaction) so that its fields
                // can be read back from the database; any later error rolls it back.
                let previous = old.as_deref();
                let sources = schema::load_all(conn)?;
                collection.fields = create_view(conn, previous, &collection, message, &sources)?;
                assign_field_ids(&mut collection);
            }
            let mut all = schema::load_all(conn)?;
            let stored_old = old.as_ref().and_then(|o| all.iter().find(|c| c.id == o.id).cloned());
            if old.is_some() && stored_old.is_none() {
                return Err(CoreError::not_found());
            }
            all.retain(|c| Some(&c.id) != stored_old.as_ref().map(|o| &o.id));
            let lookup = CollectionList(all);
            let mut errors = match validate_collection(&collection, stored_old.as_ref(), &lookup) {
                Ok(()) => BTreeMap::new(),
                Err(errors) => errors,
            };
            for (position, index) in collection.indexes.iter().enumerate() {
                if !ddl::index_is_supported(&collection, index) {
                    let entry = errors.entry("indexes".to_string()).or_insert_with(|| json!({}));
                    entry[position.to_string()] = json!({"code": "validation_invalid_index_expression", "message": "Only plain column indexes (optionally COLLATE NOCASE, DESC, and WHERE col != '') are supported."});
                }
            }
            let mut with_new = lookup.0.clone();
            with_new.push(collection.clone());
            let with_new = CollectionList(with_new);
            for (key, rule) in rule_keys().into_iter().zip([&collection.list_rule, &collection.view_rule, &collection.create_rule, &collection.update_rule, &collection.delete_rule]) {
                if let Some(rule) = rule.as_deref().filter(|r| !r.trim().is_empty())
                    && let Err(error) = crate::rules::validate_rule(&app, &with_new, &collection, rule) {
                        errors.insert(key.to_string(), json!({"code": "validation_invalid_rule", "message": crate::error::sentenize(&format!("Invalid rule. Raw error: {error}"))}));
                    }
            }
            if let Some(auth) = &collection.auth {
                for (key, rule) in [("authRule", &auth.auth_rule), ("manageRule", &auth.manage_rule)] {
                    if let Some(rule) = rule.as_deref().filter(|r| !r.trim().is_empty())
                        && let Err(error) = crate::rules::validate_rule(&app, &with_new, &collection, rule) {
                            errors.insert(key.to_string(), json!({"code": "validation_invalid_rule", "message": crate::error::sentenize(&format!("Invalid rule. Raw error: {error}"))}));
                        }
                }
            }
            // A change may not break another collection's rules (a renamed or removed
            // field they read): those would otherwise fail at request time.
            if stored_old.is_some()
                && let Some(broken) = broken_rules(&app, &with_new, &collection.id)
            {
                errors.insert("_".to_string(), broken);
            }
            if !errors.is_empty() {
                return Err(CoreError::invalid(message, errors));
            }
            let statements = match (&stored_old, collection.kind) {
                (_, CollectionType::View) => Vec::new(),
                (None, _) => ddl::create_collection(&collection, dialect),
                (Some(previous), _) => ddl::migrate_collection(previous, &collection, dialect),
            };
            // Views over the changed table are dropped before the migration and rebuilt
            // after it, so they follow renames and a change that breaks one is refused.
            let dependent_views: Vec<Collection> = if stored_old.is_some() && !collection.is_view() {
                lookup.0.iter().filter(|c| c.is_view()).cloned().collect()
            } else {
                Vec::new()
            };
            for view in &dependent_views {
                conn.execute_batch(&format!("DROP VIEW IF EXISTS {}", dialect.quote_ident(&view.name)))?;
            }
            // Files of removed file fields go once the change commits.
            let dropped_files = match &stored_old {
                Some(previous) if !collection.is_view() => {
                    crate::files::removed_field_files(conn, previous, &collection)?
                }
                _ => Vec::new(),
            };
            for statement in statements {
                conn.execute_batch(&statement).map_err(|error| {
                    CoreError::invalid(message, BTreeMap::from([("_".to_string(), json!({"code": "validation_schema_apply", "message": "Failed to apply the schema change."}))])).with_log(error)
                })?;
            }
            let mut sources = lookup.0.clone();
            sources.push(collection.clone());
            rebuild_views(conn, &dependent_views, message, &sources)?;
            if stored_old.is_some() {
                schema::update(conn, &collection)?;
            } else {
                schema::insert(conn, &collection)?;
            }
            let reloaded = schema::load_all(conn)?;
            Ok((collection, reloaded, dropped_files))
        })
        .await?;
        let (collection, all, dropped_files) = saved;
        self.install_schema(all);
        self.remove_dropped_files(&dropped_files, &[]).await;
        self.announce_schema_change();
        Ok(collection)
    }

    /// `DELETE /api/collections/{c}`.
    pub async fn delete_collection(&self, name_or_id: &str) -> Result<(), CoreError> {
        let target = self
            .collection(name_or_id)
            .ok_or_else(CoreError::not_found)?;
        if target.system {
            return Err(CoreError::bad_request("Failed to delete collection."));
        }
        let referencing: Vec<String> = self
            .schema()
            .collections
            .iter()
            .filter(|c| {
                c.id != target.id
                    && c.fields
                        .iter()
                        .any(|f| f.relation_target() == Some(target.id.as_str()))
            })
            .map(|c| c.name.clone())
            .collect();
        if !referencing.is_empty() {
            return Err(CoreError::bad_request(&format!(
                "Failed to delete collection probably due to existing reference in {}.",
                referencing.join(", ")
            )));
        }
        let remaining = CollectionList(
            self.schema()
                .collections
                .iter()
                .filter(|c| c.id != target.id)
                .map(|c| (**c).clone())
                .collect(),
        );
        if let Some(broken) = broken_rules(self, &remaining, &target.id) {
            return Err(CoreError::invalid(
                "Failed to delete collection.",
                BTreeMap::from([("_".to_string(), broken)]),
            ));
        }
        let target_id = target.id.clone();
        let _installing = self.inner.schema_install.lock().await;
        let all = basalt_store::write(self.store().as_ref(), move |conn: &mut dyn Conn| {
            let dialect = conn.dialect();
            // Other views are rebuilt after the drop: a view that reads the dropped
            // table refuses the delete (and the transaction rolls back).
            let sources: Vec<Collection> = schema::load_all(conn)?
                .into_iter()
                .filter(|c| c.id != target.id)
                .collect();
            let views: Vec<Collection> = sources.iter().filter(|c| c.is_view()).cloned().collect();
            for view in &views {
                conn.execute_batch(&format!(
                    "DROP VIEW IF EXISTS {}",
                    dialect.quote_ident(&view.name)
                ))?;
            }
            for statement in ddl::drop_collection(&target, dialect) {
                conn.execute_batch(&statement)?;
            }
            rebuild_views(conn, &views, "Failed to delete collection.", &sources)?;
            schema::delete(conn, &target.id)?;
            schema::load_all(conn)
        })
        .await?;
        self.install_schema(all);
        self.remove_collection_files(&target_id).await;
        self.announce_schema_change();
        Ok(())
    }

    /// `DELETE /api/collections/{c}/truncate`.
    pub async fn truncate_collection(&self, name_or_id: &str) -> Result<(), CoreError> {
        let target = self
            .collection(name_or_id)
            .ok_or_else(CoreError::not_found)?;
        if target.is_view() {
            return Err(CoreError::bad_request(
                "View collections cannot be truncated.",
            ));
        }
        let target_id = target.id.clone();
        basalt_store::write(self.store().as_ref(), move |conn: &mut dyn Conn| {
            let sql = format!("DELETE FROM {}", conn.dialect().quote_ident(&target.name));
            conn.execute_batch(&sql)?;
            Ok::<_, CoreError>(())
        })
        .await?;
        self.remove_collection_files(&target_id).await;
        Ok(())
    }

    /// `GET /api/collections/meta/scaffolds`.
    pub fn scaffolds(&self) -> Json {
        let mut out = Map::new();
        for kind in [
            CollectionType::Auth,
            CollectionType::Base,
            CollectionType::View,
        ] {
            let mut collection = Collection::new(kind, "");
            collection.id = String::new();
            if kind == CollectionType::View {
                collection.view_query = Some(String::new());
            }
            collection.indexes.clear();
            out.insert(kind.as_str().to_string(), public_collection(&collection));
        }
        Json::Object(out)
    }

    /// `PUT /api/collections/import`.
    pub async fn import_collections(
        &self,
        items: Vec<Json>,
        delete_missing: bool,
    ) -> Result<(), CoreError> {
        let mut failures = Map::new();
        let mut names = Vec::new();
        for item in items {
            let key = item
                .get("id")
                .or_else(|| item.get("name"))
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_string();
            names.push(key.clone());
            let outcome = match self.collection(&key) {
                Some(existing) => self.update_collection(&existing.id, item).await.map(|_| ()),
                None => self.create_collection(item).await.map(|_| ()),
            };
            if let Err(error) = outcome {
                failures.insert(key, error.body());
            }
        }
        if delete_missing && failures.is_empty() {
            for collection in self.collections() {
                if !collection.system
                    && !names
                        .iter()
                        .any(|n| n == &collection.id || n.eq_ignore_ascii_case(&collection.name))
                    && let Err(error) = self.delete_collection(&collection.id).await
                {
                    failures.insert(collection.name.clone(), error.body());
                }
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(CoreError::invalid(
                "Failed to import collections.",
                BTreeMap::from([(
                    "collections".to_string(),
                    json!({"code": "validation_collections_import_failure", "message": "Failed to import the collections configuration.", "params": {"failures": failures}}),
                )]),
            ))
        }
    }
}

/// Whether `indexes` still has the unique indexes of `_externalAuths` (same columns, in
/// any order of the list; names may differ).
fn keeps_unique_indexes(indexes: &[String]) -> bool {
    let unique_columns = |sql: &str| {
        basalt_schema::parse_index(sql)
            .filter(|index| index.unique && index.condition.is_none())
            .map(|index| index.columns)
    };
    let present: Vec<Vec<String>> = indexes.iter().filter_map(|i| unique_columns(i)).collect();
    basalt_schema::EXTERNAL_AUTHS_INDEXES
        .iter()
        .filter_map(|i| unique_columns(i))
        .all(|required| present.contains(&required))
}

/// Fields in a PATCH replace the list; fields are matched to existing ones by id, then by
/// name, so renames keep their column and data.
fn merge_fields(old: &Collection, incoming: Json) -> Json {
    let Json::Array(items) = incoming else {
        return incoming;
    };
    let merged: Vec<Json> = items
        .into_iter()
        .map(|mut item| {
            let id = item
                .get("id")
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_string();
            let name = item
                .get("name")
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_string();
            let previous: Option<&Field> = if id.is_empty() {
                old.field(&name)
            } else {
                old.fields.iter().find(|f| f.id == id)
            };
            if let (Some(previous), Some(object)) = (previous, item.as_object_mut()) {
                object.insert("id".into(), json!(previous.id));
                if let Ok(Json::Object(base)) = serde_json::to_value(previous) {
                    for (k, v) in base {
                        object.entry(k).or_insert(v);
                    }
                }
            }
            item
        })
        .collect();
    Json::Array(merged)
}

/// Re-creates views (already dropped) after a schema change and re-infers their fields;
/// a view whose query no longer works refuses the change.
fn rebuild_views(
    conn: &mut dyn Conn,
    views: &[Collection],
    message: &str,
    sources: &[Collection],
) -> Result<(), CoreError> {
    for view in views {
        let mut rebuilt = view.clone();
        rebuilt.fields = create_view(conn, None, view, message, sources).map_err(|_| {
            CoreError::invalid(
                message,
                BTreeMap::from([(
                    "_".to_string(),
                    json!({
                        "code": "validation_breaks_view",
                        "message": format!("The change breaks the view collection \"{}\".", view.name),
                    }),
                )]),
            )
        })?;
        for field in &mut rebuilt.fields {
            if let Some(previous) = view
                .fields
                .iter()
                .find(|f| f.name == field.name && f.kind.type_name() == field.kind.type_name())
            {
                // Ids stay stable; the type's options follow the source field.
                field.id = previous.id.clone();
            }
        }
        assign_field_ids(&mut rebuilt);
        if rebuilt.fields != view.fields {
            rebuilt.updated = now_datetime();
            schema::update(conn, &rebuilt)?;
        }
    }
    Ok(())
}

/// The collection field a view column named `name` reads, when the view query shows it
/// plainly (`t.col`, `col`, `t.*`, `*`). The `id` column keeps the view's own id field.
fn source_field(
    origins: &[basalt_sql::view::ViewColumn],
    sources: &[Collection],
    name: &str,
) -> Option<basalt_schema::Field> {
    if name == "id" {
        return None;
    }
    // A password column stays a password field, so it is never exported.
    let (collection, field) = source_of(origins, sources, name)?;
    if field.name == "id" {
        // Another collection's id under another name: a relation to that collection.
        let mut relation = field.clone();
        relation.kind = FieldKind::Relation {
            required: false,
            collection_id: collection.id.clone(),
            cascade_delete: false,
            min_select: 0,
            max_select: 1,
        };
        relation.hidden = false;
        return Some(relation);
    }
    Some(field.clone())
}

/// The origin of the select item whose output name is `name`.
fn named_origin<'a>(
    origins: &'a [basalt_sql::view::ViewColumn],
    name: &str,
) -> Option<&'a basalt_sql::view::Origin> {
    origins
        .iter()
        .find(|o| {
            o.name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
        .map(|o| &o.origin)
}

/// The collection and field a view column reads (see [`source_field`]).
pub(crate) fn source_of<'a>(
    origins: &[basalt_sql::view::ViewColumn],
    sources: &'a [Collection],
    name: &str,
) -> Option<(&'a Collection, &'a basalt_schema::Field)> {
    use basalt_sql::view::Origin;
    let table = |table: &str| {
        sources
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(table) && !c.is_view())
    };
    match named_origin(origins, name) {
        Some(Origin::Column { table: t, column }) => {
            let collection = table(t)?;
            Some((collection, collection.field(column)?))
        }
        Some(_) => None,
        None => origins.iter().find_map(|o| match &o.origin {
            Origin::Star { tables } => tables.iter().find_map(|t| {
                let collection = table(t)?;
                Some((collection, collection.field(name)?))
            }),
            _ => None,
        }),
    }
}

/// Creates (or re-creates) a view collection's SQL view and infers its fields from the
/// columns the database reports. The query must be one SELECT (superuser-provided, like
/// PocketBase's) and must have an `id` column.
fn create_view(
    conn: &mut dyn Conn,
    old: Option<&Collection>,
    collection: &Collection,
    message: &str,
    sources: &[Collection],
) -> Result<Vec<basalt_schema::Field>, CoreError> {
    let invalid = |text: &str| {
        CoreError::invalid(
            message,
            BTreeMap::from([(
                "viewQuery".to_string(),
                json!({"code": "validation_invalid_view_query", "message": crate::error::sentenize(text)}),
            )]),
        )
    };
    let query = collection
        .view_query
        .as_deref()
        .unwrap_or_default()
        .trim()
        .trim_end_matches(';')
        .trim();
    let lower = query.to_ascii_lowercase();
    if query.is_empty()
        || !(lower.starts_with("select") || lower.starts_with("with"))
        || query.contains(';')
    {
        return Err(invalid("the view query must be a single SELECT statement"));
    }
    let dialect = conn.dialect();
    if let Some(old) = old {
        conn.execute_batch(&format!(
            "DROP VIEW IF EXISTS {}",
            dialect.quote_ident(&old.name)
        ))?;
    }
    conn.execute_batch(&format!(
        "CREATE VIEW {} AS {query}",
        dialect.quote_ident(&collection.name)
    ))
    .map_err(|error| invalid(&format!("the view query failed: {}", error.message())))?;
    let columns = conn
        .query(&ddl::view_columns(&collection.name, dialect))
        .map_err(|error| invalid(&format!("the view query failed: {}", error.message())))?;
    let origins = basalt_sql::view::view_columns(query);
    let mut fields = Vec::new();
    for row in columns.rows {
        let (Some(name), declared) = (
            row.first().and_then(basalt_sql::Value::as_str),
            row.get(1)
                .and_then(basalt_sql::Value::as_str)
                .unwrap_or_default(),
        ) else {
            continue;
        };
        // A plain column of a collection keeps that field's type and options (another
        // collection's id becomes a relation to it), aggregates are numbers, other
        // columns get a type from what the database declares. The view's own id is a
        // text primary key.
        let source = source_field(&origins, sources, name);
        let kind = if name == "id" {
            FieldKind::Text {
                required: true,
                min: 0,
                max: 0,
                pattern: "^[a-z0-9]+$".into(),
                autogenerate_pattern: String::new(),
                primary_key: true,
            }
        } else if let Some(field) = &source {
            field.kind.clone()
        } else if let Some(basalt_sql::view::Origin::Number { integer }) =
            named_origin(&origins, name)
        {
            FieldKind::Number {
                required: false,
                min: None,
                max: None,
                only_int: *integer,
            }
        } else if let Some(basalt_sql::view::Origin::Cast { type_name }) =
            named_origin(&origins, name)
        {
            let mut kind = ddl::kind_for_declared_type(type_name);
            if let FieldKind::Number { only_int, .. } = &mut kind {
                *only_int = type_name.to_ascii_uppercase().contains("INT");
            }
            kind
        } else if origins.is_empty() {
            // The query could not be read: the type the database declares.
            ddl::kind_for_declared_type(declared)
        } else {
            // Any other expression is json on both databases (PocketBase's choice; the
            // type PostgreSQL would declare for it is not used, so both agree).
            FieldKind::Json {
                required: false,
                max_size: 1,
            }
        };
        let previous = old.and_then(|o| o.field(name)).filter(|f| {
            f.kind == kind || (source.is_none() && f.kind.type_name() == kind.type_name())
        });
        let mut field = match (previous, source) {
            (Some(previous), _) => previous.clone(),
            (None, Some(source)) => {
                let mut copy = basalt_schema::Field::new(name, kind);
                copy.hidden = source.hidden;
                copy.presentable = source.presentable;
                copy.help = source.help.clone();
                copy
            }
            (None, None) => basalt_schema::Field::new(name, kind),
        };
        if name == "id" {
            field.system = true;
        }
        fields.push(field);
    }
    if !fields.iter().any(|f| f.name == "id") {
        return Err(invalid("the view query must return an id column"));
    }
    Ok(fields)
}
