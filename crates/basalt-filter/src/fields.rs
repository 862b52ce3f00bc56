//! The `?fields=` response picker and the `?expand=` relation list.
//!
//! `fields`: a comma list of dot paths into the response JSON, `*` meaning every key at
//! that level, each optionally followed by `:excerpt(max, ellipsis?)`. Commas inside
//! the parentheses do not split. Items are trimmed and empty items skipped, as in
//! PocketBase. Ours is stricter on two points: a path segment may not be empty nor hold
//! whitespace, quotes, parentheses or `:`, and `max` must be a plain decimal number.
//! The ellipsis flag takes Go's `ParseBool` spellings (`1 t T TRUE true True` and the
//! `false` forms); anything else means `false`, as in PocketBase.
//!
//! `expand`: a comma list of relation paths. As in PocketBase, spaces are removed,
//! leading and trailing dots trimmed, empty items skipped, and a path deeper than
//! [`MAX_EXPAND_DEPTH`] is cut to that depth (PocketBase expands the first 6 levels and
//! ignores the rest). A segment must be a non-empty run of ASCII letters, digits and
//! `_` (this also covers `comments_via_post`); anything else is an error.

use crate::ast::Span;
use crate::error::{ErrorKind, ParseError, quote};

/// Deepest expand path, in relation hops (PocketBase's `maxNestedRels`).
pub const MAX_EXPAND_DEPTH: usize = 6;

/// One item of a `fields` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPick {
    /// The dot segments, e.g. `["expand", "author", "name"]`; a segment may be `*`.
    pub path: Vec<String>,
    /// The `:excerpt(...)` modifier, if any.
    pub excerpt: Option<Excerpt>,
}

/// The arguments of `:excerpt(max, ellipsis?)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Excerpt {
    /// Approximate maximum length of the plain-text excerpt; always at least 1.
    pub max: usize,
    /// Whether to add `...` when the text was cut.
    pub ellipsis: bool,
}

/// Parses a `fields` list such as `*,expand.author.name,body:excerpt(200,true)`.
pub fn parse_fields(input: &str) -> Result<Vec<FieldPick>, ParseError> {
    let mut picks = Vec::new();
    for (offset, item) in split_top_level(input)? {
        let trimmed = item.trim_start();
        let start = offset + (item.len() - trimmed.len());
        let trimmed = trimmed.trim_end();
        if trimmed.is_empty() {
            continue;
        }
        let (path_text, modifier) = match trimmed.split_once(':') {
            Some((path, modifier)) => (path, Some(modifier)),
            None => (trimmed, None),
        };
        let path = parse_field_path(path_text, start)?;
        let excerpt = match modifier {
            Some(text) => Some(parse_modifier(text, start + path_text.len() + 1)?),
            None => None,
        };
        picks.push(FieldPick { path, excerpt });
    }
    Ok(picks)
}

/// Splits on commas outside parentheses, returning each piece with its byte offset.
fn split_top_level(input: &str) -> Result<Vec<(usize, &str)>, ParseError> {
    let mut pieces = Vec::new();
    let mut depth = 0usize;
    let mut open_at = 0;
    let mut start = 0;
    for (idx, byte) in input.bytes().enumerate() {
        match byte {
            b'(' => {
                if depth == 0 {
                    open_at = idx;
                }
                depth += 1;
            }
            b')' if depth == 0 => {
                return Err(ParseError::at(
                    ErrorKind::UnexpectedChar,
                    Span::new(idx, idx + 1),
                    "unexpected character \")\"".to_string(),
                    String::new(),
                ));
            }
            b')' => depth -= 1,
            b',' if depth == 0 => {
                pieces.push((start, &input[start..idx]));
                start = idx + 1;
            }
            _ => {}
        }
    }
    if depth > 0 {
        return Err(ParseError::at(
            ErrorKind::UnexpectedEnd,
            Span::new(open_at, input.len()),
            "unclosed \"(\"".to_string(),
            String::new(),
        ));
    }
    pieces.push((start, &input[start..]));
    Ok(pieces)
}

/// Splits `a.b.*` into segments; `start` is its byte offset in the input.
fn parse_field_path(text: &str, start: usize) -> Result<Vec<String>, ParseError> {
    let span = Span::new(start, start + text.len());
    let invalid = |detail: &str| {
        ParseError::at(
            ErrorKind::InvalidIdentifier,
            span,
            format!("invalid field path {}", quote(text)),
            detail.to_string(),
        )
    };
    let mut segments = Vec::new();
    for segment in text.split('.') {
        if segment.is_empty() {
            return Err(invalid(", it has an empty segment"));
        }
        if segment.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '(' | ')' | '\'' | '"' | '`')
        }) {
            return Err(invalid(", it holds whitespace, a quote or a parenthesis"));
        }
        segments.push(segment.to_string());
    }
    Ok(segments)
}

/// Parses `excerpt(max, ellipsis?)`; `start` is its byte offset in the input.
fn parse_modifier(text: &str, start: usize) -> Result<Excerpt, ParseError> {
    let span = Span::new(start, start + text.len());
    let invalid = |what: String, detail: &str| {
        ParseError::at(ErrorKind::InvalidModifier, span, what, detail.to_string())
    };
    let (name, rest) = match text.find('(') {
        Some(idx) => (&text[..idx], Some(&text[idx + 1..])),
        None => (text, None),
    };
    if name.trim() != "excerpt" {
        return Err(invalid(
            format!("unknown field modifier {}", quote(name.trim())),
            ", the only one is excerpt(max, ellipsis?)",
        ));
    }
    let usage = ", expected excerpt(max, ellipsis?) with max a whole number above 0";
    let what = || format!("invalid modifier {}", quote(text));
    let Some(args) = rest.and_then(|rest| rest.strip_suffix(')')) else {
        return Err(invalid(what(), usage));
    };
    let args: Vec<&str> = args
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|arg| !arg.is_empty())
        .collect();
    let (max_text, ellipsis_text) = match args.as_slice() {
        [max] => (*max, None),
        [max, ellipsis] => (*max, Some(*ellipsis)),
        _ => return Err(invalid(what(), usage)),
    };
    let max = if max_text.bytes().all(|b| b.is_ascii_digit()) {
        max_text.parse::<usize>().ok().filter(|&max| max > 0)
    } else {
        None
    };
    let Some(max) = max else {
        return Err(invalid(what(), usage));
    };
    let ellipsis = matches!(
        ellipsis_text,
        Some("1" | "t" | "T" | "TRUE" | "true" | "True")
    );
    Ok(Excerpt { max, ellipsis })
}

/// Parses an `expand` list such as `author,comments_via_post.user`.
pub fn parse_expand(input: &str) -> Result<Vec<Vec<String>>, ParseError> {
    let mut paths = Vec::new();
    let mut offset = 0;
    for item in input.split(',') {
        let item_span = Span::new(offset, offset + item.len());
        offset += item.len() + 1;
        let compact: String = item.chars().filter(|&c| c != ' ').collect();
        let compact = compact.trim_matches('.');
        if compact.is_empty() {
            continue;
        }
        let mut segments = Vec::new();
        for segment in compact.split('.') {
            let valid = !segment.is_empty()
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                return Err(ParseError::at(
                    ErrorKind::InvalidIdentifier,
                    item_span,
                    format!("invalid expand path {}", quote(item)),
                    ", expected relation names joined by \".\"".to_string(),
                ));
            }
            if segments.len() < MAX_EXPAND_DEPTH {
                segments.push(segment.to_string());
            }
        }
        paths.push(segments);
    }
    Ok(paths)
}

/// Merges expand paths as PocketBase does before expanding: a path that is a prefix of
/// another one is dropped (expanding `a.b` expands `a` too) and duplicates are removed.
/// The order of first appearance is kept.
pub fn normalize_expand(paths: Vec<Vec<String>>) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::with_capacity(paths.len());
    for (idx, path) in paths.iter().enumerate() {
        let covered = paths.iter().enumerate().any(|(other_idx, other)| {
            other_idx != idx && other.len() > path.len() && other.starts_with(path)
        });
        if !covered && !out.contains(path) {
            out.push(path.clone());
        }
    }
    out
}
