//! `?sort=`: field paths (same resolver and checks as filters), `@random`, `@rowid`.

use basalt_filter::{SortTarget, parse_sort};
use basalt_schema::{Collection, FieldKind, SchemaLookup};

use super::compile::Cx;
use super::context::{CompileOptions, RequestContext};
use super::error::{CompileError, CompileErrorKind as Kind, quote};
use super::resolve::{Operand, Ty, path_text};
use super::template::{Frag, Template, frag};
use crate::{Dialect, Value};

/// A compiled sort list: the `ORDER BY` items and the joins they need.
///
/// Only single-valued paths can be sorted by (plain fields, JSON paths, single
/// relations); the joins are `LEFT JOIN`s of single relations, so they never add rows.
/// `@rowid` is SQLite's rowid; PostgreSQL has none, so it sorts by `created` (when the
/// collection has that field) and then `id`.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledSort {
    joins: Frag,
    order: Frag,
    template: Template,
}

impl CompiledSort {
    /// Whether there is nothing to sort by.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Appends the joins (` LEFT JOIN ...`) to `sql`.
    pub(crate) fn render(
        &self,
        ctx: &RequestContext,
        base: &str,
        joins: &mut String,
        order: &mut String,
        binds: &mut Vec<Value>,
    ) {
        let offset = self.template.bind(ctx, binds);
        self.template.render(&self.joins, offset, base, joins);
        self.template.render(&self.order, offset, base, order);
    }
}

/// Whether `path` names a column of `collection`'s own table that cannot hold NULL.
fn plain_column(collection: &Collection, path: &basalt_filter::Path) -> bool {
    let [segment] = path.segments.as_slice() else {
        return false;
    };
    !collection.is_view()
        && segment.modifiers.is_empty()
        && collection.field(&segment.name).is_some_and(|field| {
            !matches!(
                field.kind,
                FieldKind::Json { .. } | FieldKind::GeoPoint { .. }
            )
        })
}

/// Compiles a `?sort=` list for `collection`.
pub fn compile_sort(
    schema: &dyn SchemaLookup,
    collection: &Collection,
    sort: &str,
    opts: &CompileOptions,
) -> Result<CompiledSort, CompileError> {
    let terms = parse_sort(sort)?;
    let mut cx = Cx::new(schema, collection, opts);
    let mut items: Vec<Frag> = Vec::new();
    for term in &terms {
        let dir = if term.desc { " DESC" } else { " ASC" };
        let nulls = match (opts.dialect, term.desc) {
            (Dialect::Sqlite, _) => "",
            (Dialect::Postgres, false) => " NULLS FIRST",
            (Dialect::Postgres, true) => " NULLS LAST",
        };
        match &term.target {
            SortTarget::Random => items.push(Frag::sql("RANDOM()")),
            SortTarget::RowId => match opts.dialect {
                Dialect::Sqlite => items.push(frag![Frag::base(), "._rowid_", dir]),
                Dialect::Postgres => {
                    if collection.field("created").is_some() {
                        items.push(frag![Frag::base(), ".\"created\"", dir, nulls]);
                    }
                    items.push(frag![Frag::base(), ".\"id\"", dir, nulls]);
                }
            },
            SortTarget::Path(path) => {
                let full = path_text(path);
                let op = match cx.resolve_path(path, term.span)? {
                    Operand::Expr(op) if !op.multi => op,
                    Operand::Expr(_) => {
                        return Err(CompileError::at(
                            Kind::InvalidSort,
                            term.span,
                            format!("cannot sort by multi-valued path {}", quote(&full)),
                            "",
                        ));
                    }
                    Operand::Lit(_) => {
                        return Err(CompileError::at(
                            Kind::InvalidSort,
                            term.span,
                            format!("cannot sort by {}", quote(&full)),
                            "",
                        ));
                    }
                };
                // A plain non-JSON column of a table is NOT NULL (every such column is
                // created with a default and NOT NULL), so the NULLS clause changes no
                // order there; leaving it out lets PostgreSQL walk a btree index on the
                // column backwards for DESC (with `DESC NULLS LAST` it sorts every match).
                let nulls = if op.guard.is_none() && plain_column(collection, path) {
                    ""
                } else {
                    nulls
                };
                let value = match &op.guard {
                    Some(guard) => frag!["(CASE WHEN ", guard, " THEN ", &op.value, " END)"],
                    None => op.value.clone(),
                };
                match (opts.dialect, op.ty) {
                    (Dialect::Sqlite, _) => items.push(frag![value, dir]),
                    (Dialect::Postgres, Ty::Text) => {
                        items.push(frag![value, " COLLATE \"C\"", dir, nulls])
                    }
                    (Dialect::Postgres, Ty::Number | Ty::Bool) => {
                        items.push(frag![value, dir, nulls])
                    }
                    (Dialect::Postgres, Ty::Json) => {
                        let v = &value;
                        items.push(frag![
                            "(CASE jsonb_typeof(", v,
                            ") WHEN 'number' THEN 1 WHEN 'boolean' THEN 1 WHEN 'string' THEN 2 WHEN 'array' THEN 2 WHEN 'object' THEN 2 END)",
                            dir, nulls
                        ]);
                        items.push(frag![
                            "(CASE jsonb_typeof(",
                            v,
                            ") WHEN 'number' THEN (",
                            v,
                            ")::float8 WHEN 'boolean' THEN ((",
                            v,
                            ")::boolean)::int END)",
                            dir,
                            nulls
                        ]);
                        items.push(frag![
                            "(CASE jsonb_typeof(",
                            v,
                            ") WHEN 'string' THEN ",
                            v,
                            " #>> '{}' WHEN 'array' THEN (",
                            v,
                            ")::text WHEN 'object' THEN (",
                            v,
                            ")::text END) COLLATE \"C\"",
                            dir,
                            nulls
                        ]);
                    }
                }
            }
        }
    }
    let mut joins = Frag::join(cx.joins.iter().map(|join| join.sql.clone()), "");
    let mut order = Frag::join(items, ", ");
    let template = cx.into_template(&mut [&mut joins, &mut order]);
    Ok(CompiledSort {
        joins,
        order,
        template,
    })
}
