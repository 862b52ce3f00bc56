//! Structural validation of a collection before it is saved.
//!
//! Rules are checked by the services (they need the SQL compiler); everything that can
//! be checked from the schema alone is checked here.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Value as Json, json};

use crate::collection::{Collection, CollectionType};
use crate::field::FieldKind;
use crate::record::FieldError;

/// Looks up collections by name or id (the schema the resolver and validators see).
pub trait SchemaLookup {
    /// Finds a collection by id, or by name ignoring ASCII case.
    fn find(&self, name_or_id: &str) -> Option<&Collection>;
    /// Every collection.
    fn all(&self) -> Vec<&Collection>;
}

static NAME: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\w+$").expect("static name regex"));
static INDEX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?is)^\s*create\s+(unique\s+)?index\s+(if\s+not\s+exists\s+)?[`"\[]?(?P<name>\w+)[`"\]]?\s+on\s+[`"\[]?(?P<table>\w+)[`"\]]?\s*\((?P<cols>[^;]+?)\)\s*(where\s+(?P<where>[^;]+))?\s*;?\s*$"#)
        .expect("static index regex")
});

const RESERVED_FIELD_NAMES: &[&str] = &[
    "null",
    "true",
    "false",
    "_rowid_",
    "collectionid",
    "collectionname",
    "expand",
];

fn error(code: &str, message: &str) -> Json {
    FieldError::new(code, message).to_json()
}

/// A parsed `CREATE INDEX` statement.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexDef {
    /// Index name.
    pub name: String,
    /// Whether it is UNIQUE.
    pub unique: bool,
    /// The indexed column expressions, as written, trimmed of quotes when plain names.
    pub columns: Vec<String>,
    /// The optional WHERE clause, as written.
    pub condition: Option<String>,
}

/// Parses one index statement of a collection's `indexes`.
pub fn parse_index(sql: &str) -> Option<IndexDef> {
    let caps = INDEX.captures(sql)?;
    let columns = caps
        .name("cols")?
        .as_str()
        .split(',')
        .map(|col| {
            let col = col.trim();
            let bare = col.split_whitespace().next().unwrap_or(col);
            bare.trim_matches(|c| c == '`' || c == '"' || c == '[' || c == ']')
                .to_string()
        })
        .collect();
    Some(IndexDef {
        name: caps.name("name")?.as_str().to_string(),
        unique: caps.get(1).is_some(),
        columns,
        condition: caps.name("where").map(|w| w.as_str().trim().to_string()),
    })
}

/// Validates the shape of a collection; `old` is the stored version on update.
/// Returns PocketBase's nested error object (`{"name": {...}, "fields": {"1": {...}}}`).
pub fn validate_collection(
    collection: &Collection,
    old: Option<&Collection>,
    lookup: &dyn SchemaLookup,
) -> Result<(), BTreeMap<String, Json>> {
    let mut errors = BTreeMap::new();
    let name = &collection.name;
    if name.is_empty() {
        errors.insert(
            "name".into(),
            error("validation_required", "Cannot be blank."),
        );
    } else if !NAME.is_match(name) || name.len() > 255 {
        errors.insert(
            "name".into(),
            error("validation_match_invalid", "Must be in a valid format."),
        );
    } else if name.contains("_via_") {
        errors.insert(
            "name".into(),
            error(
                "validation_invalid_name",
                "The name must not contain \"_via_\".",
            ),
        );
    } else if name.starts_with('_') && old.is_none() && !collection.system {
        errors.insert(
            "name".into(),
            error(
                "validation_invalid_name",
                "The name must not start with an underscore.",
            ),
        );
    } else if let Some(other) = lookup.find(name)
        && old.is_none_or(|o| o.id != other.id)
    {
        errors.insert(
            "name".into(),
            error(
                "validation_collection_name_exists",
                "Collection name must be unique (case insensitive).",
            ),
        );
    }
    if old.is_none() && !collection.id.is_empty() && !errors.contains_key("name") {
        let bad_id = !NAME.is_match(&collection.id) || collection.id.len() > 100;
        if bad_id {
            errors.insert("id".into(), error("validation_invalid_id", "Invalid id."));
        } else if lookup
            .find(&collection.id)
            .is_some_and(|c| c.id == collection.id)
        {
            errors.insert(
                "id".into(),
                error("validation_not_unique", "Value must be unique."),
            );
        }
    }
    if let Some(old) = old {
        if old.kind != collection.kind {
            errors.insert(
                "type".into(),
                error(
                    "validation_collection_type_change",
                    "Collection type cannot be changed.",
                ),
            );
        }
        if old.system && old.name != collection.name {
            errors.insert(
                "name".into(),
                error(
                    "validation_collection_system_name_change",
                    "System collection name cannot be changed.",
                ),
            );
        }
    }
    let field_errors = validate_fields(collection, old, lookup);
    if !field_errors.is_empty() {
        errors.insert(
            "fields".into(),
            Json::Object(field_errors.into_iter().collect()),
        );
    }
    let index_errors = validate_indexes(collection, lookup);
    if !index_errors.is_empty() {
        errors.insert(
            "indexes".into(),
            Json::Object(index_errors.into_iter().collect()),
        );
    }
    if collection.kind == CollectionType::View {
        for (key, rule) in [
            ("createRule", &collection.create_rule),
            ("updateRule", &collection.update_rule),
            ("deleteRule", &collection.delete_rule),
        ] {
            if rule.is_some() {
                errors.insert(key.into(), error("validation_nil", "Must be null."));
            }
        }
        if collection
            .view_query
            .as_deref()
            .unwrap_or_default()
            .trim()
            .is_empty()
        {
            errors.insert(
                "viewQuery".into(),
                error("validation_required", "Cannot be blank."),
            );
        }
    }
    if let Some(auth) = &collection.auth
        && auth.manage_rule.as_deref() == Some("")
    {
        errors.insert(
            "manageRule".into(),
            error(
                "validation_nil_or_not_empty_required",
                "The rule must be either null or not empty.",
            ),
        );
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

fn validate_fields(
    collection: &Collection,
    old: Option<&Collection>,
    lookup: &dyn SchemaLookup,
) -> BTreeMap<String, Json> {
    let mut errors = BTreeMap::new();
    let mut seen: Vec<String> = Vec::new();
    for (position, field) in collection.fields.iter().enumerate() {
        let mut field_errors = serde_json::Map::new();
        let lower = field.name.to_ascii_lowercase();
        if field.name.is_empty() {
            field_errors.insert(
                "name".into(),
                error("validation_required", "Cannot be blank."),
            );
        } else if !NAME.is_match(&field.name) || field.name.len() > 100 {
            field_errors.insert(
                "name".into(),
                error("validation_invalid_name", "Invalid field name."),
            );
        } else if RESERVED_FIELD_NAMES.contains(&lower.as_str())
            || field.name.contains("_via_")
            || (collection.is_auth()
                && (field.name == "passwordConfirm" || field.name == "oldPassword"))
        {
            field_errors.insert(
                "name".into(),
                error("validation_not_in_invalid_values", "The name is reserved."),
            );
        } else if seen.contains(&lower) {
            field_errors.insert(
                "name".into(),
                error(
                    "validation_duplicated_name",
                    "Field name must be unique (case insensitive).",
                ),
            );
        }
        seen.push(lower);
        if let Some(previous) = old.and_then(|o| {
            o.fields
                .iter()
                .find(|f| !field.id.is_empty() && f.id == field.id)
        }) {
            if previous.kind.type_name() != field.kind.type_name() {
                // PocketBase reports a type change on the field itself, not under `type`.
                errors.insert(
                    position.to_string(),
                    error(
                        "validation_field_type_change",
                        "Field type cannot be changed.",
                    ),
                );
                continue;
            }
            if previous.system && previous.name != field.name {
                field_errors.insert(
                    "name".into(),
                    error(
                        "validation_system_field_change",
                        "System field name cannot be changed.",
                    ),
                );
            }
        }
        match &field.kind {
            FieldKind::Select {
                values, max_select, ..
            } => {
                if values.is_empty() {
                    field_errors.insert(
                        "values".into(),
                        error("validation_required", "Cannot be blank."),
                    );
                } else if *max_select as usize > values.len() {
                    field_errors.insert(
                        "maxSelect".into(),
                        error(
                            "validation_max_less_equal_than_required",
                            "Must be no greater than the number of values.",
                        ),
                    );
                }
            }
            FieldKind::Relation {
                collection_id,
                min_select,
                max_select,
                ..
            } => {
                match lookup
                    .find(collection_id)
                    .or_else(|| (collection_id == &collection.id).then_some(collection))
                {
                    None => {
                        field_errors.insert(
                            "collectionId".into(),
                            error(
                                "validation_missing_collection",
                                "The relation collection doesn't exist.",
                            ),
                        );
                    }
                    Some(target) if target.is_view() && !collection.is_view() => {
                        field_errors.insert(
                            "collectionId".into(),
                            error(
                                "validation_invalid_view_relation",
                                "Non-view collections are not allowed to have a view relation.",
                            ),
                        );
                    }
                    Some(_) => {}
                }
                if *max_select > 0 && min_select > max_select {
                    field_errors.insert(
                        "minSelect".into(),
                        error(
                            "validation_min_greater_than_max",
                            "Must be no greater than maxSelect.",
                        ),
                    );
                }
                if let Some(previous) = old.and_then(|o| o.fields.iter().find(|f| f.id == field.id))
                    && previous
                        .relation_target()
                        .is_some_and(|t| t != collection_id)
                {
                    field_errors.insert(
                        "collectionId".into(),
                        error(
                            "validation_field_relation_change",
                            "The relation collection cannot be changed.",
                        ),
                    );
                }
            }
            FieldKind::Text {
                min, max, pattern, ..
            } => {
                if *max > 0 && min > max {
                    field_errors.insert(
                        "min".into(),
                        error(
                            "validation_min_greater_than_max",
                            "Must be no greater than max.",
                        ),
                    );
                }
                if !pattern.is_empty() && Regex::new(pattern).is_err() {
                    field_errors.insert(
                        "pattern".into(),
                        error("validation_invalid_regex", "Invalid regular expression."),
                    );
                }
            }
            FieldKind::Number {
                min: Some(min),
                max: Some(max),
                ..
            } if min > max => {
                field_errors.insert(
                    "min".into(),
                    error(
                        "validation_min_greater_than_max",
                        "Must be no greater than max.",
                    ),
                );
            }
            FieldKind::Autodate {
                on_create: false,
                on_update: false,
            } => {
                field_errors.insert(
                    "onCreate".into(),
                    error(
                        "validation_required",
                        "Either onCreate or onUpdate must be enabled.",
                    ),
                );
            }
            FieldKind::Password { .. } if !collection.is_auth() => {
                field_errors.insert(
                    "type".into(),
                    error(
                        "validation_invalid_type",
                        "Password fields are allowed only in auth collections.",
                    ),
                );
            }
            _ => {}
        }
        if !field_errors.is_empty() {
            errors.insert(position.to_string(), Json::Object(field_errors));
        }
    }
    if let Some(old) = old {
        for previous in old.fields.iter().filter(|f| f.system) {
            if !collection
                .fields
                .iter()
                .any(|f| f.id == previous.id || f.name == previous.name)
            {
                errors.insert(
                    collection.fields.len().to_string(),
                    json!({"name": error("validation_system_field_removal", "System fields cannot be removed.")}),
                );
            }
        }
    }
    errors
}

fn validate_indexes(collection: &Collection, lookup: &dyn SchemaLookup) -> BTreeMap<String, Json> {
    let mut errors = BTreeMap::new();
    let mut names: Vec<String> = Vec::new();
    for (position, sql) in collection.indexes.iter().enumerate() {
        if collection.is_view() {
            errors.insert(
                position.to_string(),
                error(
                    "validation_invalid_index",
                    "View collections cannot have indexes.",
                ),
            );
            continue;
        }
        let Some(index) = parse_index(sql) else {
            errors.insert(
                position.to_string(),
                error(
                    "validation_invalid_index_expression",
                    "Invalid CREATE INDEX expression.",
                ),
            );
            continue;
        };
        let lower = index.name.to_ascii_lowercase();
        let taken_elsewhere = lookup.all().into_iter().any(|other| {
            other.id != collection.id
                && other
                    .indexes
                    .iter()
                    .filter_map(|s| parse_index(s))
                    .any(|i| i.name.eq_ignore_ascii_case(&index.name))
        });
        if names.contains(&lower) || taken_elsewhere {
            errors.insert(
                position.to_string(),
                error(
                    "validation_existing_index_name",
                    "The index name must be unique.",
                ),
            );
            continue;
        }
        names.push(lower);
        for column in &index.columns {
            let plain = NAME.is_match(column);
            if plain && collection.field(column).is_none() {
                errors.insert(
                    position.to_string(),
                    error(
                        "validation_invalid_index_column",
                        "The index references an unknown column.",
                    ),
                );
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_statements_parse() {
        let index = parse_index("CREATE UNIQUE INDEX `idx_a` ON `posts` (`title`, slug COLLATE NOCASE) WHERE title != ''").expect("parses");
        assert_eq!(index.name, "idx_a");
        assert!(index.unique);
        assert_eq!(index.columns, ["title", "slug"]);
        assert_eq!(index.condition.as_deref(), Some("title != ''"));
        assert!(parse_index("DROP TABLE x").is_none());
        assert!(parse_index("CREATE INDEX i ON t (a); DROP TABLE t").is_none());
    }
}
