//! Realtime: PocketBase's SSE subscriptions, without axum types.
//!
//! - [`Broker`] (in `broker`): connected clients, their subscriptions and stored auth,
//!   a bounded message queue per client, connection caps ([`RealtimeConfig`]).
//! - `topic`: subscription strings and their `?options=`.
//! - `dispatch`: record changes → access checks → one encoded message per group of
//!   identical recipients. Changes are published by the records service only after
//!   their transaction committed; delete recipients are decided inside the transaction,
//!   before the delete.
//!
//! Invariant: an event reaches a client only if that client could read the record at
//! that moment through the REST API (list rule for `*`, view rule for an id, the
//! subscription's filter under the same restrictions as a list filter), exported with
//! the same visibility rules; anything that fails to check is denied.

mod broker;
mod dispatch;
mod fields;
mod topic;

use std::net::IpAddr;

use basalt_sql::record;
use basalt_store::Conn;
use serde_json::{Value as Json, json};

pub use broker::{Broker, ConnectError, Connection, Message, RealtimeConfig, RealtimeStats};
pub(crate) use dispatch::{Action, Change};

use crate::app::App;
use crate::auth::Auth;
use crate::error::CoreError;

/// Most subscriptions in one subscribe call.
pub const MAX_SUBSCRIPTIONS: usize = 1000;
/// Longest subscription string.
pub const MAX_TOPIC_LEN: usize = 2500;
/// Longest client id.
pub const MAX_CLIENT_ID_LEN: usize = 255;

/// Checks a subscribe call's input like PocketBase (400 with field errors).
fn validate(client_id: &str, subscriptions: &[String]) -> Result<(), CoreError> {
    let mut data = std::collections::BTreeMap::new();
    if client_id.is_empty() {
        data.insert(
            "clientId".to_string(),
            json!({"code": "validation_required", "message": "Cannot be blank."}),
        );
    } else if client_id.chars().count() > MAX_CLIENT_ID_LEN {
        data.insert(
            "clientId".to_string(),
            json!({"code": "validation_length_out_of_range",
                "message": format!("The length must be between 1 and {MAX_CLIENT_ID_LEN}."),
                "params": {"max": MAX_CLIENT_ID_LEN, "min": 1}}),
        );
    }
    if subscriptions.len() > MAX_SUBSCRIPTIONS {
        data.insert(
            "subscriptions".to_string(),
            json!({"code": "validation_length_too_long",
                "message": format!("The length must be no more than {MAX_SUBSCRIPTIONS}."),
                "params": {"max": MAX_SUBSCRIPTIONS, "min": 0}}),
        );
    } else {
        let too_long: serde_json::Map<String, Json> = subscriptions
            .iter()
            .enumerate()
            .filter(|(_, s)| s.chars().count() > MAX_TOPIC_LEN)
            .map(|(at, _)| {
                (
                    at.to_string(),
                    json!({"code": "validation_length_too_long",
                        "message": format!("The length must be no more than {MAX_TOPIC_LEN}."),
                        "params": {"max": MAX_TOPIC_LEN, "min": 0}}),
                )
            })
            .collect();
        if !too_long.is_empty() {
            data.insert("subscriptions".to_string(), Json::Object(too_long));
        }
    }
    if data.is_empty() {
        Ok(())
    } else {
        Err(CoreError::invalid(
            "Something went wrong while processing your request.",
            data,
        ))
    }
}

impl App {
    /// The realtime broker.
    pub fn realtime(&self) -> &Broker {
        &self.inner.realtime
    }

    /// `POST /api/realtime`: replaces the client's subscriptions and stores the
    /// request's auth on it (`auth` is `None` for guests and for invalid tokens).
    ///
    /// Errors: 400 invalid input or another address than the stream's, 404 unknown
    /// client, 403 an auth different from the one stored by an earlier call.
    pub async fn realtime_subscribe(
        &self,
        client_id: &str,
        ip: Option<IpAddr>,
        auth: Option<Auth>,
        subscriptions: &[String],
    ) -> Result<(), CoreError> {
        validate(client_id, subscriptions)?;
        let checked = auth.clone();
        let client = self
            .realtime()
            .set_subscriptions(client_id, ip, auth, subscriptions)?;
        // The token was verified against the record before it was stored; if a password
        // change or token-key rotation committed in between, its publish may already have
        // run, so the key is read again now that the auth is stored.
        if let Some(auth) = checked {
            let lookup = auth.collection.clone();
            let id = auth.id().to_string();
            let current = basalt_store::read(self.store().as_ref(), move |conn: &mut dyn Conn| {
                let rows = conn.query(&record::select_by_id(&lookup, &id, conn.dialect()))?;
                Ok::<_, CoreError>(
                    rows.rows
                        .into_iter()
                        .next()
                        .map(|row| record::decode_row(&lookup, row)),
                )
            })
            .await;
            let unchanged = matches!(&current, Ok(Some(row))
                if row.get("tokenKey") == auth.record.get("tokenKey"));
            if !unchanged {
                self.realtime().forget_auth_of(&client, &auth);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_limits() {
        assert!(validate("a", &[]).is_ok());
        assert!(validate(&"x".repeat(255), &vec!["t".repeat(2500); 1000]).is_ok());
        let body = validate("", &[]).expect_err("blank").body();
        assert_eq!(body["data"]["clientId"]["code"], "validation_required");
        let body = validate(&"x".repeat(256), &[]).expect_err("long").body();
        assert_eq!(
            body["data"]["clientId"]["code"],
            "validation_length_out_of_range"
        );
        let body = validate("a", &vec![String::new(); 1001])
            .expect_err("many")
            .body();
        assert_eq!(
            body["data"]["subscriptions"]["code"],
            "validation_length_too_long"
        );
        let body = validate("a", &["ok".into(), "t".repeat(2501)])
            .expect_err("long topic")
            .body();
        assert_eq!(
            body["data"]["subscriptions"]["1"]["params"]["max"],
            MAX_TOPIC_LEN
        );
        assert_eq!(
            body["message"],
            "Something went wrong while processing your request."
        );
    }
}
