//! The one place where rusqlite errors become [`StoreError`]s.
//!
//! | SQLite (extended) result code                      | [`ErrorKind`]          | details                     |
//! |----------------------------------------------------|------------------------|-----------------------------|
//! | `SQLITE_CONSTRAINT_UNIQUE`, `_PRIMARYKEY`          | `UniqueViolation`      | columns, or index name      |
//! | `SQLITE_CONSTRAINT_NOTNULL`                        | `NotNullViolation`     | column                      |
//! | `SQLITE_CONSTRAINT_CHECK`                          | `CheckViolation`       | constraint name/expression  |
//! | `SQLITE_CONSTRAINT_FOREIGNKEY`                     | `ForeignKeyViolation`  | (SQLite gives none)         |
//! | `SQLITE_BUSY*`, `SQLITE_LOCKED*`                   | `Busy`                 |                             |
//! | anything else, and non-SQLite rusqlite errors      | `Other`                |                             |

use basalt_store::{ErrorKind, StoreError};
use rusqlite::ffi;

/// Maps any rusqlite error. Nothing outside this crate sees a rusqlite type.
pub(crate) fn map_error(error: rusqlite::Error) -> StoreError {
    match &error {
        rusqlite::Error::SqliteFailure(code, message) => {
            let text = message.clone().unwrap_or_else(|| code.to_string());
            from_code(code, &text)
        }
        _ => StoreError::new(ErrorKind::Other, error.to_string()),
    }
}

/// Prefixes an error's message with what was being done, keeping its kind and details.
pub(crate) fn context(error: StoreError, doing: &str) -> StoreError {
    let mut wrapped = StoreError::new(error.kind(), format!("{doing}: {}", error.message()))
        .with_columns(error.columns().to_vec());
    if let Some(constraint) = error.constraint() {
        wrapped = wrapped.with_constraint(constraint);
    }
    wrapped
}

fn from_code(code: &ffi::Error, text: &str) -> StoreError {
    let message = format!("{text} (sqlite extended code {})", code.extended_code);
    match code.extended_code {
        ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
            let error = StoreError::new(ErrorKind::UniqueViolation, message);
            match parse_unique(text) {
                Violated::Columns(columns) => error.with_columns(columns),
                Violated::Index(index) => error.with_constraint(index),
                Violated::Unknown => error,
            }
        }
        ffi::SQLITE_CONSTRAINT_NOTNULL => {
            let columns = after(text, "NOT NULL constraint failed: ")
                .map(columns_of)
                .unwrap_or_default();
            StoreError::new(ErrorKind::NotNullViolation, message).with_columns(columns)
        }
        ffi::SQLITE_CONSTRAINT_CHECK => {
            let error = StoreError::new(ErrorKind::CheckViolation, message);
            match after(text, "CHECK constraint failed: ") {
                Some(name) if !name.is_empty() => error.with_constraint(name),
                _ => error,
            }
        }
        ffi::SQLITE_CONSTRAINT_FOREIGNKEY => {
            StoreError::new(ErrorKind::ForeignKeyViolation, message)
        }
        _ => match code.code {
            ffi::ErrorCode::DatabaseBusy | ffi::ErrorCode::DatabaseLocked => {
                StoreError::new(ErrorKind::Busy, message)
            }
            _ => StoreError::new(ErrorKind::Other, message),
        },
    }
}

#[derive(Debug, PartialEq)]
enum Violated {
    Columns(Vec<String>),
    Index(String),
    Unknown,
}

/// Parses `UNIQUE constraint failed: tbl.a, tbl.b` (columns `a`, `b`) and
/// `UNIQUE constraint failed: index 'idx'` (an index on expressions, named `idx`).
fn parse_unique(text: &str) -> Violated {
    let Some(rest) = after(text, "UNIQUE constraint failed: ") else {
        return Violated::Unknown;
    };
    if let Some(index) = rest
        .strip_prefix("index '")
        .and_then(|name| name.strip_suffix('\''))
    {
        return Violated::Index(index.to_owned());
    }
    let columns = columns_of(rest);
    if columns.is_empty() {
        Violated::Unknown
    } else {
        Violated::Columns(columns)
    }
}

fn after<'t>(text: &'t str, prefix: &str) -> Option<&'t str> {
    text.strip_prefix(prefix).map(str::trim)
}

/// `tbl.a, tbl.b` → `["a", "b"]`. Basalt's table names never contain a dot.
fn columns_of(list: &str) -> Vec<String> {
    list.split(", ")
        .map(|qualified| {
            qualified
                .split_once('.')
                .map_or(qualified, |(_, column)| column)
        })
        .filter(|column| !column.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(extended_code: i32, message: &str) -> StoreError {
        map_error(rusqlite::Error::SqliteFailure(
            ffi::Error::new(extended_code),
            Some(message.to_owned()),
        ))
    }

    #[test]
    fn unique_violation_lists_columns_without_table() {
        let error = failure(
            ffi::SQLITE_CONSTRAINT_UNIQUE,
            "UNIQUE constraint failed: users.a, users.b",
        );
        assert_eq!(error.kind(), ErrorKind::UniqueViolation);
        assert_eq!(error.columns(), ["a", "b"]);
        assert_eq!(error.constraint(), None);
    }

    #[test]
    fn primary_key_violation_is_a_unique_violation() {
        let error = failure(
            ffi::SQLITE_CONSTRAINT_PRIMARYKEY,
            "UNIQUE constraint failed: users.id",
        );
        assert_eq!(error.kind(), ErrorKind::UniqueViolation);
        assert_eq!(error.columns(), ["id"]);
    }

    #[test]
    fn unique_index_on_expression_reports_index_name() {
        let error = failure(
            ffi::SQLITE_CONSTRAINT_UNIQUE,
            "UNIQUE constraint failed: index 'idx_email'",
        );
        assert_eq!(error.kind(), ErrorKind::UniqueViolation);
        assert!(error.columns().is_empty());
        assert_eq!(error.constraint(), Some("idx_email"));
    }

    #[test]
    fn not_null_check_and_foreign_key_map_to_their_kinds() {
        let error = failure(
            ffi::SQLITE_CONSTRAINT_NOTNULL,
            "NOT NULL constraint failed: t.qty",
        );
        assert_eq!(
            (error.kind(), error.columns()),
            (ErrorKind::NotNullViolation, &["qty".to_owned()][..])
        );
        let error = failure(
            ffi::SQLITE_CONSTRAINT_CHECK,
            "CHECK constraint failed: qty_positive",
        );
        assert_eq!(
            (error.kind(), error.constraint()),
            (ErrorKind::CheckViolation, Some("qty_positive"))
        );
        let error = failure(
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY,
            "FOREIGN KEY constraint failed",
        );
        assert_eq!(error.kind(), ErrorKind::ForeignKeyViolation);
    }

    #[test]
    fn busy_and_locked_map_to_busy() {
        assert_eq!(
            failure(ffi::SQLITE_BUSY, "database is locked").kind(),
            ErrorKind::Busy
        );
        assert_eq!(
            failure(ffi::SQLITE_BUSY_SNAPSHOT, "database is locked").kind(),
            ErrorKind::Busy
        );
        assert_eq!(
            failure(ffi::SQLITE_LOCKED, "database table is locked").kind(),
            ErrorKind::Busy
        );
    }

    #[test]
    fn everything_else_is_other() {
        assert_eq!(
            failure(ffi::SQLITE_IOERR_FSYNC, "disk I/O error").kind(),
            ErrorKind::Other
        );
        assert_eq!(
            failure(ffi::SQLITE_ERROR, "no such table: nope").kind(),
            ErrorKind::Other
        );
        assert_eq!(
            map_error(rusqlite::Error::QueryReturnedNoRows).kind(),
            ErrorKind::Other
        );
    }

    #[test]
    fn unparseable_unique_message_still_maps_kind() {
        let error = failure(ffi::SQLITE_CONSTRAINT_UNIQUE, "something unexpected");
        assert_eq!(error.kind(), ErrorKind::UniqueViolation);
        assert!(error.columns().is_empty());
    }
}
