//! A compact filter/rule compiler: resolves an `Expr` against one collection and emits
//! SQL with bound parameters. It covers plain fields, JSON paths, `:lower`, `:length`,
//! `:each`, `@request.*`, `:isset` and the datetime macros. Relation paths,
//! back-relations and `@collection.*` are refused with a clear error until the full
//! resolver lands.
//!
//! Invariants: every value is a bind; every identifier is a schema name or a validated
//! JSON path segment.

use basalt_filter::{CmpOp, Expr, LogicOp, Operand, OperandKind, Path};
use basalt_schema::{Collection, FieldKind};
use serde_json::{Map, Value as Json};
use time::OffsetDateTime;

use crate::{Dialect, Value};

/// The request values rules may read.
#[derive(Debug, Clone, Default)]
pub struct RequestValues {
    /// The auth record's fields (`None` for guests), plus `collectionId`/`collectionName`.
    pub auth: Option<Map<String, Json>>,
    /// Submitted body.
    pub body: Map<String, Json>,
    /// Query parameters.
    pub query: Map<String, Json>,
    /// Headers (snake_case keys).
    pub headers: Map<String, Json>,
    /// HTTP method.
    pub method: String,
    /// Request context name.
    pub context: String,
}

/// How the expression is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A collection rule (trusted text written by a superuser).
    Rule,
    /// A client `filter`/`sort`: hidden fields are refused unless `superuser`.
    Client {
        /// Whether the caller is a superuser.
        superuser: bool,
    },
}

/// A compile error with a lowercase message.
#[derive(Debug, Clone, PartialEq)]
pub struct CompileError(String);

impl std::fmt::Display for CompileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CompileError {}

fn err<T>(message: String) -> Result<T, CompileError> {
    Err(CompileError(message))
}

/// Accumulates binds so placeholders are numbered across a whole statement.
#[derive(Debug)]
pub struct Binds {
    dialect: Dialect,
    /// The values, in placeholder order.
    pub values: Vec<Value>,
}

impl Binds {
    /// An empty list for a dialect.
    pub fn new(dialect: Dialect) -> Binds {
        Binds {
            dialect,
            values: Vec::new(),
        }
    }

    /// Adds a value and returns its placeholder.
    pub fn push(&mut self, value: Value) -> String {
        self.values.push(value);
        self.dialect.placeholder(self.values.len())
    }

    /// The dialect.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }
}

enum Term {
    /// A scalar SQL expression.
    Scalar(String),
    /// A multi-valued field iterated with `:each`: (json column, element expression builder).
    Each(String),
}

struct Compiler<'a> {
    collection: &'a Collection,
    request: &'a RequestValues,
    mode: Mode,
    now: OffsetDateTime,
    binds: &'a mut Binds,
}

/// Compiles an expression into a SQL condition, appending its binds.
pub fn compile(
    expr: &Expr,
    collection: &Collection,
    request: &RequestValues,
    mode: Mode,
    now: OffsetDateTime,
    binds: &mut Binds,
) -> Result<String, CompileError> {
    let mut compiler = Compiler {
        collection,
        request,
        mode,
        now,
        binds,
    };
    compiler.expr(expr)
}

fn json_to_value(value: &Json) -> Value {
    match value {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => n
            .as_i64()
            .map(Value::Int)
            .unwrap_or_else(|| Value::Float(n.as_f64().unwrap_or(0.0))),
        Json::String(s) => Value::Text(s.clone()),
        other => Value::Text(other.to_string()),
    }
}

fn number_value(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        Value::Int(n as i64)
    } else {
        Value::Float(n)
    }
}

impl Compiler<'_> {
    fn expr(&mut self, expr: &Expr) -> Result<String, CompileError> {
        match expr {
            Expr::Logic { op, lhs, rhs } => {
                let left = self.expr(lhs)?;
                let right = self.expr(rhs)?;
                let joiner = if *op == LogicOp::And { "AND" } else { "OR" };
                Ok(format!("({left} {joiner} {right})"))
            }
            Expr::Compare(comparison) => {
                let left = self.operand(&comparison.lhs)?;
                let right = self.operand(&comparison.rhs)?;
                self.compare(left, comparison.op, right, &comparison.rhs)
            }
        }
    }

    fn compare(
        &mut self,
        left: Term,
        op: CmpOp,
        right: Term,
        rhs: &Operand,
    ) -> Result<String, CompileError> {
        let like_value = match &rhs.kind {
            OperandKind::Text(text) => Some(text.clone()),
            _ => None,
        };
        match (left, right) {
            (Term::Scalar(a), Term::Scalar(b)) => Ok(self.scalar(&a, op.base(), &b, like_value)),
            (Term::Each(column), Term::Scalar(b)) => {
                let element = "__each.value";
                let condition = self.scalar(element, op.base(), &b, like_value);
                Ok(self.each(&column, &condition, op.is_any()))
            }
            (Term::Scalar(a), Term::Each(column)) => {
                let element = "__each.value";
                let condition = self.scalar(&a, op.base(), element, None);
                Ok(self.each(&column, &condition, op.is_any()))
            }
            (Term::Each(_), Term::Each(_)) => {
                err("comparing two multi-valued operands is not supported".into())
            }
        }
    }

    fn each(&self, column: &str, condition: &str, any: bool) -> String {
        let source = match self.binds.dialect() {
            Dialect::Sqlite => format!("json_each({column}) AS __each"),
            Dialect::Postgres => format!("jsonb_array_elements_text({column}) AS __each(value)"),
        };
        if any {
            format!("EXISTS (SELECT 1 FROM {source} WHERE {condition})")
        } else {
            format!("NOT EXISTS (SELECT 1 FROM {source} WHERE NOT ({condition}))")
        }
    }

    fn scalar(&mut self, a: &str, op: CmpOp, b: &str, like: Option<String>) -> String {
        match op {
            CmpOp::Eq => format!("COALESCE({a}, '') = COALESCE({b}, '')"),
            CmpOp::Neq => format!("COALESCE({a}, '') != COALESCE({b}, '')"),
            CmpOp::Gt => format!("{a} > {b}"),
            CmpOp::Gte => format!("{a} >= {b}"),
            CmpOp::Lt => format!("{a} < {b}"),
            CmpOp::Lte => format!("{a} <= {b}"),
            CmpOp::Like | CmpOp::NotLike => {
                let pattern = match like {
                    Some(text) => {
                        // The right operand was the last value bound: replace it with
                        // its LIKE pattern instead of binding a second value.
                        if let Some(last) = self.binds.values.last_mut() {
                            *last = Value::Text(like_pattern(&text));
                        }
                        b.to_string()
                    }
                    None => b.to_string(),
                };
                let not = if op == CmpOp::NotLike { "NOT " } else { "" };
                match self.binds.dialect() {
                    Dialect::Sqlite => format!("{a} {not}LIKE {pattern} ESCAPE '\\'"),
                    Dialect::Postgres => format!("{a}::text {not}ILIKE {pattern} ESCAPE '\\'"),
                }
            }
            _ => "1 = 0".to_string(),
        }
    }

    fn operand(&mut self, operand: &Operand) -> Result<Term, CompileError> {
        let value = match &operand.kind {
            OperandKind::Text(text) => Value::Text(text.clone()),
            OperandKind::Number(n) => number_value(*n),
            OperandKind::Bool(b) => Value::Bool(*b),
            OperandKind::Null => return Ok(Term::Scalar("NULL".into())),
            OperandKind::Call { name, .. } => {
                return err(format!("function \"{name}\" is not supported yet"));
            }
            OperandKind::Path(path) => return self.path(path),
        };
        Ok(Term::Scalar(self.binds.push(value)))
    }

    fn path(&mut self, path: &Path) -> Result<Term, CompileError> {
        let first = &path.segments[0];
        if first.name.starts_with('@') {
            return self.special(path).map(Term::Scalar);
        }
        let Some(field) = self.collection.field(&first.name) else {
            return err(format!("unknown field \"{}\"", first.name));
        };
        let hidden = field.hidden
            || matches!(field.kind, FieldKind::Password { .. })
            || (self.collection.is_auth() && field.name == "tokenKey");
        if hidden && self.mode == (Mode::Client { superuser: false }) {
            return err(format!(
                "field \"{}\" cannot be filtered or sorted",
                field.name
            ));
        }
        let dialect = self.binds.dialect();
        let column = format!(
            "{}.{}",
            dialect.quote_ident(&self.collection.name),
            dialect.quote_ident(&field.name)
        );
        let modifiers: Vec<&str> = path
            .segments
            .iter()
            .flat_map(|s| s.modifiers.iter().map(String::as_str))
            .collect();
        if path.segments.len() > 1 {
            let (FieldKind::Json { .. } | FieldKind::GeoPoint { .. }) = field.kind else {
                return err(format!(
                    "relation and nested paths such as \"{path}\" are not supported yet"
                ));
            };
            let mut json_path = String::from("$");
            for segment in &path.segments[1..] {
                if !segment
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    return err(format!("invalid json path segment \"{}\"", segment.name));
                }
                if segment.name.chars().all(|c| c.is_ascii_digit()) {
                    json_path.push_str(&format!("[{}]", segment.name));
                } else {
                    json_path.push('.');
                    json_path.push_str(&segment.name);
                }
            }
            let path_bind = self.binds.push(Value::Text(json_path));
            let extracted = match dialect {
                Dialect::Sqlite => format!("json_extract({column}, {path_bind})"),
                Dialect::Postgres => {
                    format!("jsonb_path_query_first({column}, ({path_bind})::jsonpath)")
                }
            };
            return Ok(Term::Scalar(apply_lower(extracted, &modifiers)));
        }
        for modifier in &modifiers {
            match *modifier {
                "each" if field.is_multiple() => return Ok(Term::Each(column)),
                "length" if field.is_list_kind() => {
                    return Ok(Term::Scalar(if field.is_multiple() {
                        match dialect {
                            Dialect::Sqlite => format!("json_array_length({column})"),
                            Dialect::Postgres => format!("jsonb_array_length({column})"),
                        }
                    } else {
                        format!("(CASE WHEN {column} = '' THEN 0 ELSE 1 END)")
                    }));
                }
                "each" | "length" | "lower" | "isset" | "changed" => {}
                other => return err(format!("unknown modifier \":{other}\"")),
            }
        }
        Ok(Term::Scalar(apply_lower(column, &modifiers)))
    }

    fn special(&mut self, path: &Path) -> Result<String, CompileError> {
        let names: Vec<&str> = path.segments.iter().map(|s| s.name.as_str()).collect();
        let modifiers: Vec<&str> = path
            .segments
            .iter()
            .flat_map(|s| s.modifiers.iter().map(String::as_str))
            .collect();
        let isset = modifiers.contains(&"isset");
        if names[0] == "@collection" {
            return err("@collection paths are not supported yet".into());
        }
        if names.len() == 1 {
            let value = self.macro_value(names[0])?;
            return Ok(self.binds.push(value));
        }
        if names[0] != "@request" {
            return err(format!("unknown identifier \"{path}\""));
        }
        let found: Option<Json> = match names[1] {
            "method" if names.len() == 2 => Some(Json::String(self.request.method.clone())),
            "context" if names.len() == 2 => Some(Json::String(self.request.context.clone())),
            "auth" => match &self.request.auth {
                None => None,
                Some(record) => dig(record, &names[2..]),
            },
            "body" => dig(&self.request.body, &names[2..]),
            "query" => dig(&self.request.query, &names[2..]),
            "headers" => dig(&self.request.headers, &names[2..]),
            _ => return err(format!("unknown identifier \"{path}\"")),
        };
        if isset {
            return Ok(self.binds.push(Value::Bool(found.is_some())));
        }
        let value = found.map(|v| json_to_value(&v)).unwrap_or(Value::Null);
        let value = match value {
            Value::Text(s) if modifiers.contains(&"lower") => Value::Text(s.to_lowercase()),
            other => other,
        };
        Ok(self.binds.push(value))
    }

    fn macro_value(&self, name: &str) -> Result<Value, CompileError> {
        use time::{Duration, Time};
        let now = self.now;
        let date = |at: OffsetDateTime| Value::Text(basalt_schema::format_datetime(at));
        let start_of_day = now.replace_time(Time::MIDNIGHT);
        let month_start = start_of_day.replace_day(1).unwrap_or(start_of_day);
        let year_start = month_start
            .replace_month(time::Month::January)
            .unwrap_or(month_start);
        let next_month = if month_start.month() == time::Month::December {
            month_start
                .replace_year(month_start.year() + 1)
                .and_then(|d| d.replace_month(time::Month::January))
                .unwrap_or(month_start)
        } else {
            month_start
                .replace_month(month_start.month().next())
                .unwrap_or(month_start)
        };
        let end = Duration::milliseconds(1);
        Ok(match name {
            "@now" => date(now),
            "@yesterday" => date(now - Duration::days(1)),
            "@tomorrow" => date(now + Duration::days(1)),
            "@todayStart" => date(start_of_day),
            "@todayEnd" => date(start_of_day + Duration::days(1) - end),
            "@monthStart" => date(month_start),
            "@monthEnd" => date(next_month - end),
            "@yearStart" => date(year_start),
            "@yearEnd" => date(
                year_start
                    .replace_year(year_start.year() + 1)
                    .unwrap_or(year_start)
                    - end,
            ),
            "@second" => Value::Int(i64::from(now.second())),
            "@minute" => Value::Int(i64::from(now.minute())),
            "@hour" => Value::Int(i64::from(now.hour())),
            "@day" => Value::Int(i64::from(now.day())),
            "@month" => Value::Int(i64::from(u8::from(now.month()))),
            "@weekday" => Value::Int(i64::from(now.weekday().number_days_from_sunday())),
            "@year" => Value::Int(i64::from(now.year())),
            other => return err(format!("unknown identifier \"{other}\"")),
        })
    }
}

fn apply_lower(sql: String, modifiers: &[&str]) -> String {
    if modifiers.contains(&"lower") {
        format!("LOWER({sql})")
    } else {
        sql
    }
}

fn dig(map: &Map<String, Json>, keys: &[&str]) -> Option<Json> {
    let (first, rest) = keys.split_first()?;
    let mut node = map.get(*first)?;
    for key in rest {
        node = match node {
            Json::Object(object) => object.get(*key)?,
            Json::Array(items) => items.get(key.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(node.clone())
}

/// Wraps text in `%...%` unless it already holds a `%`; escapes `\`, `%`, `_` otherwise.
pub fn like_pattern(text: &str) -> String {
    if text.contains('%') {
        return text.to_string();
    }
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// Compiles `sort` terms into an ORDER BY list.
pub fn compile_sort(
    terms: &[basalt_filter::SortTerm],
    collection: &Collection,
    mode: Mode,
    binds: &mut Binds,
) -> Result<String, CompileError> {
    let request = RequestValues::default();
    let mut parts = Vec::new();
    for term in terms {
        let direction = if term.desc { "DESC" } else { "ASC" };
        let sql = match &term.target {
            basalt_filter::SortTarget::Random => "RANDOM()".to_string(),
            basalt_filter::SortTarget::RowId => match binds.dialect() {
                Dialect::Sqlite => {
                    format!("{}.rowid", binds.dialect().quote_ident(&collection.name))
                }
                Dialect::Postgres => {
                    format!("{}.ctid", binds.dialect().quote_ident(&collection.name))
                }
            },
            basalt_filter::SortTarget::Path(path) => {
                if path.segments[0].name.starts_with('@') {
                    return err(format!("cannot sort by \"{path}\""));
                }
                let mut compiler = Compiler {
                    collection,
                    request: &request,
                    mode,
                    now: OffsetDateTime::now_utc(),
                    binds,
                };
                match compiler.path(path)? {
                    Term::Scalar(sql) => sql,
                    Term::Each(_) => return err(format!("cannot sort by multi-valued \"{path}\"")),
                }
            }
        };
        parts.push(format!("{sql} {direction}"));
    }
    Ok(parts.join(", "))
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
                values: vec![],
                max_select: 5,
            },
        ));
        posts.fields.push(Field::new(
            "meta",
            FieldKind::Json {
                required: false,
                max_size: 0,
            },
        ));
        let mut secret = Field::new("secret", FieldKind::text());
        secret.hidden = true;
        posts.fields.push(secret);
        posts
    }

    fn check(filter: &str, mode: Mode, expected: &str) {
        let expr = basalt_filter::parse(filter).expect("parses");
        let mut binds = Binds::new(Dialect::Sqlite);
        let got = match compile(
            &expr,
            &posts(),
            &RequestValues::default(),
            mode,
            OffsetDateTime::UNIX_EPOCH,
            &mut binds,
        ) {
            Ok(sql) => format!("{sql} {:?}", binds.values),
            Err(error) => format!("error: {error}"),
        };
        assert_eq!(got, expected, "{filter}");
    }

    const CLIENT: Mode = Mode::Client { superuser: false };

    #[test]
    fn snapshots() {
        check(
            "title = 'a'",
            CLIENT,
            "COALESCE(\"posts\".\"title\", '') = COALESCE(?1, '') [Text(\"a\")]",
        );
        check(
            "views > 5 && title != null",
            CLIENT,
            "(\"posts\".\"views\" > ?1 AND COALESCE(\"posts\".\"title\", '') != COALESCE(NULL, '')) [Int(5)]",
        );
        check(
            "title ~ 'a_b'",
            CLIENT,
            "\"posts\".\"title\" LIKE ?1 ESCAPE '\\' [Text(\"%a\\\\_b%\")]",
        );
        check(
            "title !~ 'x%'",
            CLIENT,
            "\"posts\".\"title\" NOT LIKE ?1 ESCAPE '\\' [Text(\"x%\")]",
        );
        check(
            "tags:each ?= 'a'",
            CLIENT,
            "EXISTS (SELECT 1 FROM json_each(\"posts\".\"tags\") AS __each WHERE COALESCE(__each.value, '') = COALESCE(?1, '')) [Text(\"a\")]",
        );
        check(
            "tags:length > 1",
            CLIENT,
            "json_array_length(\"posts\".\"tags\") > ?1 [Int(1)]",
        );
        check(
            "meta.a.0 = 1",
            CLIENT,
            "COALESCE(json_extract(\"posts\".\"meta\", ?1), '') = COALESCE(?2, '') [Text(\"$.a[0]\"), Int(1)]",
        );
        check(
            "@request.auth.id != ''",
            Mode::Rule,
            "COALESCE(?1, '') != COALESCE(?2, '') [Null, Text(\"\")]",
        );
        check(
            "@request.auth.id:isset = true",
            Mode::Rule,
            "COALESCE(?1, '') = COALESCE(?2, '') [Bool(false), Bool(true)]",
        );
        check(
            "@year = 1970",
            Mode::Rule,
            "COALESCE(?1, '') = COALESCE(?2, '') [Int(1970), Int(1970)]",
        );
        check(
            "secret = 'x'",
            CLIENT,
            "error: field \"secret\" cannot be filtered or sorted",
        );
        check(
            "secret = 'x'",
            Mode::Rule,
            "COALESCE(\"posts\".\"secret\", '') = COALESCE(?1, '') [Text(\"x\")]",
        );
        check("nope = 1", CLIENT, "error: unknown field \"nope\"");
        check("author.name = 1", CLIENT, "error: unknown field \"author\"");
        check(
            "@collection.users.id = 1",
            CLIENT,
            "error: @collection paths are not supported yet",
        );
        check(
            "title:bogus = 1",
            CLIENT,
            "error: unknown modifier \":bogus\"",
        );
    }
}
