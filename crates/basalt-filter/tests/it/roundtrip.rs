//! Property tests: random trees print and parse back to themselves, and no input
//! makes the parsers panic.

use basalt_filter::{
    CmpOp, Comparison, Expr, LogicOp, Operand, OperandKind, Path, Span, parse, parse_expand,
    parse_fields, parse_sort,
};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    }
}

/// A valid identifier that does not read back as a keyword.
fn path() -> impl Strategy<Value = Path> {
    let first = "[A-Za-z@_#][A-Za-z0-9_]{0,5}";
    let rest = proptest::collection::vec("[A-Za-z0-9_]{1,5}", 0..3);
    let mods = proptest::collection::vec("[A-Za-z0-9_]{1,4}", 0..2);
    (first, rest, mods)
        .prop_map(|(first, rest, mods)| {
            let mut text = first;
            for seg in rest {
                text.push('.');
                text.push_str(&seg);
            }
            for m in mods {
                text.push(':');
                text.push_str(&m);
            }
            text
        })
        .prop_filter_map("valid, non-keyword identifier", |text| {
            let lower = text.to_ascii_lowercase();
            if matches!(lower.as_str(), "true" | "false" | "null") {
                return None;
            }
            Path::parse(&text).ok()
        })
}

/// Any text the language can hold: everything but a trailing backslash.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[a'\"\\\\ /()&|]{0,8}",]
        .prop_filter("no trailing backslash", |s| !s.ends_with('\\'))
}

fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        (-1_000_000i64..1_000_000).prop_map(|n| n as f64),
        any::<f64>().prop_filter("finite", |v| v.is_finite()),
    ]
}

fn leaf() -> BoxedStrategy<OperandKind> {
    prop_oneof![
        text().prop_map(OperandKind::Text),
        number().prop_map(OperandKind::Number),
        any::<bool>().prop_map(OperandKind::Bool),
        Just(OperandKind::Null),
        path().prop_map(OperandKind::Path),
    ]
    .boxed()
}

/// Operands holding calls at most `calls` levels deep.
fn operand(calls: u32) -> BoxedStrategy<Operand> {
    let kind = if calls == 0 {
        leaf()
    } else {
        let call = (path(), proptest::collection::vec(operand(calls - 1), 0..4)).prop_map(
            |(name, args)| OperandKind::Call {
                name: name.to_string(),
                args,
            },
        );
        prop_oneof![3 => leaf(), 1 => call].boxed()
    };
    kind.prop_map(Operand::unspanned).boxed()
}

fn cmp_op() -> impl Strategy<Value = CmpOp> {
    proptest::sample::select(CmpOp::ALL.to_vec())
}

fn expr() -> impl Strategy<Value = Expr> {
    let comparison = (operand(3), cmp_op(), operand(3)).prop_map(|(lhs, op, rhs)| {
        Expr::Compare(Comparison {
            lhs,
            op,
            rhs,
            span: Span::default(),
        })
    });
    comparison.prop_recursive(8, 64, 2, |inner| {
        (any::<bool>(), inner.clone(), inner).prop_map(|(and, lhs, rhs)| Expr::Logic {
            op: if and { LogicOp::And } else { LogicOp::Or },
            lhs: Box::new(lhs),
            rhs: Box::new(rhs),
        })
    })
}

/// Characters that exercise the lexer: every token start, quotes, escapes, UTF-8.
fn filterish() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("a".to_string()),
            Just("@r.b:x".to_string()),
            Just("f(".to_string()),
            Just(")".to_string()),
            Just("(".to_string()),
            Just(",".to_string()),
            Just(" ".to_string()),
            Just("&&".to_string()),
            Just("||".to_string()),
            Just("=".to_string()),
            Just("?!~".to_string()),
            Just("-1.5".to_string()),
            Just("'".to_string()),
            Just("\"".to_string()),
            Just("\\".to_string()),
            Just("//".to_string()),
            Just("\n".to_string()),
            Just("é".to_string()),
            Just("true".to_string()),
            "[ -~]",
        ],
        0..24,
    )
    .prop_map(|parts| parts.concat())
}

/// The fuzz target's check: if the input parses, its printed form parses back to
/// the same tree, and errors carry spans inside the input on character boundaries.
fn check_input(input: &str) -> Result<(), TestCaseError> {
    match parse(input) {
        Ok(expr) => {
            let printed = expr.to_string();
            let reparsed = parse(&printed);
            prop_assert!(
                reparsed.is_ok(),
                "{printed:?} does not reparse: {reparsed:?}"
            );
            if let Ok(reparsed) = reparsed {
                prop_assert_eq!(reparsed.without_spans(), expr.without_spans());
                prop_assert_eq!(reparsed.to_string(), printed);
            }
        }
        Err(err) => {
            let span = err.span();
            prop_assert!(span.start <= span.end && span.end <= input.len());
            prop_assert!(input.is_char_boundary(span.start));
            prop_assert!(input.is_char_boundary(span.end));
            prop_assert!(!err.to_string().is_empty());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_trees_print_and_parse_back(tree in expr()) {
        let printed = tree.to_string();
        let parsed = parse(&printed);
        prop_assert!(parsed.is_ok(), "{printed:?}: {parsed:?}");
        if let Ok(parsed) = parsed {
            prop_assert_eq!(parsed.without_spans(), tree.without_spans(), "printed: {}", printed);
        }
    }

    #[test]
    fn random_paths_print_and_parse_back(p in path()) {
        prop_assert_eq!(Path::parse(&p.to_string()), Ok(p));
    }

    #[test]
    fn filter_like_input_never_panics(input in filterish()) {
        check_input(&input)?;
    }

    #[test]
    fn arbitrary_input_never_panics(input in any::<String>()) {
        check_input(&input)?;
        let _ = parse_sort(&input);
        let _ = parse_fields(&input);
        let _ = parse_expand(&input);
    }
}
