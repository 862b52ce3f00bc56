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
    let mut names = Vec::new();
    let mut binds = Vec::new();
    for field in &collection.fields {
        let value = data
            .get(&field.name)
            .cloned()
            .unwrap_or_else(|| field.zero_value());
        names.push(dialect.quote_ident(&field.name));
        binds.push(encode(field, &value));
    }
    let placeholders: Vec<String> = (1..=binds.len()).map(|n| dialect.placeholder(n)).collect();
    SqlQuery::with_binds(
        format!(
            "INSERT INTO {} ({}) VALUES ({})",
            dialect.quote_ident(&collection.name),
            names.join(", "),
            placeholders.join(", ")
        ),
        binds,
    )
}

/// `UPDATE` of the given fields of one record.
pub fn update(
    collection: &Collection,
    id: &str,
    changes: &Map<String, Json>,
    dialect: Dialect,
) -> Option<SqlQuery> {
    let mut sets = Vec::new();
    let mut binds = Vec::new();
    for field in &collection.fields {
        if let Some(value) = changes.get(&field.name) {
            binds.push(encode(field, value));
            sets.push(format!(
                "{} = {}",
                dialect.quote_ident(&field.name),
                dialect.placeholder(binds.len())
            ));
        }
    }
    if sets.is_empty() {
        return None;
    }
    binds.push(Value::Text(id.to_string()));
    Some(SqlQuery::with_binds(
        format!(
            "UPDATE {} SET {} WHERE \"id\" = {}",
            dialect.quote_ident(&collection.name),
            sets.join(", "),
            dialect.placeholder(binds.len())
        ),
        binds,
    ))
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
    let placeholders: Vec<String> = (1..=ids.len()).map(|n| dialect.placeholder(n)).collect();
    SqlQuery::with_binds(
        format!(
            "SELECT \"id\" FROM {} WHERE \"id\" IN ({})",
            dialect.quote_ident(&target.name),
            placeholders.join(", ")
        ),
        ids.iter().map(|id| Value::Text(id.clone())).collect(),
    )
}

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
