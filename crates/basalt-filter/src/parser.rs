//! The recursive-descent parser for filter and rule expressions.
//!
//! One function per grammar rule (see the crate docs): `expr` (the `||` level),
//! `and`, `group`, `comparison`, `operand`. `&&`/`||` chains are parsed with loops, so
//! recursion only grows with parentheses and nested calls, both of which are capped.

use std::mem;

use crate::ast::{Comparison, Expr, LogicOp, Operand, OperandKind, Path, Span};
use crate::error::{ErrorKind, ParseError, quote};
use crate::lexer::{Lexer, Token, TokenKind};
use crate::limits::Limits;

/// Parses a whole expression with the given limits.
pub(crate) fn parse_expr(input: &str, limits: &Limits) -> Result<Expr, ParseError> {
    if let Some(max) = limits.max_len
        && input.len() > max
    {
        return Err(ParseError::whole(
            ErrorKind::TooLong,
            Span::new(max, input.len()),
            format!(
                "filter is too long: {} bytes, the limit is {max}",
                input.len()
            ),
        ));
    }
    let mut parser = Parser::new(input, limits)?;
    if parser.tok.kind == TokenKind::Eof {
        return Err(ParseError::whole(
            ErrorKind::Empty,
            Span::new(0, input.len()),
            "filter is empty: it has no comparison".to_string(),
        ));
    }
    let expr = parser.expr()?;
    if parser.tok.kind != TokenKind::Eof {
        return Err(parser.unexpected("\"&&\", \"||\" or the end of the filter"));
    }
    Ok(expr)
}

struct Parser<'a> {
    input: &'a str,
    lexer: Lexer<'a>,
    /// The current (not yet consumed) token.
    tok: Token,
    limits: &'a Limits,
    comparisons: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn new(input: &'a str, limits: &'a Limits) -> Result<Self, ParseError> {
        let mut lexer = Lexer::new(input);
        let tok = lexer.next_token()?;
        Ok(Parser {
            input,
            lexer,
            tok,
            limits,
            comparisons: 0,
            depth: 0,
        })
    }

    /// Consumes the current token and returns it.
    fn bump(&mut self) -> Result<Token, ParseError> {
        let next = self.lexer.next_token()?;
        Ok(mem::replace(&mut self.tok, next))
    }

    /// An error for the current token, which is not one of `expected`.
    fn unexpected(&self, expected: &str) -> ParseError {
        let span = self.tok.span;
        if self.tok.kind == TokenKind::Eof {
            ParseError::at(
                ErrorKind::UnexpectedEnd,
                span,
                "unexpected end of input".to_string(),
                format!(", expected {expected}"),
            )
        } else {
            ParseError::at(
                ErrorKind::UnexpectedToken,
                span,
                format!("unexpected token {}", quote(self.slice(span))),
                format!(", expected {expected}"),
            )
        }
    }

    fn slice(&self, span: Span) -> &'a str {
        self.input.get(span.start..span.end).unwrap_or_default()
    }

    /// expr := and ( "||" and )*
    fn expr(&mut self) -> Result<Expr, ParseError> {
        let mut lhs = self.and()?;
        while self.tok.kind == TokenKind::Or {
            self.bump()?;
            let rhs = self.and()?;
            lhs = logic(LogicOp::Or, lhs, rhs);
        }
        Ok(lhs)
    }

    /// and := group ( "&&" group )*
    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut lhs = self.group()?;
        while self.tok.kind == TokenKind::And {
            self.bump()?;
            let rhs = self.group()?;
            lhs = logic(LogicOp::And, lhs, rhs);
        }
        Ok(lhs)
    }

    /// group := "(" expr ")" | comparison
    fn group(&mut self) -> Result<Expr, ParseError> {
        if self.tok.kind != TokenKind::LParen {
            return self.comparison().map(Expr::Compare);
        }
        let cap = self.limits.depth_cap();
        if self.depth >= cap {
            return Err(ParseError::at(
                ErrorKind::TooDeep,
                self.tok.span,
                "too deeply nested parentheses".to_string(),
                format!(", the limit is {cap}"),
            ));
        }
        self.bump()?;
        self.depth += 1;
        let inner = self.expr()?;
        if self.tok.kind != TokenKind::RParen {
            return Err(self.unexpected("\"&&\", \"||\" or \")\""));
        }
        self.bump()?;
        self.depth -= 1;
        Ok(inner)
    }

    /// comparison := operand op operand
    fn comparison(&mut self) -> Result<Comparison, ParseError> {
        let lhs = self.operand(0, "an operand or \"(\"")?;
        let TokenKind::Op(op) = self.tok.kind else {
            return Err(self.unexpected("an operator such as \"=\""));
        };
        self.bump()?;
        let rhs = self.operand(0, "an operand")?;
        let span = Span::new(lhs.span.start, rhs.span.end);
        self.comparisons += 1;
        if self.comparisons > self.limits.max_comparisons {
            return Err(ParseError::at(
                ErrorKind::TooManyComparisons,
                span,
                "too many comparisons".to_string(),
                format!(", the limit is {}", self.limits.max_comparisons),
            ));
        }
        Ok(Comparison { lhs, op, rhs, span })
    }

    /// operand := identifier | call | number | text
    ///
    /// `calls` is how many calls enclose this operand.
    fn operand(&mut self, calls: usize, expected: &str) -> Result<Operand, ParseError> {
        let span = self.tok.span;
        let kind = match &mut self.tok.kind {
            TokenKind::Number(value) => OperandKind::Number(*value),
            TokenKind::Text(text) => OperandKind::Text(mem::take(text)),
            TokenKind::Ident => return self.identifier(calls),
            _ => return Err(self.unexpected(expected)),
        };
        self.bump()?;
        Ok(Operand { kind, span })
    }

    /// An identifier: a literal keyword, a path, or the name of a call when `(`
    /// follows without a space.
    fn identifier(&mut self, calls: usize) -> Result<Operand, ParseError> {
        let name_tok = self.bump()?;
        let span = name_tok.span;
        let text = self.slice(span);
        if self.tok.kind == TokenKind::LParen && self.tok.span.start == span.end {
            return self.call(text, span, calls);
        }
        let kind = if text.eq_ignore_ascii_case("true") {
            OperandKind::Bool(true)
        } else if text.eq_ignore_ascii_case("false") {
            OperandKind::Bool(false)
        } else if text.eq_ignore_ascii_case("null") {
            OperandKind::Null
        } else {
            OperandKind::Path(Path::parse(text).map_err(|err| err.shifted(span.start))?)
        };
        Ok(Operand { kind, span })
    }

    /// call := identifier "(" [ operand ( "," operand )* [ "," ] ] ")"
    ///
    /// The current token is the `(`.
    fn call(&mut self, name: &str, name_span: Span, calls: usize) -> Result<Operand, ParseError> {
        Path::parse(name).map_err(|err| err.shifted(name_span.start))?;
        let cap = self.limits.call_depth_cap();
        if calls > cap {
            return Err(ParseError::at(
                ErrorKind::TooDeep,
                name_span,
                "too deeply nested function calls".to_string(),
                format!(", the limit is {cap} nested calls"),
            ));
        }
        self.bump()?;
        let mut args = Vec::new();
        while self.tok.kind != TokenKind::RParen {
            args.push(self.operand(calls + 1, "a function argument or \")\"")?);
            match self.tok.kind {
                TokenKind::Comma => {
                    self.bump()?;
                }
                TokenKind::RParen => {}
                _ => return Err(self.unexpected("\",\" or \")\"")),
            }
        }
        let close = self.bump()?;
        Ok(Operand {
            kind: OperandKind::Call {
                name: name.to_string(),
                args,
            },
            span: Span::new(name_span.start, close.span.end),
        })
    }
}

fn logic(op: LogicOp, lhs: Expr, rhs: Expr) -> Expr {
    Expr::Logic {
        op,
        lhs: Box::new(lhs),
        rhs: Box::new(rhs),
    }
}
