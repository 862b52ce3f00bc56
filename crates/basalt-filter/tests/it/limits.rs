//! Limits at N and N+1.

use basalt_filter::{ErrorKind, Limits, parse, parse_with};

fn chain(n: usize) -> String {
    vec!["a = 1"; n].join(" && ")
}

fn parens(n: usize) -> String {
    format!("{}a = 1{}", "(".repeat(n), ")".repeat(n))
}

#[test]
fn defaults_match_the_documented_values() {
    let limits = Limits::default();
    assert_eq!(limits.max_len, None);
    assert_eq!(limits.max_comparisons, 200);
    assert_eq!(limits.max_depth, 32);
    assert_eq!(limits.max_call_depth, 2);
    let client = Limits::client_filter();
    assert_eq!(client.max_len, Some(3500));
    assert_eq!(client.max_comparisons, 200);
    assert_eq!(client.max_depth, 32);
    assert_eq!(client.max_call_depth, 2);
}

#[test]
fn length_limit_counts_bytes() {
    let limits = Limits::client_filter();
    let at_limit = format!("a = '{}'", "x".repeat(3500 - 6));
    assert_eq!(at_limit.len(), 3500);
    assert!(parse_with(&at_limit, &limits).is_ok());
    let over = format!("a = '{}'", "x".repeat(3501 - 6));
    let err = parse_with(&over, &limits).expect_err("too long");
    assert_eq!(*err.kind(), ErrorKind::TooLong);
    assert_eq!(
        err.to_string(),
        "filter is too long: 3501 bytes, the limit is 3500"
    );
    assert_eq!(err.span(), basalt_filter::Span::new(3500, 3501));
    // "é" is two bytes: 1749 of them plus the 6 other bytes is 3504 bytes.
    let multibyte = format!("a = '{}'", "é".repeat(1749));
    let err = parse_with(&multibyte, &limits).expect_err("too long");
    assert_eq!(
        err.to_string(),
        "filter is too long: 3504 bytes, the limit is 3500"
    );
    // No length limit by default.
    assert!(parse(&format!("a = '{}'", "x".repeat(10_000))).is_ok());
}

#[test]
fn comparison_limit() {
    assert!(parse(&chain(200)).is_ok());
    let err = parse(&chain(201)).expect_err("too many");
    assert_eq!(*err.kind(), ErrorKind::TooManyComparisons);
    let position = 200 * "a = 1 && ".len();
    assert_eq!(
        err.to_string(),
        format!("too many comparisons at position {position}, the limit is 200")
    );
    let small = Limits {
        max_comparisons: 2,
        ..Limits::default()
    };
    assert!(parse_with("a = 1 || (b = 2)", &small).is_ok());
    let err = parse_with("a = 1 || (b = 2 && c = 3)", &small).expect_err("too many");
    assert_eq!(
        err.to_string(),
        "too many comparisons at position 19, the limit is 2"
    );
    // Call arguments are not comparisons.
    assert!(parse_with("f(a, b, c, d) = 1 && x = 2", &small).is_ok());
}

#[test]
fn paren_depth_limit() {
    assert!(parse(&parens(32)).is_ok());
    let err = parse(&parens(33)).expect_err("too deep");
    assert_eq!(*err.kind(), ErrorKind::TooDeep);
    assert_eq!(
        err.to_string(),
        "too deeply nested parentheses at position 32, the limit is 32"
    );
    let flat = Limits {
        max_depth: 0,
        ..Limits::default()
    };
    assert!(parse_with("a = 1 && b = 2", &flat).is_ok());
    assert_eq!(
        parse_with("(a = 1)", &flat)
            .expect_err("too deep")
            .to_string(),
        "too deeply nested parentheses at position 0, the limit is 0"
    );
    // Sequential groups do not add up.
    assert!(parse(&vec![parens(32); 5].join(" || ")).is_ok());
}

#[test]
fn paren_depth_has_a_hard_cap() {
    let huge = Limits {
        max_depth: usize::MAX,
        ..Limits::default()
    };
    assert!(parse_with(&parens(256), &huge).is_ok());
    let err = parse_with(&parens(257), &huge).expect_err("too deep");
    assert_eq!(
        err.to_string(),
        "too deeply nested parentheses at position 256, the limit is 256"
    );
    // Far deeper input fails fast without exhausting the stack.
    assert!(parse_with(&parens(100_000), &huge).is_err());
}

#[test]
fn call_depth_limit() {
    assert!(parse("a(b(c(1))) = 1").is_ok());
    let err = parse("a(b(c(d(1)))) = 1").expect_err("too deep");
    assert_eq!(*err.kind(), ErrorKind::TooDeep);
    assert_eq!(
        err.to_string(),
        "too deeply nested function calls at position 6, the limit is 2 nested calls"
    );
    let none = Limits {
        max_call_depth: 0,
        ..Limits::default()
    };
    assert!(parse_with("f(a) = g(b)", &none).is_ok());
    assert_eq!(
        parse_with("f(g(a)) = 1", &none)
            .expect_err("too deep")
            .to_string(),
        "too deeply nested function calls at position 2, the limit is 0 nested calls"
    );
    let huge = Limits {
        max_call_depth: usize::MAX,
        ..Limits::default()
    };
    let deep = format!("{}1{} = 1", "f(".repeat(100_000), ")".repeat(100_000));
    assert!(parse_with(&deep, &huge).is_err());
}

#[test]
fn long_chains_print_without_deep_recursion() {
    let many = Limits {
        max_comparisons: 5_000,
        ..Limits::default()
    };
    let input = chain(5_000);
    let expr = parse_with(&input, &many).expect("parses");
    assert_eq!(expr.to_string(), input);
    assert_eq!(expr.comparisons().len(), 5_000);
}
