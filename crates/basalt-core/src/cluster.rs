//! Several nodes on one database acting as one app.
//!
//! Everything durable is already shared through the database; what a node keeps in
//! memory is derived from it (schema snapshot, compiled rules, settings) or belongs to
//! its own connections (realtime clients). A node therefore tells the others three
//! things they cannot notice by themselves:
//!
//! - a record change committed through it (their realtime subscribers may want it);
//! - a schema change (they reload the schema snapshot; compiled rules are keyed by the
//!   snapshot's version, so the reload also retires every rule compiled against the old
//!   one);
//! - a settings change (they reload the settings).
//!
//! The transport is a [`Peers`] implementation chosen by the binary (PostgreSQL
//! LISTEN/NOTIFY in `basalt-store-postgres`). It carries opaque text, keeps a node's
//! notes in the order they were sent, never hands a node its own notes, and reports a
//! (re)connection as [`PeerEvent::Resync`], after which the node reloads schema and
//! settings because notes may have been missed while it was away.
//!
//! Notes are sent after the transaction committed. A record note carries the record as
//! stored (minus its password hash); for a delete that is also what the receiving node
//! checks its subscribers' rules against, since the row is gone by then (see
//! `realtime::dispatch`).
//!
//! Invariant: applying a note never sends one, so notes cannot echo between nodes.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::app::App;
use crate::error::CoreError;
use crate::realtime::{Action, Change};

/// The transport to the other nodes of the app.
pub trait Peers: Send + Sync + 'static {
    /// Queues `note` for every other node. Never blocks and never fails: a transport that
    /// cannot deliver logs it, and the receivers resynchronise when they reconnect.
    fn send(&self, note: String);
}

/// What the transport hands a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEvent {
    /// A note from another node, as sent.
    Note(String),
    /// The transport (re)connected: notes may have been missed, so reload everything
    /// derived from the database.
    Resync,
}

/// A note between nodes, as JSON.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "lowercase")]
enum Note {
    /// The collections changed.
    Schema,
    /// The settings changed.
    Settings,
    /// A record change committed.
    Record {
        /// Collection id.
        c: String,
        /// `create`, `update` or `delete`.
        a: String,
        /// For an auth record's update: its token key changed.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        k: bool,
        /// The record as stored (after a create/update, before a delete).
        r: Map<String, Json>,
    },
}

fn action_name(action: Action) -> &'static str {
    match action {
        Action::Create => "create",
        Action::Update => "update",
        Action::Delete => "delete",
    }
}

fn action_of(name: &str) -> Option<Action> {
    match name {
        "create" => Some(Action::Create),
        "update" => Some(Action::Update),
        "delete" => Some(Action::Delete),
        _ => None,
    }
}

fn encode(note: &Note) -> String {
    // Serializing maps of JSON values cannot fail.
    serde_json::to_string(note).unwrap_or_default()
}

/// The note for a committed record change.
pub(crate) fn record_note(change: &Change) -> String {
    let mut record = change.record.clone();
    if change.collection.is_auth() {
        record.remove("password");
    }
    let token_key_changed = change.action == Action::Update
        && change.collection.is_auth()
        && change.previous_token_key.as_ref() != change.record.get("tokenKey");
    encode(&Note::Record {
        c: change.collection.id.clone(),
        a: action_name(change.action).to_string(),
        k: token_key_changed,
        r: record,
    })
}

impl App {
    /// Connects this node to the others: from now on it tells `peers` about its commits.
    /// Feed what the transport receives, in order, to [`App::apply_peer_event`]. Only
    /// the first call takes effect.
    pub fn attach_peers(&self, peers: Arc<dyn Peers>) {
        if self.inner.peers.set(peers).is_err() {
            tracing::warn!("peers already attached; ignoring");
        }
    }

    /// The transport to the other nodes, if any.
    pub(crate) fn peers(&self) -> Option<&Arc<dyn Peers>> {
        self.inner.peers.get()
    }

    /// Tells the other nodes that the collections changed (after the change committed).
    pub(crate) fn announce_schema_change(&self) {
        if let Some(peers) = self.peers() {
            peers.send(encode(&Note::Schema));
        }
    }

    /// Tells the other nodes that the settings changed (after the change committed).
    pub(crate) fn announce_settings_change(&self) {
        if let Some(peers) = self.peers() {
            peers.send(encode(&Note::Settings));
        }
    }

    /// Applies one event from another node. Call it for one event at a time, in the
    /// order the transport received them.
    pub async fn apply_peer_event(&self, event: PeerEvent) -> Result<(), CoreError> {
        let text = match event {
            PeerEvent::Resync => {
                self.reload_schema().await?;
                self.reload_settings().await?;
                tracing::debug!("resynchronised schema and settings after (re)connecting");
                return Ok(());
            }
            PeerEvent::Note(text) => text,
        };
        let note: Note = match serde_json::from_str(&text) {
            Ok(note) => note,
            Err(error) => {
                // A newer node may send notes this one does not know; reload to be safe.
                tracing::warn!(%error, "unreadable note from another node; resynchronising");
                self.reload_schema().await?;
                return self.reload_settings().await;
            }
        };
        match note {
            Note::Schema => self.reload_schema().await,
            Note::Settings => self.reload_settings().await,
            Note::Record { c, a, k, r } => {
                let Some(action) = action_of(&a) else {
                    return Ok(());
                };
                let collection = match self.schema().get(&c).cloned() {
                    Some(collection) => collection,
                    None => {
                        // The collection may be newer than this node's snapshot.
                        self.reload_schema().await?;
                        match self.schema().get(&c).cloned() {
                            Some(collection) => collection,
                            None => return Ok(()),
                        }
                    }
                };
                let previous_token_key = match action {
                    Action::Update if collection.is_auth() => Some(if k {
                        Json::Null
                    } else {
                        r.get("tokenKey").cloned().unwrap_or(Json::Null)
                    }),
                    _ => None,
                };
                let change = Change::remote(collection, action, r, previous_token_key);
                self.publish_local(vec![change]).await;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_round_trip_in_a_small_shape() {
        assert_eq!(encode(&Note::Schema), r#"{"t":"schema"}"#);
        assert_eq!(encode(&Note::Settings), r#"{"t":"settings"}"#);
        let mut r = Map::new();
        r.insert("id".into(), Json::String("abc".into()));
        let text = encode(&Note::Record {
            c: "pbc_1".into(),
            a: "delete".into(),
            k: false,
            r,
        });
        assert_eq!(
            text,
            r#"{"t":"record","c":"pbc_1","a":"delete","r":{"id":"abc"}}"#
        );
        match serde_json::from_str::<Note>(&text).expect("parses") {
            Note::Record { c, a, k, r } => {
                assert_eq!((c.as_str(), a.as_str(), k), ("pbc_1", "delete", false));
                assert_eq!(r["id"], "abc");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(serde_json::from_str::<Note>(r#"{"t":"nope"}"#).is_err());
    }
}
