//! Record CRUD statements and the mapping between field values and SQL values.

use basalt_schema::{Collection, Field, FieldKind};
use serde_json::{Map, Value as Json};

use crate::{Dialect, SqlQuery, Value};

/// Converts a normalized field value into the value bound for its column.
pub fn encode(field: &Field, value: &Json) -> Value {
    match &field.kind {
        FieldKind::Number { .. } => {
            let number = value.as_f64().unwrap_or(0.0);
            if number.fract() == 0.0 && number.abs() < 9.0e15 {
                Value::Int(number as i64)
            } else {
                Value::Float(number)
            }
        }
        FieldKind::Bool { .. } => Value::Bool(value.as_bool().unwrap_or(false)),
        FieldKind::Json { .. } => match value {
            Json::Null => Value::Null,
            other => Value::Text(other.to_string()),
        },
        FieldKind::GeoPoint { .. } => Value::Text(value.to_string()),
        _ if field.is_multiple() => Value::Text(match value {
            Json::Array(_) => value.to_string(),
            _ => "[]".to_string(),
        }),
        _ => Value::Text(match value {
            Json::String(s) => s.clone(),
            Json::Null => String::new(),
            other => other.to_string(),
        }),
    }
}

/// Converts a column value read from storage into the field's JSON value.
pub fn decode(field: &Field, value: Value) -> Json {
    match (&field.kind, value) {
        (_, Value::Null) => field.zero_value(),
        (FieldKind::Number { .. }, Value::Int(n)) => Json::from(n),
        (FieldKind::Number { .. }, Value::Float(f)) => basalt_schema::number_json(f),
        (FieldKind::Number { .. }, Value::Text(s)) => s
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Json::Number)
            .unwrap_or(Json::from(0)),
        (FieldKind::Bool { .. }, Value::Bool(b)) => Json::Bool(b),
        (FieldKind::Bool { .. }, Value::Int(n)) => Json::Bool(n != 0),
        (FieldKind::Bool { .. }, Value::Text(s)) => Json::Bool(s == "1" || s == "true"),
        (FieldKind::Json { .. }, Value::Int(n)) => Json::from(n),
        (FieldKind::Json { .. }, Value::Float(f)) => basalt_schema::number_json(f),
        (FieldKind::Json { .. }, Value::Bool(b)) => Json::Bool(b),
        (FieldKind::Json { .. } | FieldKind::GeoPoint { .. }, Value::Text(s)) => {
            serde_json::from_str(&s).unwrap_or(Json::String(s))
        }
        (_, Value::Text(s)) if field.is_multiple() => serde_json::from_str::<Json>(&s)
            .ok()
            .filter(Json::is_array)
            .unwrap_or(Json::Array(vec![])),
        (_, Value::Text(s)) => Json::String(s),
        (_, Value::Int(n)) => Json::String(n.to_string()),
        (_, Value::Float(f)) => Json::String(f.to_string()),
        (_, Value::Bool(b)) => Json::String(b.to_string()),
        (_, Value::Blob(bytes)) => Json::String(String::from_utf8_lossy(&bytes).into_owned()),
    }
}

fn columns(collection: &Collection, dialect: Dialect) -> String {
    // Built in one buffer: this runs for every read (a format! per column showed up as
    // ~4% of a view by id's CPU).
    let table = dialect.quote_ident(&collection.name);
    let mut out = String::with_capacity(collection.fields.len() * (table.len() + 16));
    for (idx, field) in collection.fields.iter().enumerate() {
        if idx > 0 {
            out.push_str(", ");
        }
        out.push_str(&table);
        out.push('.');
        dialect.push_ident(&mut out, &field.name);
    }
    out
}

/// The select list of every field of a collection, qualified by table name.
pub fn select_columns(collection: &Collection, dialect: Dialect) -> String {
    columns(collection, dialect)
}

/// `SELECT <fields> FROM t WHERE id = ?` (no rule; for internal reads).
pub fn select_by_id(collection: &Collection, id: &str, dialect: Dialect) -> SqlQuery {
    SqlQuery::with_binds(
        format!(
            "SELECT {} FROM {} WHERE {}.\"id\" = {}",
            columns(collection, dialect),
            dialect.quote_ident(&collection.name),
            dialect.quote_ident(&collection.name),
            dialect.placeholder(1)
        ),
        vec![Value::Text(id.to_string())],
    )
}

/// `SELECT <fields> FROM t` (every row; for internal maintenance such as file cleanup).
pub fn select_all(collection: &Collection, dialect: Dialect) -> SqlQuery {
    SqlQuery::new(format!(
        "SELECT {} FROM {}",
        columns(collection, dialect),
        dialect.quote_ident(&collection.name)
    ))
}

/// [`select_by_id`] that also locks the row until the transaction ends (PostgreSQL's
/// `FOR UPDATE`; SQLite's single writer already serializes write transactions).
pub fn select_by_id_for_update(collection: &Collection, id: &str, dialect: Dialect) -> SqlQuery {
    let mut query = select_by_id(collection, id, dialect);
    if dialect == Dialect::Postgres {
        query.sql.push_str(" FOR UPDATE");
    }
    query
}

/// `SELECT <fields> FROM t WHERE <field> = ?` (internal lookups such as login by email).
pub fn select_by_field(
    collection: &Collection,
    field: &str,
    value: Value,
    nocase: bool,
    dialect: Dialect,
) -> Option<SqlQuery> {
    collection.field(field)?;
    let column = format!(
        "{}.{}",
        dialect.quote_ident(&collection.name),
        dialect.quote_ident(field)
    );
    let condition = match (nocase, dialect) {
        (true, Dialect::Sqlite) => format!("{column} = {} COLLATE NOCASE", dialect.placeholder(1)),
        (true, Dialect::Postgres) => format!("LOWER({column}) = LOWER({})", dialect.placeholder(1)),
        (false, _) => format!("{column} = {}", dialect.placeholder(1)),
    };
    Some(SqlQuery::with_binds(
        format!(
            "SELECT {} FROM {} WHERE {condition} LIMIT 2",
            columns(collection, dialect),
            dialect.quote_ident(&collection.name)
        ),
        vec![value],
    ))
}

/// Decodes one row selected with [`select_columns`] into a field map.
pub fn decode_row(collection: &Collection, row: Vec<Value>) -> Map<String, Json> {
    collection
        .fields
        .iter()
        .zip(row)
        .map(|(field, value)| (field.name.clone(), decode(field, value)))
        .collect()
}

/// `INSERT` of every field of a record.
pub fn insert(collection: &Collection, data: &Map<String, Json>, dialect: Dialect) -> SqlQuery {
    // Built in one buffer, values encoded from the map without copying them first: this
    // runs for every create (a Vec of names and one of placeholders, joined, and a clone
    // of every value were ~7% of a create's instructions).
    let mut sql = String::with_capacity(32 + collection.fields.len() * 24);
    sql.push_str("INSERT INTO ");
    dialect.push_ident(&mut sql, &collection.name);
    sql.push_str(" (");
    let mut binds = Vec::with_capacity(collection.fields.len());
    for (idx, field) in collection.fields.iter().enumerate() {
        if idx > 0 {
            sql.push_str(", ");
        }
        dialect.push_ident(&mut sql, &field.name);
        binds.push(match data.get(&field.name) {
            Some(value) => encode(field, value),
            None => encode(field, &field.zero_value()),
        });
    }
    sql.push_str(") VALUES (");
    for n in 1..=binds.len() {
        if n > 1 {
            sql.push_str(", ");
        }
        dialect.push_placeholder(&mut sql, n);
    }
    sql.push(')');
    SqlQuery::with_binds(sql, binds)
}

/// `UPDATE` of the given fields of one record.
pub fn update(
    collection: &Collection,
    id: &str,
    changes: &Map<String, Json>,
    dialect: Dialect,
) -> Option<SqlQuery> {
    let mut sql = String::with_capacity(48 + changes.len() * 24);
    sql.push_str("UPDATE ");
    dialect.push_ident(&mut sql, &collection.name);
    sql.push_str(" SET ");
    let mut binds = Vec::with_capacity(changes.len() + 1);
    for field in &collection.fields {
        if let Some(value) = changes.get(&field.name) {
            if !binds.is_empty() {
                sql.push_str(", ");
            }
            binds.push(encode(field, value));
            dialect.push_ident(&mut sql, &field.name);
            sql.push_str(" = ");
            dialect.push_placeholder(&mut sql, binds.len());
        }
    }
    if binds.is_empty() {
        return None;
    }
    binds.push(Value::Text(id.to_string()));
    sql.push_str(" WHERE \"id\" = ");
    dialect.push_placeholder(&mut sql, binds.len());
    Some(SqlQuery::with_binds(sql, binds))
}

/// `DELETE` of one record.
pub fn delete(collection: &Collection, id: &str, dialect: Dialect) -> SqlQuery {
    SqlQuery::with_binds(
        format!(
            "DELETE FROM {} WHERE \"id\" = {}",
            dialect.quote_ident(&collection.name),
            dialect.placeholder(1)
        ),
        vec![Value::Text(id.to_string())],
    )
}

/// Ids of `target` records that exist among `ids` (relation checks).
pub fn existing_ids(target: &Collection, ids: &[String], dialect: Dialect) -> SqlQuery {
    let table = dialect.quote_ident(&target.name);
    let binds = ids.iter().map(|id| Value::Text(id.clone())).collect();
    // SQLite answers `"id" IN (?, ?, ...)` through an ephemeral table it builds for every
    // execution (a third of a create's relation check, callgrind); a few distinct ids are
    // cheaper as one primary-key lookup each. With a repeated id the two forms would count
    // differently, so that case keeps `IN`.
    let distinct = ids.iter().enumerate().all(|(i, id)| !ids[..i].contains(id));
    if dialect == Dialect::Sqlite && (2..=MAX_ID_LOOKUPS).contains(&ids.len()) && distinct {
        let mut sql = String::with_capacity(ids.len() * (table.len() + 40));
        for n in 1..=ids.len() {
            if n > 1 {
                sql.push_str(" UNION ALL ");
            }
            sql.push_str("SELECT \"id\" FROM ");
            sql.push_str(&table);
            sql.push_str(" WHERE \"id\" = ");
            dialect.push_placeholder(&mut sql, n);
        }
        return SqlQuery::with_binds(sql, binds);
    }
    let placeholders: Vec<String> = (1..=ids.len()).map(|n| dialect.placeholder(n)).collect();
    SqlQuery::with_binds(
        format!(
            "SELECT \"id\" FROM {table} WHERE \"id\" IN ({})",
            placeholders.join(", ")
        ),
        binds,
    )
}

/// Up to this many distinct ids, [`existing_ids`] looks each up on SQLite.
pub const MAX_ID_LOOKUPS: usize = 16;

/// Ids of records in `collection` whose relation `field` references `id`.
pub fn referencing_ids(
    collection: &Collection,
    field: &Field,
    id: &str,
    dialect: Dialect,
) -> SqlQuery {
    let table = dialect.quote_ident(&collection.name);
    let column = dialect.quote_ident(&field.name);
    let condition = match (field.is_multiple(), dialect) {
        (false, _) => format!("{column} = {}", dialect.placeholder(1)),
        (true, Dialect::Sqlite) => format!(
            "EXISTS (SELECT 1 FROM json_each({table}.{column}) WHERE json_each.value = {})",
            dialect.placeholder(1)
        ),
        (true, Dialect::Postgres) => format!("{column} ? {}", dialect.placeholder(1)),
    };
    SqlQuery::with_binds(
        format!(
            "SELECT {} FROM {table} WHERE {condition}",
            columns(collection, dialect)
        ),
        vec![Value::Text(id.to_string())],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use basalt_schema::CollectionType;
    use serde_json::json;

    /// A base collection `name` with `id`, `title` (text) and `views` (number).
    fn posts(name: &str) -> Collection {
        let mut posts = Collection::new(CollectionType::Base, name);
        for field in [
            json!({"name": "title", "type": "text"}),
            json!({"name": "views", "type": "number"}),
        ] {
            posts
                .fields
                .push(serde_json::from_value(field).expect("a valid test field"));
        }
        posts
    }

    #[test]
    fn insert_names_every_field_and_fills_missing_ones_with_zero_values() {
        let posts = posts("po\"sts");
        let data = json!({"id": "p1", "title": "t"})
            .as_object()
            .cloned()
            .expect("a valid test value");
        let lite = insert(&posts, &data, Dialect::Sqlite);
        assert_eq!(
            lite.sql,
            r#"INSERT INTO "po""sts" ("id", "title", "views") VALUES (?1, ?2, ?3)"#
        );
        assert_eq!(
            lite.binds,
            vec![
                Value::Text("p1".into()),
                Value::Text("t".into()),
                encode(&posts.fields[2], &json!(0))
            ]
        );
        let pg = insert(&posts, &data, Dialect::Postgres);
        assert_eq!(
            pg.sql,
            r#"INSERT INTO "po""sts" ("id", "title", "views") VALUES ($1, $2, $3)"#
        );
    }

    #[test]
    fn update_sets_only_the_changed_fields_in_field_order() {
        let posts = posts("posts");
        let changes = json!({"views": 3, "title": "t", "unknown": 1})
            .as_object()
            .cloned()
            .expect("a valid test value");
        let lite = update(&posts, "p1", &changes, Dialect::Sqlite).expect("changes");
        assert_eq!(
            lite.sql,
            r#"UPDATE "posts" SET "title" = ?1, "views" = ?2 WHERE "id" = ?3"#
        );
        assert_eq!(lite.binds.len(), 3);
        assert_eq!(lite.binds[2], Value::Text("p1".into()));
        let pg = update(&posts, "p1", &changes, Dialect::Postgres).expect("changes");
        assert_eq!(
            pg.sql,
            r#"UPDATE "posts" SET "title" = $1, "views" = $2 WHERE "id" = $3"#
        );
        let none = json!({"unknown": 1})
            .as_object()
            .cloned()
            .expect("a valid test value");
        assert!(update(&posts, "p1", &none, Dialect::Sqlite).is_none());
    }
}
