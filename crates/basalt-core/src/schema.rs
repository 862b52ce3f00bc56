//! The in-memory schema snapshot and the `_collections` table mapping.

use std::sync::Arc;

use basalt_schema::{AuthOptions, Collection, CollectionType, SchemaLookup};
use basalt_sql::filter::{RequestContext, SelectBuilder};
use basalt_sql::{Dialect, SqlQuery, Value};
use basalt_store::Conn;
use serde_json::{Value as Json, json};

use crate::error::CoreError;

/// An immutable snapshot of every collection; replaced after each schema change.
#[derive(Debug, Default)]
pub struct Schema {
    /// Bumped on every change; part of the rule cache key.
    pub version: u64,
    /// Every collection, in creation order.
    pub collections: Vec<Arc<Collection>>,
    /// The select list of each collection (same order), built once per snapshot.
    columns: Vec<String>,
}

impl Schema {
    /// A snapshot of `collections` for a store of `dialect`.
    pub fn new(version: u64, collections: Vec<Collection>, dialect: Dialect) -> Schema {
        let collections: Vec<Arc<Collection>> = collections.into_iter().map(Arc::new).collect();
        let columns = collections
            .iter()
            .map(|c| basalt_sql::record::select_columns(c, dialect))
            .collect();
        Schema {
            version,
            collections,
            columns,
        }
    }

    /// The select list of `collection` if it is this snapshot's own (the same `Arc`);
    /// `None` for any other copy, which may differ.
    pub(crate) fn columns_of(&self, collection: &Collection) -> Option<&str> {
        self.collections
            .iter()
            .position(|c| std::ptr::eq(Arc::as_ptr(c), collection))
            .and_then(|i| self.columns.get(i))
            .map(String::as_str)
    }

    /// A select of `collection` for the caller of `ctx`, with this snapshot's select list
    /// when `collection` is one of its own (otherwise the builder makes one).
    pub(crate) fn select<'a>(
        &'a self,
        dialect: Dialect,
        collection: &'a Collection,
        ctx: &'a RequestContext,
    ) -> SelectBuilder<'a> {
        let builder = SelectBuilder::new(dialect, collection, ctx);
        match self.columns_of(collection) {
            Some(columns) => builder.columns(columns),
            None => builder,
        }
    }

    /// Finds a collection by id or case-insensitive name.
    pub fn get(&self, name_or_id: &str) -> Option<&Arc<Collection>> {
        self.collections
            .iter()
            .find(|c| c.id == name_or_id)
            .or_else(|| {
                self.collections
                    .iter()
                    .find(|c| c.name.eq_ignore_ascii_case(name_or_id))
            })
    }
}

impl SchemaLookup for Schema {
    fn find(&self, name_or_id: &str) -> Option<&Collection> {
        self.get(name_or_id).map(|c| c.as_ref())
    }

    fn all(&self) -> Vec<&Collection> {
        self.collections.iter().map(|c| c.as_ref()).collect()
    }
}

/// A plain list of collections as a lookup (used while validating inside a transaction).
pub(crate) struct CollectionList(pub Vec<Collection>);

impl SchemaLookup for CollectionList {
    fn find(&self, name_or_id: &str) -> Option<&Collection> {
        self.0.iter().find(|c| c.id == name_or_id).or_else(|| {
            self.0
                .iter()
                .find(|c| c.name.eq_ignore_ascii_case(name_or_id))
        })
    }

    fn all(&self) -> Vec<&Collection> {
        self.0.iter().collect()
    }
}

const COLUMNS: &str = "\"id\", \"system\", \"type\", \"name\", \"fields\", \"indexes\", \"listRule\", \"viewRule\", \"createRule\", \"updateRule\", \"deleteRule\", \"options\", \"created\", \"updated\"";

fn text(value: &Value) -> String {
    match value {
        Value::Text(s) => s.clone(),
        Value::Int(n) => n.to_string(),
        _ => String::new(),
    }
}

fn rule(value: &Value) -> Option<String> {
    match value {
        Value::Text(s) => Some(s.clone()),
        _ => None,
    }
}

fn decode(row: &[Value]) -> Result<Collection, CoreError> {
    let kind = match text(&row[2]).as_str() {
        "auth" => CollectionType::Auth,
        "view" => CollectionType::View,
        _ => CollectionType::Base,
    };
    let options: Json = serde_json::from_str(&text(&row[11])).unwrap_or(json!({}));
    let auth = if kind == CollectionType::Auth {
        Some(serde_json::from_value::<AuthOptions>(options.clone()).map_err(CoreError::internal)?)
    } else {
        None
    };
    Ok(Collection {
        id: text(&row[0]),
        system: matches!(row[1], Value::Int(1) | Value::Bool(true)),
        kind,
        name: text(&row[3]),
        fields: serde_json::from_str(&text(&row[4])).map_err(CoreError::internal)?,
        indexes: serde_json::from_str(&text(&row[5])).map_err(CoreError::internal)?,
        list_rule: rule(&row[6]),
        view_rule: rule(&row[7]),
        create_rule: rule(&row[8]),
        update_rule: rule(&row[9]),
        delete_rule: rule(&row[10]),
        view_query: options
            .get("viewQuery")
            .and_then(Json::as_str)
            .map(str::to_string),
        auth,
        created: text(&row[12]),
        updated: text(&row[13]),
    })
}

/// Loads every collection, in creation order.
pub(crate) fn load_all(conn: &mut dyn Conn) -> Result<Vec<Collection>, CoreError> {
    let rows = conn.query(&SqlQuery::new(format!(
        "SELECT {COLUMNS} FROM \"_collections\" ORDER BY \"created\", \"id\""
    )))?;
    rows.rows.iter().map(|row| decode(row)).collect()
}

fn encode(collection: &Collection) -> Result<Vec<Value>, CoreError> {
    let options = match (&collection.auth, &collection.view_query) {
        (Some(auth), _) => serde_json::to_value(auth).map_err(CoreError::internal)?,
        (None, Some(query)) => json!({ "viewQuery": query }),
        (None, None) => json!({}),
    };
    let opt = |rule: &Option<String>| rule.clone().map(Value::Text).unwrap_or(Value::Null);
    Ok(vec![
        Value::Text(collection.id.clone()),
        Value::Bool(collection.system),
        Value::Text(collection.kind.as_str().to_string()),
        Value::Text(collection.name.clone()),
        Value::Text(serde_json::to_string(&collection.fields).map_err(CoreError::internal)?),
        Value::Text(serde_json::to_string(&collection.indexes).map_err(CoreError::internal)?),
        opt(&collection.list_rule),
        opt(&collection.view_rule),
        opt(&collection.create_rule),
        opt(&collection.update_rule),
        opt(&collection.delete_rule),
        Value::Text(options.to_string()),
        Value::Text(collection.created.clone()),
        Value::Text(collection.updated.clone()),
    ])
}

/// Inserts a collection row.
pub(crate) fn insert(conn: &mut dyn Conn, collection: &Collection) -> Result<(), CoreError> {
    let dialect = conn.dialect();
    let binds = encode(collection)?;
    let placeholders: Vec<String> = (1..=binds.len()).map(|n| dialect.placeholder(n)).collect();
    conn.execute(&SqlQuery::with_binds(
        format!(
            "INSERT INTO \"_collections\" ({COLUMNS}) VALUES ({})",
            placeholders.join(", ")
        ),
        binds,
    ))?;
    Ok(())
}

/// Replaces a collection row (matched by id).
pub(crate) fn update(conn: &mut dyn Conn, collection: &Collection) -> Result<(), CoreError> {
    let dialect: Dialect = conn.dialect();
    let mut binds = encode(collection)?;
    let id = binds.remove(0);
    let sets: Vec<String> = COLUMNS
        .split(", ")
        .skip(1)
        .enumerate()
        .map(|(i, name)| format!("{name} = {}", dialect.placeholder(i + 1)))
        .collect();
    binds.push(id);
    let where_id = dialect.placeholder(binds.len());
    conn.execute(&SqlQuery::with_binds(
        format!(
            "UPDATE \"_collections\" SET {} WHERE \"id\" = {where_id}",
            sets.join(", ")
        ),
        binds,
    ))?;
    Ok(())
}

/// Deletes a collection row.
pub(crate) fn delete(conn: &mut dyn Conn, id: &str) -> Result<(), CoreError> {
    let dialect = conn.dialect();
    conn.execute(&SqlQuery::with_binds(
        format!(
            "DELETE FROM \"_collections\" WHERE \"id\" = {}",
            dialect.placeholder(1)
        ),
        vec![Value::Text(id.to_string())],
    ))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use basalt_schema::CollectionType;

    #[test]
    fn select_lists_belong_to_the_snapshots_own_collections() {
        let posts = Collection::new(CollectionType::Base, "posts");
        let tags = Collection::new(CollectionType::Base, "tags");
        let schema = Schema::new(1, vec![posts.clone(), tags], Dialect::Sqlite);
        for own in &schema.collections {
            assert_eq!(
                schema.columns_of(own),
                Some(basalt_sql::record::select_columns(own, Dialect::Sqlite).as_str())
            );
        }
        assert_ne!(
            schema.columns_of(&schema.collections[1]),
            schema.columns_of(&schema.collections[0])
        );
        assert_eq!(
            schema.columns_of(&schema.collections[1]),
            Some(
                basalt_sql::record::select_columns(&schema.collections[1], Dialect::Sqlite)
                    .as_str()
            )
        );
        // An equal copy is not the snapshot's own: it may have changed since.
        assert_eq!(schema.columns_of(&posts), None);
        let postgres = Schema::new(1, vec![posts.clone()], Dialect::Postgres);
        assert_eq!(
            postgres.columns_of(&postgres.collections[0]),
            Some(basalt_sql::record::select_columns(&posts, Dialect::Postgres).as_str())
        );
    }
}
