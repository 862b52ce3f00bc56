//! SQL of the one-time-password, MFA session and OAuth2 link tables (`_otps`, `_mfas`,
//! `_externalAuths`). Times are unix seconds; the tables are internal (no collection, no
//! API of their own).

use crate::{Dialect, SqlQuery, Value};

/// `CREATE TABLE` statements of both tables and their lookup index.
pub fn tables(dialect: Dialect) -> Vec<String> {
    let text = match dialect {
        Dialect::Sqlite => "TEXT",
        Dialect::Postgres => "TEXT COLLATE \"C\"",
    };
    vec![
        format!(
            "CREATE TABLE IF NOT EXISTS \"_otps\" (\
             \"id\" {text} PRIMARY KEY NOT NULL, \
             \"collectionRef\" {text} NOT NULL, \
             \"recordRef\" {text} NOT NULL, \
             \"password\" {text} NOT NULL, \
             \"sentTo\" {text} DEFAULT '' NOT NULL, \
             \"failures\" BIGINT DEFAULT 0 NOT NULL, \
             \"created\" BIGINT NOT NULL)"
        ),
        "CREATE INDEX IF NOT EXISTS \"idx_otps_record\" ON \"_otps\" (\"collectionRef\", \"recordRef\")"
            .to_string(),
        format!(
            "CREATE TABLE IF NOT EXISTS \"_mfas\" (\
             \"id\" {text} PRIMARY KEY NOT NULL, \
             \"collectionRef\" {text} NOT NULL, \
             \"recordRef\" {text} NOT NULL, \
             \"method\" {text} NOT NULL, \
             \"created\" BIGINT NOT NULL)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS \"_externalAuths\" (\
             \"id\" {text} PRIMARY KEY NOT NULL, \
             \"collectionRef\" {text} NOT NULL, \
             \"recordRef\" {text} NOT NULL, \
             \"provider\" {text} NOT NULL, \
             \"providerId\" {text} NOT NULL, \
             \"created\" BIGINT NOT NULL)"
        ),
        "CREATE UNIQUE INDEX IF NOT EXISTS \"idx_externalAuths_provider\" ON \"_externalAuths\" (\"collectionRef\", \"provider\", \"providerId\")"
            .to_string(),
        "CREATE UNIQUE INDEX IF NOT EXISTS \"idx_externalAuths_record\" ON \"_externalAuths\" (\"collectionRef\", \"recordRef\", \"provider\")"
            .to_string(),
    ]
}

fn query(dialect: Dialect, sql: &str, binds: Vec<Value>) -> SqlQuery {
    // Statements are written with `?N`; PostgreSQL wants `$N`.
    let sql = match dialect {
        Dialect::Sqlite => sql.to_string(),
        Dialect::Postgres => sql.replace('?', "$"),
    };
    SqlQuery::with_binds(sql, binds)
}

fn text(value: &str) -> Value {
    Value::Text(value.to_string())
}

/// Stores an OTP (its code hashed).
pub fn otp_insert(
    dialect: Dialect,
    id: &str,
    collection: &str,
    record: &str,
    hash: &str,
    sent_to: &str,
    created: i64,
) -> SqlQuery {
    query(
        dialect,
        "INSERT INTO \"_otps\" (\"id\", \"collectionRef\", \"recordRef\", \"password\", \"sentTo\", \"failures\", \"created\") VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6)",
        vec![
            text(id),
            text(collection),
            text(record),
            text(hash),
            text(sent_to),
            Value::Int(created),
        ],
    )
}

/// `recordRef, password, sentTo, failures, created` of an OTP of a collection.
pub fn otp_get(dialect: Dialect, id: &str, collection: &str) -> SqlQuery {
    query(
        dialect,
        "SELECT \"recordRef\", \"password\", \"sentTo\", \"failures\", \"created\" FROM \"_otps\" WHERE \"id\" = ?1 AND \"collectionRef\" = ?2",
        vec![text(id), text(collection)],
    )
}

/// How many OTPs of a record were created at or after `since`.
pub fn otp_count_since(dialect: Dialect, collection: &str, record: &str, since: i64) -> SqlQuery {
    query(
        dialect,
        "SELECT COUNT(*) FROM \"_otps\" WHERE \"collectionRef\" = ?1 AND \"recordRef\" = ?2 AND \"created\" >= ?3",
        vec![text(collection), text(record), Value::Int(since)],
    )
}

/// Counts a wrong code against every OTP of the record.
pub fn otp_fail(dialect: Dialect, collection: &str, record: &str) -> SqlQuery {
    query(
        dialect,
        "UPDATE \"_otps\" SET \"failures\" = \"failures\" + 1 WHERE \"collectionRef\" = ?1 AND \"recordRef\" = ?2",
        vec![text(collection), text(record)],
    )
}

/// The highest failure count of the record's OTPs.
pub fn otp_max_failures(dialect: Dialect, collection: &str, record: &str) -> SqlQuery {
    query(
        dialect,
        "SELECT COALESCE(MAX(\"failures\"), 0) FROM \"_otps\" WHERE \"collectionRef\" = ?1 AND \"recordRef\" = ?2",
        vec![text(collection), text(record)],
    )
}

/// Deletes every OTP of a record.
pub fn otp_delete_record(dialect: Dialect, collection: &str, record: &str) -> SqlQuery {
    query(
        dialect,
        "DELETE FROM \"_otps\" WHERE \"collectionRef\" = ?1 AND \"recordRef\" = ?2",
        vec![text(collection), text(record)],
    )
}

/// Deletes one OTP (0 rows affected: someone else spent it first).
pub fn otp_delete(dialect: Dialect, id: &str) -> SqlQuery {
    query(
        dialect,
        "DELETE FROM \"_otps\" WHERE \"id\" = ?1",
        vec![text(id)],
    )
}

/// Deletes OTPs and MFA sessions created before `before` (expired).
pub fn prune(dialect: Dialect, before: i64) -> Vec<SqlQuery> {
    ["_otps", "_mfas"]
        .iter()
        .map(|table| {
            query(
                dialect,
                &format!("DELETE FROM \"{table}\" WHERE \"created\" < ?1"),
                vec![Value::Int(before)],
            )
        })
        .collect()
}

/// Stores an MFA session: the first method a record passed.
pub fn mfa_insert(
    dialect: Dialect,
    id: &str,
    collection: &str,
    record: &str,
    method: &str,
    created: i64,
) -> SqlQuery {
    query(
        dialect,
        "INSERT INTO \"_mfas\" (\"id\", \"collectionRef\", \"recordRef\", \"method\", \"created\") VALUES (?1, ?2, ?3, ?4, ?5)",
        vec![
            text(id),
            text(collection),
            text(record),
            text(method),
            Value::Int(created),
        ],
    )
}

/// `method, created` of a record's MFA session.
pub fn mfa_get(dialect: Dialect, id: &str, collection: &str, record: &str) -> SqlQuery {
    query(
        dialect,
        "SELECT \"method\", \"created\" FROM \"_mfas\" WHERE \"id\" = ?1 AND \"collectionRef\" = ?2 AND \"recordRef\" = ?3",
        vec![text(id), text(collection), text(record)],
    )
}

/// Deletes one MFA session.
pub fn mfa_delete(dialect: Dialect, id: &str) -> SqlQuery {
    query(
        dialect,
        "DELETE FROM \"_mfas\" WHERE \"id\" = ?1",
        vec![text(id)],
    )
}

/// `recordRef` of the link of a provider identity in a collection.
pub fn external_auth_get(
    dialect: Dialect,
    collection: &str,
    provider: &str,
    provider_id: &str,
) -> SqlQuery {
    query(
        dialect,
        "SELECT \"recordRef\" FROM \"_externalAuths\" WHERE \"collectionRef\" = ?1 AND \"provider\" = ?2 AND \"providerId\" = ?3",
        vec![text(collection), text(provider), text(provider_id)],
    )
}

/// Links a provider identity to a record; replaces an older link of the record to the
/// same provider (run [`external_auth_unlink_provider`] first).
pub fn external_auth_insert(
    dialect: Dialect,
    id: &str,
    collection: &str,
    record: &str,
    provider: &str,
    provider_id: &str,
    created: i64,
) -> SqlQuery {
    query(
        dialect,
        "INSERT INTO \"_externalAuths\" (\"id\", \"collectionRef\", \"recordRef\", \"provider\", \"providerId\", \"created\") VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        vec![
            text(id),
            text(collection),
            text(record),
            text(provider),
            text(provider_id),
            Value::Int(created),
        ],
    )
}

/// Removes the link of a record to one provider.
pub fn external_auth_unlink_provider(
    dialect: Dialect,
    collection: &str,
    record: &str,
    provider: &str,
) -> SqlQuery {
    query(
        dialect,
        "DELETE FROM \"_externalAuths\" WHERE \"collectionRef\" = ?1 AND \"recordRef\" = ?2 AND \"provider\" = ?3",
        vec![text(collection), text(record), text(provider)],
    )
}

/// Removes every link of a record (its account changed hands or it is gone).
pub fn external_auth_unlink_record(dialect: Dialect, collection: &str, record: &str) -> SqlQuery {
    query(
        dialect,
        "DELETE FROM \"_externalAuths\" WHERE \"collectionRef\" = ?1 AND \"recordRef\" = ?2",
        vec![text(collection), text(record)],
    )
}

/// How many links a record has.
pub fn external_auth_count(dialect: Dialect, collection: &str, record: &str) -> SqlQuery {
    query(
        dialect,
        "SELECT COUNT(*) FROM \"_externalAuths\" WHERE \"collectionRef\" = ?1 AND \"recordRef\" = ?2",
        vec![text(collection), text(record)],
    )
}
