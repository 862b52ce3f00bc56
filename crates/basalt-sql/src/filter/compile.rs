//! The compile driver: walks the tree, groups comparisons that share joins into
//! `EXISTS` subqueries and produces a [`CompiledExpr`].
//!
//! Shape of the output: an expression over the base row only. Comparisons that need
//! joins are wrapped as `EXISTS (SELECT 1 FROM (SELECT 1) AS "__bN" LEFT JOIN ...
//! WHERE ...)`; top-level `&&` terms that share a join are wrapped together, so
//! `?`-comparisons on the same relation or `@collection` alias see the same joined
//! row (PocketBase's correlation), while terms on unrelated joins get their own
//! subquery (no cross product). Because the base row is never multiplied, list
//! queries need no `DISTINCT` and counts are plain `COUNT(*)`.

use basalt_filter::{Comparison, Expr, LogicOp};
use basalt_schema::{Collection, SchemaLookup};

use super::context::{CompileOptions, FilterMode, RequestContext};
use super::error::CompileError;
use super::resolve::Operand;
use super::template::{Conv, Frag, Slot, Source, Template, frag};
use crate::{Dialect, SqlQuery, Value};

/// A registered join.
#[derive(Debug, Clone)]
pub(crate) struct Join {
    /// Dedup key: the path of steps from the base row.
    pub(crate) key: String,
    pub(crate) alias: String,
    /// ` LEFT JOIN ... ON ...`
    pub(crate) sql: Frag,
}

/// The compile state of one expression (and the list rules it pulls in).
pub(crate) struct Cx<'a> {
    pub(crate) dialect: Dialect,
    pub(crate) schema: &'a dyn SchemaLookup,
    pub(crate) mode: FilterMode,
    pub(crate) auth_collection: Option<&'a Collection>,
    /// The collection whose row is the base.
    pub(crate) root: &'a Collection,
    /// How the base row is referenced.
    pub(crate) base: Frag,
    pub(crate) slots: Vec<Slot>,
    /// Joins of the expression being compiled (a list rule compiles with its own).
    pub(crate) joins: Vec<Join>,
    pub(crate) alias_counter: usize,
    pub(crate) total_joins: usize,
}

impl<'a> Cx<'a> {
    pub(crate) fn new(
        schema: &'a dyn SchemaLookup,
        root: &'a Collection,
        opts: &CompileOptions,
    ) -> Cx<'a> {
        Cx {
            dialect: opts.dialect,
            schema,
            mode: opts.mode,
            auth_collection: opts
                .auth_collection
                .as_deref()
                .and_then(|id| schema.find(id)),
            root,
            base: Frag::base(),
            slots: Vec::new(),
            joins: Vec::new(),
            alias_counter: 0,
            total_joins: 0,
        }
    }

    /// Adds a slot; slots with a fixed conversion are shared.
    pub(crate) fn slot(&mut self, source: Source, conv: Conv) -> usize {
        let slot = Slot { source, conv };
        // Request values that may be retyped are never shared, and neither are
        // constants (so the SQL text never depends on which literals are equal).
        let shareable = !matches!(
            slot.source,
            Source::Const(_)
                | Source::Query(_)
                | Source::Header(_)
                | Source::Body(_)
                | Source::Method
                | Source::Context
        );
        if shareable && let Some(idx) = self.slots.iter().position(|s| *s == slot) {
            return idx;
        }
        self.slots.push(slot);
        self.slots.len() - 1
    }

    /// The template of the finished fragments (unused slots dropped).
    pub(crate) fn into_template(self, frags: &mut [&mut Frag]) -> Template {
        Template {
            dialect: self.dialect,
            slots: super::template::compact(self.slots, frags),
        }
    }

    /// Compiles `expr` against another collection whose row is `base`, in rule mode
    /// (used for the list rules of joined collections). The result is self-contained.
    pub(crate) fn compile_sub(
        &mut self,
        root: &'a Collection,
        base: Frag,
        expr: &Expr,
    ) -> Result<Frag, CompileError> {
        let saved_root = std::mem::replace(&mut self.root, root);
        let saved_base = std::mem::replace(&mut self.base, base);
        let saved_mode = std::mem::replace(&mut self.mode, FilterMode::Rule);
        let saved_joins = std::mem::take(&mut self.joins);
        let out = self.compile_top(expr);
        self.root = saved_root;
        self.base = saved_base;
        self.mode = saved_mode;
        self.joins = saved_joins;
        out.map(|frag| frag!["(", frag, ")"])
    }

    /// Compiles a whole expression into a condition over the base row.
    pub(crate) fn compile_top(&mut self, expr: &Expr) -> Result<Frag, CompileError> {
        let mut terms = Vec::new();
        flatten_and(expr, &mut terms);
        let mut compiled: Vec<(Frag, Vec<usize>)> = Vec::with_capacity(terms.len());
        for term in terms {
            compiled.push(self.compile_logic(term)?);
        }
        // Union the terms that share a join.
        let mut group: Vec<usize> = (0..compiled.len()).collect();
        fn find(group: &mut [usize], idx: usize) -> usize {
            let mut root = idx;
            while group[root] != root {
                root = group[root];
            }
            group[idx] = root;
            root
        }
        for a in 0..compiled.len() {
            for b in a + 1..compiled.len() {
                if compiled[a]
                    .1
                    .iter()
                    .any(|join| compiled[b].1.contains(join))
                {
                    let (ra, rb) = (find(&mut group, a), find(&mut group, b));
                    group[ra.max(rb)] = ra.min(rb);
                }
            }
        }
        let mut parts = Vec::new();
        for leader in 0..compiled.len() {
            if find(&mut group, leader) != leader {
                continue;
            }
            let members: Vec<usize> = (0..compiled.len())
                .filter(|&idx| find(&mut group, idx) == leader)
                .collect();
            let mut joins: Vec<usize> = members
                .iter()
                .flat_map(|&idx| compiled[idx].1.iter().copied())
                .collect();
            joins.sort_unstable();
            joins.dedup();
            let conditions =
                Frag::join(members.iter().map(|&idx| compiled[idx].0.clone()), " AND ");
            if joins.is_empty() {
                parts.push(conditions);
            } else {
                parts.push(self.exists(&joins, conditions, false));
            }
        }
        Ok(Frag::join(parts, " AND "))
    }

    /// `[NOT] EXISTS (SELECT 1 FROM (SELECT 1) AS "__bN" <joins> WHERE <condition>)`.
    pub(crate) fn exists(&mut self, joins: &[usize], condition: Frag, negated: bool) -> Frag {
        self.alias_counter += 1;
        let base = self.q(&format!("__b{}", self.alias_counter));
        let mut out = frag![
            if negated {
                "NOT EXISTS (SELECT 1 FROM (SELECT 1) AS "
            } else {
                "EXISTS (SELECT 1 FROM (SELECT 1) AS "
            },
            &base
        ];
        for &join in joins {
            out = frag![out, &self.joins[join].sql];
        }
        frag![out, " WHERE ", condition, ")"]
    }

    fn compile_logic(&mut self, expr: &Expr) -> Result<(Frag, Vec<usize>), CompileError> {
        match expr {
            Expr::Compare(cmp) => self.compile_comparison(cmp),
            Expr::Logic { op, lhs, rhs } => {
                let (left, mut joins) = self.compile_logic(lhs)?;
                let (right, more) = self.compile_logic(rhs)?;
                joins.extend(more);
                joins.sort_unstable();
                joins.dedup();
                let word = match op {
                    LogicOp::And => " AND ",
                    LogicOp::Or => " OR ",
                };
                Ok((frag!["(", left, word, right, ")"], joins))
            }
        }
    }

    fn compile_comparison(&mut self, cmp: &Comparison) -> Result<(Frag, Vec<usize>), CompileError> {
        let left = self.resolve_operand(&cmp.lhs)?;
        let right = self.resolve_operand(&cmp.rhs)?;
        let (core, left, right) = self.emit_comparison(cmp.op.base(), left, right);
        let multi = |op: &Option<super::resolve::ExprOp>| op.as_ref().is_some_and(|o| o.multi);
        let joins_of = |op: &Option<super::resolve::ExprOp>| {
            op.as_ref().map(|o| o.joins.clone()).unwrap_or_default()
        };
        let (lm, rm) = (multi(&left), multi(&right));
        if (lm || rm) && !cmp.op.is_any() {
            // Every value must satisfy: no counter-example among the values.
            let mut inner = Vec::new();
            let mut outer = Vec::new();
            for (op, is_multi) in [(&left, lm), (&right, rm)] {
                if is_multi {
                    inner.extend(joins_of(op));
                } else {
                    outer.extend(joins_of(op));
                }
            }
            inner.sort_unstable();
            inner.dedup();
            outer.sort_unstable();
            outer.dedup();
            let condition = frag!["NOT COALESCE(", core, ", FALSE)"];
            return Ok((self.exists(&inner, condition, true), outer));
        }
        let mut joins = joins_of(&left);
        joins.extend(joins_of(&right));
        joins.sort_unstable();
        joins.dedup();
        Ok((core, joins))
    }
}

fn flatten_and<'e>(expr: &'e Expr, out: &mut Vec<&'e Expr>) {
    match expr {
        Expr::Logic {
            op: LogicOp::And,
            lhs,
            rhs,
        } => {
            flatten_and(lhs, out);
            flatten_and(rhs, out);
        }
        other => out.push(other),
    }
}

/// A compiled filter or rule: a condition over one row of its collection.
///
/// The SQL text is fixed; the values of `@request.*`, macros and literals are bound
/// when it is rendered for a request, so one `CompiledExpr` serves every request.
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledExpr {
    frag: Frag,
    template: Template,
}

impl CompiledExpr {
    /// An expression that is always true (the empty rule `""`).
    pub fn always(dialect: Dialect) -> CompiledExpr {
        CompiledExpr {
            frag: Frag::default(),
            template: Template {
                dialect,
                slots: Vec::new(),
            },
        }
    }

    /// Whether the expression is the empty (always true) one.
    pub fn is_always(&self) -> bool {
        self.frag.is_empty()
    }

    /// The dialect the expression was compiled for.
    pub fn dialect(&self) -> Dialect {
        self.template.dialect
    }

    /// Appends `(<condition>)` to `sql`, reading the row as `base` (a quoted table
    /// name or alias), and its values to `binds`; placeholders continue after the
    /// binds already present. The always-true expression writes `TRUE`.
    pub fn render_into(
        &self,
        ctx: &RequestContext,
        base: &str,
        sql: &mut String,
        binds: &mut Vec<Value>,
    ) {
        if self.is_always() {
            sql.push_str("TRUE");
            return;
        }
        let offset = self.template.bind(ctx, binds);
        sql.push('(');
        self.template.render(&self.frag, offset, base, sql);
        sql.push(')');
    }

    /// The condition alone, with placeholders from 1 (for tests and logs).
    pub fn to_query(&self, ctx: &RequestContext, base: &str) -> SqlQuery {
        let mut sql = String::new();
        let mut binds = Vec::new();
        self.render_into(ctx, base, &mut sql, &mut binds);
        SqlQuery::with_binds(sql, binds)
    }
}

/// Compiles a parsed expression for `collection`.
pub fn compile_expr(
    schema: &dyn SchemaLookup,
    collection: &Collection,
    expr: &Expr,
    opts: &CompileOptions,
) -> Result<CompiledExpr, CompileError> {
    let mut cx = Cx::new(schema, collection, opts);
    let mut frag = cx.compile_top(expr)?;
    let template = cx.into_template(&mut [&mut frag]);
    Ok(CompiledExpr { frag, template })
}

/// Parses and compiles a rule (no length limit). An empty or blank rule is
/// [`CompiledExpr::always`]. A null rule is the caller's business (superusers only).
pub fn compile_rule(
    schema: &dyn SchemaLookup,
    collection: &Collection,
    rule: &str,
    opts: &CompileOptions,
) -> Result<CompiledExpr, CompileError> {
    if rule.trim().is_empty() {
        return Ok(CompiledExpr::always(opts.dialect));
    }
    let expr = basalt_filter::parse(rule)?;
    compile_expr(schema, collection, &expr, opts)
}

/// Parses (with the client limits: 3500 bytes, 200 comparisons) and compiles a
/// client's `?filter=`. An empty filter is [`CompiledExpr::always`].
pub fn compile_filter(
    schema: &dyn SchemaLookup,
    collection: &Collection,
    filter: &str,
    opts: &CompileOptions,
) -> Result<CompiledExpr, CompileError> {
    if filter.trim().is_empty() {
        return Ok(CompiledExpr::always(opts.dialect));
    }
    let expr = basalt_filter::parse_with(filter, &basalt_filter::Limits::client_filter())?;
    compile_expr(schema, collection, &expr, opts)
}

/// Resolved operands after comparison, for the multi-value handling.
pub(crate) type Sides = (
    Frag,
    Option<super::resolve::ExprOp>,
    Option<super::resolve::ExprOp>,
);

impl Cx<'_> {
    /// Emits one comparison; returns the SQL and the non-literal sides.
    pub(crate) fn emit_comparison(
        &mut self,
        op: basalt_filter::CmpOp,
        left: Operand,
        right: Operand,
    ) -> Sides {
        let (left, right) = self.coerce(left, right, op);
        let frag = self.emit(op, &left, &right);
        let expr = |o: Operand| match o {
            Operand::Expr(e) => Some(e),
            Operand::Lit(_) => None,
        };
        (frag, expr(left), expr(right))
    }
}
