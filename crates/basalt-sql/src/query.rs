//! The values and statements that cross from `basalt-sql` to a storage backend.

/// The SQL dialects Basalt emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// SQLite (bundled, via rusqlite). Placeholders are `?1`, `?2`, ...
    Sqlite,
    /// PostgreSQL. Placeholders are `$1`, `$2`, ...
    Postgres,
}

impl Dialect {
    /// The placeholder for the bind at 1-based position `n`.
    pub fn placeholder(self, n: usize) -> String {
        match self {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => format!("${n}"),
        }
    }

    /// Quotes an identifier that comes from the schema (never from user text).
    pub fn quote_ident(self, ident: &str) -> String {
        format!("\"{}\"", ident.replace('"', "\"\""))
    }
}

/// A value bound to a statement parameter or read from a result column.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A boolean (SQLite stores it as 0/1).
    Bool(bool),
    /// A 64-bit integer.
    Int(i64),
    /// A double.
    Float(f64),
    /// Text (JSON columns travel as text too).
    Text(String),
    /// Raw bytes.
    Blob(Vec<u8>),
}

impl Value {
    /// The text inside, if this is a `Text`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    /// Whether this is NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

/// A statement with its bound parameters, ready for a backend.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SqlQuery {
    /// SQL text with dialect placeholders; contains no user-supplied text.
    pub sql: String,
    /// The parameters, in placeholder order.
    pub binds: Vec<Value>,
}

impl SqlQuery {
    /// A statement without parameters.
    pub fn new(sql: impl Into<String>) -> Self {
        SqlQuery {
            sql: sql.into(),
            binds: Vec::new(),
        }
    }

    /// A statement with parameters.
    pub fn with_binds(sql: impl Into<String>, binds: Vec<Value>) -> Self {
        SqlQuery {
            sql: sql.into(),
            binds,
        }
    }
}
