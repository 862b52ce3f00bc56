//! `basalt-schema`: collections, fields, rules and record validation.
//!
//! Key types: [`Collection`], [`Field`], [`FieldKind`], [`FieldError`].
//! The serde shape of these types is PocketBase's collection JSON, which is both the
//! wire format of `/api/collections` and the stored form in `_collections`.
//!
//! Invariants: pure (no I/O, no async, no driver); record values are
//! `serde_json::Value`s normalized per field kind ([`Field::normalize`]) before they are
//! validated ([`Field::validate`]) and bound by `basalt-sql`.

mod collection;
mod field;
mod ids;
mod pattern;
mod record;
mod system;
mod time_fmt;
mod validate;

pub use collection::{AuthOptions, Collection, CollectionType, RuleKind, TokenConfig};
pub use field::{Field, FieldKind};
pub use ids::{collection_id, field_id, random_id, random_string};
pub use pattern::generate_from_pattern;
pub use record::{FieldError, FieldErrors, number_json, to_list};
pub use system::{
    EXTERNAL_AUTHS_ID, EXTERNAL_AUTHS_INDEXES, SUPERUSERS_ID, USERS_ID, default_external_auths,
    default_superusers, default_users,
};
pub use time_fmt::{format_datetime, now_datetime, parse_datetime};
pub use validate::{IndexDef, SchemaLookup, parse_index, validate_collection};
