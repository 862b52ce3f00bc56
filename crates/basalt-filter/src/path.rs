//! Identifiers: validating `a.b:mod.c` and splitting it into [`Segment`]s.
//!
//! Rules (fexpr's, plus two of ours marked *):
//! - the first character is an ASCII letter, `_`, `@` or `#`;
//! - the others are ASCII letters, digits, `_`, `.` or `:`;
//! - the last character is not `.` or `:`;
//! - a lone `@`, `_` or `#` is not an identifier;
//! - \* no segment between dots is empty (`a..b`, `a.:m`), and
//! - \* no modifier is empty (`a::m`).

use crate::ast::{Path, Segment, Span};
use crate::error::{ErrorKind, ParseError, quote};

/// True for a character that may start an identifier.
pub(crate) fn is_ident_start(byte: u8) -> bool {
    byte.is_ascii_alphabetic() || matches!(byte, b'_' | b'@' | b'#')
}

/// True for a character that may follow the first one in an identifier.
pub(crate) fn is_ident_continue(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b':')
}

impl Path {
    /// Parses a whole identifier such as `@collection.users:u.email` or `tags:each`.
    ///
    /// Errors have kind [`ErrorKind::InvalidIdentifier`] and positions relative to `text`.
    /// Note that `true`, `false` and `null` are valid paths here; inside a filter they
    /// are read as literals instead.
    pub fn parse(text: &str) -> Result<Path, ParseError> {
        let invalid = |detail: String| {
            Err(ParseError::at(
                ErrorKind::InvalidIdentifier,
                Span::new(0, text.len()),
                format!("invalid identifier {}", quote(text)),
                detail,
            ))
        };
        let bytes = text.as_bytes();
        let Some(&first) = bytes.first() else {
            return invalid(", it is empty".to_string());
        };
        if !is_ident_start(first) {
            let ch = text.chars().next().unwrap_or_default();
            return invalid(format!(
                ", it cannot start with {}",
                quote(ch.encode_utf8(&mut [0; 4]))
            ));
        }
        if let Some(ch) = text.chars().skip(1).find(|&c| {
            let mut buf = [0; 4];
            let encoded = c.encode_utf8(&mut buf);
            encoded.len() != 1 || !is_ident_continue(encoded.as_bytes()[0])
        }) {
            return invalid(format!(
                ", character {} is not allowed",
                quote(ch.encode_utf8(&mut [0; 4]))
            ));
        }
        if bytes.len() == 1 && matches!(first, b'@' | b'_' | b'#') {
            return invalid(", it needs a name after the first character".to_string());
        }
        if text.ends_with('.') || text.ends_with(':') {
            return invalid(", it must not end with \".\" or \":\"".to_string());
        }
        let mut segments = Vec::new();
        for part in text.split('.') {
            let mut pieces = part.split(':');
            let name = pieces.next().unwrap_or_default();
            if name.is_empty() {
                return invalid(", it has an empty segment".to_string());
            }
            let mut modifiers = Vec::new();
            for modifier in pieces {
                if modifier.is_empty() {
                    return invalid(", it has an empty modifier".to_string());
                }
                modifiers.push(modifier.to_string());
            }
            segments.push(Segment {
                name: name.to_string(),
                modifiers,
            });
        }
        Ok(Path { segments })
    }

    /// A path of plain segments, e.g. `Path::from_names(["author", "name"])`.
    ///
    /// No validation is done; the printer writes the names as given.
    pub fn from_names<I, S>(names: I) -> Path
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Path {
            segments: names.into_iter().map(Segment::plain).collect(),
        }
    }

    /// True if the path is a single segment without modifiers named `name`.
    pub fn is_single(&self, name: &str) -> bool {
        matches!(self.segments.as_slice(), [seg] if seg.modifiers.is_empty() && seg.name == name)
    }
}
