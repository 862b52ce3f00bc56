//! SQL templates: SQL text with numbered holes for values that are filled per request.
//!
//! A compiled expression is a [`Frag`] (pieces of SQL, slots and the base-table
//! reference) plus the list of [`Slot`]s it uses. Rendering numbers the slots after
//! the binds already in the statement, so a rule, a filter, a sort and an id can share
//! one statement. No piece of SQL text ever holds a value from the input.

use serde_json::Value as Json;

use super::context::{Macro, RequestContext};
use crate::{Dialect, Value};

/// One piece of a template.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Piece {
    /// SQL text written by the compiler (identifiers come from the schema).
    Sql(String),
    /// The placeholder of slot `n` of the template.
    Slot(usize),
    /// The quoted name of the table (or CTE) the expression is evaluated against.
    Base,
}

/// A sequence of pieces.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Frag(pub(crate) Vec<Piece>);

/// Things that can be appended to a [`Frag`].
pub(crate) trait IntoFrag {
    fn add_to(self, frag: &mut Frag);
}

impl IntoFrag for &str {
    fn add_to(self, frag: &mut Frag) {
        frag.push_sql(self);
    }
}

impl IntoFrag for String {
    fn add_to(self, frag: &mut Frag) {
        frag.push_sql(&self);
    }
}

impl IntoFrag for &String {
    fn add_to(self, frag: &mut Frag) {
        frag.push_sql(self);
    }
}

impl IntoFrag for Frag {
    fn add_to(self, frag: &mut Frag) {
        for piece in self.0 {
            frag.push(piece);
        }
    }
}

impl IntoFrag for &Frag {
    fn add_to(self, frag: &mut Frag) {
        for piece in &self.0 {
            frag.push(piece.clone());
        }
    }
}

/// Builds a [`Frag`] from strings and fragments.
macro_rules! frag {
    ($($part:expr),* $(,)?) => {{
        #[allow(unused_mut)]
        let mut out = $crate::filter::template::Frag::default();
        $( $crate::filter::template::IntoFrag::add_to($part, &mut out); )*
        out
    }};
}
pub(crate) use frag;

impl Frag {
    /// A fragment of plain SQL.
    pub(crate) fn sql(text: &str) -> Frag {
        let mut frag = Frag::default();
        frag.push_sql(text);
        frag
    }

    /// The placeholder of slot `idx`.
    pub(crate) fn slot(idx: usize) -> Frag {
        Frag(vec![Piece::Slot(idx)])
    }

    /// The base-table reference.
    pub(crate) fn base() -> Frag {
        Frag(vec![Piece::Base])
    }

    fn push(&mut self, piece: Piece) {
        match piece {
            Piece::Sql(text) => self.push_sql(&text),
            other => self.0.push(other),
        }
    }

    pub(crate) fn push_sql(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        if let Some(Piece::Sql(last)) = self.0.last_mut() {
            last.push_str(text);
        } else {
            self.0.push(Piece::Sql(text.to_string()));
        }
    }

    /// The slot index if the fragment is a single placeholder.
    pub(crate) fn bare_slot(&self) -> Option<usize> {
        match self.0.as_slice() {
            [Piece::Slot(idx)] => Some(*idx),
            _ => None,
        }
    }

    /// Whether the fragment is empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Joins fragments with a separator.
    pub(crate) fn join(parts: impl IntoIterator<Item = Frag>, sep: &str) -> Frag {
        let mut out = Frag::default();
        for (idx, part) in parts.into_iter().enumerate() {
            if idx > 0 {
                out.push_sql(sep);
            }
            part.add_to(&mut out);
        }
        out
    }
}

/// Where the value of a slot comes from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Source {
    /// A value fixed at compile time (literals, JSON path parts).
    Const(Value),
    /// `@request.auth.id`.
    AuthId,
    /// `@request.auth.collectionId`.
    AuthCollectionId,
    /// `@request.auth.collectionName`.
    AuthCollectionName,
    /// A value of the caller's record (`email`, `verified`, `emailVisibility`).
    AuthRecord(String),
    /// `@request.auth.<key>:isset`.
    AuthIsSet(String),
    /// `@request.body.<key>`.
    Body(String),
    /// `@request.body.<key>:isset`.
    BodyIsSet(String),
    /// `@request.body.<key>:length`.
    BodyLength(String),
    /// `@request.query.<key>`.
    Query(String),
    /// `@request.query.<key>:isset`.
    QueryIsSet(String),
    /// `@request.headers.<key>`.
    Header(String),
    /// `@request.headers.<key>:isset`.
    HeaderIsSet(String),
    /// `@request.method`.
    Method,
    /// `@request.context`.
    Context,
    /// A date macro.
    Macro(Macro),
}

/// How a slot's raw value becomes a bound [`Value`]; it also fixes the type of the
/// placeholder on PostgreSQL (`$1::text`, `$1::float8`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Conv {
    /// The value as is (constants only).
    Exact,
    /// Text: numbers and booleans are written out, JSON arrays/objects serialized.
    Text,
    /// A double: numeric strings are parsed, anything else non-numeric is NULL.
    Number,
    /// A boolean: `true/1/t`, `false/0/f` strings and numbers are read, else NULL.
    Bool,
    /// A JSON value: on SQLite its native SQL value (as `json_extract` gives it), on
    /// PostgreSQL its JSON text cast to `jsonb`.
    Json,
    /// JSON text on both dialects (input of `json_extract` / `jsonb_extract_path`).
    JsonText,
    /// A JSON array as text (a scalar is wrapped in an array): input of `json_each`.
    JsonArray,
    /// A `LIKE` pattern: text, wrapped in `%...%` unless it holds an unescaped `%`.
    Like,
}

/// One hole of a template.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Slot {
    pub(crate) source: Source,
    pub(crate) conv: Conv,
}

impl Slot {
    /// The bound value for this request.
    pub(crate) fn value(&self, ctx: &RequestContext, dialect: Dialect) -> Value {
        let raw = match &self.source {
            Source::Const(value) => return value.clone(),
            Source::AuthId => ctx.auth.as_ref().and_then(|a| a.record.get("id").cloned()),
            Source::AuthCollectionId => ctx
                .auth
                .as_ref()
                .map(|a| Json::String(a.collection_id.clone())),
            Source::AuthCollectionName => ctx
                .auth
                .as_ref()
                .map(|a| Json::String(a.collection_name.clone())),
            Source::AuthRecord(key) => ctx.auth.as_ref().and_then(|a| a.record.get(key).cloned()),
            Source::AuthIsSet(key) => Some(Json::Bool(
                ctx.auth
                    .as_ref()
                    .is_some_and(|a| a.record.contains_key(key)),
            )),
            Source::Body(key) => ctx.body.get(key).cloned(),
            Source::BodyIsSet(key) => Some(Json::Bool(ctx.body.contains_key(key))),
            Source::BodyLength(key) => Some(Json::from(match ctx.body.get(key) {
                Some(Json::Array(items)) => items.len(),
                Some(Json::String(text)) => usize::from(!text.is_empty()),
                Some(Json::Null) | None => 0,
                Some(_) => 1,
            })),
            Source::Query(key) => ctx.query.get(key).cloned().map(Json::String),
            Source::QueryIsSet(key) => Some(Json::Bool(ctx.query.contains_key(key))),
            Source::Header(key) => ctx.headers.get(key).cloned().map(Json::String),
            Source::HeaderIsSet(key) => Some(Json::Bool(ctx.headers.contains_key(key))),
            Source::Method => Some(Json::String(ctx.method.clone())),
            Source::Context => Some(Json::String(ctx.context.clone())),
            Source::Macro(mac) => Some(mac.value(ctx.now_unix_ms)),
        };
        convert(raw, self.conv, dialect)
    }

    /// The PostgreSQL type of the placeholder, if it needs a cast.
    fn pg_cast(&self) -> Option<&'static str> {
        match self.conv {
            Conv::Exact => match &self.source {
                Source::Const(Value::Text(_)) => Some("text"),
                Source::Const(Value::Float(_)) => Some("float8"),
                Source::Const(Value::Int(_)) => Some("int8"),
                Source::Const(Value::Bool(_)) => Some("boolean"),
                Source::Const(Value::Blob(_)) => Some("bytea"),
                _ => None,
            },
            Conv::Text | Conv::Like => Some("text"),
            Conv::Number => Some("float8"),
            Conv::Bool => Some("boolean"),
            Conv::Json | Conv::JsonText | Conv::JsonArray => Some("jsonb"),
        }
    }
}

/// Converts a raw request value as the slot's [`Conv`] says.
fn convert(raw: Option<Json>, conv: Conv, dialect: Dialect) -> Value {
    let Some(raw) = raw.filter(|v| !v.is_null()) else {
        return Value::Null;
    };
    match conv {
        Conv::Exact | Conv::Text => Value::Text(json_to_text(&raw)),
        Conv::Like => Value::Text(like_pattern(&json_to_text(&raw))),
        Conv::Number => match &raw {
            Json::Number(n) => n.as_f64().map_or(Value::Null, Value::Float),
            Json::String(s) => match s.trim().parse::<f64>() {
                Ok(n) if n.is_finite() && !s.trim().is_empty() => Value::Float(n),
                _ => Value::Null,
            },
            Json::Bool(b) => Value::Float(if *b { 1.0 } else { 0.0 }),
            _ => Value::Null,
        },
        Conv::Bool => match &raw {
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => Value::Bool(n.as_f64().is_some_and(|n| n != 0.0)),
            Json::String(s) => match s.as_str() {
                "1" | "t" | "T" | "true" | "TRUE" | "True" => Value::Bool(true),
                "0" | "f" | "F" | "false" | "FALSE" | "False" => Value::Bool(false),
                _ => Value::Null,
            },
            _ => Value::Null,
        },
        Conv::Json => match dialect {
            Dialect::Postgres => Value::Text(raw.to_string()),
            Dialect::Sqlite => match &raw {
                Json::String(s) => Value::Text(s.clone()),
                Json::Bool(b) => Value::Int(i64::from(*b)),
                Json::Number(n) => match n.as_i64() {
                    Some(i) => Value::Int(i),
                    None => n.as_f64().map_or(Value::Null, Value::Float),
                },
                other => Value::Text(other.to_string()),
            },
        },
        Conv::JsonText => Value::Text(raw.to_string()),
        Conv::JsonArray => match &raw {
            Json::Array(_) => Value::Text(raw.to_string()),
            Json::String(s) if s.is_empty() => Value::Text("[]".to_string()),
            other => Value::Text(Json::Array(vec![other.clone()]).to_string()),
        },
    }
}

/// Text form of a JSON value: strings as is, numbers without a trailing `.0`.
pub(crate) fn json_to_text(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        Json::Number(n) => match n.as_f64() {
            Some(f) => number_text(f),
            None => n.to_string(),
        },
        Json::Bool(b) => b.to_string(),
        Json::Null => String::new(),
        other => other.to_string(),
    }
}

/// Text form of a number: integers without a fraction.
pub(crate) fn number_text(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

/// PocketBase's `~` wrapping: a text without an unescaped `%` gets its unescaped
/// `\`, `%` and `_` escaped with `\` and is wrapped in `%...%`; a text that already
/// holds an unescaped `%` is used as the pattern unchanged. Patterns use `ESCAPE '\'`.
pub(crate) fn like_pattern(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut has_wildcard = false;
    let mut idx = 0;
    while idx < chars.len() {
        match chars[idx] {
            '\\' if idx + 1 < chars.len() && matches!(chars[idx + 1], '\\' | '%' | '_') => {
                idx += 2;
                continue;
            }
            '%' => has_wildcard = true,
            _ => {}
        }
        idx += 1;
    }
    if has_wildcard {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 4);
    out.push('%');
    let mut idx = 0;
    while idx < chars.len() {
        let ch = chars[idx];
        if ch == '\\' && idx + 1 < chars.len() && matches!(chars[idx + 1], '\\' | '%' | '_') {
            out.push(ch);
            out.push(chars[idx + 1]);
            idx += 2;
            continue;
        }
        if matches!(ch, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(ch);
        idx += 1;
    }
    out.push('%');
    out
}

/// Drops the slots no fragment refers to and renumbers the others.
pub(crate) fn compact(slots: Vec<Slot>, frags: &mut [&mut Frag]) -> Vec<Slot> {
    let mut map: Vec<Option<usize>> = vec![None; slots.len()];
    let mut kept = Vec::new();
    for frag in frags.iter_mut() {
        for piece in frag.0.iter_mut() {
            if let Piece::Slot(idx) = piece {
                let new = match map[*idx] {
                    Some(new) => new,
                    None => {
                        kept.push(slots[*idx].clone());
                        map[*idx] = Some(kept.len() - 1);
                        kept.len() - 1
                    }
                };
                *idx = new;
            }
        }
    }
    kept
}

/// A fragment and the slots it refers to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Template {
    pub(crate) dialect: Dialect,
    pub(crate) slots: Vec<Slot>,
}

impl Template {
    /// Appends the binds of every slot to `binds` and returns the number of the first
    /// one minus one (the offset to add to a slot index, plus one, for its placeholder).
    pub(crate) fn bind(&self, ctx: &RequestContext, binds: &mut Vec<Value>) -> usize {
        let offset = binds.len();
        binds.extend(self.slots.iter().map(|slot| slot.value(ctx, self.dialect)));
        offset
    }

    /// Writes `frag` to `out`, numbering slot `i` as placeholder `offset + i + 1`.
    pub(crate) fn render(&self, frag: &Frag, offset: usize, base: &str, out: &mut String) {
        for piece in &frag.0 {
            match piece {
                Piece::Sql(text) => out.push_str(text),
                Piece::Base => out.push_str(base),
                Piece::Slot(idx) => {
                    out.push_str(&self.dialect.placeholder(offset + idx + 1));
                    if self.dialect == Dialect::Postgres
                        && let Some(cast) = self.slots.get(*idx).and_then(Slot::pg_cast)
                    {
                        out.push_str("::");
                        out.push_str(cast);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_follow_pocketbase() {
        assert_eq!(like_pattern("abc"), "%abc%");
        assert_eq!(like_pattern("a_b"), "%a\\_b%");
        assert_eq!(like_pattern("a\\b"), "%a\\\\b%");
        assert_eq!(like_pattern("post %"), "post %");
        assert_eq!(like_pattern("50\\%"), "%50\\%%");
        assert_eq!(like_pattern(""), "%%");
    }
}
