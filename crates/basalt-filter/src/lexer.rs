//! The lexer: turns filter text into tokens, one at a time, skipping whitespace and
//! `//` comments.
//!
//! Every token boundary falls on an ASCII byte or the end of input, so slicing the
//! input by a token's span never splits a UTF-8 character.

use crate::ast::{CmpOp, Span};
use crate::error::{ErrorKind, ParseError, quote};
use crate::path::{is_ident_continue, is_ident_start};

/// What a token is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TokenKind {
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `,`
    Comma,
    /// `&&`
    And,
    /// `||`
    Or,
    /// One of the sixteen comparison operators.
    Op(CmpOp),
    /// An identifier, not yet validated; its text is the token's span of the input.
    Ident,
    /// A number literal, already converted.
    Number(f64),
    /// A quoted text, with the escapes removed.
    Text(String),
    /// The end of the input.
    Eof,
}

/// A token and where it is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub(crate) kind: TokenKind,
    pub(crate) span: Span,
}

/// Produces tokens from the input on demand.
pub(crate) struct Lexer<'a> {
    input: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(input: &'a str) -> Self {
        Lexer { input, pos: 0 }
    }

    /// The byte at `idx`, if any.
    fn byte(&self, idx: usize) -> Option<u8> {
        self.input.as_bytes().get(idx).copied()
    }

    /// Skips whitespace (space, tab, `\n`, `\r`) and `//` comments.
    fn skip_trivia(&mut self) {
        while let Some(byte) = self.byte(self.pos) {
            match byte {
                b' ' | b'\t' | b'\n' | b'\r' => self.pos += 1,
                b'/' if self.byte(self.pos + 1) == Some(b'/') => {
                    let rest = &self.input.as_bytes()[self.pos..];
                    self.pos += rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
                }
                _ => break,
            }
        }
    }

    /// Advances over the bytes that satisfy `pred` and returns the end position.
    fn run_while(&mut self, pred: impl Fn(u8) -> bool) -> usize {
        while self.byte(self.pos).is_some_and(&pred) {
            self.pos += 1;
        }
        self.pos
    }

    /// Reads the next token.
    pub(crate) fn next_token(&mut self) -> Result<Token, ParseError> {
        self.skip_trivia();
        let start = self.pos;
        let Some(byte) = self.byte(start) else {
            return Ok(Token {
                kind: TokenKind::Eof,
                span: Span::new(start, start),
            });
        };
        let kind = match byte {
            b'(' => self.single(TokenKind::LParen),
            b')' => self.single(TokenKind::RParen),
            b',' => self.single(TokenKind::Comma),
            b'&' | b'|' => self.join(start)?,
            b'=' | b'?' | b'!' | b'<' | b'>' | b'~' => self.operator(start)?,
            b'\'' | b'"' => self.text(start, byte)?,
            b'-' | b'0'..=b'9' => self.number(start)?,
            _ if is_ident_start(byte) => {
                self.pos += 1;
                self.run_while(is_ident_continue);
                TokenKind::Ident
            }
            _ => return Err(self.unexpected_char(start)),
        };
        Ok(Token {
            kind,
            span: Span::new(start, self.pos),
        })
    }

    fn single(&mut self, kind: TokenKind) -> TokenKind {
        self.pos += 1;
        kind
    }

    /// `&&` or `||`; any other run of `&` and `|` is an invalid operator.
    fn join(&mut self, start: usize) -> Result<TokenKind, ParseError> {
        let end = self.run_while(|b| matches!(b, b'&' | b'|'));
        match &self.input[start..end] {
            "&&" => Ok(TokenKind::And),
            "||" => Ok(TokenKind::Or),
            other => Err(invalid_operator(other, start, end)),
        }
    }

    /// A comparison operator. Like fexpr, the whole run of operator characters must be
    /// one operator, so `a==b` fails on `==` instead of reading `=` twice.
    fn operator(&mut self, start: usize) -> Result<TokenKind, ParseError> {
        let end = self.run_while(|b| matches!(b, b'=' | b'?' | b'!' | b'<' | b'>' | b'~'));
        let text = &self.input[start..end];
        CmpOp::from_symbol(text)
            .map(TokenKind::Op)
            .ok_or_else(|| invalid_operator(text, start, end))
    }

    /// A quoted text. The text ends at the first matching quote that does not directly
    /// follow a backslash; then every backslash directly before a matching quote is
    /// dropped. No other backslash is special (this is fexpr's rule).
    fn text(&mut self, start: usize, quote_byte: u8) -> Result<TokenKind, ParseError> {
        let bytes = self.input.as_bytes();
        let mut idx = start + 1;
        while idx < bytes.len() {
            if bytes[idx] == quote_byte && (idx == start + 1 || bytes[idx - 1] != b'\\') {
                self.pos = idx + 1;
                let raw = &self.input[start + 1..idx];
                return Ok(TokenKind::Text(unescape(raw, char::from(quote_byte))));
            }
            idx += 1;
        }
        self.pos = bytes.len();
        Err(ParseError::at(
            ErrorKind::UnterminatedString,
            Span::new(start, bytes.len()),
            "unterminated string starting".to_string(),
            String::new(),
        ))
    }

    /// A number: `-`? digits (`.` digits)?. The lexer takes the whole run of number-ish
    /// characters (letters, digits, `_`, `.`) so that `1.`, `1.2.3` or `1e5` are reported
    /// as one invalid number.
    fn number(&mut self, start: usize) -> Result<TokenKind, ParseError> {
        if self.byte(start) == Some(b'-') {
            self.pos += 1;
        }
        let end = self.run_while(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
        let text = &self.input[start..end];
        let invalid = |detail: &str| {
            ParseError::at(
                ErrorKind::InvalidNumber,
                Span::new(start, end),
                format!("invalid number {}", quote(text)),
                detail.to_string(),
            )
        };
        if !is_number_literal(text) {
            return Err(invalid(""));
        }
        match text.parse::<f64>() {
            Ok(value) if value.is_finite() => Ok(TokenKind::Number(value)),
            _ => Err(invalid(", it is too large")),
        }
    }

    fn unexpected_char(&self, start: usize) -> ParseError {
        let ch = self
            .input
            .get(start..)
            .and_then(|rest| rest.chars().next())
            .unwrap_or(char::REPLACEMENT_CHARACTER);
        ParseError::at(
            ErrorKind::UnexpectedChar,
            Span::new(start, start + ch.len_utf8()),
            format!(
                "unexpected character {}",
                quote(ch.encode_utf8(&mut [0; 4]))
            ),
            String::new(),
        )
    }
}

fn invalid_operator(text: &str, start: usize, end: usize) -> ParseError {
    ParseError::at(
        ErrorKind::InvalidOperator,
        Span::new(start, end),
        format!("invalid operator {}", quote(text)),
        String::new(),
    )
}

/// True if `text` is `-`? digits (`.` digits)?.
fn is_number_literal(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (int, frac) = match digits.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (digits, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    all_digits(int) && frac.is_none_or(all_digits)
}

/// Removes the backslash of every `\` + `quote` pair, left to right.
fn unescape(raw: &str, quote: char) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(ch) = chars.next() {
        if ch == '\\' && chars.peek() == Some(&quote) {
            out.push(quote);
            chars.next();
        } else {
            out.push(ch);
        }
    }
    out
}
