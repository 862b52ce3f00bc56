//! The canonical printer: `Display` for the tree types.
//!
//! The output parses back to the same tree (spans aside): `a = 1 && (b = 2 || c = 3)`.
//! Operators get one space on each side, call arguments are separated by `, `, and
//! parentheses are written only where the tree shape needs them: around an `||` inside
//! an `&&`, and around a right operand whose operator binds no tighter than its parent
//! (`a && (b && c)` stays as written, because the parser would nest `a && b && c` the
//! other way).
//!
//! Two trees cannot be printed faithfully, and the parser never builds them: a
//! `Text` ending in a backslash (the closing quote would be escaped), and a one-segment
//! `Path` spelled `true`, `false` or `null` in any case (it reads back as a literal).
//! Non-finite numbers print as Rust prints them (`inf`, `NaN`), which does not parse.

use std::fmt::{self, Display, Formatter, Write};

use crate::ast::{CmpOp, Comparison, Expr, LogicOp, Operand, OperandKind, Path, Segment};

impl Display for CmpOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Display for LogicOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Display for Segment {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        for modifier in &self.modifiers {
            write!(f, ":{modifier}")?;
        }
        Ok(())
    }
}

impl Display for Path {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        for (idx, segment) in self.segments.iter().enumerate() {
            if idx > 0 {
                f.write_char('.')?;
            }
            write!(f, "{segment}")?;
        }
        Ok(())
    }
}

impl Display for Operand {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)
    }
}

impl Display for OperandKind {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            OperandKind::Text(text) => write_text(f, text),
            OperandKind::Number(value) => write!(f, "{value}"),
            OperandKind::Bool(value) => write!(f, "{value}"),
            OperandKind::Null => f.write_str("null"),
            OperandKind::Path(path) => write!(f, "{path}"),
            OperandKind::Call { name, args } => {
                write!(f, "{name}(")?;
                for (idx, arg) in args.iter().enumerate() {
                    if idx > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{arg}")?;
                }
                f.write_char(')')
            }
        }
    }
}

/// Writes a quoted text. Single quotes are used unless the text holds a `'` and no
/// `"`; the chosen quote is escaped with a backslash inside the text.
fn write_text(f: &mut Formatter<'_>, text: &str) -> fmt::Result {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    f.write_char(quote)?;
    for ch in text.chars() {
        if ch == quote {
            f.write_char('\\')?;
        }
        f.write_char(ch)?;
    }
    f.write_char(quote)
}

impl Display for Comparison {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.lhs, self.op, self.rhs)
    }
}

impl Display for Expr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write_expr(f, self)
    }
}

/// Binding strength: comparisons bind tightest, then `&&`, then `||`.
fn precedence(expr: &Expr) -> u8 {
    match expr {
        Expr::Compare(_) => 3,
        Expr::Logic {
            op: LogicOp::And, ..
        } => 2,
        Expr::Logic {
            op: LogicOp::Or, ..
        } => 1,
    }
}

fn write_expr(f: &mut Formatter<'_>, expr: &Expr) -> fmt::Result {
    let op = match expr {
        Expr::Compare(cmp) => return write!(f, "{cmp}"),
        Expr::Logic { op, .. } => op,
    };
    // Walk down the left spine of same-operator nodes without recursing, so a long
    // `a && b && c && ...` chain costs no stack.
    let mut rights = Vec::new();
    let mut node = expr;
    while let Expr::Logic {
        op: node_op,
        lhs,
        rhs,
    } = node
    {
        if node_op != op {
            break;
        }
        rights.push(rhs.as_ref());
        node = lhs;
    }
    let parent = precedence(expr);
    write_child(f, node, precedence(node) < parent)?;
    for rhs in rights.iter().rev() {
        write!(f, " {op} ")?;
        write_child(f, rhs, precedence(rhs) <= parent)?;
    }
    Ok(())
}

fn write_child(f: &mut Formatter<'_>, child: &Expr, parens: bool) -> fmt::Result {
    if parens {
        f.write_char('(')?;
        write_expr(f, child)?;
        f.write_char(')')
    } else {
        write_expr(f, child)
    }
}
