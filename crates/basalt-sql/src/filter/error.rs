//! Compile errors: one [`CompileError`] for filters, rules and sort lists.
//!
//! Messages are lowercase, have no trailing period, name the offending path or
//! function and give its byte position in the input, e.g.
//! `unknown field "autor.name" at position 0`.

use std::fmt;

use basalt_filter::{ParseError, Span};

/// What went wrong, for callers that branch on the error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CompileErrorKind {
    /// The text is not a valid expression or sort list (see the message).
    Parse,
    /// A record path names a field the collection does not have.
    UnknownField,
    /// `@collection.x`, a relation target or a back-relation source does not exist.
    UnknownCollection,
    /// A `:modifier` that does not exist or cannot be used on this path.
    InvalidModifier,
    /// A client filter or sort of a non-superuser names a hidden field.
    HiddenField,
    /// A client filter or sort of a non-superuser uses `@request.*` or `@collection.*`.
    Forbidden,
    /// A client filter joins a collection whose list rule is null (superusers only).
    LockedCollection,
    /// A path crosses more relations than [`MAX_RELATION_HOPS`](super::MAX_RELATION_HOPS).
    TooManyHops,
    /// An expression needs more joins than [`MAX_JOINS`](super::MAX_JOINS).
    TooManyJoins,
    /// An unknown function, or bad arguments to a known one.
    InvalidFunction,
    /// A sort term that cannot be used for sorting (multi-valued path, literal...).
    InvalidSort,
}

/// An error from compiling a filter, rule or sort list.
///
/// The fields are private: use [`CompileError::kind`], [`CompileError::span`] and the
/// `Display` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    kind: CompileErrorKind,
    span: Span,
    message: String,
}

impl CompileError {
    /// An error about the input at `span`: the message reads
    /// `{what} at position {span.start}{detail}`.
    pub(crate) fn at(kind: CompileErrorKind, span: Span, what: String, detail: &str) -> Self {
        CompileError {
            kind,
            span,
            message: format!("{what} at position {}{detail}", span.start),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> CompileErrorKind {
        self.kind
    }

    /// Where it went wrong, as byte offsets into the input.
    pub fn span(&self) -> Span {
        self.span
    }
}

impl From<ParseError> for CompileError {
    fn from(err: ParseError) -> Self {
        CompileError {
            kind: CompileErrorKind::Parse,
            span: err.span(),
            message: err.to_string(),
        }
    }
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CompileError {}

/// Quotes a path or name for a message, cut to a readable length.
pub(crate) fn quote(text: &str) -> String {
    const MAX_CHARS: usize = 60;
    match text.char_indices().nth(MAX_CHARS) {
        Some((idx, _)) => format!("\"{}...\"", text[..idx].escape_debug()),
        None => format!("\"{}\"", text.escape_debug()),
    }
}
