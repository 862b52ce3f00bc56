//! SQL of the one-time-password, MFA session and OAuth2 link tables (`_otps`, `_mfas`,
//! `_externalAuths`). `_otps` and `_mfas` are internal tables (no collection, no API of
//! their own) with times in unix seconds; `_externalAuths` is the table of a system
//! collection (created with the collection's DDL, dates as record dates), which data
//! dirs from before had as an internal table too ([`legacy_external_auths_exists`]).

use crate::{Dialect, SqlQuery, Value};

/// `CREATE TABLE` statements of `_otps` and `_mfas` and the lookup index.
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
    ]
}

/// The internal tables of [`tables`] with their columns in table order (the first is the
/// primary key `id`), for copying them whole (`basalt migrate-data`).
pub const INTERNAL_TABLES: &[(&str, &[&str])] = &[
    (
        "_otps",
        &[
            "id",
            "collectionRef",
            "recordRef",
            "password",
            "sentTo",
            "failures",
            "created",
        ],
    ),
    (
        "_mfas",
        &["id", "collectionRef", "recordRef", "method", "created"],
    ),
];

/// Up to `limit` rows of an internal table (one of [`INTERNAL_TABLES`]) with an id after
/// `after`, in id order, `columns` selected.
pub fn internal_page(
    dialect: Dialect,
    table: &str,
    columns: &[&str],
    after: &str,
    limit: i64,
) -> SqlQuery {
    let list: Vec<String> = columns.iter().map(|c| dialect.quote_ident(c)).collect();
    let sql = format!(
        "SELECT {} FROM {} WHERE \"id\" > {} ORDER BY \"id\" LIMIT {limit}",
        list.join(", "),
        dialect.quote_ident(table),
        dialect.placeholder(1)
    );
    SqlQuery::with_binds(sql, vec![text(after)])
}

/// `INSERT` of one row of an internal table, values in `columns` order.
pub fn internal_insert(
    dialect: Dialect,
    table: &str,
    columns: &[&str],
    row: Vec<Value>,
) -> SqlQuery {
    let list: Vec<String> = columns.iter().map(|c| dialect.quote_ident(c)).collect();
    let marks: Vec<String> = (1..=columns.len())
        .map(|n| dialect.placeholder(n))
        .collect();
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({})",
        dialect.quote_ident(table),
        list.join(", "),
        marks.join(", ")
    );
    SqlQuery::with_binds(sql, row)
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
/// same provider (run [`external_auth_unlink_provider`] first). `now` is a record date
/// (`2024-01-02 03:04:05.678Z`), the link's `created` and `updated`.
pub fn external_auth_insert(
    dialect: Dialect,
    id: &str,
    collection: &str,
    record: &str,
    provider: &str,
    provider_id: &str,
    now: &str,
) -> SqlQuery {
    query(
        dialect,
        "INSERT INTO \"_externalAuths\" (\"id\", \"collectionRef\", \"recordRef\", \"provider\", \"providerId\", \"created\", \"updated\") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        vec![
            text(id),
            text(collection),
            text(record),
            text(provider),
            text(provider_id),
            text(now),
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

/// Whether the table `_externalAuths` exists (one row if it does). Asked only while the
/// `_externalAuths` collection is missing: the table is then the internal one of a data
/// dir from before (`created` in unix seconds, no `updated`).
pub fn legacy_external_auths_exists(dialect: Dialect) -> SqlQuery {
    let sql = match dialect {
        Dialect::Sqlite => {
            "SELECT 1 FROM \"sqlite_master\" WHERE \"type\" = 'table' AND \"name\" = '_externalAuths'"
        }
        Dialect::Postgres => {
            "SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = '_externalAuths'"
        }
    };
    SqlQuery::new(sql)
}

/// The name the internal table is renamed to while its rows move to the collection's.
const LEGACY: &str = "_externalAuths_legacy";

/// Puts the internal `_externalAuths` table (and its indexes) aside, so the
/// collection's table can be created under the name; [`legacy_external_auths_copy`]
/// then moves the rows over and drops it.
pub fn legacy_external_auths_set_aside(dialect: Dialect) -> Vec<String> {
    let mut statements = vec![
        "DROP INDEX IF EXISTS \"idx_externalAuths_provider\"".to_string(),
        "DROP INDEX IF EXISTS \"idx_externalAuths_record\"".to_string(),
        format!("ALTER TABLE \"_externalAuths\" RENAME TO \"{LEGACY}\""),
    ];
    if dialect == Dialect::Postgres {
        // The primary key's index keeps its name through the rename.
        statements.push(format!(
            "ALTER INDEX IF EXISTS \"_externalAuths_pkey\" RENAME TO \"{LEGACY}_pkey\""
        ));
    }
    statements
}

/// Copies the set-aside links into the collection's table (ids kept, `created` turned
/// from unix seconds into a record date, `updated` the same) and drops the old table.
pub fn legacy_external_auths_copy(dialect: Dialect) -> Vec<String> {
    let date = match dialect {
        Dialect::Sqlite => "strftime('%Y-%m-%d %H:%M:%fZ', \"created\", 'unixepoch')",
        Dialect::Postgres => {
            "to_char(to_timestamp(\"created\") AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS\"Z\"')"
        }
    };
    vec![
        format!(
            "INSERT INTO \"_externalAuths\" (\"id\", \"collectionRef\", \"recordRef\", \"provider\", \"providerId\", \"created\", \"updated\") \
             SELECT \"id\", \"collectionRef\", \"recordRef\", \"provider\", \"providerId\", {date}, {date} FROM \"{LEGACY}\""
        ),
        format!("DROP TABLE \"{LEGACY}\""),
    ]
}
