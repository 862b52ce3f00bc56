//! The one place where `postgres` errors become [`StoreError`]s.
//!
//! | SQLSTATE                                   | [`ErrorKind`]          | details                          |
//! |--------------------------------------------|------------------------|----------------------------------|
//! | 23505 unique_violation                     | `UniqueViolation`      | columns from `Key (a, b)=…`, constraint |
//! | 23503 foreign_key_violation                | `ForeignKeyViolation`  | columns from `Key (a)=…`, constraint    |
//! | 23502 not_null_violation                   | `NotNullViolation`     | column                           |
//! | 23514 check_violation                      | `CheckViolation`       | constraint                       |
//! | 40001, 40P01, 55P03                        | `Busy`                 | (serialization, deadlock, lock)  |
//! | 08xxx, 57P01–57P03, 53300; I/O, closed     | `Unavailable`          | (the connection is replaced)     |
//! | anything else                              | `Other`                |                                  |

use basalt_store::{ErrorKind, StoreError};
use postgres::error::DbError;

/// Maps any `postgres` error. Nothing outside this crate sees a driver type.
pub(crate) fn map_error(error: &postgres::Error) -> StoreError {
    if let Some(db) = error.as_db_error() {
        return from_db(db);
    }
    if is_connection_lost(error) {
        return StoreError::new(
            ErrorKind::Unavailable,
            format!("postgres connection lost: {}", chain(error)),
        );
    }
    StoreError::new(ErrorKind::Other, chain(error))
}

/// The error and its sources: the driver's own message is often only "error
/// serializing parameter 0", with the reason in the source.
fn chain(error: &postgres::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Whether the connection that produced `error` is unusable and must be replaced.
pub(crate) fn is_connection_lost(error: &postgres::Error) -> bool {
    if error.is_closed() {
        return true;
    }
    if let Some(db) = error.as_db_error() {
        return kind_of(db.code().code()) == ErrorKind::Unavailable;
    }
    std::error::Error::source(error).is_some_and(|source| source.is::<std::io::Error>())
}

fn kind_of(sqlstate: &str) -> ErrorKind {
    match sqlstate {
        "23505" => ErrorKind::UniqueViolation,
        "23503" => ErrorKind::ForeignKeyViolation,
        "23502" => ErrorKind::NotNullViolation,
        "23514" => ErrorKind::CheckViolation,
        "40001" | "40P01" | "55P03" => ErrorKind::Busy,
        "57P01" | "57P02" | "57P03" | "53300" => ErrorKind::Unavailable,
        code if code.starts_with("08") => ErrorKind::Unavailable,
        _ => ErrorKind::Other,
    }
}

fn from_db(db: &DbError) -> StoreError {
    let sqlstate = db.code().code();
    let kind = kind_of(sqlstate);
    let mut message = format!("{} (SQLSTATE {sqlstate})", db.message());
    if let Some(detail) = db.detail() {
        message.push_str(": ");
        message.push_str(detail);
    }
    let mut error = StoreError::new(kind, message);
    match kind {
        ErrorKind::UniqueViolation | ErrorKind::ForeignKeyViolation => {
            error = error.with_columns(db.detail().map(key_columns).unwrap_or_default());
        }
        ErrorKind::NotNullViolation => {
            error = error.with_columns(db.column().map(str::to_owned).into_iter().collect());
        }
        _ => {}
    }
    if let Some(constraint) = db.constraint() {
        error = error.with_constraint(constraint);
    }
    error
}

/// `Key (a, "B c")=(1, 2) already exists.` → `["a", "B c"]`. A key over an expression,
/// `Key (lower(email))=(…)`, has no plain columns and gives `[]`.
pub(crate) fn key_columns(detail: &str) -> Vec<String> {
    let Some(rest) = detail.strip_prefix("Key (") else {
        return Vec::new();
    };
    let mut parts = Vec::new();
    let mut current = String::new();
    let (mut depth, mut quoted) = (0usize, false);
    let mut closed = false;
    for ch in rest.chars() {
        match ch {
            '"' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth == 0 => {
                closed = true;
                break;
            }
            ')' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(ch);
    }
    if !closed {
        return Vec::new();
    }
    parts.push(current);
    let mut columns = Vec::with_capacity(parts.len());
    for part in &parts {
        match column_name(part.trim()) {
            Some(column) => columns.push(column),
            None => return Vec::new(),
        }
    }
    columns
}

/// A plain or double-quoted identifier; `None` for an expression.
fn column_name(part: &str) -> Option<String> {
    if let Some(inner) = part
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    {
        return Some(inner.replace("\"\"", "\""));
    }
    let plain = !part.is_empty()
        && !part.starts_with(|ch: char| ch.is_ascii_digit())
        && part
            .chars()
            .all(|ch| ch.is_alphanumeric() || ch == '_' || ch == '$');
    plain.then(|| part.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_detail_lists_plain_and_quoted_columns() {
        assert_eq!(key_columns("Key (a, b)=(1, 2) already exists."), ["a", "b"]);
        assert_eq!(key_columns("Key (id)=(1) already exists."), ["id"]);
        assert_eq!(
            key_columns(r#"Key ("Odd, ""name""", b)=(x, y) already exists."#),
            [r#"Odd, "name""#, "b"]
        );
        assert_eq!(
            key_columns(r#"Key (parent_id)=(5) is not present in table "parent"."#),
            ["parent_id"]
        );
    }

    #[test]
    fn key_over_an_expression_has_no_columns() {
        assert!(key_columns("Key (lower(email))=(a@b.c) already exists.").is_empty());
        assert!(key_columns("Key (a, (b + 1))=(1, 2) already exists.").is_empty());
    }

    #[test]
    fn unexpected_detail_has_no_columns() {
        assert!(key_columns("something else").is_empty());
        assert!(key_columns("Key (unterminated").is_empty());
    }

    #[test]
    fn sqlstates_map_to_kinds() {
        let table = [
            ("23505", ErrorKind::UniqueViolation),
            ("23503", ErrorKind::ForeignKeyViolation),
            ("23502", ErrorKind::NotNullViolation),
            ("23514", ErrorKind::CheckViolation),
            ("40001", ErrorKind::Busy),
            ("40P01", ErrorKind::Busy),
            ("55P03", ErrorKind::Busy),
            ("08006", ErrorKind::Unavailable),
            ("57P01", ErrorKind::Unavailable),
            ("53300", ErrorKind::Unavailable),
            ("42P01", ErrorKind::Other),
            ("25006", ErrorKind::Other),
        ];
        for (sqlstate, kind) in table {
            assert_eq!(kind_of(sqlstate), kind, "{sqlstate}");
        }
    }
}
