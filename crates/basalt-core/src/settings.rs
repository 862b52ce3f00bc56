//! Application settings (`/api/settings`), stored as one JSON row in `_params`.

use basalt_schema::now_datetime;
use basalt_sql::{SqlQuery, Value};
use basalt_store::Conn;
use serde_json::{Value as Json, json};

use crate::app::App;
use crate::error::CoreError;

/// The settings a new app starts with.
pub(crate) fn defaults() -> Json {
    json!({
        "superuserIPs": [],
        "smtp": {"enabled": false, "port": 587, "host": "smtp.example.com", "username": "", "password": "", "authMethod": "", "tls": false, "localName": ""},
        "backups": {"cron": "", "cronMaxKeep": 3, "s3": {"enabled": false, "bucket": "", "region": "", "endpoint": "", "accessKey": "", "secret": "", "forcePathStyle": false}},
        "s3": {"enabled": false, "bucket": "", "region": "", "endpoint": "", "accessKey": "", "secret": "", "forcePathStyle": false},
        "meta": {"appName": "Acme", "appURL": "http://localhost:8090", "senderName": "Support", "senderAddress": "support@example.com", "hideControls": false, "accentColor": "#1055c9"},
        "rateLimits": {"enabled": false, "excludedIPs": [], "rules": [
            {"label": "*:auth", "audience": "", "duration": 3, "maxRequests": 2},
            {"label": "*:create", "audience": "", "duration": 5, "maxRequests": 20},
            {"label": "/api/batch", "audience": "", "duration": 1, "maxRequests": 3},
            {"label": "/api/", "audience": "", "duration": 10, "maxRequests": 300}
        ]},
        "trustedProxy": {"headers": [], "useLeftmostIP": false},
        "batch": {"enabled": false, "maxRequests": 50, "timeout": 3, "maxBodySize": 0},
        "logs": {"maxDays": 5, "minLevel": 0, "logIP": true, "logAuthId": false, "maxDataSize": 0}
    })
}

/// Deep-merges `patch` into `base`: objects merge key by key, everything else replaces.
pub(crate) fn merge(base: &mut Json, patch: &Json) {
    match (base, patch) {
        (Json::Object(base), Json::Object(patch)) => {
            for (key, value) in patch {
                match base.get_mut(key) {
                    Some(existing) if existing.is_object() && value.is_object() => {
                        merge(existing, value)
                    }
                    _ => {
                        base.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (base, patch) => *base = patch.clone(),
    }
}

/// Stored settings completed with any defaults added since they were saved.
pub(crate) fn merge_defaults(stored: Json) -> Json {
    let mut value = defaults();
    if stored.is_object() {
        merge(&mut value, &stored);
    }
    value
}

/// Writes the settings row.
pub(crate) fn save(conn: &mut dyn Conn, value: &Json, insert: bool) -> Result<(), CoreError> {
    let dialect = conn.dialect();
    let now = now_datetime();
    let query = if insert {
        SqlQuery::with_binds(
            format!(
                "INSERT INTO \"_params\" (\"id\", \"value\", \"created\", \"updated\") VALUES ({}, {}, {}, {})",
                dialect.placeholder(1),
                dialect.placeholder(2),
                dialect.placeholder(3),
                dialect.placeholder(4)
            ),
            vec![
                Value::Text("settings".into()),
                Value::Text(value.to_string()),
                Value::Text(now.clone()),
                Value::Text(now),
            ],
        )
    } else {
        SqlQuery::with_binds(
            format!(
                "UPDATE \"_params\" SET \"value\" = {}, \"updated\" = {} WHERE \"id\" = {}",
                dialect.placeholder(1),
                dialect.placeholder(2),
                dialect.placeholder(3)
            ),
            vec![
                Value::Text(value.to_string()),
                Value::Text(now),
                Value::Text("settings".into()),
            ],
        )
    };
    conn.execute(&query)?;
    Ok(())
}

/// Removes write-only secrets before settings leave the server.
fn redact(mut value: Json) -> Json {
    for path in [
        &["smtp", "password"][..],
        &["s3", "secret"],
        &["backups", "s3", "secret"],
    ] {
        let mut node = &mut value;
        for (i, key) in path.iter().enumerate() {
            if i + 1 == path.len() {
                if let Some(object) = node.as_object_mut() {
                    object.remove(*key);
                }
            } else if let Some(next) = node.get_mut(*key) {
                node = next;
            } else {
                break;
            }
        }
    }
    value
}

fn validate(value: &Json) -> Result<(), CoreError> {
    let mut errors = std::collections::BTreeMap::new();
    let meta = &value["meta"];
    if meta["appName"]
        .as_str()
        .unwrap_or_default()
        .trim()
        .is_empty()
    {
        errors.insert(
            "meta".to_string(),
            json!({"appName": {"code": "validation_required", "message": "Cannot be blank."}}),
        );
    }
    let url = meta["appURL"].as_str().unwrap_or_default();
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        let entry = errors
            .entry("meta".to_string())
            .or_insert_with(|| json!({}));
        entry["appURL"] = json!({"code": "validation_is_url", "message": "Must be a valid url."});
    }
    let batch = &value["batch"];
    let mut batch_errors = serde_json::Map::new();
    for key in ["maxRequests", "timeout", "maxBodySize"] {
        if batch[key].as_i64().is_none_or(|n| n < 0) {
            batch_errors.insert(
                key.to_string(),
                json!({
                    "code": "validation_min_greater_equal_than_required",
                    "message": "Must be no less than 0.",
                    "params": {"threshold": 0}
                }),
            );
        }
    }
    if !batch_errors.is_empty() {
        errors.insert("batch".to_string(), Json::Object(batch_errors));
    }
    if let Some(s3) = crate::files::s3_errors(&value["s3"]) {
        errors.insert("s3".to_string(), s3);
    }
    if let Some(s3) = crate::files::s3_errors(&value["backups"]["s3"]) {
        errors.insert("backups".to_string(), json!({ "s3": s3 }));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(CoreError::invalid(
            "An error occurred while saving the new settings.",
            errors,
        ))
    }
}

impl App {
    /// The current settings as stored (secrets included; for internal use).
    pub fn settings(&self) -> std::sync::Arc<Json> {
        self.inner.settings.read().clone()
    }

    /// The settings for `GET /api/settings` (secrets removed).
    pub fn public_settings(&self) -> Json {
        redact(self.settings().as_ref().clone())
    }

    /// Applies a partial update and returns the new public settings.
    ///
    /// The patch is merged into the stored settings inside the write transaction (the
    /// row is locked on PostgreSQL), not into this node's cache, so concurrent updates
    /// through different nodes do not undo each other.
    pub async fn update_settings(&self, patch: Json) -> Result<Json, CoreError> {
        if !patch.is_object() {
            return Err(CoreError::bad_request(
                "An error occurred while submitting the form.",
            ));
        }
        // Validate against the cache first: a bad patch fails without a transaction.
        let mut next = self.settings().as_ref().clone();
        merge(&mut next, &patch);
        validate(&next)?;
        let next = basalt_store::write(self.store().as_ref(), move |conn: &mut dyn Conn| {
            let mut next = load(conn, true)?.unwrap_or_else(defaults);
            merge(&mut next, &patch);
            validate(&next)?;
            save(conn, &next, false)?;
            Ok::<_, CoreError>(next)
        })
        .await?;
        *self.inner.settings.write() = std::sync::Arc::new(next.clone());
        self.refresh_file_storage();
        self.announce_settings_change();
        Ok(redact(next))
    }

    /// Reloads the settings from storage (after another node changed them).
    pub async fn reload_settings(&self) -> Result<(), CoreError> {
        let loaded = basalt_store::read(self.store().as_ref(), |conn: &mut dyn Conn| {
            load(conn, false)
        })
        .await?;
        if let Some(value) = loaded {
            *self.inner.settings.write() = std::sync::Arc::new(value);
            self.refresh_file_storage();
        }
        Ok(())
    }
}

/// The stored settings completed with defaults; `None` before the first save. With
/// `lock`, the row stays locked until the transaction ends (PostgreSQL only; SQLite has
/// one writer anyway).
pub(crate) fn load(conn: &mut dyn Conn, lock: bool) -> Result<Option<Json>, CoreError> {
    let dialect = conn.dialect();
    let lock = if lock && dialect == basalt_sql::Dialect::Postgres {
        " FOR UPDATE"
    } else {
        ""
    };
    let rows = conn.query(&SqlQuery::with_binds(
        format!(
            "SELECT \"value\" FROM \"_params\" WHERE \"id\" = {}{lock}",
            dialect.placeholder(1)
        ),
        vec![Value::Text("settings".into())],
    ))?;
    Ok(rows
        .rows
        .first()
        .and_then(|row| row.first())
        .and_then(Value::as_str)
        .map(|text| merge_defaults(serde_json::from_str(text).unwrap_or(Json::Null))))
}
