//! DDL: system tables, collection tables, indexes, and schema migrations.
//!
//! Index statements come from superusers as text; they are parsed into
//! `basalt_schema::IndexDef` and re-emitted from validated parts, never passed through.

use basalt_schema::{Collection, Field, FieldKind, parse_index};

use crate::Dialect;

fn q(dialect: Dialect, ident: &str) -> String {
    dialect.quote_ident(ident)
}

/// The statements that create Basalt's system tables if they are missing.
pub fn system_tables(dialect: Dialect) -> Vec<String> {
    let json = match dialect {
        Dialect::Sqlite => "JSON",
        Dialect::Postgres => "JSONB",
    };
    let text = text_type(dialect);
    vec![
        format!(
            "CREATE TABLE IF NOT EXISTS \"_collections\" (\
             \"id\" {text} PRIMARY KEY NOT NULL, \
             \"system\" BOOLEAN DEFAULT FALSE NOT NULL, \
             \"type\" {text} DEFAULT 'base' NOT NULL, \
             \"name\" {text} UNIQUE NOT NULL, \
             \"fields\" {json} DEFAULT '[]' NOT NULL, \
             \"indexes\" {json} DEFAULT '[]' NOT NULL, \
             \"listRule\" {text} DEFAULT NULL, \
             \"viewRule\" {text} DEFAULT NULL, \
             \"createRule\" {text} DEFAULT NULL, \
             \"updateRule\" {text} DEFAULT NULL, \
             \"deleteRule\" {text} DEFAULT NULL, \
             \"options\" {json} DEFAULT '{{}}' NOT NULL, \
             \"created\" {text} DEFAULT '' NOT NULL, \
             \"updated\" {text} DEFAULT '' NOT NULL)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS \"_params\" (\
             \"id\" {text} PRIMARY KEY NOT NULL, \
             \"value\" {json} DEFAULT NULL, \
             \"created\" {text} DEFAULT '' NOT NULL, \
             \"updated\" {text} DEFAULT '' NOT NULL)"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS \"_migrations\" (\
             \"file\" {text} PRIMARY KEY NOT NULL, \
             \"applied\" BIGINT NOT NULL)"
        ),
    ]
    .into_iter()
    .chain(crate::authflow::tables(dialect))
    .chain(compat_functions(dialect))
    .chain(auth_cleanup_function(dialect))
    .collect()
}

/// The tables whose rows belong to an auth record (by `collectionRef` and `recordRef`)
/// and go when it is deleted: its OAuth2 links, OTPs and MFA sessions.
const AUTH_RECORD_TABLES: [&str; 3] = ["_externalAuths", "_otps", "_mfas"];

/// PostgreSQL: the trigger function of [`auth_cleanup_trigger`] (the collection id is
/// its argument).
fn auth_cleanup_function(dialect: Dialect) -> Vec<String> {
    match dialect {
        Dialect::Sqlite => Vec::new(),
        Dialect::Postgres => {
            let deletes: String = AUTH_RECORD_TABLES
                .iter()
                .map(|table| {
                    format!(
                        "DELETE FROM \"{table}\" WHERE \"collectionRef\" = TG_ARGV[0] AND \"recordRef\" = OLD.\"id\"; "
                    )
                })
                .collect();
            vec![format!(
                "CREATE OR REPLACE FUNCTION \"_basalt_auth_record_deleted\"() RETURNS trigger \
                 LANGUAGE plpgsql AS $$ BEGIN {deletes}RETURN OLD; END $$"
            )]
        }
    }
}

/// The trigger that deletes an auth record's OAuth2 links, OTPs and MFA sessions with
/// it (any delete: the records API, a cascade, a truncate). Named by the collection id,
/// which never changes; it follows the table through renames and goes with it.
pub fn auth_cleanup_trigger(collection: &Collection, dialect: Dialect) -> Vec<String> {
    if !collection.is_auth() {
        return Vec::new();
    }
    let name = q(dialect, &format!("_basalt_auth_cleanup_{}", collection.id));
    let table = q(dialect, &collection.name);
    let id = collection.id.replace('\'', "''");
    match dialect {
        Dialect::Sqlite => {
            let deletes: String = AUTH_RECORD_TABLES
                .iter()
                .map(|t| {
                    format!(
                        "DELETE FROM \"{t}\" WHERE \"collectionRef\" = '{id}' AND \"recordRef\" = OLD.\"id\"; "
                    )
                })
                .collect();
            vec![format!(
                "CREATE TRIGGER IF NOT EXISTS {name} AFTER DELETE ON {table} FOR EACH ROW BEGIN {deletes}END"
            )]
        }
        Dialect::Postgres => vec![
            format!("DROP TRIGGER IF EXISTS {name} ON {table}"),
            format!(
                "CREATE TRIGGER {name} AFTER DELETE ON {table} FOR EACH ROW \
                 EXECUTE FUNCTION \"_basalt_auth_record_deleted\"('{id}')"
            ),
        ],
    }
}

/// SQLite functions that view queries written for PocketBase use, defined on PostgreSQL
/// so the same query runs on both (`TOTAL`: a float sum that is 0 for no rows).
fn compat_functions(dialect: Dialect) -> Vec<String> {
    match dialect {
        Dialect::Sqlite => Vec::new(),
        Dialect::Postgres => vec![
            "CREATE OR REPLACE AGGREGATE total(double precision) \
             (SFUNC = float8pl, STYPE = float8, INITCOND = '0')"
                .to_string(),
        ],
    }
}

fn text_type(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "TEXT",
        Dialect::Postgres => "TEXT COLLATE \"C\"",
    }
}

/// The column definition of a field.
pub fn column_def(field: &Field, dialect: Dialect) -> String {
    let name = q(dialect, &field.name);
    let text = text_type(dialect);
    let json = match dialect {
        Dialect::Sqlite => "JSON",
        Dialect::Postgres => "JSONB",
    };
    let number = match dialect {
        Dialect::Sqlite => "NUMERIC",
        Dialect::Postgres => "DOUBLE PRECISION",
    };
    let ty = match &field.kind {
        FieldKind::Text {
            primary_key: true, ..
        } => {
            return format!("{name} {text} PRIMARY KEY NOT NULL");
        }
        FieldKind::Number { .. } => format!("{number} DEFAULT 0 NOT NULL"),
        FieldKind::Bool { .. } => "BOOLEAN DEFAULT FALSE NOT NULL".to_string(),
        FieldKind::Json { .. } => format!("{json} DEFAULT NULL"),
        FieldKind::GeoPoint { .. } => {
            format!("{json} DEFAULT '{{\"lon\":0,\"lat\":0}}' NOT NULL")
        }
        FieldKind::Select { .. } | FieldKind::File { .. } | FieldKind::Relation { .. }
            if field.is_multiple() =>
        {
            format!("{json} DEFAULT '[]' NOT NULL")
        }
        _ => format!("{text} DEFAULT '' NOT NULL"),
    };
    format!("{name} {ty}")
}

/// `CREATE TABLE` for a base or auth collection, followed by its indexes (and for an
/// auth collection the trigger of [`auth_cleanup_trigger`]).
pub fn create_collection(collection: &Collection, dialect: Dialect) -> Vec<String> {
    let columns: Vec<String> = collection
        .fields
        .iter()
        .map(|field| column_def(field, dialect))
        .collect();
    let mut statements = vec![format!(
        "CREATE TABLE {} ({})",
        q(dialect, &collection.name),
        columns.join(", ")
    )];
    statements.extend(create_indexes(collection, dialect));
    statements.extend(auth_cleanup_trigger(collection, dialect));
    statements
}

/// `CREATE INDEX` statements for a collection, rebuilt from their parsed parts.
/// Statements that do not parse, or that reference anything but plain fields, are skipped
/// (collection validation rejects them before they are saved).
pub fn create_indexes(collection: &Collection, dialect: Dialect) -> Vec<String> {
    collection
        .indexes
        .iter()
        .filter_map(|sql| index_statement(collection, sql, dialect))
        .collect()
}

/// Whether an index statement is one Basalt can re-emit safely.
pub fn index_is_supported(collection: &Collection, sql: &str) -> bool {
    index_statement(collection, sql, Dialect::Sqlite).is_some()
}

fn index_statement(collection: &Collection, sql: &str, dialect: Dialect) -> Option<String> {
    let index = parse_index(sql)?;
    let raw_columns = column_list(sql)?;
    let mut columns = Vec::new();
    for (plain, raw) in index.columns.iter().zip(raw_columns) {
        collection.field(plain)?;
        let nocase = raw.to_ascii_uppercase().contains("COLLATE NOCASE");
        let desc = raw.to_ascii_uppercase().ends_with(" DESC");
        let mut column = match (nocase, dialect) {
            (true, Dialect::Sqlite) => format!("{} COLLATE NOCASE", q(dialect, plain)),
            (true, Dialect::Postgres) => format!("(LOWER({}))", q(dialect, plain)),
            (false, _) => q(dialect, plain),
        };
        if desc {
            column.push_str(" DESC");
        }
        columns.push(column);
    }
    let condition = match &index.condition {
        None => String::new(),
        Some(text) => format!(" WHERE {}", simple_condition(collection, text, dialect)?),
    };
    Some(format!(
        "CREATE {}INDEX {} ON {} ({}){}",
        if index.unique { "UNIQUE " } else { "" },
        q(dialect, &index.name),
        q(dialect, &collection.name),
        columns.join(", "),
        condition
    ))
}

fn column_list(sql: &str) -> Option<Vec<String>> {
    let open = sql.find('(')?;
    let close = sql.rfind(')')?;
    (open < close).then(|| {
        sql[open + 1..close]
            .split(',')
            .map(|c| c.trim().to_string())
            .collect()
    })
}

/// Accepts only `col != ''`, `col <> ''`, `col = ''` style conditions over known fields.
fn simple_condition(collection: &Collection, text: &str, dialect: Dialect) -> Option<String> {
    let cleaned: String = text
        .chars()
        .filter(|c| !matches!(c, '`' | '"' | '[' | ']'))
        .collect();
    let mut parts = cleaned.split_whitespace();
    let column = parts.next()?;
    let op = parts.next()?;
    let value = parts.next()?;
    if parts.next().is_some() || value != "''" || !matches!(op, "!=" | "<>" | "=") {
        return None;
    }
    collection.field(column)?;
    Some(format!("{} {} ''", q(dialect, column), op))
}

/// `DROP INDEX` statements for every index of a collection.
pub fn drop_indexes(collection: &Collection, dialect: Dialect) -> Vec<String> {
    collection
        .indexes
        .iter()
        .filter_map(|sql| parse_index(sql))
        .map(|index| format!("DROP INDEX IF EXISTS {}", q(dialect, &index.name)))
        .collect()
}

/// Statements that turn the table of `old` into the table of `new` in place, keeping
/// data: rename table, drop removed columns, rename renamed ones (matched by field id),
/// add new ones, and rebuild indexes.
pub fn migrate_collection(old: &Collection, new: &Collection, dialect: Dialect) -> Vec<String> {
    let mut statements = drop_indexes(old, dialect);
    if old.name != new.name {
        statements.push(format!(
            "ALTER TABLE {} RENAME TO {}",
            q(dialect, &old.name),
            q(dialect, &new.name)
        ));
    }
    let table = q(dialect, &new.name);
    for field in &old.fields {
        if !new.fields.iter().any(|f| f.id == field.id) {
            statements.push(format!(
                "ALTER TABLE {table} DROP COLUMN {}",
                q(dialect, &field.name)
            ));
        }
    }
    for field in &new.fields {
        match old.fields.iter().find(|f| f.id == field.id) {
            Some(previous) => {
                if previous.name != field.name {
                    statements.push(format!(
                        "ALTER TABLE {table} RENAME COLUMN {} TO {}",
                        q(dialect, &previous.name),
                        q(dialect, &field.name)
                    ));
                }
                if previous.is_multiple() != field.is_multiple() {
                    statements.extend(convert_multiplicity(&table, field, dialect));
                }
            }
            None => statements.push(format!(
                "ALTER TABLE {table} ADD COLUMN {}",
                column_def(field, dialect)
            )),
        }
    }
    statements.extend(create_indexes(new, dialect));
    statements
}

/// Converts a column between single value (text) and multiple values (JSON array).
fn convert_multiplicity(table: &str, field: &Field, dialect: Dialect) -> Vec<String> {
    let column = q(dialect, &field.name);
    let temp = q(dialect, &format!("{}__basalt_tmp", field.name));
    let fill = match (field.is_multiple(), dialect) {
        (true, Dialect::Sqlite) => format!(
            "UPDATE {table} SET {temp} = CASE WHEN {column} = '' OR {column} IS NULL THEN '[]' ELSE json_array({column}) END"
        ),
        (true, Dialect::Postgres) => format!(
            "UPDATE {table} SET {temp} = CASE WHEN {column} = '' OR {column} IS NULL THEN '[]'::jsonb ELSE jsonb_build_array({column}) END"
        ),
        (false, Dialect::Sqlite) => {
            format!("UPDATE {table} SET {temp} = COALESCE(json_extract({column}, '$[#-1]'), '')")
        }
        (false, Dialect::Postgres) => format!(
            "UPDATE {table} SET {temp} = COALESCE({column}->>(jsonb_array_length({column}) - 1), '')"
        ),
    };
    let mut temp_field = field.clone();
    temp_field.name = format!("{}__basalt_tmp", field.name);
    vec![
        format!(
            "ALTER TABLE {table} ADD COLUMN {}",
            column_def(&temp_field, dialect)
        ),
        fill,
        format!("ALTER TABLE {table} DROP COLUMN {column}"),
        format!("ALTER TABLE {table} RENAME COLUMN {temp} TO {column}"),
    ]
}

/// The columns of a view with their declared types, as `(name, type)` rows.
pub fn view_columns(view: &str, dialect: Dialect) -> crate::SqlQuery {
    let sql = match dialect {
        Dialect::Sqlite => "SELECT name, type FROM pragma_table_info(?1) ORDER BY cid",
        Dialect::Postgres => {
            "SELECT column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1::text ORDER BY ordinal_position"
        }
    };
    crate::SqlQuery::with_binds(sql, vec![crate::Value::Text(view.to_string())])
}

/// The field kind of a view column from its declared type (both dialects' names).
pub fn kind_for_declared_type(declared: &str) -> FieldKind {
    let upper = declared.to_ascii_uppercase();
    if upper.contains("BOOL") {
        FieldKind::Bool { required: false }
    } else if upper.contains("INT")
        || upper.contains("NUMERIC")
        || upper.contains("REAL")
        || upper.contains("DOUBLE")
        || upper.contains("FLOAT")
        || upper.contains("DECIMAL")
    {
        FieldKind::Number {
            required: false,
            min: None,
            max: None,
            only_int: false,
        }
    } else if upper.contains("TEXT") || upper.contains("CHAR") || upper.contains("CLOB") {
        FieldKind::text()
    } else {
        FieldKind::Json {
            required: false,
            max_size: 0,
        }
    }
}

/// `DROP TABLE` for a collection.
pub fn drop_collection(collection: &Collection, dialect: Dialect) -> Vec<String> {
    let mut statements = drop_indexes(collection, dialect);
    if collection.is_view() {
        statements.push(format!(
            "DROP VIEW IF EXISTS {}",
            q(dialect, &collection.name)
        ));
    } else {
        statements.push(format!(
            "DROP TABLE IF EXISTS {}",
            q(dialect, &collection.name)
        ));
    }
    statements
}

#[cfg(test)]
mod tests {
    use super::*;
    use basalt_schema::{CollectionType, Field};

    fn posts() -> Collection {
        let mut posts = Collection::new(CollectionType::Base, "posts");
        posts.fields.push(Field::new("title", FieldKind::text()));
        posts.fields.push(Field::new(
            "views",
            FieldKind::Number {
                required: false,
                min: None,
                max: None,
                only_int: false,
            },
        ));
        posts.fields.push(Field::new(
            "tags",
            FieldKind::Select {
                required: false,
                values: vec!["a".into()],
                max_select: 3,
            },
        ));
        posts.indexes.push(
            "CREATE UNIQUE INDEX idx_title ON posts (title COLLATE NOCASE) WHERE title != ''"
                .into(),
        );
        posts
    }

    #[test]
    fn create_table_sqlite() {
        let sql = create_collection(&posts(), Dialect::Sqlite);
        assert_eq!(
            sql,
            [
                "CREATE TABLE \"posts\" (\"id\" TEXT PRIMARY KEY NOT NULL, \"title\" TEXT DEFAULT '' NOT NULL, \"views\" NUMERIC DEFAULT 0 NOT NULL, \"tags\" JSON DEFAULT '[]' NOT NULL)",
                "CREATE UNIQUE INDEX \"idx_title\" ON \"posts\" (\"title\" COLLATE NOCASE) WHERE \"title\" != ''",
            ]
        );
    }

    #[test]
    fn create_table_postgres() {
        let sql = create_collection(&posts(), Dialect::Postgres);
        assert_eq!(
            sql,
            [
                "CREATE TABLE \"posts\" (\"id\" TEXT COLLATE \"C\" PRIMARY KEY NOT NULL, \"title\" TEXT COLLATE \"C\" DEFAULT '' NOT NULL, \"views\" DOUBLE PRECISION DEFAULT 0 NOT NULL, \"tags\" JSONB DEFAULT '[]' NOT NULL)",
                "CREATE UNIQUE INDEX \"idx_title\" ON \"posts\" ((LOWER(\"title\"))) WHERE \"title\" != ''",
            ]
        );
    }

    #[test]
    fn unsafe_index_text_is_never_emitted() {
        let mut collection = posts();
        for bad in [
            "CREATE INDEX i1 ON posts (title); DROP TABLE posts",
            "CREATE INDEX i2 ON posts (nope)",
            "CREATE INDEX i3 ON posts (title) WHERE 1=1 OR title != ''",
            "CREATE INDEX i4 ON posts (lower(title))",
        ] {
            collection.indexes = vec![bad.to_string()];
            assert!(
                create_indexes(&collection, Dialect::Sqlite).is_empty(),
                "{bad}"
            );
            assert!(!index_is_supported(&collection, bad), "{bad}");
        }
    }

    #[test]
    fn migration_renames_adds_and_drops_by_field_id() {
        let old = posts();
        let mut new = old.clone();
        new.name = "articles".into();
        new.fields[1].name = "headline".into();
        new.fields.remove(2);
        new.fields
            .push(Field::new("published", FieldKind::Bool { required: false }));
        new.indexes.clear();
        assert_eq!(
            migrate_collection(&old, &new, Dialect::Sqlite),
            [
                "DROP INDEX IF EXISTS \"idx_title\"",
                "ALTER TABLE \"posts\" RENAME TO \"articles\"",
                "ALTER TABLE \"articles\" DROP COLUMN \"views\"",
                "ALTER TABLE \"articles\" RENAME COLUMN \"title\" TO \"headline\"",
                "ALTER TABLE \"articles\" ADD COLUMN \"published\" BOOLEAN DEFAULT FALSE NOT NULL",
            ]
        );
    }
}
