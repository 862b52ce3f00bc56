//! A compact one-line rendering of trees for the data-driven tests.
//!
//! `(and (= title "a") (?~ tags.name "x"))`: logic nodes and comparisons as lists,
//! texts as Rust string literals, numbers as Rust prints an `f64`, paths as written,
//! calls as `(call name args...)`.

use basalt_filter::{Expr, Operand, OperandKind};

pub(crate) fn expr(e: &Expr) -> String {
    match e {
        Expr::Logic { op, lhs, rhs } => {
            let name = match op {
                basalt_filter::LogicOp::And => "and",
                basalt_filter::LogicOp::Or => "or",
            };
            format!("({name} {} {})", expr(lhs), expr(rhs))
        }
        Expr::Compare(cmp) => format!("({} {} {})", cmp.op, operand(&cmp.lhs), operand(&cmp.rhs)),
    }
}

pub(crate) fn operand(op: &Operand) -> String {
    match &op.kind {
        OperandKind::Text(text) => format!("{text:?}"),
        OperandKind::Number(value) => format!("{value}"),
        OperandKind::Bool(value) => format!("{value}"),
        OperandKind::Null => "null".to_string(),
        OperandKind::Path(path) => path.to_string(),
        OperandKind::Call { name, args } => {
            let mut out = format!("(call {name}");
            for arg in args {
                out.push(' ');
                out.push_str(&operand(arg));
            }
            out.push(')');
            out
        }
    }
}
