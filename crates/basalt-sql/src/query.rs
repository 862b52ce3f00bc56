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
        let mut out = String::with_capacity(4);
        self.push_placeholder(&mut out, n);
        out
    }

    /// [`Dialect::placeholder`] appended to `out`, without a string of its own.
    pub fn push_placeholder(self, out: &mut String, n: usize) {
        out.push(match self {
            Dialect::Sqlite => '?',
            Dialect::Postgres => '$',
        });
        // Digits by hand: `write!` costs ~200 instructions a placeholder, and an INSERT
        // has one per field (measured: +2k instructions per create).
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut rest = n;
        loop {
            at -= 1;
            digits[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        for &digit in &digits[at..] {
            out.push(char::from(digit));
        }
    }

    /// Quotes an identifier that comes from the schema (never from user text).
    pub fn quote_ident(self, ident: &str) -> String {
        let mut out = String::with_capacity(ident.len() + 2);
        self.push_ident(&mut out, ident);
        out
    }

    /// [`Dialect::quote_ident`] appended to `out`, without allocating a string of its own.
    pub fn push_ident(self, out: &mut String, ident: &str) {
        out.push('"');
        // Names without a quote (every validated field name) are copied as they are; the
        // split below was ~2% of a view by id.
        if !ident.as_bytes().contains(&b'"') {
            out.push_str(ident);
            out.push('"');
            return;
        }
        for part in ident.split_inclusive('"') {
            out.push_str(part);
            if part.ends_with('"') {
                out.push('"');
            }
        }
        out.push('"');
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

#[cfg(test)]
mod tests {
    use super::Dialect;

    #[test]
    fn pushed_placeholders_match_formatted_ones() {
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            for n in [0, 1, 9, 10, 11, 99, 100, 65_535, usize::MAX] {
                let mut out = String::from("x");
                dialect.push_placeholder(&mut out, n);
                let expected = match dialect {
                    Dialect::Sqlite => format!("x?{n}"),
                    Dialect::Postgres => format!("x${n}"),
                };
                assert_eq!(out, expected);
                assert_eq!(dialect.placeholder(n), expected[1..]);
            }
        }
    }

    #[test]
    fn identifiers_are_quoted_with_inner_quotes_doubled() {
        let cases = [
            ("posts", "\"posts\""),
            ("", "\"\""),
            ("a\"b", "\"a\"\"b\""),
            ("\"", "\"\"\"\""),
            ("x\"\"", "\"x\"\"\"\"\""),
        ];
        for (ident, quoted) in cases {
            assert_eq!(Dialect::Sqlite.quote_ident(ident), quoted, "{ident:?}");
            let mut out = String::from("t.");
            Dialect::Postgres.push_ident(&mut out, ident);
            assert_eq!(out, format!("t.{quoted}"), "{ident:?}");
        }
    }
}
