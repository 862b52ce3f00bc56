//! PocketBase's filter and rule language: lexer, parser, syntax tree with spans,
//! canonical printer, and the small parsers for `?sort=`, `?fields=` and `?expand=`.
//!
//! The crate is pure (no I/O, no dependencies). It gives no meaning to identifiers:
//! `@request.auth.id` and `author.name` are both just [`Path`]s here; `basalt-sql`
//! resolves them. The entry points are [`parse`] / [`parse_with`] for expressions,
//! [`Path::parse`], [`parse_sort`], [`parse_fields`] and [`parse_expand`]. Every
//! failure is a [`ParseError`] with an [`ErrorKind`], a byte [`Span`] and a message
//! such as `unexpected token ")" at position 7, expected an operand`.
//!
//! ```
//! use basalt_filter::{Limits, parse, parse_with};
//!
//! let expr = parse("status = 'active' && (views > 10 || tags:each ?= \"hot\")")?;
//! assert_eq!(expr.to_string(), "status = 'active' && (views > 10 || tags:each ?= 'hot')");
//! assert_eq!(parse(&expr.to_string())?.without_spans(), expr.without_spans());
//!
//! let err = parse_with("title = 'x' )", &Limits::client_filter()).unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     r#"unexpected token ")" at position 12, expected "&&", "||" or the end of the filter"#
//! );
//! # Ok::<(), basalt_filter::ParseError>(())
//! ```
//!
//! # Grammar
//!
//! ```text
//! filter     = expr EOF ;
//! expr       = and { "||" and } ;                 (* left-associative *)
//! and        = group { "&&" group } ;             (* && binds tighter than || *)
//! group      = "(" expr ")" | comparison ;
//! comparison = operand op operand ;
//! op         = "=" | "!=" | ">" | ">=" | "<" | "<=" | "~" | "!~"
//!            | "?=" | "?!=" | "?>" | "?>=" | "?<" | "?<=" | "?~" | "?!~" ;
//! operand    = call | identifier | number | text ;
//! call       = identifier "(" [ operand { "," operand } [ "," ] ] ")" ;
//!                                                 (* no space before "(" *)
//! identifier = ident-start { ident-char } ;       (* not ending in "." or ":" *)
//! ident-start= "A".."Z" | "a".."z" | "_" | "@" | "#" ;
//! ident-char = "A".."Z" | "a".."z" | "0".."9" | "_" | "." | ":" ;
//! number     = [ "-" ] digit { digit } [ "." digit { digit } ] ;
//! text       = "'" { any char } "'" | '"' { any char } '"' ;
//! comment    = "//" { any char but newline } ;    (* skipped, like whitespace *)
//! whitespace = " " | "\t" | "\n" | "\r" ;
//! ```
//!
//! # Lexical rules in detail
//!
//! - **Identifiers** split into [`Segment`]s on `.`; each segment's `:name` suffixes
//!   are its modifiers (`tags:each`, `@request.body.x:isset`,
//!   `@collection.users:u.email`). An identifier may not be a lone `@`, `_` or `#`,
//!   nor end with `.` or `:`. Stricter than fexpr: no empty segment (`a..b`) and no
//!   empty modifier (`a::b`).
//! - **Keywords**: an identifier that is exactly `true`, `false` or `null`, in any
//!   case, becomes [`OperandKind::Bool`] / [`OperandKind::Null`]. Macros such as `@now`
//!   stay paths.
//! - **Calls**: an identifier directly followed by `(` (no whitespace) is a call.
//!   Arguments are operands, including calls nested up to
//!   [`Limits::max_call_depth`] (2, as in fexpr: `a(b(c(1)))` is fine,
//!   `a(b(c(d(1))))` is not). A single trailing comma is allowed; `f(,)` is not.
//! - **Numbers** have no exponent, no leading `+`, no leading or trailing dot; `-` must
//!   touch the digits. A number too large for an `f64` is an error.
//! - **Text and backslashes** (fexpr's rule, kept for wire compatibility with PocketBase
//!   and its SDKs, which escape only the quote): a text ends at the first matching
//!   quote that does not directly follow a backslash. Inside, `\'` (or `\"` in a
//!   double-quoted text) stands for the quote; **every other backslash is an ordinary
//!   character**, so `'a\\b'` is the four characters `a\\b` and `'C:\path'` is
//!   `C:\path`. Because a backslash before the closing quote escapes it, a text cannot
//!   end with a backslash: `'a\\'` is unterminated. The other quote needs no escape:
//!   `"it's"`.
//! - **Comments** run from `//` to the end of the line and may appear wherever
//!   whitespace may, including inside call arguments. A lone `/` is an error.
//! - **Operators** are read as a whole run of the characters `= ? ! < > ~` (and `& |`
//!   for joins), which must be exactly one operator: `a==b` fails on `==`.
//!
//! # Differences from fexpr
//!
//! fexpr (the Go parser PocketBase uses) is followed except where it is loose in ways
//! that make no difference to valid filters: `\r` counts as whitespace; an empty group
//! `()` is an error instead of being skipped; comments inside parentheses are handled
//! like anywhere else (fexpr scans groups as raw text first, so a `)` or a quote inside
//! such a comment confuses it); `-.5`, `a..b` and `a::b` are rejected; and
//! `1e5`-style runs are reported as one invalid number.
//!
//! # Limits
//!
//! [`Limits`] caps the input length (bytes), the number of comparisons (200, as
//! PocketBase), parenthesis nesting (32, ours) and call nesting (2, as fexpr).
//! [`Limits::client_filter`] adds PocketBase's 3500-byte cap for `?filter=`.
//!
//! # Printing
//!
//! `Display` on [`Expr`] writes the canonical form: one space around operators, `, `
//! between call arguments, single quotes unless the text holds a `'` and no `"`, and
//! parentheses only where the tree needs them (an `||` inside an `&&`, or a right
//! operand that binds no tighter than its parent: `a && (b && c)` keeps its
//! parentheses because the parser nests `a && b && c` the other way). Comments and
//! redundant parentheses are dropped. `parse(&expr.to_string())` gives back `expr` up
//! to spans (compare with [`Expr::without_spans`]).
//!
//! Three kinds of hand-built trees cannot be printed faithfully, and the parser never
//! builds them: a `Text` ending in a backslash (see above), a one-segment `Path`
//! spelled `true`, `false` or `null` in any case (it reads back as a literal), and a
//! non-finite `Number`.

#![warn(missing_docs)]

pub mod ast;
mod error;
mod fields;
mod lexer;
mod limits;
mod parser;
mod path;
mod print;
mod sort;

pub use ast::{CmpOp, Comparison, Expr, LogicOp, Operand, OperandKind, Path, Segment, Span};
pub use error::{ErrorKind, ParseError};
pub use fields::{
    Excerpt, FieldPick, MAX_EXPAND_DEPTH, normalize_expand, parse_expand, parse_fields,
};
pub use limits::Limits;
pub use sort::{MAX_SORT_TERM_LEN, MAX_SORT_TERMS, SortTarget, SortTerm, parse_sort};

/// Parses a filter or rule expression with the default [`Limits`] (no length cap,
/// 200 comparisons, 32 levels of parentheses, 2 levels of nested calls).
///
/// For a client's `?filter=`, use `parse_with(input, &Limits::client_filter())`.
pub fn parse(input: &str) -> Result<Expr, ParseError> {
    parse_with(input, &Limits::default())
}

/// Parses a filter or rule expression with the given limits.
pub fn parse_with(input: &str, limits: &Limits) -> Result<Expr, ParseError> {
    parser::parse_expr(input, limits)
}
