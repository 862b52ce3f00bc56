//! Parse errors: one [`ParseError`] type for filters, paths, sort, fields and expand.
//!
//! A `ParseError` carries a machine-readable [`ErrorKind`], the byte [`Span`] of the
//! offending input and a human-readable message. Messages are lowercase, have no
//! trailing period, and say what went wrong and where, for example
//! `unexpected token ")" at position 7, expected an operand`. Positions are byte
//! offsets into the input, counted from 0.

use std::fmt;

use crate::ast::Span;

/// What went wrong, for callers that branch on the error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A character that cannot start any token (`$`, a lone `/`, a non-ASCII letter...).
    UnexpectedChar,
    /// A well-formed token in a place where it is not allowed.
    UnexpectedToken,
    /// The input ended where more was expected.
    UnexpectedEnd,
    /// A quoted text without its closing quote.
    UnterminatedString,
    /// A number that is not `-`? digits (`.` digits)?, or is too large for an `f64`.
    InvalidNumber,
    /// An identifier or path that breaks the identifier rules (ends with `.` or `:`,
    /// has an empty segment or modifier, is a lone `@`...).
    InvalidIdentifier,
    /// A run of operator characters that is not a known operator (`==`, `&`, `|||`...).
    InvalidOperator,
    /// The expression holds nothing but whitespace and comments.
    Empty,
    /// The input (or one sort term) is longer than the limit.
    TooLong,
    /// The expression has more comparisons than the limit.
    TooManyComparisons,
    /// Parentheses or function calls are nested deeper than the limit.
    TooDeep,
    /// A sort list has more terms than the limit.
    TooManySortTerms,
    /// An empty item in a comma list that does not allow one (`sort=a,,b`).
    EmptyItem,
    /// An unknown `fields` modifier, or bad modifier arguments.
    InvalidModifier,
}

/// An error from any of the parsers of this crate.
///
/// The fields are private: use [`ParseError::kind`], [`ParseError::span`] and the
/// `Display` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    kind: ErrorKind,
    span: Span,
    /// The message up to the position, e.g. `unexpected token ")"`.
    what: String,
    /// Whether the message names the position (`at position N`) after `what`.
    positioned: bool,
    /// The rest of the message, e.g. `, expected an operand`.
    detail: String,
}

impl ParseError {
    /// Builds an error whose message reads `{what} at position {span.start}{detail}`.
    pub(crate) fn at(kind: ErrorKind, span: Span, what: String, detail: String) -> Self {
        ParseError {
            kind,
            span,
            what,
            positioned: true,
            detail,
        }
    }

    /// Builds an error whose message is `what` alone (for whole-input errors).
    pub(crate) fn whole(kind: ErrorKind, span: Span, what: String) -> Self {
        ParseError {
            kind,
            span,
            what,
            positioned: false,
            detail: String::new(),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// Where it went wrong, as byte offsets into the input.
    pub fn span(&self) -> Span {
        self.span
    }

    /// Moves the span (and the position in the message) by `offset` bytes.
    ///
    /// Used when a piece of a larger input (one sort term, one field) is parsed on its own.
    pub(crate) fn shifted(mut self, offset: usize) -> Self {
        self.span = Span::new(self.span.start + offset, self.span.end + offset);
        self
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)?;
        if self.positioned {
            write!(f, " at position {}", self.span.start)?;
        }
        f.write_str(&self.detail)
    }
}

impl std::error::Error for ParseError {}

/// Quotes a piece of input for an error message: escaped like a Rust string literal
/// and cut to a readable length on a character boundary.
pub(crate) fn quote(text: &str) -> String {
    const MAX_CHARS: usize = 40;
    let mut cut = text;
    let mut ellipsis = "";
    if let Some((idx, _)) = text.char_indices().nth(MAX_CHARS) {
        cut = &text[..idx];
        ellipsis = "...";
    }
    // `Debug` for `str` quotes with `"` and escapes `"`, `\` and control characters.
    let mut quoted = format!("{cut:?}");
    quoted.insert_str(quoted.len() - 1, ellipsis);
    quoted
}
