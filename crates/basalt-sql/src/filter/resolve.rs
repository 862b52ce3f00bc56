//! Resolving operands: record paths, relations, back-relations, `@collection`,
//! `@request.*`, macros, literals and functions become typed SQL values.
//!
//! Every identifier written to SQL comes from the schema (collection and field
//! names) or from the compiler itself (`__jN` aliases); every value, JSON path part
//! and LIKE pattern is a slot.

use basalt_filter::{Operand as AstOperand, OperandKind, Path, Segment, Span};
use basalt_schema::{Collection, Field, FieldKind};

use super::compile::Cx;
use super::context::Macro;
use super::error::{CompileError, CompileErrorKind as Kind, quote};
use super::template::{Conv, Frag, Source, frag};
use super::{MAX_JOINS, MAX_RELATION_HOPS};
use crate::{Dialect, Value};

/// The SQL type family of a resolved value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    Text,
    Number,
    Bool,
    /// A JSON value: SQLite's native `json_extract` result, PostgreSQL `jsonb`.
    Json,
}

/// A literal of the expression, kept unbound until it is compared (it may be
/// converted to the other side's type first).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lit {
    Text(String),
    Number(f64),
    Bool(bool),
    Null,
}

/// A resolved non-literal operand.
#[derive(Debug, Clone)]
pub(crate) struct ExprOp {
    /// The value, valid where the joins in `joins` are in scope.
    pub(crate) value: Frag,
    pub(crate) ty: Ty,
    /// Join ids (with their parents) the value reads, in registration order.
    pub(crate) joins: Vec<usize>,
    /// Whether the value ranges over several rows or array items.
    pub(crate) multi: bool,
    /// A condition that must hold for a comparison of this value to hold (the
    /// `emailVisibility` check of auth emails in client filters).
    pub(crate) guard: Option<Frag>,
    /// `<auth id> IS NOT NULL` on values read from `@request.auth`: a guest's value
    /// matches nothing but an explicit `''` / `null` literal.
    pub(crate) auth_guard: Option<Frag>,
    /// For values of a submitted list: true on the stand-in row of an empty list,
    /// which satisfies `!=` / `!~` and nothing else (PocketBase's behaviour).
    pub(crate) padding: Option<Frag>,
    /// The value is a bare request slot whose conversion follows the other side.
    pub(crate) flexible: bool,
}

impl ExprOp {
    pub(crate) fn plain(value: Frag, ty: Ty) -> ExprOp {
        ExprOp {
            value,
            ty,
            joins: Vec::new(),
            multi: false,
            guard: None,
            auth_guard: None,
            padding: None,
            flexible: false,
        }
    }
}

/// A resolved operand.
#[derive(Debug, Clone)]
pub(crate) enum Operand {
    Lit(Lit),
    Expr(ExprOp),
}

/// Where a path walk is: the joins crossed so far and what they imply.
#[derive(Debug, Clone, Default)]
struct Walk {
    /// The join chain of the current alias (parents first).
    chain: Vec<usize>,
    /// Dedup key of the current alias.
    key: String,
    multi: bool,
    hops: usize,
    auth_guard: Option<Frag>,
    /// See [`ExprOp::padding`].
    padding: Option<Frag>,
}

/// The path as written, for messages.
pub(crate) fn path_text(path: &Path) -> String {
    let mut out = String::new();
    for (idx, seg) in path.segments.iter().enumerate() {
        if idx > 0 {
            out.push('.');
        }
        out.push_str(&seg.name);
        for modifier in &seg.modifiers {
            out.push(':');
            out.push_str(modifier);
        }
    }
    out
}

fn is_word(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The SQL type of a field's column value.
fn field_ty(field: &Field) -> Ty {
    match &field.kind {
        FieldKind::Number { .. } => Ty::Number,
        FieldKind::Bool { .. } => Ty::Bool,
        FieldKind::Json { .. } | FieldKind::GeoPoint { .. } => Ty::Json,
        _ if field.is_multiple() => Ty::Json,
        _ => Ty::Text,
    }
}

/// The modifiers of a leaf segment.
#[derive(Debug, Default)]
struct Mods {
    each: bool,
    length: bool,
    lower: bool,
    isset: bool,
    changed: bool,
}

impl<'a> Cx<'a> {
    pub(crate) fn q(&self, ident: &str) -> String {
        self.dialect.quote_ident(ident)
    }

    fn col(&self, alias: &Frag, name: &str) -> Frag {
        frag![alias, ".", self.q(name)]
    }

    pub(crate) fn err(&self, kind: Kind, span: Span, what: String, detail: &str) -> CompileError {
        CompileError::at(kind, span, what, detail)
    }

    fn mods(&self, seg: &Segment, span: Span, full: &str) -> Result<Mods, CompileError> {
        let mut mods = Mods::default();
        for modifier in &seg.modifiers {
            match modifier.as_str() {
                "each" => mods.each = true,
                "length" => mods.length = true,
                "lower" => mods.lower = true,
                "isset" => mods.isset = true,
                "changed" => mods.changed = true,
                other => {
                    return Err(self.err(
                        Kind::InvalidModifier,
                        span,
                        format!(
                            "unknown modifier {} in {}",
                            quote(&format!(":{other}")),
                            quote(full)
                        ),
                        "",
                    ));
                }
            }
        }
        if mods.each && mods.length {
            return Err(self.err(
                Kind::InvalidModifier,
                span,
                format!(
                    "modifiers \":each\" and \":length\" cannot be combined in {}",
                    quote(full)
                ),
                "",
            ));
        }
        Ok(mods)
    }

    fn no_mods(&self, seg: &Segment, span: Span, full: &str) -> Result<(), CompileError> {
        match seg.modifiers.first() {
            None => Ok(()),
            Some(modifier) => Err(self.err(
                Kind::InvalidModifier,
                span,
                format!(
                    "modifier {} is only allowed on the last part of {}",
                    quote(&format!(":{modifier}")),
                    quote(full)
                ),
                "",
            )),
        }
    }

    /// Adds a constant slot.
    pub(crate) fn constant(&mut self, value: Value) -> Frag {
        Frag::slot(self.slot(Source::Const(value), Conv::Exact))
    }

    /// Registers (or reuses) a join. `build` gets the new alias and returns the
    /// ` LEFT JOIN ...` text.
    fn join(
        &mut self,
        walk: &Walk,
        step: &str,
        span: Span,
        full: &str,
        build: impl FnOnce(&mut Self, &str) -> Result<Frag, CompileError>,
    ) -> Result<(Walk, Frag), CompileError> {
        let key = format!("{}/{}", walk.key, step);
        let mut next = walk.clone();
        next.key = key.clone();
        if let Some(idx) = self.joins.iter().position(|join| join.key == key) {
            let alias = self.joins[idx].alias.clone();
            next.chain.push(idx);
            return Ok((next, Frag::sql(&self.q(&alias))));
        }
        if self.total_joins >= MAX_JOINS {
            return Err(self.err(
                Kind::TooManyJoins,
                span,
                format!("too many joins in {}", quote(full)),
                &format!(", the limit is {MAX_JOINS}"),
            ));
        }
        self.alias_counter += 1;
        self.total_joins += 1;
        let alias = format!("__j{}", self.alias_counter);
        let sql = build(self, &alias)?;
        let idx = self.joins.len();
        self.joins.push(super::compile::Join {
            key,
            alias: alias.clone(),
            sql,
        });
        next.chain.push(idx);
        Ok((next, Frag::sql(&self.q(&alias))))
    }

    /// A `json_each` join over a JSON array value; the items are `<alias>."value"`.
    fn each_join(
        &mut self,
        walk: &Walk,
        step: &str,
        array: Frag,
        span: Span,
        full: &str,
    ) -> Result<(Walk, Frag), CompileError> {
        let dialect = self.dialect;
        let (mut next, alias) = self.join(walk, step, span, full, |cx, alias| {
            let alias = cx.q(alias);
            Ok(match dialect {
                Dialect::Sqlite => {
                    frag![" LEFT JOIN json_each(", array, ") AS ", &alias, " ON TRUE"]
                }
                Dialect::Postgres => frag![
                    " LEFT JOIN LATERAL jsonb_array_elements_text(",
                    array,
                    ") AS ",
                    &alias,
                    "(\"value\") ON TRUE"
                ],
            })
        })?;
        next.multi = true;
        let value = frag![alias, ".\"value\""];
        Ok((next, value))
    }

    fn count_hop(&self, walk: &mut Walk, span: Span, full: &str) -> Result<(), CompileError> {
        walk.hops += 1;
        if walk.hops > MAX_RELATION_HOPS {
            return Err(self.err(
                Kind::TooManyHops,
                span,
                format!("too many relation hops in {}", quote(full)),
                &format!(", the limit is {MAX_RELATION_HOPS}"),
            ));
        }
        Ok(())
    }

    /// In client-filter mode, the list rule of a joined collection, compiled against
    /// the join alias (`None` when it is empty or the mode is not restricted).
    fn list_rule(
        &mut self,
        target: &'a Collection,
        alias: &str,
        span: Span,
        full: &str,
    ) -> Result<Option<Frag>, CompileError> {
        if !self.mode.restricted() {
            return Ok(None);
        }
        let Some(rule) = target.list_rule.as_deref() else {
            return Err(self.err(
                Kind::LockedCollection,
                span,
                format!(
                    "cannot filter through collection {} (only superusers can list it) in {}",
                    quote(&target.name),
                    quote(full)
                ),
                "",
            ));
        };
        if rule.trim().is_empty() {
            return Ok(None);
        }
        let expr = basalt_filter::parse(rule).map_err(|err| {
            self.err(
                Kind::Parse,
                span,
                format!(
                    "the list rule of collection {} is invalid ({err}), in {}",
                    quote(&target.name),
                    quote(full)
                ),
                "",
            )
        })?;
        let base = Frag::sql(&self.q(alias));
        self.compile_sub(target, base, &expr).map(Some)
    }

    /// Resolves one side of a comparison (or a function argument).
    pub(crate) fn resolve_operand(
        &mut self,
        operand: &AstOperand,
    ) -> Result<Operand, CompileError> {
        match &operand.kind {
            OperandKind::Text(text) => Ok(Operand::Lit(Lit::Text(text.clone()))),
            OperandKind::Number(number) => Ok(Operand::Lit(Lit::Number(*number))),
            OperandKind::Bool(value) => Ok(Operand::Lit(Lit::Bool(*value))),
            OperandKind::Null => Ok(Operand::Lit(Lit::Null)),
            OperandKind::Path(path) => self.resolve_path(path, operand.span),
            OperandKind::Call { name, args } => self
                .resolve_call(name, args, operand.span)
                .map(Operand::Expr),
        }
    }

    pub(crate) fn resolve_path(
        &mut self,
        path: &Path,
        span: Span,
    ) -> Result<Operand, CompileError> {
        let full = path_text(path);
        let first = &path.segments[0].name;
        if first == "@request" || first == "@collection" {
            if self.mode.restricted() {
                return Err(self.err(
                    Kind::Forbidden,
                    span,
                    format!("only superusers can filter by {first} in {}", quote(&full)),
                    "",
                ));
            }
            return if first == "@request" {
                self.resolve_request(path, span, &full)
            } else {
                self.resolve_collection(path, span, &full)
                    .map(Operand::Expr)
            };
        }
        if first.starts_with('@') || first.starts_with('#') {
            let Some(mac) = Macro::from_name(first).filter(|_| path.segments.len() == 1) else {
                return Err(self.err(
                    Kind::UnknownField,
                    span,
                    format!("unknown identifier {}", quote(&full)),
                    "",
                ));
            };
            self.no_mods(&path.segments[0], span, &full)?;
            let conv = if mac.is_number() {
                Conv::Number
            } else {
                Conv::Text
            };
            let ty = if mac.is_number() {
                Ty::Number
            } else {
                Ty::Text
            };
            let slot = self.slot(Source::Macro(mac), conv);
            return Ok(Operand::Expr(ExprOp::plain(Frag::slot(slot), ty)));
        }
        let root = self.root;
        let base = self.base.clone();
        self.resolve_record(root, base, &path.segments, Walk::default(), span, &full)
            .map(Operand::Expr)
    }

    /// A path over the fields of `coll`, whose row is `alias`.
    fn resolve_record(
        &mut self,
        coll: &'a Collection,
        alias: Frag,
        segs: &[Segment],
        walk: Walk,
        span: Span,
        full: &str,
    ) -> Result<ExprOp, CompileError> {
        let seg = &segs[0];
        let rest = &segs[1..];
        if !rest.is_empty() {
            self.no_mods(seg, span, full)?;
        }
        if let Some((source_name, field_name)) = seg.name.split_once("_via_") {
            return self.resolve_back_relation(
                coll,
                alias,
                source_name,
                field_name,
                segs,
                walk,
                span,
                full,
            );
        }
        let Some(field) = coll.field(&seg.name) else {
            return Err(self.err(
                Kind::UnknownField,
                span,
                format!("unknown field {} in {}", quote(&seg.name), quote(full)),
                "",
            ));
        };
        self.check_hidden(field, span, full)?;
        let guard = self.email_guard(coll, field, &alias);
        let mut out = match &field.kind {
            FieldKind::Relation { .. } if !rest.is_empty() => {
                return self.resolve_relation(field, alias, rest, walk, span, full);
            }
            FieldKind::Json { .. } if !rest.is_empty() => {
                let column = self.col(&alias, &field.name);
                self.json_path(column, rest, Ty::Json, span, full)?
            }
            FieldKind::GeoPoint { .. } if !rest.is_empty() => {
                let column = self.col(&alias, &field.name);
                self.geo_part(column, rest, span, full)?
            }
            _ if !rest.is_empty() => {
                return Err(self.err(
                    Kind::UnknownField,
                    span,
                    format!(
                        "field {} has no sub-fields in {}",
                        quote(&field.name),
                        quote(full)
                    ),
                    "",
                ));
            }
            _ => return self.record_leaf(field, &alias, seg, walk, guard, span, full),
        };
        out.joins = walk.chain.clone();
        out.multi = walk.multi;
        out.auth_guard = walk.auth_guard.clone();
        out.padding = walk.padding.clone();
        out.guard = guard;
        Ok(out)
    }

    fn check_hidden(&self, field: &Field, span: Span, full: &str) -> Result<(), CompileError> {
        if self.mode.restricted() && field.hidden {
            return Err(self.err(
                Kind::HiddenField,
                span,
                format!(
                    "cannot filter or sort by hidden field {} in {}",
                    quote(&field.name),
                    quote(full)
                ),
                "",
            ));
        }
        Ok(())
    }

    /// In client filters, an auth record's email only matches when it is visible.
    fn email_guard(&self, coll: &Collection, field: &Field, alias: &Frag) -> Option<Frag> {
        (self.mode.restricted() && coll.is_auth() && field.name == "email")
            .then(|| frag![self.col(alias, "emailVisibility"), " = TRUE"])
    }

    /// The last segment of a record path: a column with its modifiers.
    #[allow(clippy::too_many_arguments)]
    fn record_leaf(
        &mut self,
        field: &Field,
        alias: &Frag,
        seg: &Segment,
        walk: Walk,
        guard: Option<Frag>,
        span: Span,
        full: &str,
    ) -> Result<ExprOp, CompileError> {
        let mods = self.mods(seg, span, full)?;
        if mods.changed {
            return Err(self.err(
                Kind::InvalidModifier,
                span,
                format!(
                    "modifier \":changed\" is only allowed on @request.body fields, in {}",
                    quote(full)
                ),
                "",
            ));
        }
        let column = self.col(alias, &field.name);
        let mut walk = walk;
        let (value, ty) = if mods.length && field.is_list_kind() {
            (self.length_of(field, column), Ty::Number)
        } else if mods.each {
            if !field.is_list_kind() {
                return Err(self.err(
                    Kind::InvalidModifier,
                    span,
                    format!(
                        "modifier \":each\" needs a select, relation or file field, {} is not one, in {}",
                        quote(&field.name),
                        quote(full)
                    ),
                    "",
                ));
            }
            if field.is_multiple() {
                let (next, value) =
                    self.each_join(&walk, &format!("{}:each", field.name), column, span, full)?;
                walk = next;
                (value, Ty::Text)
            } else {
                (column, Ty::Text)
            }
        } else {
            (self.column_value(field, column), field_ty(field))
        };
        let mut out = ExprOp {
            value,
            ty,
            joins: walk.chain,
            multi: walk.multi,
            guard,
            auth_guard: walk.auth_guard,
            padding: walk.padding,
            flexible: false,
        };
        if mods.lower {
            out = self.lower(out);
        }
        Ok(out)
    }

    /// The comparable value of a column.
    fn column_value(&self, field: &Field, column: Frag) -> Frag {
        match (field_ty(field), self.dialect) {
            (Ty::Json, Dialect::Sqlite) => frag!["json_extract(", column, ", '$')"],
            _ => column,
        }
    }

    /// `:length` of a select, relation or file column.
    fn length_of(&self, field: &Field, column: Frag) -> Frag {
        match (field.is_multiple(), self.dialect) {
            (true, Dialect::Sqlite) => frag!["json_array_length(", column, ")"],
            (true, Dialect::Postgres) => frag!["jsonb_array_length(", column, ")"],
            (false, _) => frag![
                "(CASE WHEN ",
                &column,
                " IS NULL THEN NULL WHEN ",
                &column,
                " = '' THEN 0 ELSE 1 END)"
            ],
        }
    }

    /// `:lower`: ASCII lower case of the text form of the value.
    pub(crate) fn lower(&self, mut op: ExprOp) -> ExprOp {
        op.value = match self.dialect {
            Dialect::Sqlite => frag!["LOWER(", &op.value, ")"],
            Dialect::Postgres => frag!["LOWER(", self.pg_text(&op), " COLLATE \"C\")"],
        };
        op.ty = Ty::Text;
        op.flexible = false;
        op
    }

    /// A JSON path into a JSON value (`meta.a.0`): parts are bound, never written.
    fn json_path(
        &mut self,
        json: Frag,
        rest: &[Segment],
        _ty: Ty,
        span: Span,
        full: &str,
    ) -> Result<ExprOp, CompileError> {
        let mut lower = false;
        for (idx, seg) in rest.iter().enumerate() {
            if !is_word(&seg.name) {
                return Err(self.err(
                    Kind::UnknownField,
                    span,
                    format!("invalid json path {}", quote(full)),
                    "",
                ));
            }
            if idx + 1 < rest.len() {
                self.no_mods(seg, span, full)?;
            } else {
                let mods = self.mods(seg, span, full)?;
                if mods.each || mods.changed {
                    return Err(self.err(
                        Kind::InvalidModifier,
                        span,
                        format!("json paths support only \":lower\", in {}", quote(full)),
                        "",
                    ));
                }
                lower = mods.lower;
            }
        }
        let value = match self.dialect {
            Dialect::Sqlite => {
                let mut text = String::from("$");
                for seg in rest {
                    if seg.name.bytes().all(|b| b.is_ascii_digit()) {
                        text.push_str(&format!("[{}]", seg.name));
                    } else {
                        text.push('.');
                        text.push_str(&seg.name);
                    }
                }
                let path = self.constant(Value::Text(text));
                frag!["json_extract(", json, ", ", path, ")"]
            }
            Dialect::Postgres => {
                let parts: Vec<Frag> = rest
                    .iter()
                    .map(|seg| self.constant(Value::Text(seg.name.clone())))
                    .collect();
                frag![
                    "jsonb_extract_path(",
                    json,
                    ", ",
                    Frag::join(parts, ", "),
                    ")"
                ]
            }
        };
        let op = ExprOp::plain(value, Ty::Json);
        Ok(if lower { self.lower(op) } else { op })
    }

    /// `geo.lon` / `geo.lat`.
    fn geo_part(
        &mut self,
        column: Frag,
        rest: &[Segment],
        span: Span,
        full: &str,
    ) -> Result<ExprOp, CompileError> {
        let [seg] = rest else {
            return Err(self.err(
                Kind::UnknownField,
                span,
                format!(
                    "a geoPoint field has only \"lon\" and \"lat\", in {}",
                    quote(full)
                ),
                "",
            ));
        };
        let part = match seg.name.as_str() {
            "lon" => "lon",
            "lat" => "lat",
            _ => {
                return Err(self.err(
                    Kind::UnknownField,
                    span,
                    format!(
                        "a geoPoint field has only \"lon\" and \"lat\", in {}",
                        quote(full)
                    ),
                    "",
                ));
            }
        };
        self.no_mods(seg, span, full)?;
        let value = match self.dialect {
            Dialect::Sqlite => frag!["json_extract(", column, &format!(", '$.{part}')")],
            Dialect::Postgres => frag!["(", column, &format!(" ->> '{part}')::float8")],
        };
        Ok(ExprOp::plain(value, Ty::Number))
    }

    /// `rel.path`: joins the related record(s).
    fn resolve_relation(
        &mut self,
        field: &'a Field,
        alias: Frag,
        rest: &[Segment],
        walk: Walk,
        span: Span,
        full: &str,
    ) -> Result<ExprOp, CompileError> {
        let target_id = field.relation_target().unwrap_or_default();
        let Some(target) = self.schema.find(target_id) else {
            return Err(self.err(
                Kind::UnknownCollection,
                span,
                format!(
                    "the target collection of relation {} does not exist, in {}",
                    quote(&field.name),
                    quote(full)
                ),
                "",
            ));
        };
        let column = self.col(&alias, &field.name);
        // `rel.id` reads the stored id(s) without a join.
        if let [id_seg] = rest
            && id_seg.name == "id"
        {
            let mods = self.mods(id_seg, span, full)?;
            let mut walk = walk;
            let value = if field.is_multiple() {
                let (next, value) =
                    self.each_join(&walk, &format!("{}:each", field.name), column, span, full)?;
                walk = next;
                value
            } else {
                column
            };
            let mut out = ExprOp {
                value,
                ty: Ty::Text,
                joins: walk.chain,
                multi: walk.multi,
                guard: None,
                padding: walk.padding,
                auth_guard: walk.auth_guard,
                flexible: false,
            };
            if mods.lower {
                out = self.lower(out);
            }
            return Ok(out);
        }
        let mut walk = walk;
        self.count_hop(&mut walk, span, full)?;
        let id_value = if field.is_multiple() {
            let (next, value) =
                self.each_join(&walk, &format!("{}:each", field.name), column, span, full)?;
            walk = next;
            value
        } else {
            column
        };
        let (walk, target_alias) =
            self.table_join(&walk, &field.name, target, id_value, span, full)?;
        self.resolve_record(target, target_alias, rest, walk, span, full)
    }

    /// `LEFT JOIN target ON target.id = <id>` (plus its list rule in client filters).
    fn table_join(
        &mut self,
        walk: &Walk,
        step: &str,
        target: &'a Collection,
        id_value: Frag,
        span: Span,
        full: &str,
    ) -> Result<(Walk, Frag), CompileError> {
        let table = self.q(&target.name);
        self.join(walk, step, span, full, |cx, alias| {
            let quoted = cx.q(alias);
            let mut on = frag![&quoted, ".\"id\" = ", id_value];
            if let Some(rule) = cx.list_rule(target, alias, span, full)? {
                on = frag!["(", on, ") AND ", rule];
            }
            Ok(frag![" LEFT JOIN ", &table, " AS ", &quoted, " ON ", on])
        })
    }

    /// `<source>_via_<field>.path`: records of `source` whose relation points here.
    #[allow(clippy::too_many_arguments)]
    fn resolve_back_relation(
        &mut self,
        coll: &'a Collection,
        alias: Frag,
        source_name: &str,
        field_name: &str,
        segs: &[Segment],
        walk: Walk,
        span: Span,
        full: &str,
    ) -> Result<ExprOp, CompileError> {
        let invalid = |cx: &Self| {
            cx.err(
                Kind::UnknownField,
                span,
                format!(
                    "invalid back-relation {} in {}",
                    quote(&segs[0].name),
                    quote(full)
                ),
                "",
            )
        };
        let Some(source) = self.schema.find(source_name) else {
            return Err(invalid(self));
        };
        let Some(field) = source.field(field_name) else {
            return Err(invalid(self));
        };
        if field.relation_target() != Some(coll.id.as_str()) {
            return Err(invalid(self));
        }
        if segs.len() < 2 {
            return Err(self.err(
                Kind::UnknownField,
                span,
                format!(
                    "back-relation {} needs a field after it, in {}",
                    quote(&segs[0].name),
                    quote(full)
                ),
                "",
            ));
        }
        self.check_hidden(field, span, full)?;
        let mut walk = walk;
        self.count_hop(&mut walk, span, full)?;
        let table = self.q(&source.name);
        let column = self.q(&field.name);
        let multiple = field.is_multiple();
        let dialect = self.dialect;
        let own_id = self.col(&alias, "id");
        let step = format!("{}_via_{}", source.name, field.name);
        let (mut walk, source_alias) = self.join(&walk, &step, span, full, |cx, new_alias| {
            let quoted = cx.q(new_alias);
            let mut on = match (multiple, dialect) {
                (false, _) => frag![&quoted, ".", &column, " = ", own_id],
                (true, Dialect::Sqlite) => frag![
                    "EXISTS (SELECT 1 FROM json_each(",
                    &quoted,
                    ".",
                    &column,
                    ") AS \"__e\" WHERE \"__e\".\"value\" = ",
                    own_id,
                    ")"
                ],
                (true, Dialect::Postgres) => {
                    frag![&quoted, ".", &column, " @> jsonb_build_array(", own_id, ")"]
                }
            };
            if let Some(rule) = cx.list_rule(source, new_alias, span, full)? {
                on = frag!["(", on, ") AND ", rule];
            }
            Ok(frag![" LEFT JOIN ", &table, " AS ", &quoted, " ON ", on])
        })?;
        walk.multi = true;
        self.resolve_record(source, source_alias, &segs[1..], walk, span, full)
    }

    /// `@collection.<name>[:alias].<path>`.
    fn resolve_collection(
        &mut self,
        path: &Path,
        span: Span,
        full: &str,
    ) -> Result<ExprOp, CompileError> {
        self.no_mods(&path.segments[0], span, full)?;
        let Some(seg) = path.segments.get(1).filter(|_| path.segments.len() > 2) else {
            return Err(self.err(
                Kind::UnknownField,
                span,
                format!(
                    "{} needs a collection and a field, as in \"@collection.users.name\"",
                    quote(full)
                ),
                "",
            ));
        };
        let Some(coll) = self.schema.find(&seg.name) else {
            return Err(self.err(
                Kind::UnknownCollection,
                span,
                format!("unknown collection {} in {}", quote(&seg.name), quote(full)),
                "",
            ));
        };
        if seg.modifiers.len() > 1 {
            return Err(self.err(
                Kind::InvalidModifier,
                span,
                format!("a collection takes at most one alias, in {}", quote(full)),
                "",
            ));
        }
        let alias_name = seg.modifiers.first().map_or("", String::as_str);
        let mut walk = Walk::default();
        self.count_hop(&mut walk, span, full)?;
        let step = format!("@collection:{}:{}", coll.id, alias_name);
        let table = self.q(&coll.name);
        let (mut walk, alias) = self.join(&walk, &step, span, full, |cx, new_alias| {
            let quoted = cx.q(new_alias);
            let mut on = Frag::sql("TRUE");
            if let Some(rule) = cx.list_rule(coll, new_alias, span, full)? {
                on = rule;
            }
            Ok(frag![" LEFT JOIN ", &table, " AS ", &quoted, " ON ", on])
        })?;
        walk.multi = true;
        self.resolve_record(coll, alias, &path.segments[2..], walk, span, full)
    }

    /// A NULL of the given type (typed on PostgreSQL).
    pub(crate) fn typed_null(&self, ty: Ty) -> ExprOp {
        let sql = match (self.dialect, ty) {
            (Dialect::Sqlite, _) => "NULL",
            (Dialect::Postgres, Ty::Text) => "NULL::text",
            (Dialect::Postgres, Ty::Number) => "NULL::float8",
            (Dialect::Postgres, Ty::Bool) => "NULL::boolean",
            (Dialect::Postgres, Ty::Json) => "NULL::jsonb",
        };
        ExprOp::plain(Frag::sql(sql), ty)
    }

    /// A request slot as an operand.
    fn request_slot(&mut self, source: Source, conv: Conv, ty: Ty, flexible: bool) -> ExprOp {
        let slot = self.slot(source, conv);
        let mut op = ExprOp::plain(Frag::slot(slot), ty);
        op.flexible = flexible;
        op
    }

    fn bool_slot(&mut self, source: Source) -> Operand {
        Operand::Expr(self.request_slot(source, Conv::Bool, Ty::Bool, false))
    }

    /// The typed NULL of a missing `@request.*` value.
    fn missing(&self) -> Operand {
        Operand::Expr(self.typed_null(Ty::Json))
    }

    /// `@request.*`.
    fn resolve_request(
        &mut self,
        path: &Path,
        span: Span,
        full: &str,
    ) -> Result<Operand, CompileError> {
        let segs = &path.segments;
        self.no_mods(&segs[0], span, full)?;
        let Some(second) = segs.get(1) else {
            return Err(self.err(
                Kind::UnknownField,
                span,
                format!("unknown request path {}", quote(full)),
                "",
            ));
        };
        match second.name.as_str() {
            "method" | "context" if segs.len() == 2 => {
                let mods = self.mods(second, span, full)?;
                if mods.each || mods.length || mods.changed {
                    return Err(self.multivalue_error(&second.name, span, full));
                }
                if mods.isset {
                    return Ok(Operand::Lit(Lit::Bool(true)));
                }
                let source = if second.name == "method" {
                    Source::Method
                } else {
                    Source::Context
                };
                let op = self.request_slot(source, Conv::Text, Ty::Text, !mods.lower);
                Ok(Operand::Expr(if mods.lower { self.lower(op) } else { op }))
            }
            "query" | "headers" if segs.len() >= 3 => {
                self.no_mods(second, span, full)?;
                let key = segs[2].name.clone();
                let mods = self.mods(&segs[2], span, full)?;
                if mods.each || mods.length || mods.changed {
                    return Err(self.multivalue_error(&key, span, full));
                }
                let is_query = second.name == "query";
                if mods.isset {
                    return Ok(self.bool_slot(if is_query {
                        Source::QueryIsSet(key)
                    } else {
                        Source::HeaderIsSet(key)
                    }));
                }
                if segs.len() > 3 {
                    return Ok(self.missing());
                }
                let source = if is_query {
                    Source::Query(key)
                } else {
                    Source::Header(key)
                };
                let op = self.request_slot(source, Conv::Text, Ty::Text, !mods.lower);
                Ok(Operand::Expr(if mods.lower { self.lower(op) } else { op }))
            }
            "auth" if segs.len() >= 3 => {
                self.no_mods(second, span, full)?;
                self.resolve_auth(segs, span, full)
            }
            "body" if segs.len() >= 3 => {
                self.no_mods(second, span, full)?;
                self.resolve_body(segs, span, full)
            }
            _ => Err(self.err(
                Kind::UnknownField,
                span,
                format!("unknown request path {}", quote(full)),
                "",
            )),
        }
    }

    fn multivalue_error(&self, name: &str, span: Span, full: &str) -> CompileError {
        self.err(
            Kind::InvalidModifier,
            span,
            format!(
                "{} doesn't support multivalue operations, in {}",
                quote(name),
                quote(full)
            ),
            "",
        )
    }

    /// The guard of every `@request.auth` value: the caller is not a guest.
    fn auth_guard(&mut self) -> Frag {
        let slot = self.slot(Source::AuthId, Conv::Text);
        frag![Frag::slot(slot), " IS NOT NULL"]
    }

    /// `@request.auth.*`.
    fn resolve_auth(
        &mut self,
        segs: &[Segment],
        span: Span,
        full: &str,
    ) -> Result<Operand, CompileError> {
        let key = segs[2].name.clone();
        let last = segs.len() == 3;
        if last {
            let mods = self.mods(&segs[2], span, full)?;
            if mods.isset {
                return Ok(self.bool_slot(Source::AuthIsSet(key)));
            }
            let fixed = match key.as_str() {
                "id" => Some((Source::AuthId, Conv::Text, Ty::Text)),
                "collectionId" => Some((Source::AuthCollectionId, Conv::Text, Ty::Text)),
                "collectionName" => Some((Source::AuthCollectionName, Conv::Text, Ty::Text)),
                "email" => Some((Source::AuthRecord(key.clone()), Conv::Text, Ty::Text)),
                "verified" | "emailVisibility" => {
                    Some((Source::AuthRecord(key.clone()), Conv::Bool, Ty::Bool))
                }
                _ => None,
            };
            if let Some((source, conv, ty)) = fixed {
                if mods.each || mods.length || mods.changed {
                    return Err(self.multivalue_error(&key, span, full));
                }
                let mut op = self.request_slot(source, conv, ty, false);
                op.auth_guard = Some(self.auth_guard());
                return Ok(Operand::Expr(if mods.lower { self.lower(op) } else { op }));
            }
        }
        let guard = self.auth_guard();
        let auth_coll = self.auth_collection;
        let Some(coll) = auth_coll.filter(|coll| coll.field(&key).is_some()) else {
            let mut op = self.typed_null(Ty::Json);
            op.auth_guard = Some(guard);
            return Ok(Operand::Expr(op));
        };
        let table = self.q(&coll.name);
        let walk = Walk {
            auth_guard: Some(guard),
            ..Walk::default()
        };
        let id_slot = self.slot(Source::AuthId, Conv::Text);
        let (walk, alias) = self.join(&walk, "@auth", span, full, |cx, alias| {
            let quoted = cx.q(alias);
            Ok(frag![
                " LEFT JOIN ",
                &table,
                " AS ",
                &quoted,
                " ON ",
                &quoted,
                ".\"id\" = ",
                Frag::slot(id_slot)
            ])
        })?;
        self.resolve_record(coll, alias, &segs[2..], walk, span, full)
            .map(Operand::Expr)
    }

    /// `@request.body.*`.
    fn resolve_body(
        &mut self,
        segs: &[Segment],
        span: Span,
        full: &str,
    ) -> Result<Operand, CompileError> {
        let seg = &segs[2];
        let key = seg.name.clone();
        let rest = &segs[3..];
        let root = self.root;
        let field = root.field(&key);
        if !rest.is_empty() {
            self.no_mods(seg, span, full)?;
            return self.body_sub_path(field, key, rest, span, full);
        }
        let mods = self.mods(seg, span, full)?;
        if mods.isset {
            return Ok(self.bool_slot(Source::BodyIsSet(key)));
        }
        let Some(field) = field else {
            if mods.each || mods.length {
                return Err(self.multivalue_error(&key, span, full));
            }
            if mods.changed {
                return Err(self.err(
                    Kind::InvalidModifier,
                    span,
                    format!(
                        "modifier \":changed\" needs a field of the collection, in {}",
                        quote(full)
                    ),
                    "",
                ));
            }
            let op = self.request_slot(Source::Body(key), Conv::Json, Ty::Json, !mods.lower);
            return Ok(Operand::Expr(if mods.lower { self.lower(op) } else { op }));
        };
        if mods.changed {
            return self.body_changed(field, span).map(Operand::Expr);
        }
        if mods.length {
            if !field.is_list_kind() {
                return Err(self.multivalue_error(&key, span, full));
            }
            let slot = self.slot(Source::BodyLength(key), Conv::Number);
            return Ok(Operand::Expr(ExprOp::plain(Frag::slot(slot), Ty::Number)));
        }
        if mods.each && !field.is_list_kind() {
            return Err(self.multivalue_error(&key, span, full));
        }
        let mut op = if mods.each && field.is_multiple() {
            let slot = self.slot(Source::Body(key.clone()), Conv::JsonArray);
            let (walk, value) = self.each_join(
                &Walk::default(),
                &format!("@body:{key}"),
                Frag::slot(slot),
                span,
                full,
            )?;
            // Submitted lists have no NULL stand-in for "empty": an empty list
            // matches nothing (PocketBase), so the padding row never satisfies.
            let padding = frag![&value, " IS NULL"];
            ExprOp {
                value,
                ty: Ty::Text,
                joins: walk.chain,
                multi: true,
                guard: None,
                padding: Some(padding),
                auth_guard: None,
                flexible: false,
            }
        } else if mods.each {
            let slot = self.slot(Source::Body(key), Conv::Text);
            ExprOp::plain(Frag::slot(slot), Ty::Text)
        } else {
            let (conv, ty) = match field_ty(field) {
                Ty::Number => (Conv::Number, Ty::Number),
                Ty::Bool => (Conv::Bool, Ty::Bool),
                Ty::Json => (Conv::Json, Ty::Json),
                Ty::Text => (Conv::Text, Ty::Text),
            };
            self.request_slot(Source::Body(key), conv, ty, false)
        };
        if mods.lower {
            op = self.lower(op);
        }
        Ok(Operand::Expr(op))
    }

    /// `@request.body.<rel>.<path>`, `@request.body.<json>.<path>`, ...
    fn body_sub_path(
        &mut self,
        field: Option<&'a Field>,
        key: String,
        rest: &[Segment],
        span: Span,
        full: &str,
    ) -> Result<Operand, CompileError> {
        match field.map(|f| (f, &f.kind)) {
            Some((field, FieldKind::Relation { .. })) => {
                let Some(target) = self
                    .schema
                    .find(field.relation_target().unwrap_or_default())
                else {
                    return Err(self.err(
                        Kind::UnknownCollection,
                        span,
                        format!(
                            "the target collection of relation {} does not exist, in {}",
                            quote(&key),
                            quote(full)
                        ),
                        "",
                    ));
                };
                let mut walk = Walk::default();
                self.count_hop(&mut walk, span, full)?;
                let id_value = if field.is_multiple() {
                    let slot = self.slot(Source::Body(key.clone()), Conv::JsonArray);
                    let (next, value) = self.each_join(
                        &walk,
                        &format!("@body:{key}"),
                        Frag::slot(slot),
                        span,
                        full,
                    )?;
                    walk = next;
                    walk.padding = Some(frag![&value, " IS NULL"]);
                    value
                } else {
                    let slot = self.slot(Source::Body(key.clone()), Conv::Text);
                    Frag::slot(slot)
                };
                let (walk, alias) = self.table_join(
                    &walk,
                    &format!("@body:{key}:rel"),
                    target,
                    id_value,
                    span,
                    full,
                )?;
                self.resolve_record(target, alias, rest, walk, span, full)
                    .map(Operand::Expr)
            }
            Some((_, FieldKind::GeoPoint { .. })) => {
                let slot = self.slot(Source::Body(key), Conv::JsonText);
                let json = match self.dialect {
                    Dialect::Sqlite => Frag::slot(slot),
                    Dialect::Postgres => Frag::slot(slot),
                };
                self.geo_part(json, rest, span, full).map(Operand::Expr)
            }
            Some((_, FieldKind::Json { .. })) | None => {
                let slot = self.slot(Source::Body(key), Conv::JsonText);
                self.json_path(Frag::slot(slot), rest, Ty::Json, span, full)
                    .map(Operand::Expr)
            }
            Some(_) => Ok(self.missing()),
        }
    }

    /// `@request.body.<field>:changed`: the key was sent and differs from the stored value.
    fn body_changed(&mut self, field: &Field, span: Span) -> Result<ExprOp, CompileError> {
        let isset = self.slot(Source::BodyIsSet(field.name.clone()), Conv::Bool);
        let column = self.col(&Frag::base(), &field.name);
        let ty = field_ty(field);
        let conv = match ty {
            Ty::Number => Conv::Number,
            Ty::Bool => Conv::Bool,
            Ty::Json => Conv::JsonText,
            Ty::Text => Conv::Text,
        };
        let body = self.slot(Source::Body(field.name.clone()), conv);
        let stored = ExprOp::plain(self.column_value(field, column), ty);
        let sent_value = match (ty, self.dialect) {
            (Ty::Json, Dialect::Sqlite) => frag!["json_extract(", Frag::slot(body), ", '$')"],
            _ => Frag::slot(body),
        };
        let sent = ExprOp::plain(sent_value, ty);
        let _ = span;
        let same = self.emit_eq(&stored, &sent, false);
        Ok(ExprOp::plain(
            frag!["(", Frag::slot(isset), " AND NOT (", same, "))"],
            Ty::Bool,
        ))
    }

    /// A function call operand.
    fn resolve_call(
        &mut self,
        name: &str,
        args: &[AstOperand],
        span: Span,
    ) -> Result<ExprOp, CompileError> {
        match name {
            "geoDistance" => self.geo_distance(args, span),
            "strftime" => self.strftime(args, span),
            _ => Err(self.err(
                Kind::InvalidFunction,
                span,
                format!("unknown function {}", quote(name)),
                "",
            )),
        }
    }

    /// Merges the joins, guards and multiplicity of function arguments.
    fn merge_args(out: &mut ExprOp, arg: &ExprOp) {
        for join in &arg.joins {
            if !out.joins.contains(join) {
                out.joins.push(*join);
            }
        }
        out.joins.sort_unstable();
        out.multi |= arg.multi;
        out.guard = match (out.guard.take(), &arg.guard) {
            (Some(a), Some(b)) => Some(frag![a, " AND ", b]),
            (a, b) => a.or(b.clone()),
        };
        if out.auth_guard.is_none() {
            out.auth_guard = arg.auth_guard.clone();
        }
    }

    /// A numeric argument.
    fn number_arg(&mut self, arg: &AstOperand, span: Span) -> Result<ExprOp, CompileError> {
        let op = match self.resolve_operand(arg)? {
            Operand::Lit(Lit::Number(n)) => {
                ExprOp::plain(self.constant(Value::Float(n)), Ty::Number)
            }
            Operand::Lit(Lit::Null) => self.typed_null(Ty::Number),
            Operand::Lit(Lit::Text(text)) => match text.trim().parse::<f64>() {
                Ok(n) if n.is_finite() => ExprOp::plain(self.constant(Value::Float(n)), Ty::Number),
                _ => {
                    return Err(self.err(
                        Kind::InvalidFunction,
                        span,
                        "geoDistance arguments must be numbers or fields".to_string(),
                        "",
                    ));
                }
            },
            Operand::Lit(Lit::Bool(_)) => {
                return Err(self.err(
                    Kind::InvalidFunction,
                    span,
                    "geoDistance arguments must be numbers or fields".to_string(),
                    "",
                ));
            }
            Operand::Expr(mut op) => {
                if op.flexible
                    && let Some(idx) = op.value.bare_slot()
                {
                    self.slots[idx].conv = Conv::Number;
                    op.ty = Ty::Number;
                    op.flexible = false;
                }
                op.value = self.number_value(&op);
                op.ty = Ty::Number;
                op
            }
        };
        Ok(op)
    }

    /// `geoDistance(lonA, latA, lonB, latB)`: haversine distance in km.
    fn geo_distance(&mut self, args: &[AstOperand], span: Span) -> Result<ExprOp, CompileError> {
        if args.len() != 4 {
            return Err(self.err(
                Kind::InvalidFunction,
                span,
                format!("geoDistance needs 4 arguments, got {}", args.len()),
                "",
            ));
        }
        let mut out = ExprOp::plain(Frag::default(), Ty::Number);
        let mut values = Vec::with_capacity(4);
        for arg in args {
            let op = self.number_arg(arg, span)?;
            Self::merge_args(&mut out, &op);
            values.push(op.value);
        }
        let rad = |v: &Frag| frag!["RADIANS(", v, ")"];
        let (lon_a, lat_a, lon_b, lat_b) = (&values[0], &values[1], &values[2], &values[3]);
        let inner = frag![
            "POWER(SIN((",
            rad(lat_b),
            " - ",
            rad(lat_a),
            ") / 2), 2) + COS(",
            rad(lat_a),
            ") * COS(",
            rad(lat_b),
            ") * POWER(SIN((",
            rad(lon_b),
            " - ",
            rad(lon_a),
            ") / 2), 2)"
        ];
        let clamp = match self.dialect {
            Dialect::Sqlite => "MIN(1.0, SQRT(",
            Dialect::Postgres => "LEAST(1.0, SQRT(",
        };
        out.value = frag!["(12742.0 * ASIN(", clamp, inner, "))))"];
        Ok(out)
    }

    /// The numeric form of a value (for function arguments).
    fn number_value(&self, op: &ExprOp) -> Frag {
        match (self.dialect, op.ty) {
            (Dialect::Sqlite, _) | (Dialect::Postgres, Ty::Number) => op.value.clone(),
            (Dialect::Postgres, Ty::Bool) => frag!["(", &op.value, ")::int"],
            (Dialect::Postgres, Ty::Json) => frag![
                "(CASE WHEN jsonb_typeof(",
                &op.value,
                ") = 'number' THEN (",
                &op.value,
                ")::float8 END)"
            ],
            (Dialect::Postgres, Ty::Text) => frag![
                "(CASE WHEN ",
                &op.value,
                " ~ '^\\s*-?[0-9]+(\\.[0-9]+)?\\s*$' THEN (",
                &op.value,
                ")::float8 END)"
            ],
        }
    }

    /// `strftime(format, value, modifiers...)`.
    fn strftime(&mut self, args: &[AstOperand], span: Span) -> Result<ExprOp, CompileError> {
        if args.len() < 2 || args.len() > 10 {
            return Err(self.err(
                Kind::InvalidFunction,
                span,
                format!("strftime needs 2 to 10 arguments, got {}", args.len()),
                "",
            ));
        }
        let Operand::Lit(Lit::Text(format)) = self.resolve_operand(&args[0])? else {
            return Err(self.err(
                Kind::InvalidFunction,
                span,
                "strftime needs a text format as its first argument".to_string(),
                "",
            ));
        };
        let value = match self.resolve_operand(&args[1])? {
            Operand::Lit(lit) => self.materialize(lit, Ty::Text),
            Operand::Expr(op) => op,
        };
        let mut out = ExprOp::plain(Frag::default(), Ty::Text);
        Self::merge_args(&mut out, &value);
        match self.dialect {
            Dialect::Sqlite => {
                let mut parts = vec![self.constant(Value::Text(format)), value.value.clone()];
                for arg in &args[2..] {
                    let op = match self.resolve_operand(arg)? {
                        Operand::Lit(lit) => self.materialize(lit, Ty::Text),
                        Operand::Expr(op) => op,
                    };
                    Self::merge_args(&mut out, &op);
                    parts.push(op.value);
                }
                out.value = frag!["strftime(", Frag::join(parts, ", "), ")"];
            }
            Dialect::Postgres => {
                if args.len() > 2 {
                    return Err(self.err(
                        Kind::InvalidFunction,
                        span,
                        "strftime modifiers are not supported on postgres".to_string(),
                        "",
                    ));
                }
                let text = self.pg_text(&value);
                out.value = self.pg_strftime(&format, text, span)?;
            }
        }
        Ok(out)
    }

    /// Emulates SQLite's `strftime` for the common format specifiers with `to_char`.
    fn pg_strftime(&mut self, format: &str, value: Frag, span: Span) -> Result<Frag, CompileError> {
        let stamp = frag![
            "(CASE WHEN ",
            &value,
            " ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]+)?)?)?Z?$' THEN CAST(RTRIM(",
            &value,
            ", 'Z') AS timestamp) END)"
        ];
        let mut parts: Vec<Frag> = Vec::new();
        let mut literal = String::new();
        let mut chars = format.chars();
        while let Some(ch) = chars.next() {
            if ch != '%' {
                literal.push(ch);
                continue;
            }
            let Some(spec) = chars.next() else {
                literal.push('%');
                break;
            };
            let pattern = match spec {
                '%' => {
                    literal.push('%');
                    continue;
                }
                'd' => "DD",
                'm' => "MM",
                'Y' => "YYYY",
                'H' => "HH24",
                'M' => "MI",
                'S' => "SS",
                'f' => "SS.MS",
                'j' => "DDD",
                'F' => "YYYY-MM-DD",
                'T' => "HH24:MI:SS",
                'R' => "HH24:MI",
                'w' | 's' | 'u' => "",
                other => {
                    return Err(self.err(
                        Kind::InvalidFunction,
                        span,
                        format!(
                            "strftime format {} is not supported on postgres",
                            quote(&format!("%{other}"))
                        ),
                        "",
                    ));
                }
            };
            if !literal.is_empty() {
                parts.push(self.constant(Value::Text(std::mem::take(&mut literal))));
            }
            parts.push(match spec {
                'w' => frag!["(EXTRACT(DOW FROM ", &stamp, ")::int)::text"],
                'u' => frag!["(EXTRACT(ISODOW FROM ", &stamp, ")::int)::text"],
                's' => frag!["(FLOOR(EXTRACT(EPOCH FROM ", &stamp, "))::bigint)::text"],
                _ => frag!["to_char(", &stamp, &format!(", '{pattern}')")],
            });
        }
        if !literal.is_empty() {
            parts.push(self.constant(Value::Text(literal)));
        }
        if parts.is_empty() {
            parts.push(self.constant(Value::Text(String::new())));
        }
        Ok(frag![
            "(CASE WHEN ",
            &stamp,
            " IS NULL THEN NULL ELSE ",
            Frag::join(parts, " || "),
            " END)"
        ])
    }
}
