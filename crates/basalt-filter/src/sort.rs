//! The `?sort=` parameter: `-created,+title,@random`.
//!
//! PocketBase's rules: the list is split on `,` and each term is trimmed; a leading `-`
//! means descending, a leading `+` (or none) ascending; `@random` and `@rowid` are
//! special; at most 8 terms, each at most 255 bytes after the sign. An empty parameter
//! means no sort. An empty term (`a,,b`, `a,`) is an error, as in PocketBase where it
//! fails as an unknown field.

use std::fmt::{self, Display, Formatter};

use crate::ast::{Path, Span};
use crate::error::{ErrorKind, ParseError};

/// Most terms in one sort list (PocketBase's `DefaultSortExprLimit`).
pub const MAX_SORT_TERMS: usize = 8;
/// Longest sort term in bytes, sign excluded (PocketBase's `MaxSortFieldLength`).
pub const MAX_SORT_TERM_LEN: usize = 255;

/// One term of a sort list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortTerm {
    /// What to sort by.
    pub target: SortTarget,
    /// True for `-x`.
    pub desc: bool,
    /// The term in the input, sign included, whitespace excluded.
    pub span: Span,
}

/// What a sort term sorts by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortTarget {
    /// A field path, e.g. `author.name`.
    Path(Path),
    /// `@random`: random order (the direction is ignored).
    Random,
    /// `@rowid`: the storage row order.
    RowId,
}

/// Parses a sort list such as `-created,title`.
pub fn parse_sort(input: &str) -> Result<Vec<SortTerm>, ParseError> {
    if input.is_empty() {
        return Ok(Vec::new());
    }
    let count = input.split(',').count();
    if count > MAX_SORT_TERMS {
        return Err(ParseError::whole(
            ErrorKind::TooManySortTerms,
            Span::new(0, input.len()),
            format!("too many sort terms: {count}, the limit is {MAX_SORT_TERMS}"),
        ));
    }
    let mut terms = Vec::with_capacity(count);
    let mut offset = 0;
    for item in input.split(',') {
        terms.push(parse_term(item, offset)?);
        offset += item.len() + 1;
    }
    Ok(terms)
}

/// Parses one comma-separated item that starts at byte `offset` of the input.
fn parse_term(item: &str, offset: usize) -> Result<SortTerm, ParseError> {
    let trimmed = item.trim_start();
    let start = offset + (item.len() - trimmed.len());
    let trimmed = trimmed.trim_end();
    let span = Span::new(start, start + trimmed.len());
    if trimmed.is_empty() {
        return Err(ParseError::at(
            ErrorKind::EmptyItem,
            span,
            "empty sort term".to_string(),
            String::new(),
        ));
    }
    let (desc, name) = match trimmed.as_bytes()[0] {
        b'-' => (true, &trimmed[1..]),
        b'+' => (false, &trimmed[1..]),
        _ => (false, trimmed),
    };
    let name_start = span.end - name.len();
    if name.len() > MAX_SORT_TERM_LEN {
        return Err(ParseError::at(
            ErrorKind::TooLong,
            Span::new(name_start, span.end),
            "sort term is too long".to_string(),
            format!(": {} bytes, the limit is {MAX_SORT_TERM_LEN}", name.len()),
        ));
    }
    let target = match name {
        "@random" => SortTarget::Random,
        "@rowid" => SortTarget::RowId,
        _ => SortTarget::Path(Path::parse(name).map_err(|err| err.shifted(name_start))?),
    };
    Ok(SortTerm { target, desc, span })
}

impl Display for SortTarget {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            SortTarget::Path(path) => write!(f, "{path}"),
            SortTarget::Random => f.write_str("@random"),
            SortTarget::RowId => f.write_str("@rowid"),
        }
    }
}

impl Display for SortTerm {
    /// `-target` for descending terms, `target` for ascending ones.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if self.desc {
            f.write_str("-")?;
        }
        write!(f, "{}", self.target)
    }
}
