//! From a committed record change to the messages of the clients allowed to see it.
//!
//! 1. Plan: the matching subscriptions are grouped by what their message depends on
//!    (the subscriber's auth, or only its class when nothing depends on the identity;
//!    list or view rule; the options), and each group gets its access check: allowed,
//!    denied, or one SQL query `SELECT 1 ... WHERE id = ? AND (rule) AND (filter)`
//!    built with the same compiler and `SelectBuilder` as the REST reads.
//! 2. Check: all queries of a change run in one read job on the committed state; for a
//!    delete they run inside the write transaction, before the delete.
//! 3. Deliver: each allowed group's record is exported once (hidden fields, email
//!    visibility), expanded through each target's view rule, picked by `fields`, encoded
//!    once per event name, and queued to each client without waiting.
//!
//! A single dispatcher task handles the changes in commit order, so each client sees
//! events in the order the writes committed.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use basalt_schema::Collection;
use basalt_sql::SqlQuery;
use basalt_sql::filter::{CompiledExpr, NEW_RECORD_CTE, SelectBuilder, create_check};
use basalt_store::Conn;
use serde_json::{Map, Value as Json};
use tokio::sync::mpsc;

use super::broker::{Client, Message, Target};
use super::fields::Fields;
use super::topic::SubOptions;
use crate::app::{App, Inner};
use crate::auth::Auth;
use crate::records::RequestInfo;
use crate::rules::request_context;
use crate::schema::Schema;

/// How many committed writes may wait for the dispatcher before writers wait.
const QUEUE_CAPACITY: usize = 4096;

/// What happened to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Create,
    Update,
    Delete,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }
}

/// A record change to publish once its transaction has committed.
pub(crate) struct Change {
    pub(crate) collection: Arc<Collection>,
    pub(crate) action: Action,
    /// The record after a create/update, before a delete (stored values).
    pub(crate) record: Map<String, Json>,
    /// The auth record's token key before an update (auth collections only).
    pub(crate) previous_token_key: Option<Json>,
    /// For deletes: the allowed groups, decided before the delete.
    pub(crate) decided: Option<Vec<Group>>,
    /// A delete committed through another node: the row is gone, so access is checked
    /// against `record` itself instead of the table.
    pub(crate) gone: bool,
}

impl Change {
    /// A created or updated record; `before` is the stored row before an update.
    pub(crate) fn saved(
        collection: Arc<Collection>,
        action: Action,
        before: Option<&Map<String, Json>>,
        after: Map<String, Json>,
    ) -> Change {
        let previous_token_key = before
            .filter(|_| collection.is_auth())
            .and_then(|b| b.get("tokenKey").cloned());
        Change {
            collection,
            action,
            record: after,
            previous_token_key,
            decided: None,
            gone: false,
        }
    }

    /// A change committed through another node (see `cluster`).
    pub(crate) fn remote(
        collection: Arc<Collection>,
        action: Action,
        record: Map<String, Json>,
        previous_token_key: Option<Json>,
    ) -> Change {
        Change {
            collection,
            action,
            record,
            previous_token_key,
            decided: None,
            gone: action == Action::Delete,
        }
    }

    fn record_id(&self) -> Option<&str> {
        self.record.get("id").and_then(Json::as_str)
    }
}

/// One batch of committed changes, in commit order.
pub(crate) type Job = Vec<Change>;

/// Subscriptions whose messages are identical: same check, same payload.
pub(crate) struct Group {
    info: RequestInfo,
    options: Arc<SubOptions>,
    check: Check,
    targets: Vec<(Arc<Client>, Arc<str>)>,
}

enum Check {
    Allow,
    Deny,
    Query(SqlQuery),
}

/// What a group's message depends on.
#[derive(PartialEq, Eq, Hash)]
enum Who {
    /// Nothing depends on the identity: only on being a superuser and on being the
    /// record itself (email visibility).
    Class { superuser: bool, is_self: bool },
    /// A guest, where the identity matters.
    Guest,
    /// This auth record.
    Identity(String, String),
}

#[derive(PartialEq, Eq, Hash)]
struct GroupKey {
    who: Who,
    view: bool,
    options: Arc<SubOptions>,
}

/// The current collection of a stored auth, if the auth is still valid: its collection
/// exists and has the same auth-token secret (a changed secret invalidates every token,
/// and so every stored realtime auth).
fn auth_collection<'a>(schema: &'a Schema, auth: &Auth) -> Option<&'a Arc<Collection>> {
    let current = schema
        .collections
        .iter()
        .find(|c| c.id == auth.collection.id)?;
    match (token_secret(current), token_secret(&auth.collection)) {
        (Some(now), Some(then)) if now == then => Some(current),
        _ => None,
    }
}

fn token_secret(collection: &Collection) -> Option<&str> {
    collection
        .auth
        .as_ref()
        .map(|a| a.auth_token.secret.as_str())
}

impl App {
    /// Groups the subscriptions matching a change and builds their checks; with `gone`
    /// (a record no longer in the table) the checks read that record instead of the row.
    fn plan(
        &self,
        collection: &Arc<Collection>,
        record_id: &str,
        gone: Option<&Map<String, Json>>,
    ) -> Vec<Group> {
        let broker = self.realtime();
        let targets = broker.targets(&collection.name, &collection.id, record_id);
        if targets.is_empty() {
            return Vec::new();
        }
        let schema = self.schema();
        let mut groups: Vec<Group> = Vec::new();
        let mut index: HashMap<GroupKey, usize> = HashMap::new();
        for Target {
            client,
            auth,
            subscription,
        } in targets
        {
            let auth = match auth {
                Some(stored) => match auth_collection(&schema, &stored) {
                    Some(current) => Some((stored, current)),
                    None => {
                        broker.forget_auth_of(&client, &stored);
                        None
                    }
                },
                None => None,
            };
            let view = subscription.record.is_some();
            let options = subscription.options.clone();
            let superuser = auth
                .as_ref()
                .is_some_and(|(stored, _)| stored.is_superuser());
            let rule = if view {
                collection.view_rule.as_deref()
            } else {
                collection.list_rule.as_deref()
            };
            let filter = options.filter();
            let depends = options.expand().is_some()
                || (!superuser && filter.is_some())
                || filter.is_some_and(|f| f.contains("@request.auth"))
                || (!superuser && rule.is_some_and(|r| r.contains("@request.auth")));
            let who = match &auth {
                Some((stored, _)) if depends => {
                    Who::Identity(stored.collection.id.clone(), stored.id().to_string())
                }
                None if depends => Who::Guest,
                _ => Who::Class {
                    superuser,
                    is_self: auth.as_ref().is_some_and(|(stored, _)| {
                        stored.collection.id == collection.id && stored.id() == record_id
                    }),
                },
            };
            let key = GroupKey {
                who,
                view,
                options: options.clone(),
            };
            let event = subscription.raw.clone();
            if let Some(&at) = index.get(&key) {
                groups[at].targets.push((client, event));
                continue;
            }
            let info = RequestInfo {
                auth: auth.map(|(stored, current)| Auth {
                    collection: current.clone(),
                    record: stored.record.clone(),
                }),
                method: "GET".into(),
                query: options.query.clone(),
                headers: options.headers.clone(),
                body: Map::new(),
                context: "realtime".into(),
            };
            let check =
                self.access_check(&schema, collection, rule, record_id, gone, &info, &options);
            index.insert(key, groups.len());
            groups.push(Group {
                info,
                options,
                check,
                targets: vec![(client, event)],
            });
        }
        groups
    }

    /// The check of one group: the collection's rule (unless superuser) AND the
    /// subscription's filter (client-filter restrictions unless superuser) on the record.
    #[allow(clippy::too_many_arguments)]
    fn access_check(
        &self,
        schema: &Schema,
        collection: &Collection,
        rule: Option<&str>,
        record_id: &str,
        gone: Option<&Map<String, Json>>,
        info: &RequestInfo,
        options: &SubOptions,
    ) -> Check {
        let superuser = info.is_superuser();
        if rule.is_none() && !superuser {
            return Check::Deny;
        }
        let ctx = request_context(info);
        let rule = match rule.filter(|r| !superuser && !r.trim().is_empty()) {
            Some(rule) => match self.compiled_rule_for(collection, rule, &ctx) {
                Ok(compiled) => Some(compiled),
                Err(error) => {
                    tracing::warn!(%error, "realtime: rule does not compile");
                    return Check::Deny;
                }
            },
            None => None,
        };
        let filter = match options.filter() {
            Some(filter) => {
                if !superuser && (filter.contains("@collection.") || filter.contains("@request.")) {
                    return Check::Deny;
                }
                match self.compiled_filter(schema, collection, filter, &ctx) {
                    Ok(compiled) => Some(compiled),
                    Err(_) => return Check::Deny,
                }
            }
            None => None,
        };
        if rule.is_none() && filter.is_none() {
            return Check::Allow;
        }
        let dialect = self.store().dialect();
        let always = CompiledExpr::always(dialect);
        if let Some(record) = gone {
            return Check::Query(gone_check(
                dialect,
                collection,
                record,
                [rule.as_deref(), filter.as_deref()],
                &ctx,
            ));
        }
        let query = SelectBuilder::new(dialect, collection, &ctx)
            .filter(rule.as_deref().unwrap_or(&always))
            .filter(filter.as_deref().unwrap_or(&always))
            .id(record_id)
            .exists();
        Check::Query(query)
    }

    /// Decides, inside a delete's transaction and before the delete, who may receive
    /// its event. Check failures deny; a savepoint keeps a failed check from aborting the
    /// transaction on PostgreSQL.
    pub(crate) fn realtime_delete(
        &self,
        conn: &mut dyn Conn,
        collection: &Arc<Collection>,
        record: Map<String, Json>,
    ) -> Change {
        let id = record
            .get("id")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_string();
        let mut groups = if self.realtime().has_clients() {
            self.plan(collection, &id, None)
        } else {
            Vec::new()
        };
        if groups.iter().any(|g| matches!(g.check, Check::Query(_))) {
            run_checks_guarded(conn, &mut groups);
        }
        groups.retain(|g| matches!(g.check, Check::Allow));
        Change {
            collection: collection.clone(),
            action: Action::Delete,
            record,
            previous_token_key: None,
            decided: Some(groups),
            gone: false,
        }
    }

    /// Publishes committed changes: tells the other nodes (if any), then publishes them
    /// to this node's subscribers.
    pub(crate) async fn publish(&self, changes: Vec<Change>) {
        if let Some(peers) = self.peers() {
            for change in &changes {
                peers.send(crate::cluster::record_note(change));
            }
        }
        self.publish_local(changes).await;
    }

    /// Publishes committed changes to this node's subscribers: auth changes take effect
    /// at once (a changed token key or a deleted auth record turns its realtime clients
    /// into guests), then the events are queued for the dispatcher.
    pub(crate) async fn publish_local(&self, changes: Vec<Change>) {
        if changes.is_empty() {
            return;
        }
        let broker = self.realtime();
        if !broker.has_clients() {
            return;
        }
        for change in changes.iter().filter(|c| c.collection.is_auth()) {
            let Some(id) = change.record_id() else {
                continue;
            };
            match change.action {
                Action::Delete => broker.forget_auth(&change.collection.id, id),
                Action::Update
                    if change.previous_token_key.as_ref() != change.record.get("tokenKey") =>
                {
                    broker.forget_auth(&change.collection.id, id);
                }
                Action::Update => broker.refresh_auth(&Auth {
                    collection: change.collection.clone(),
                    record: change.record.clone(),
                }),
                Action::Create => {}
            }
        }
        let job: Job = changes
            .into_iter()
            .filter(|c| match &c.decided {
                Some(groups) => !groups.is_empty(),
                None => broker.watches(&c.collection.name, &c.collection.id),
            })
            .collect();
        if job.is_empty() {
            return;
        }
        let queue = broker.queue(|| {
            let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
            tokio::spawn(run_dispatcher(Arc::downgrade(&self.inner), receiver));
            sender
        });
        if queue.send(job).await.is_err() {
            tracing::warn!("realtime dispatcher stopped; events dropped");
        }
    }

    async fn dispatch(&self, change: Change) {
        let Some(id) = change.record_id().map(str::to_string) else {
            return;
        };
        let groups = match change.decided {
            Some(groups) => groups,
            None => {
                let gone = change.gone.then_some(&change.record);
                let mut groups = self.plan(&change.collection, &id, gone);
                if groups.iter().any(|g| matches!(g.check, Check::Query(_))) {
                    let queries: Vec<(usize, SqlQuery)> = groups
                        .iter_mut()
                        .enumerate()
                        .filter_map(
                            |(at, g)| match std::mem::replace(&mut g.check, Check::Deny) {
                                Check::Query(query) => Some((at, query)),
                                other => {
                                    g.check = other;
                                    None
                                }
                            },
                        )
                        .collect();
                    let results = basalt_store::read(self.store().as_ref(), move |conn| {
                        Ok::<_, crate::error::CoreError>(run_checks(conn, &queries))
                    })
                    .await
                    .unwrap_or_default();
                    for at in results {
                        groups[at].check = Check::Allow;
                    }
                }
                groups.retain(|g| matches!(g.check, Check::Allow));
                groups
            }
        };
        for group in groups {
            self.deliver(&change.collection, change.action, &change.record, group)
                .await;
        }
    }

    async fn deliver(
        &self,
        collection: &Arc<Collection>,
        action: Action,
        record: &Map<String, Json>,
        group: Group,
    ) {
        // A manager sees the emails of the records it manages (checked on the stored row,
        // so not for a delete: that row is gone and the email stays hidden).
        let managed = match action {
            Action::Delete => None,
            _ => self
                .export_one(collection, record.clone(), &group.info)
                .await
                .ok(),
        };
        let mut exported = managed.unwrap_or_else(|| self.export(collection, record, &group.info));
        if let Some(expand) = group.options.expand() {
            let mut one = [exported];
            if let Err(error) = self
                .expand_records(collection, &mut one, expand, &group.info)
                .await
            {
                tracing::debug!(%error, "realtime: expand failed");
            }
            let [expanded] = one;
            exported = expanded;
        }
        if let Some(fields) = group.options.fields().and_then(Fields::parse) {
            exported = fields.apply(exported);
        }
        let data = format!(
            "{{\"record\":{exported},\"action\":\"{}\"}}",
            action.as_str()
        );
        let broker = self.realtime();
        // One frame per event name; most targets of a group share the previous one's name.
        let mut frames: HashMap<Arc<str>, Message> = HashMap::new();
        let mut last: Option<(Arc<str>, Message)> = None;
        for (client, event) in group.targets {
            let message = match &last {
                Some((name, message)) if *name == event => message.clone(),
                _ => {
                    let message = frames
                        .entry(event.clone())
                        .or_insert_with_key(|event| Message::new(event, &data))
                        .clone();
                    last = Some((event, message.clone()));
                    message
                }
            };
            broker.send(&client, message);
        }
    }
}

/// The check of a record that is no longer in its table (a delete committed through
/// another node): the record as a one-row CTE, as for a create rule, under each
/// condition; a row comes back when all of them hold.
///
/// ```text
/// SELECT 1 WHERE (WITH "__basalt_new" AS (SELECT ?1 AS "id", ...)
///                 SELECT COUNT(*) FROM "__basalt_new" WHERE (rule) AND (filter)) > 0
/// ```
///
/// Relations are followed into their (current) tables, so a condition on records that
/// the same delete cascaded away sees them gone, where the local check, made inside the
/// transaction before the delete, still saw them.
fn gone_check(
    dialect: basalt_sql::Dialect,
    collection: &Collection,
    record: &Map<String, Json>,
    conditions: [Option<&CompiledExpr>; 2],
    ctx: &basalt_sql::filter::RequestContext,
) -> SqlQuery {
    let always = CompiledExpr::always(dialect);
    let mut query = create_check(dialect, collection, record, &always, ctx);
    let cte = dialect.quote_ident(NEW_RECORD_CTE);
    let mut first = true;
    for condition in conditions.into_iter().flatten() {
        query.sql.push_str(if first { " WHERE " } else { " AND " });
        first = false;
        condition.render_into(ctx, &cte, &mut query.sql, &mut query.binds);
    }
    query.sql = format!("SELECT 1 WHERE ({}) > 0", query.sql);
    query
}

/// Runs the queries; returns the indexes whose query found the record.
fn run_checks(conn: &mut dyn Conn, queries: &[(usize, SqlQuery)]) -> Vec<usize> {
    queries
        .iter()
        .filter(|(_, query)| match conn.query(query) {
            Ok(rows) => !rows.rows.is_empty(),
            Err(error) => {
                tracing::warn!(%error, "realtime: access check failed");
                false
            }
        })
        .map(|(at, _)| *at)
        .collect()
}

const SAVEPOINT: &str = "basalt_realtime_check";

/// The checks of `groups` inside a write transaction, under a savepoint.
fn run_checks_guarded(conn: &mut dyn Conn, groups: &mut [Group]) {
    if conn
        .execute_batch(&format!("SAVEPOINT {SAVEPOINT}"))
        .is_err()
    {
        for group in groups.iter_mut() {
            if matches!(group.check, Check::Query(_)) {
                group.check = Check::Deny;
            }
        }
        return;
    }
    for group in groups.iter_mut() {
        let Check::Query(query) = &group.check else {
            continue;
        };
        group.check = match conn.query(query) {
            Ok(rows) if !rows.rows.is_empty() => Check::Allow,
            Ok(_) => Check::Deny,
            Err(error) => {
                tracing::warn!(%error, "realtime: access check failed");
                let _ = conn.execute_batch(&format!("ROLLBACK TO SAVEPOINT {SAVEPOINT}"));
                Check::Deny
            }
        };
    }
    let _ = conn.execute_batch(&format!("RELEASE SAVEPOINT {SAVEPOINT}"));
}

async fn run_dispatcher(app: Weak<Inner>, mut receiver: mpsc::Receiver<Job>) {
    while let Some(job) = receiver.recv().await {
        let Some(inner) = app.upgrade() else {
            break;
        };
        let app = App { inner };
        for change in job {
            app.dispatch(change).await;
        }
    }
}
