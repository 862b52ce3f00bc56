//! Emitting one comparison per dialect.
//!
//! SQLite gets PocketBase's SQL: `COALESCE(a, '') = COALESCE(b, '')` for `=`/`!=`
//! (so `''` and NULL are the same), `(x = '' OR x IS NULL)` against an empty literal,
//! plain `<`/`>` and `LIKE ... ESCAPE '\'` (ASCII case-insensitive).
//!
//! PostgreSQL is typed, so the same results are produced per type pair: text with
//! `COALESCE`, numbers and booleans with `IS [NOT] DISTINCT FROM`, text ordering with
//! `COLLATE "C"` (byte order, as SQLite's BINARY), `LIKE` on `LOWER(.. COLLATE "C")`
//! (ASCII-only case folding, as SQLite). When a JSON value or two different types
//! meet, SQLite's own rules for mixed values are emulated: for `=` a NULL folds to
//! `''`, numbers only equal numbers and text only text; for ordering NULL never
//! compares, numbers (and booleans, as 0/1) sort before text.
//!
//! Literals compared with a typed value are first converted to its type at compile
//! time (`views > '3'` compares with the number 3, `title = 5` with the text `5`);
//! `@request.*` values are converted when bound (a non-numeric text compared with a
//! number field becomes NULL).

use basalt_filter::CmpOp;

use super::compile::Cx;
use super::resolve::{ExprOp, Lit, Operand, Ty};
use super::template::{Conv, Frag, Source, frag, like_pattern, number_text};
use crate::{Dialect, Value};

fn is_empty_lit(op: &Operand) -> bool {
    matches!(op, Operand::Lit(Lit::Null))
        || matches!(op, Operand::Lit(Lit::Text(t)) if t.is_empty())
}

fn conv_for(ty: Ty) -> Conv {
    match ty {
        Ty::Text => Conv::Text,
        Ty::Number => Conv::Number,
        Ty::Bool => Conv::Bool,
        Ty::Json => Conv::Json,
    }
}

/// Converts a literal to `ty` when it reads as one; otherwise keeps it. A number is
/// never equal to a text field (`title = 5` matches nothing, as in PocketBase), but is
/// compared as text by `<`/`>` (SQLite's affinity does the same).
fn coerce_lit(lit: Lit, ty: Ty, op: CmpOp) -> Lit {
    match (lit, ty) {
        (Lit::Text(text), Ty::Number) if !text.trim().is_empty() => {
            match text.trim().parse::<f64>() {
                Ok(number) if number.is_finite() => Lit::Number(number),
                _ => Lit::Text(text),
            }
        }
        (Lit::Text(text), Ty::Bool) => match text.as_str() {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Lit::Bool(true),
            "0" | "f" | "F" | "false" | "FALSE" | "False" => Lit::Bool(false),
            _ => Lit::Text(text),
        },
        (Lit::Number(number), Ty::Text) if !matches!(op, CmpOp::Eq | CmpOp::Neq) => {
            Lit::Text(number_text(number))
        }
        (Lit::Bool(value), Ty::Number) => Lit::Number(if value { 1.0 } else { 0.0 }),
        (lit, _) => lit,
    }
}

fn lit_ty(lit: &Lit) -> Option<Ty> {
    match lit {
        Lit::Text(text) if !text.is_empty() => Some(Ty::Text),
        Lit::Number(_) => Some(Ty::Number),
        Lit::Bool(_) => Some(Ty::Bool),
        _ => None,
    }
}

impl Cx<'_> {
    /// Makes a flexible request value take type `ty`.
    fn retype(&mut self, op: &mut ExprOp, ty: Ty) {
        if let Some(idx) = op.value.bare_slot() {
            self.slots[idx].conv = conv_for(ty);
            op.ty = ty;
            op.flexible = false;
        }
    }

    /// Converts literals and flexible request values towards the other side's type.
    pub(crate) fn coerce(
        &mut self,
        left: Operand,
        right: Operand,
        op: CmpOp,
    ) -> (Operand, Operand) {
        if matches!(op, CmpOp::Like | CmpOp::NotLike) {
            return (left, right);
        }
        match (left, right) {
            (Operand::Lit(lit), Operand::Expr(mut expr)) => {
                if expr.flexible {
                    if let Some(ty) = lit_ty(&lit) {
                        self.retype(&mut expr, ty);
                    }
                    (Operand::Lit(lit), Operand::Expr(expr))
                } else {
                    (
                        Operand::Lit(coerce_lit(lit, expr.ty, op)),
                        Operand::Expr(expr),
                    )
                }
            }
            (Operand::Expr(expr), Operand::Lit(lit)) => {
                let (right, left) = self.coerce(Operand::Lit(lit), Operand::Expr(expr), op);
                (left, right)
            }
            (Operand::Expr(mut a), Operand::Expr(mut b)) => {
                if a.flexible && !b.flexible && b.ty != Ty::Json {
                    self.retype(&mut a, b.ty);
                } else if b.flexible && !a.flexible && a.ty != Ty::Json {
                    self.retype(&mut b, a.ty);
                }
                (Operand::Expr(a), Operand::Expr(b))
            }
            other => other,
        }
    }

    /// A literal as a bound value (NULL is written as a typed `NULL`).
    pub(crate) fn materialize(&mut self, lit: Lit, null_ty: Ty) -> ExprOp {
        match lit {
            Lit::Text(text) => ExprOp::plain(self.constant(Value::Text(text)), Ty::Text),
            Lit::Number(number) => ExprOp::plain(self.constant(Value::Float(number)), Ty::Number),
            Lit::Bool(value) => ExprOp::plain(self.constant(Value::Bool(value)), Ty::Bool),
            Lit::Null => self.typed_null(null_ty),
        }
    }

    fn side(&mut self, op: &Operand, other: &Operand) -> ExprOp {
        match op {
            Operand::Expr(expr) => expr.clone(),
            Operand::Lit(lit) => {
                let ty = match other {
                    Operand::Expr(expr) => expr.ty,
                    Operand::Lit(other) => lit_ty(other).unwrap_or(Ty::Text),
                };
                self.materialize(lit.clone(), ty)
            }
        }
    }

    /// The comparison with the guards of both sides.
    pub(crate) fn emit(&mut self, op: CmpOp, left: &Operand, right: &Operand) -> Frag {
        let empty = is_empty_lit(left) || is_empty_lit(right);
        let core = match op {
            CmpOp::Eq | CmpOp::Neq => {
                let negated = op == CmpOp::Neq;
                if is_empty_lit(left) && is_empty_lit(right) {
                    Frag::sql(if negated { "FALSE" } else { "TRUE" })
                } else if empty {
                    let other = if is_empty_lit(left) { right } else { left };
                    let value = self.side(other, &Operand::Lit(Lit::Text(String::new())));
                    self.emit_empty(&value, negated)
                } else {
                    let a = self.side(left, right);
                    let b = self.side(right, left);
                    self.emit_eq(&a, &b, negated)
                }
            }
            CmpOp::Like | CmpOp::NotLike => self.emit_like(op == CmpOp::NotLike, left, right),
            _ => {
                let a = self.side(left, right);
                let b = self.side(right, left);
                self.emit_order(op, &a, &b)
            }
        };
        let paddings: Vec<&Frag> = [left, right]
            .into_iter()
            .filter_map(|side| match side {
                Operand::Expr(expr) => expr.padding.as_ref(),
                Operand::Lit(_) => None,
            })
            .collect();
        let core = if paddings.is_empty() {
            core
        } else if matches!(op, CmpOp::Neq | CmpOp::NotLike) {
            let mut parts: Vec<Frag> = paddings.into_iter().cloned().collect();
            parts.push(core);
            frag!["(", Frag::join(parts, " OR "), ")"]
        } else {
            let mut parts: Vec<Frag> = paddings.into_iter().map(|p| frag!["NOT ", p]).collect();
            parts.push(core);
            frag!["(", Frag::join(parts, " AND "), ")"]
        };
        let mut guards: Vec<Frag> = Vec::new();
        for side in [left, right] {
            if let Operand::Expr(expr) = side {
                if let Some(guard) = &expr.guard {
                    guards.push(guard.clone());
                }
                if let Some(guard) = &expr.auth_guard
                    && !empty
                    && !guards.contains(guard)
                {
                    guards.push(guard.clone());
                }
            }
        }
        if guards.is_empty() {
            core
        } else {
            guards.push(core);
            frag!["(", Frag::join(guards, " AND "), ")"]
        }
    }

    /// `x = ''` / `x = null` (and `!=`): PocketBase treats NULL and `''` alike.
    fn emit_empty(&self, x: &ExprOp, negated: bool) -> Frag {
        let v = &x.value;
        match (self.dialect, x.ty) {
            (Dialect::Sqlite, _) => {
                if negated {
                    frag!["(", v, " != '' AND ", v, " IS NOT NULL)"]
                } else {
                    frag!["(", v, " = '' OR ", v, " IS NULL)"]
                }
            }
            (Dialect::Postgres, Ty::Text) => frag![
                "COALESCE(",
                v,
                ", '') ",
                if negated { "<>" } else { "=" },
                " ''"
            ],
            (Dialect::Postgres, Ty::Number | Ty::Bool) => {
                frag![v, if negated { " IS NOT NULL" } else { " IS NULL" }]
            }
            (Dialect::Postgres, Ty::Json) => {
                let test = frag![
                    "(",
                    v,
                    " IS NULL OR ",
                    v,
                    " = 'null'::jsonb OR ",
                    v,
                    " = '\"\"'::jsonb)"
                ];
                if negated { frag!["NOT ", test] } else { test }
            }
        }
    }

    /// `a = b` / `a != b` with empty folding.
    pub(crate) fn emit_eq(&self, a: &ExprOp, b: &ExprOp, negated: bool) -> Frag {
        match self.dialect {
            Dialect::Sqlite => frag![
                "COALESCE(",
                &a.value,
                ", '') ",
                if negated { "!=" } else { "=" },
                " COALESCE(",
                &b.value,
                ", '')"
            ],
            Dialect::Postgres => match (a.ty, b.ty) {
                (Ty::Text, Ty::Text) => frag![
                    "COALESCE(",
                    &a.value,
                    ", '') ",
                    if negated { "<>" } else { "=" },
                    " COALESCE(",
                    &b.value,
                    ", '')"
                ],
                (Ty::Number | Ty::Bool, Ty::Number | Ty::Bool) => {
                    let (x, y) = self.pg_same_numeric(a, b);
                    frag![
                        x,
                        if negated {
                            " IS DISTINCT FROM "
                        } else {
                            " IS NOT DISTINCT FROM "
                        },
                        y
                    ]
                }
                _ => {
                    let (ka, na, ta) = self.pg_fold(a);
                    let (kb, nb, tb) = self.pg_fold(b);
                    let test = frag![
                        "(",
                        &ka,
                        " = ",
                        kb,
                        " AND CASE WHEN ",
                        &ka,
                        " = 'n' THEN ",
                        na,
                        " = ",
                        nb,
                        " ELSE ",
                        ta,
                        " = ",
                        tb,
                        " END)"
                    ];
                    if negated { frag!["NOT ", test] } else { test }
                }
            },
        }
    }

    /// Numbers and booleans compared together: booleans as 0/1 unless both are booleans.
    fn pg_same_numeric(&self, a: &ExprOp, b: &ExprOp) -> (Frag, Frag) {
        if a.ty == b.ty {
            return (a.value.clone(), b.value.clone());
        }
        let num = |op: &ExprOp| {
            if op.ty == Ty::Bool {
                frag!["(", &op.value, ")::int"]
            } else {
                op.value.clone()
            }
        };
        (num(a), num(b))
    }

    /// SQLite's view of a value for `=`: kind `'n'` (number) or `'t'` (text, NULL as `''`).
    fn pg_fold(&self, op: &ExprOp) -> (Frag, Frag, Frag) {
        let v = &op.value;
        match op.ty {
            Ty::Text => (
                Frag::sql("'t'"),
                Frag::sql("NULL::float8"),
                frag!["COALESCE(", v, ", '')"],
            ),
            Ty::Number => (
                frag!["(CASE WHEN ", v, " IS NULL THEN 't' ELSE 'n' END)"],
                v.clone(),
                Frag::sql("''"),
            ),
            Ty::Bool => (
                frag!["(CASE WHEN ", v, " IS NULL THEN 't' ELSE 'n' END)"],
                frag!["(", v, ")::int"],
                Frag::sql("''"),
            ),
            Ty::Json => (
                frag![
                    "(CASE WHEN jsonb_typeof(",
                    v,
                    ") IN ('number', 'boolean') THEN 'n' ELSE 't' END)"
                ],
                self.pg_json_number(v),
                frag![
                    "(CASE WHEN ",
                    v,
                    " IS NULL OR jsonb_typeof(",
                    v,
                    ") = 'null' THEN '' WHEN jsonb_typeof(",
                    v,
                    ") = 'string' THEN ",
                    v,
                    " #>> '{}' ELSE (",
                    v,
                    ")::text END)"
                ],
            ),
        }
    }

    fn pg_json_number(&self, v: &Frag) -> Frag {
        frag![
            "(CASE jsonb_typeof(",
            v,
            ") WHEN 'number' THEN (",
            v,
            ")::float8 WHEN 'boolean' THEN ((",
            v,
            ")::boolean)::int END)"
        ]
    }

    /// `<`, `<=`, `>`, `>=`.
    fn emit_order(&self, op: CmpOp, a: &ExprOp, b: &ExprOp) -> Frag {
        let sign = match op {
            CmpOp::Gt => " > ",
            CmpOp::Gte => " >= ",
            CmpOp::Lt => " < ",
            _ => " <= ",
        };
        match self.dialect {
            Dialect::Sqlite => frag![&a.value, sign, &b.value],
            Dialect::Postgres => match (a.ty, b.ty) {
                (Ty::Text, Ty::Text) => frag![&a.value, sign, &b.value, " COLLATE \"C\""],
                (Ty::Number | Ty::Bool, Ty::Number | Ty::Bool) => {
                    let (x, y) = self.pg_same_numeric(a, b);
                    frag![x, sign, y]
                }
                _ => {
                    let (ra, na, ta) = self.pg_rank(a);
                    let (rb, nb, tb) = self.pg_rank(b);
                    frag![
                        "(CASE WHEN ",
                        &ra,
                        " <> ",
                        &rb,
                        " THEN ",
                        &ra,
                        sign,
                        &rb,
                        " WHEN ",
                        &ra,
                        " = 1 THEN ",
                        na,
                        sign,
                        nb,
                        " ELSE ",
                        ta,
                        sign,
                        tb,
                        " COLLATE \"C\" END)"
                    ]
                }
            },
        }
    }

    /// SQLite's ordering classes: rank 1 numbers (and booleans), 2 text; NULL none.
    fn pg_rank(&self, op: &ExprOp) -> (Frag, Frag, Frag) {
        let v = &op.value;
        match op.ty {
            Ty::Text => (
                frag!["(CASE WHEN ", v, " IS NOT NULL THEN 2 END)"],
                Frag::sql("NULL::float8"),
                v.clone(),
            ),
            Ty::Number => (
                frag!["(CASE WHEN ", v, " IS NOT NULL THEN 1 END)"],
                v.clone(),
                Frag::sql("NULL::text"),
            ),
            Ty::Bool => (
                frag!["(CASE WHEN ", v, " IS NOT NULL THEN 1 END)"],
                frag!["(", v, ")::int"],
                Frag::sql("NULL::text"),
            ),
            Ty::Json => (
                frag![
                    "(CASE jsonb_typeof(",
                    v,
                    ") WHEN 'number' THEN 1 WHEN 'boolean' THEN 1 WHEN 'string' THEN 2 WHEN 'array' THEN 2 WHEN 'object' THEN 2 END)"
                ],
                self.pg_json_number(v),
                frag![
                    "(CASE jsonb_typeof(",
                    v,
                    ") WHEN 'string' THEN ",
                    v,
                    " #>> '{}' WHEN 'array' THEN (",
                    v,
                    ")::text WHEN 'object' THEN (",
                    v,
                    ")::text END)"
                ],
            ),
        }
    }

    /// The text form of a value on PostgreSQL (what SQLite's LIKE and LOWER see).
    pub(crate) fn pg_text(&self, op: &ExprOp) -> Frag {
        let v = &op.value;
        match op.ty {
            Ty::Text => v.clone(),
            Ty::Number => frag!["(", v, ")::text"],
            Ty::Bool => frag!["(CASE WHEN ", v, " THEN '1' WHEN NOT ", v, " THEN '0' END)"],
            Ty::Json => frag![
                "(CASE jsonb_typeof(",
                v,
                ") WHEN 'string' THEN ",
                v,
                " #>> '{}' WHEN 'boolean' THEN (CASE WHEN (",
                v,
                ")::boolean THEN '1' ELSE '0' END) WHEN 'null' THEN NULL ELSE (",
                v,
                ")::text END)"
            ],
        }
    }

    /// `~` / `!~`: LIKE with PocketBase's `%...%` wrapping of bound patterns.
    fn emit_like(&mut self, negated: bool, left: &Operand, right: &Operand) -> Frag {
        let subject = match left {
            Operand::Expr(expr) => expr.clone(),
            Operand::Lit(Lit::Number(n)) => self.materialize(Lit::Text(number_text(*n)), Ty::Text),
            Operand::Lit(lit) => self.materialize(lit.clone(), Ty::Text),
        };
        let pattern_text = |text: String| Value::Text(like_pattern(&text));
        let pattern = match right {
            Operand::Lit(Lit::Text(text)) => self.constant(pattern_text(text.clone())),
            Operand::Lit(Lit::Number(n)) => self.constant(pattern_text(number_text(*n))),
            Operand::Lit(Lit::Bool(b)) => self.constant(pattern_text(b.to_string())),
            Operand::Lit(Lit::Null) => self.materialize(Lit::Null, Ty::Text).value,
            Operand::Expr(expr) => {
                let request_slot = expr
                    .value
                    .bare_slot()
                    .filter(|&idx| !matches!(self.slots[idx].source, Source::Const(_)))
                    .filter(|_| expr.ty == Ty::Text || expr.flexible);
                match request_slot {
                    Some(idx) => {
                        // A new slot: the original one may be shared with other uses.
                        let source = self.slots[idx].source.clone();
                        Frag::slot(self.slot(source, Conv::Like))
                    }
                    None => {
                        let text = match self.dialect {
                            Dialect::Sqlite => expr.value.clone(),
                            Dialect::Postgres => self.pg_text(expr),
                        };
                        frag!["('%' || ", text, " || '%')"]
                    }
                }
            }
        };
        let not = if negated { " NOT LIKE " } else { " LIKE " };
        match self.dialect {
            Dialect::Sqlite => frag![&subject.value, not, pattern, " ESCAPE '\\'"],
            Dialect::Postgres => frag![
                "LOWER(",
                self.pg_text(&subject),
                " COLLATE \"C\")",
                not,
                "LOWER(",
                pattern,
                " COLLATE \"C\") ESCAPE '\\'"
            ],
        }
    }
}
