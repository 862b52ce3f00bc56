//! `?expand=`: relations, nested relations and back-relations of exported records.
//!
//! Each hop reads the target collection through its own view rule for the requester
//! (`@request.context = "expand"`; a null rule hides the relation from non-superusers)
//! and exports the related records with the same visibility rules as every other read
//! path. Paths are resolved level by level with one query per relation and level.

use std::collections::BTreeMap;
use std::sync::Arc;

use basalt_filter::{normalize_expand, parse_expand};
use basalt_schema::{Collection, Field, parse_index};
use basalt_sql::filter::CompiledExpr;
use basalt_sql::record;
use basalt_store::Conn;
use serde_json::{Map, Value as Json};

use crate::app::App;
use crate::error::CoreError;
use crate::records::{RequestInfo, list_of};
use crate::rules::request_context;

/// How many back-related records one record expands at most (PocketBase's number).
const MAX_BACK_RELATIONS: usize = 1000;

/// The expand paths as a tree: first segment → the rest.
#[derive(Debug, Default)]
struct Tree(BTreeMap<String, Tree>);

impl Tree {
    fn insert(&mut self, path: &[String]) {
        if let Some((first, rest)) = path.split_first() {
            self.0.entry(first.clone()).or_default().insert(rest);
        }
    }
}

/// What one expand name refers to.
enum Target {
    /// A relation field of the current collection.
    Forward {
        field: Field,
        target: Arc<Collection>,
    },
    /// `<collection>_via_<field>`: records of `source` whose `field` points here.
    Back {
        field: Field,
        source: Arc<Collection>,
        single: bool,
    },
}

/// Which records of the target collection a hop reads.
enum Restrict {
    /// These ids.
    Ids(Vec<String>),
    /// Records whose relation field holds any of these ids.
    Referencing(Field, Vec<String>),
}

fn record_id(record: &Json) -> Option<String> {
    record.get("id").and_then(Json::as_str).map(str::to_string)
}

impl App {
    /// Adds `expand` to each exported record of `collection` for the `expand` parameter.
    pub async fn expand_records(
        &self,
        collection: &Arc<Collection>,
        records: &mut [Json],
        expand: &str,
        info: &RequestInfo,
    ) -> Result<(), CoreError> {
        let paths = parse_expand(expand).map_err(|error| {
            CoreError::bad_request(&format!("Invalid expand parameter: {error}"))
        })?;
        let mut tree = Tree::default();
        for path in normalize_expand(paths) {
            tree.insert(&path);
        }
        let mut info = info.clone();
        info.context = "expand".into();
        self.expand_level(collection.clone(), records, &tree, &info)
            .await
    }

    fn expand_level<'a>(
        &'a self,
        collection: Arc<Collection>,
        records: &'a mut [Json],
        tree: &'a Tree,
        info: &'a RequestInfo,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), CoreError>> + Send + 'a>>
    {
        Box::pin(async move {
            // As PocketBase: a path that cannot be expanded (unknown name, or a target
            // collection the caller may not view at all) is skipped; the `expand` key
            // appears, possibly empty, once at least one path of this level resolves.
            for (name, children) in &tree.0 {
                let Some(target) = self.resolve_expand(&collection, name) else {
                    continue;
                };
                let readable = info.is_superuser()
                    || match &target {
                        Target::Forward { target, .. } => target.view_rule.is_some(),
                        Target::Back { source, .. } => source.view_rule.is_some(),
                    };
                if !readable {
                    continue;
                }
                for record in records.iter_mut() {
                    if let Some(object) = record.as_object_mut() {
                        object
                            .entry("expand")
                            .or_insert_with(|| Json::Object(Map::new()));
                    }
                }
                match target {
                    Target::Forward { field, target } => {
                        self.expand_forward(records, name, &field, target, children, info)
                            .await?
                    }
                    Target::Back {
                        field,
                        source,
                        single,
                    } => {
                        self.expand_back(records, name, &field, source, single, children, info)
                            .await?
                    }
                }
            }
            Ok(())
        })
    }

    fn resolve_expand(&self, collection: &Collection, name: &str) -> Option<Target> {
        let schema = self.schema();
        if let Some(field) = collection.field(name) {
            let target = schema.get(field.relation_target()?)?.clone();
            return Some(Target::Forward {
                field: field.clone(),
                target,
            });
        }
        let (source_name, field_name) = name.split_once("_via_")?;
        let source = schema.get(source_name)?.clone();
        let field = source.field(field_name)?.clone();
        if field.relation_target() != Some(collection.id.as_str()) {
            return None;
        }
        let single = source
            .indexes
            .iter()
            .filter_map(|sql| parse_index(sql))
            .any(|index| {
                index.unique && index.columns.len() == 1 && index.columns[0] == field.name
            });
        Some(Target::Back {
            field,
            source,
            single,
        })
    }

    /// Reads `target` records through its view rule, exported for the caller.
    async fn visible(
        &self,
        target: &Arc<Collection>,
        info: &RequestInfo,
        restrict: Restrict,
    ) -> Result<Option<Vec<Json>>, CoreError> {
        let superuser = info.is_superuser();
        let rule = match target.view_rule.as_deref() {
            None if !superuser => return Ok(None),
            Some(rule) if !superuser && !rule.trim().is_empty() => Some(rule.to_string()),
            _ => None,
        };
        let dialect = self.store().dialect();
        let ctx = request_context(info);
        let schema = self.schema();
        let compiled = match &rule {
            Some(rule) => self.compiled_rule(&schema, target, rule, &ctx)?,
            None => Arc::new(CompiledExpr::always(dialect)),
        };
        let builder = schema.select(dialect, target, &ctx).filter(&compiled);
        let query = match &restrict {
            Restrict::Ids(ids) => builder.ids(ids.clone()).list(),
            Restrict::Referencing(field, ids) => builder.referencing(field, ids.clone()).list(),
        };
        let lookup = target.clone();
        let rows = basalt_store::read_single(self.store().as_ref(), move |conn: &mut dyn Conn| {
            let rows = conn.query(&query)?;
            Ok::<_, CoreError>(
                rows.rows
                    .into_iter()
                    .map(|row| record::decode_row(&lookup, row))
                    .collect::<Vec<_>>(),
            )
        })
        .await?;
        Ok(Some(self.export_rows(target, rows, info).await?))
    }

    async fn expand_forward(
        &self,
        records: &mut [Json],
        name: &str,
        field: &Field,
        target: Arc<Collection>,
        children: &Tree,
        info: &RequestInfo,
    ) -> Result<(), CoreError> {
        let mut wanted: Vec<String> = Vec::new();
        for record in records.iter() {
            for id in list_of(record.get(&field.name).unwrap_or(&Json::Null)) {
                if !wanted.contains(&id) {
                    wanted.push(id);
                }
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let Some(mut related) = self.visible(&target, info, Restrict::Ids(wanted)).await? else {
            return Ok(());
        };
        if !children.0.is_empty() {
            self.expand_level(target.clone(), &mut related, children, info)
                .await?;
        }
        // Each related record with the number of places it goes to: the last one takes
        // it, the others get a copy.
        let mut by_id: BTreeMap<String, (Json, usize)> = related
            .into_iter()
            .filter_map(|r| record_id(&r).map(|id| (id, (r, 0))))
            .collect();
        let lists: Vec<Vec<String>> = records
            .iter()
            .map(|record| list_of(record.get(&field.name).unwrap_or(&Json::Null)))
            .collect();
        for id in lists.iter().flatten() {
            if let Some((_, uses)) = by_id.get_mut(id) {
                *uses += 1;
            }
        }
        for (record, ids) in records.iter_mut().zip(lists) {
            let found: Vec<Json> = ids
                .iter()
                .filter_map(|id| {
                    let (value, uses) = by_id.get_mut(id)?;
                    *uses -= 1;
                    Some(if *uses == 0 {
                        std::mem::take(value)
                    } else {
                        value.clone()
                    })
                })
                .collect();
            let value = if field.is_multiple() {
                if found.is_empty() {
                    continue;
                } else {
                    Json::Array(found)
                }
            } else {
                match found.into_iter().next() {
                    Some(one) => one,
                    None => continue,
                }
            };
            if let Some(expand) = record.get_mut("expand").and_then(Json::as_object_mut) {
                expand.insert(name.to_string(), value);
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn expand_back(
        &self,
        records: &mut [Json],
        name: &str,
        field: &Field,
        source: Arc<Collection>,
        single: bool,
        children: &Tree,
        info: &RequestInfo,
    ) -> Result<(), CoreError> {
        let parents: Vec<String> = records.iter().filter_map(record_id).collect();
        if parents.is_empty() {
            return Ok(());
        }
        let Some(mut related) = self
            .visible(&source, info, Restrict::Referencing(field.clone(), parents))
            .await?
        else {
            return Ok(());
        };
        if !children.0.is_empty() {
            self.expand_level(source.clone(), &mut related, children, info)
                .await?;
        }
        for record in records.iter_mut() {
            let Some(id) = record_id(record) else {
                continue;
            };
            let matching: Vec<Json> = related
                .iter()
                .filter(|r| list_of(r.get(&field.name).unwrap_or(&Json::Null)).contains(&id))
                .take(MAX_BACK_RELATIONS)
                .cloned()
                .collect();
            if matching.is_empty() {
                continue;
            }
            let value = if single {
                matching.into_iter().next().unwrap_or(Json::Null)
            } else {
                Json::Array(matching)
            };
            if let Some(expand) = record.get_mut("expand").and_then(Json::as_object_mut) {
                expand.insert(name.to_string(), value);
            }
        }
        Ok(())
    }
}
