//! The batch API: several record writes in one transaction, all or nothing.
//!
//! Every action is prepared exactly like its plain endpoint (same rules, same
//! validation) with `@request.context = "batch"`, then all of them run in order inside
//! one write job; the first failure rolls everything back.

use std::collections::BTreeMap;
use std::time::Duration;

use basalt_store::Conn;
use serde_json::{Map, Value as Json, json};

use crate::app::App;
use crate::error::CoreError;
use crate::records::{RequestInfo, WriteFn, WriteOp};

/// One sub-request, already routed by the HTTP layer.
#[derive(Debug, Clone)]
pub struct BatchAction {
    /// What to do.
    pub kind: BatchKind,
    /// Collection name or id.
    pub collection: String,
    /// Record id (update/delete).
    pub id: Option<String>,
    /// The sub-request's body.
    pub body: Map<String, Json>,
    /// The sub-request's own query parameters (`fields`, `expand`, `@request.query.*`).
    pub query: BTreeMap<String, String>,
    /// The sub-request's headers (snake_case keys; its Authorization is ignored).
    pub headers: BTreeMap<String, String>,
    /// Files uploaded for this sub-request (multipart batch).
    pub uploads: Vec<crate::files::Upload>,
}

/// The four batch actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchKind {
    /// `POST .../records`
    Create,
    /// `PATCH .../records/{id}`
    Update,
    /// `PUT .../records`: update when `body.id` exists, else create.
    Upsert,
    /// `DELETE .../records/{id}`
    Delete,
}

/// The result of one sub-request.
#[derive(Debug, Clone)]
pub struct BatchResult {
    /// The collection the record belongs to.
    pub collection: String,
    /// 200 with a record, or 204.
    pub status: u16,
    /// The exported record (none for deletes).
    pub record: Option<Json>,
    /// The caller as seen by this sub-request (for expand).
    pub info: RequestInfo,
}

/// The error of a whole batch whose sub-request `index` failed with `error`.
pub fn batch_failure(index: usize, error: &CoreError) -> CoreError {
    let mut requests = Map::new();
    requests.insert(
        index.to_string(),
        json!({"code": "batch_request_failed", "message": "Batch request failed.", "response": error.body()}),
    );
    CoreError::invalid(
        "Batch transaction failed.",
        BTreeMap::from([("requests".to_string(), Json::Object(requests))]),
    )
}

fn invalid_batch() -> CoreError {
    CoreError::bad_request("Invalid batch request data.")
}

impl App {
    /// `POST /api/batch`.
    pub async fn batch(
        &self,
        actions: Vec<BatchAction>,
        info: &RequestInfo,
    ) -> Result<Vec<BatchResult>, CoreError> {
        let settings = self.settings();
        let batch = &settings["batch"];
        if !batch["enabled"].as_bool().unwrap_or(false) {
            return Err(CoreError::Forbidden(
                "Batch requests are not allowed.".into(),
            ));
        }
        let max = batch["maxRequests"].as_u64().unwrap_or(50) as usize;
        if actions.is_empty() || actions.len() > max {
            return Err(CoreError::invalid(
                "Invalid batch request data.",
                BTreeMap::from([(
                    "requests".to_string(),
                    json!({"code": "validation_length_out_of_range", "message": format!("The length must be between 1 and {max}.")}),
                )]),
            ));
        }
        let timeout =
            Duration::from_secs(batch["timeout"].as_u64().filter(|t| *t > 0).unwrap_or(3));
        let mut prepared: Vec<(WriteFn, String, RequestInfo)> = Vec::with_capacity(actions.len());
        let mut uploads = Vec::new();
        for (index, action) in actions.into_iter().enumerate() {
            let mut sub = info.clone();
            sub.context = "batch".into();
            sub.method = match action.kind {
                BatchKind::Create => "POST",
                BatchKind::Update => "PATCH",
                BatchKind::Upsert => "PUT",
                BatchKind::Delete => "DELETE",
            }
            .into();
            sub.query = action.query.clone();
            for (key, value) in &action.headers {
                if key != "authorization" {
                    sub.headers.insert(key.clone(), value.clone());
                }
            }
            let op = self
                .prepare_action(&action, &sub)
                .await
                .map_err(|error| batch_failure(index, &error))?;
            let WriteOp {
                collection,
                apply,
                uploads: files,
            } = op;
            uploads.extend(files);
            prepared.push((apply, collection.id.clone(), sub));
        }
        let infos: Vec<(String, RequestInfo)> = prepared
            .iter()
            .map(|(_, c, i)| (c.clone(), i.clone()))
            .collect();
        let applies: Vec<WriteFn> = prepared.into_iter().map(|(apply, _, _)| apply).collect();
        // The deadline is checked inside the transaction, so a batch that runs out of
        // time rolls back instead of committing after its caller gave up.
        let deadline = std::time::Instant::now() + timeout;
        let timed_out = || CoreError::bad_request("Batch transaction failed: the batch timed out.");
        self.store_uploads(&uploads).await?;
        let result = basalt_store::write(self.store().as_ref(), move |conn: &mut dyn Conn| {
            let mut stored = Vec::with_capacity(applies.len());
            let mut changes = Vec::new();
            let mut dropped = Vec::new();
            for (index, apply) in applies.into_iter().enumerate() {
                if std::time::Instant::now() > deadline {
                    return Err(timed_out());
                }
                let written = apply(conn).map_err(|error| batch_failure(index, &error))?;
                stored.push(written.record);
                changes.extend(written.changes);
                dropped.extend(written.dropped_files);
            }
            if std::time::Instant::now() > deadline {
                return Err(timed_out());
            }
            Ok::<_, CoreError>((stored, changes, dropped))
        })
        .await;
        let (stored, changes, dropped) = match result {
            Ok(done) => done,
            Err(error) => {
                self.discard_uploads(&uploads).await;
                return Err(error);
            }
        };
        self.remove_dropped_files(&dropped, &changes).await;
        // Only a committed batch reaches realtime subscribers.
        self.publish(changes).await;
        let mut results = Vec::with_capacity(stored.len());
        for (data, (collection, sub)) in stored.into_iter().zip(infos) {
            let record = match (data, self.collection(&collection)) {
                (Some(data), Some(c)) => Some(self.export_one(&c, data, &sub).await?),
                _ => None,
            };
            results.push(BatchResult {
                collection,
                status: if record.is_some() { 200 } else { 204 },
                record,
                info: sub,
            });
        }
        Ok(results)
    }

    async fn prepare_action(
        &self,
        action: &BatchAction,
        info: &RequestInfo,
    ) -> Result<WriteOp, CoreError> {
        let id = || {
            action
                .id
                .clone()
                .filter(|id| !id.is_empty())
                .ok_or_else(invalid_batch)
        };
        match action.kind {
            BatchKind::Create => {
                self.prepare_create(
                    &action.collection,
                    action.body.clone(),
                    action.uploads.clone(),
                    info,
                )
                .await
            }
            BatchKind::Update => {
                self.prepare_update(
                    &action.collection,
                    &id()?,
                    action.body.clone(),
                    action.uploads.clone(),
                    info,
                )
                .await
            }
            BatchKind::Delete => self.prepare_delete(&action.collection, &id()?, info),
            BatchKind::Upsert => {
                let Some(record_id) = action
                    .body
                    .get("id")
                    .and_then(Json::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                else {
                    return self
                        .prepare_create(
                            &action.collection,
                            action.body.clone(),
                            action.uploads.clone(),
                            info,
                        )
                        .await;
                };
                let create = self
                    .prepare_create(
                        &action.collection,
                        action.body.clone(),
                        action.uploads.clone(),
                        info,
                    )
                    .await;
                let mut update_body = action.body.clone();
                update_body.remove("id");
                let update = self
                    .prepare_update(
                        &action.collection,
                        &record_id,
                        update_body,
                        action.uploads.clone(),
                        info,
                    )
                    .await;
                // Both branches stage their own copy of the uploads; the branch not
                // taken has its files dropped after the commit.
                let keys = |op: &Result<WriteOp, CoreError>| -> Vec<String> {
                    op.as_ref()
                        .map(|op| op.uploads.iter().map(|(k, _)| k.clone()).collect())
                        .unwrap_or_default()
                };
                let (create_keys, update_keys) = (keys(&create), keys(&update));
                let mut uploads = Vec::new();
                for op in [&create, &update].into_iter().flatten() {
                    uploads.extend(op.uploads.iter().cloned());
                }
                let collection = self
                    .collection(&action.collection)
                    .ok_or_else(CoreError::not_found)?;
                let lookup = collection.clone();
                Ok(WriteOp {
                    collection,
                    uploads,
                    apply: Box::new(move |conn: &mut dyn Conn| {
                        let query =
                            basalt_sql::record::select_by_id(&lookup, &record_id, conn.dialect());
                        let exists = !conn.query(&query)?.rows.is_empty();
                        let (chosen, unused) = if exists {
                            (update, create_keys)
                        } else {
                            (create, update_keys)
                        };
                        let mut written = (chosen?.apply)(conn)?;
                        written.dropped_files.extend(unused);
                        Ok(written)
                    }),
                })
            }
        }
    }
}
