//! `basalt-core`: the services behind PocketBase's API — records (rules enforced),
//! collections (schema changes), auth (passwords, tokens), settings.
//!
//! Entry point: [`App`]. Knows no HTTP and no driver types: storage goes through
//! `basalt_store::Store`, SQL text comes from `basalt_sql`.
//!
//! Invariants: a rule check and the write it guards run in the same transaction; a
//! response is built only after the transaction has committed.

mod app;
mod auth;
mod auth_flows;
mod batch;
mod cluster;
mod collections;
mod error;
mod expand;
mod files;
mod mail;
mod migrate;
mod oauth2;
mod otp;
mod realtime;
mod records;
mod rules;
mod safe_fetch;
mod schema;
mod settings;

pub use app::{App, AppConfig};
pub use auth::{Auth, AuthResult, TokenType, issue_email_change_token, issue_token};
pub use auth_flows::RESEND_WINDOW;
pub use batch::{BatchAction, BatchKind, BatchResult, batch_failure};
pub use cluster::{PeerEvent, Peers};
pub use collections::public_collection;
pub use error::{CoreError, sentenize};
pub use files::{DEFAULT_MAX_FILE_SIZE, ORPHAN_MIN_AGE, Upload};
pub use migrate::MigrationReport;
pub use oauth2::{OAuth2Input, auth_method_providers};
pub use realtime::{
    Broker, ConnectError, Connection, MAX_CLIENT_ID_LEN, MAX_SUBSCRIPTIONS, MAX_TOPIC_LEN, Message,
    RealtimeConfig, RealtimeStats,
};
pub use records::{ListParams, ListResult, RequestInfo, export_with};
pub use schema::Schema;
