//! Fields: the common keys plus one options struct per kind, serialized flat like
//! PocketBase's field JSON (`{"id","name","type","system","hidden",...options}`).

use serde::{Deserialize, Serialize};

/// One field of a collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Field {
    /// Stable id (`type` + crc32(name) by default).
    #[serde(default)]
    pub id: String,
    /// Column name.
    #[serde(default)]
    pub name: String,
    /// System fields cannot be removed or renamed.
    #[serde(default)]
    pub system: bool,
    /// Hidden fields are output only to superusers and cannot be filtered by others.
    #[serde(default)]
    pub hidden: bool,
    /// A UI hint.
    #[serde(default)]
    pub presentable: bool,
    /// Help text shown by admin UIs.
    #[serde(default)]
    pub help: String,
    /// The kind and its options.
    #[serde(flatten)]
    pub kind: FieldKind,
}

/// The field kinds and their options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum FieldKind {
    /// Plain text.
    #[serde(rename_all = "camelCase")]
    Text {
        /// Non-empty required.
        #[serde(default)]
        required: bool,
        /// Minimum length in characters (0 = none).
        #[serde(default)]
        min: u64,
        /// Maximum length in characters (0 = default 5000).
        #[serde(default)]
        max: u64,
        /// Regex the value must match (empty = none).
        #[serde(default)]
        pattern: String,
        /// Regex used to generate a value when empty on create.
        #[serde(default)]
        autogenerate_pattern: String,
        /// Whether this is the primary key (`id`).
        #[serde(default)]
        primary_key: bool,
    },
    /// A float64 number.
    #[serde(rename_all = "camelCase")]
    Number {
        /// Non-zero required.
        #[serde(default)]
        required: bool,
        /// Minimum (none when null).
        #[serde(default)]
        min: Option<f64>,
        /// Maximum (none when null).
        #[serde(default)]
        max: Option<f64>,
        /// Integers only.
        #[serde(default)]
        only_int: bool,
    },
    /// A boolean.
    Bool {
        /// Must be true when required.
        #[serde(default)]
        required: bool,
    },
    /// An email address.
    #[serde(rename_all = "camelCase")]
    Email {
        /// Non-empty required.
        #[serde(default)]
        required: bool,
        /// Domains not allowed.
        #[serde(default)]
        except_domains: Option<Vec<String>>,
        /// The only domains allowed.
        #[serde(default)]
        only_domains: Option<Vec<String>>,
    },
    /// A URL.
    #[serde(rename_all = "camelCase")]
    Url {
        /// Non-empty required.
        #[serde(default)]
        required: bool,
        /// Hosts not allowed.
        #[serde(default)]
        except_domains: Option<Vec<String>>,
        /// The only hosts allowed.
        #[serde(default)]
        only_domains: Option<Vec<String>>,
    },
    /// Rich text (HTML).
    #[serde(rename_all = "camelCase")]
    Editor {
        /// Non-empty required.
        #[serde(default)]
        required: bool,
        /// Maximum size in bytes (0 = default 5 MiB).
        #[serde(default)]
        max_size: u64,
        /// UI option.
        #[serde(default, rename = "convertURLs")]
        convert_urls: bool,
    },
    /// A datetime.
    #[serde(rename_all = "camelCase")]
    Date {
        /// Non-empty required.
        #[serde(default)]
        required: bool,
        /// Earliest allowed (empty = none).
        #[serde(default)]
        min: String,
        /// Latest allowed (empty = none).
        #[serde(default)]
        max: String,
    },
    /// A datetime set by the server.
    #[serde(rename_all = "camelCase")]
    Autodate {
        /// Set on create.
        #[serde(default)]
        on_create: bool,
        /// Set on update.
        #[serde(default)]
        on_update: bool,
    },
    /// One or several values from a fixed list.
    #[serde(rename_all = "camelCase")]
    Select {
        /// Non-empty required.
        #[serde(default)]
        required: bool,
        /// The allowed values.
        #[serde(default)]
        values: Vec<String>,
        /// Maximum number of values; more than 1 makes the field multi-valued.
        #[serde(default)]
        max_select: u64,
    },
    /// Uploaded files (names stored in the row).
    #[serde(rename_all = "camelCase")]
    File {
        /// Non-empty required.
        #[serde(default)]
        required: bool,
        /// Maximum number of files; more than 1 makes the field multi-valued.
        #[serde(default)]
        max_select: u64,
        /// Maximum size of one file in bytes (0 = default 5 MiB).
        #[serde(default)]
        max_size: u64,
        /// Allowed MIME types (empty = any).
        #[serde(default)]
        mime_types: Option<Vec<String>>,
        /// Allowed thumb sizes.
        #[serde(default)]
        thumbs: Option<Vec<String>>,
        /// Whether downloads need a file token.
        #[serde(default)]
        protected: bool,
    },
    /// References to records of another collection.
    #[serde(rename_all = "camelCase")]
    Relation {
        /// Non-empty required.
        #[serde(default)]
        required: bool,
        /// The target collection id.
        #[serde(default)]
        collection_id: String,
        /// Delete this record when the last referenced record goes.
        #[serde(default)]
        cascade_delete: bool,
        /// Minimum number of ids.
        #[serde(default)]
        min_select: u64,
        /// Maximum number of ids; more than 1 makes the field multi-valued.
        #[serde(default)]
        max_select: u64,
    },
    /// Any JSON value.
    #[serde(rename_all = "camelCase")]
    Json {
        /// Rejects null, "", [] and {}.
        #[serde(default)]
        required: bool,
        /// Maximum size in bytes (0 = default 1 MiB).
        #[serde(default)]
        max_size: u64,
    },
    /// A longitude/latitude pair.
    #[serde(rename_all = "camelCase")]
    GeoPoint {
        /// Rejects (0, 0).
        #[serde(default)]
        required: bool,
    },
    /// A bcrypt-hashed password (auth collections).
    #[serde(rename_all = "camelCase")]
    Password {
        /// Non-empty required.
        #[serde(default)]
        required: bool,
        /// Minimum length.
        #[serde(default)]
        min: u64,
        /// Maximum length (at most 71).
        #[serde(default)]
        max: u64,
        /// Regex the plain password must match.
        #[serde(default)]
        pattern: String,
        /// bcrypt cost (0 = default 10).
        #[serde(default)]
        cost: u32,
    },
}

impl Field {
    /// Builds a field with a default id.
    pub fn new(name: &str, kind: FieldKind) -> Field {
        Field {
            id: crate::field_id(kind.type_name(), name),
            name: name.to_string(),
            system: false,
            hidden: false,
            presentable: false,
            help: String::new(),
            kind,
        }
    }

    /// Whether the field holds several values (a JSON array column).
    pub fn is_multiple(&self) -> bool {
        match &self.kind {
            FieldKind::Select { max_select, .. }
            | FieldKind::File { max_select, .. }
            | FieldKind::Relation { max_select, .. } => *max_select > 1,
            _ => false,
        }
    }

    /// Whether the field is a select, file or relation (supports `:each`, `:length`).
    pub fn is_list_kind(&self) -> bool {
        matches!(
            self.kind,
            FieldKind::Select { .. } | FieldKind::File { .. } | FieldKind::Relation { .. }
        )
    }

    /// The target collection id of a relation field.
    pub fn relation_target(&self) -> Option<&str> {
        match &self.kind {
            FieldKind::Relation { collection_id, .. } => Some(collection_id),
            _ => None,
        }
    }

    /// Whether the field is marked required.
    pub fn is_required(&self) -> bool {
        match &self.kind {
            FieldKind::Text { required, .. }
            | FieldKind::Number { required, .. }
            | FieldKind::Bool { required }
            | FieldKind::Email { required, .. }
            | FieldKind::Url { required, .. }
            | FieldKind::Editor { required, .. }
            | FieldKind::Date { required, .. }
            | FieldKind::Select { required, .. }
            | FieldKind::File { required, .. }
            | FieldKind::Relation { required, .. }
            | FieldKind::Json { required, .. }
            | FieldKind::GeoPoint { required }
            | FieldKind::Password { required, .. } => *required,
            FieldKind::Autodate { .. } => false,
        }
    }
}

impl FieldKind {
    /// The `type` string of the kind.
    pub fn type_name(&self) -> &'static str {
        match self {
            FieldKind::Text { .. } => "text",
            FieldKind::Number { .. } => "number",
            FieldKind::Bool { .. } => "bool",
            FieldKind::Email { .. } => "email",
            FieldKind::Url { .. } => "url",
            FieldKind::Editor { .. } => "editor",
            FieldKind::Date { .. } => "date",
            FieldKind::Autodate { .. } => "autodate",
            FieldKind::Select { .. } => "select",
            FieldKind::File { .. } => "file",
            FieldKind::Relation { .. } => "relation",
            FieldKind::Json { .. } => "json",
            FieldKind::GeoPoint { .. } => "geoPoint",
            FieldKind::Password { .. } => "password",
        }
    }

    /// A plain text kind with default options.
    pub fn text() -> FieldKind {
        FieldKind::Text {
            required: false,
            min: 0,
            max: 0,
            pattern: String::new(),
            autogenerate_pattern: String::new(),
            primary_key: false,
        }
    }
}
