//! `?sort=` lists.

use basalt_filter::{ErrorKind, SortTarget, parse_sort};

/// Renders terms as `+name@start..end` / `-name@start..end`, comma separated.
#[track_caller]
fn check(input: &str, expected: &str) {
    let terms = parse_sort(input).unwrap_or_else(|err| panic!("{input:?}: {err}"));
    let rendered: Vec<String> = terms
        .iter()
        .map(|term| {
            let sign = if term.desc { '-' } else { '+' };
            let target = match &term.target {
                SortTarget::Path(path) => path.to_string(),
                SortTarget::Random => "RANDOM".to_string(),
                SortTarget::RowId => "ROWID".to_string(),
            };
            format!("{sign}{target}@{}..{}", term.span.start, term.span.end)
        })
        .collect();
    assert_eq!(rendered.join(","), expected, "input: {input:?}");
}

#[track_caller]
fn check_err(input: &str, kind: ErrorKind, message: &str) {
    let err = parse_sort(input).expect_err(input);
    assert_eq!(err.to_string(), message, "input: {input:?}");
    assert_eq!(*err.kind(), kind, "input: {input:?}");
}

#[test]
fn sort_terms() {
    check("", "");
    check("title", "+title@0..5");
    check("-created", "-created@0..8");
    check("+title", "+title@0..6");
    check(
        "-created,+title,name",
        "-created@0..8,+title@9..15,+name@16..20",
    );
    check(" -a , b ", "-a@1..3,+b@6..7");
    check("@random", "+RANDOM@0..7");
    check("-@random", "-RANDOM@0..8");
    check("@rowid,-@rowid", "+ROWID@0..6,-ROWID@7..14");
    check("@Random", "+@Random@0..7");
    check("author.name:lower", "+author.name:lower@0..17");
    check(
        "@collection.users:u.email",
        "+@collection.users:u.email@0..25",
    );
    check(
        "a,b,c,d,e,f,g,h",
        "+a@0..1,+b@2..3,+c@4..5,+d@6..7,+e@8..9,+f@10..11,+g@12..13,+h@14..15",
    );
}

#[test]
fn sort_errors() {
    use ErrorKind::*;
    check_err(
        "a,b,c,d,e,f,g,h,i",
        TooManySortTerms,
        "too many sort terms: 9, the limit is 8",
    );
    check_err(
        ",,,,,,,,",
        TooManySortTerms,
        "too many sort terms: 9, the limit is 8",
    );
    check_err("a,,b", EmptyItem, "empty sort term at position 2");
    check_err("a,", EmptyItem, "empty sort term at position 2");
    check_err(" ", EmptyItem, "empty sort term at position 1");
    check_err(
        "-",
        InvalidIdentifier,
        r#"invalid identifier "" at position 1, it is empty"#,
    );
    check_err(
        "+-a",
        InvalidIdentifier,
        r#"invalid identifier "-a" at position 1, it cannot start with "-""#,
    );
    check_err(
        "- a",
        InvalidIdentifier,
        r#"invalid identifier " a" at position 1, it cannot start with " ""#,
    );
    check_err(
        "x, a.b.",
        InvalidIdentifier,
        r#"invalid identifier "a.b." at position 3, it must not end with "." or ":""#,
    );
    check_err(
        "title;drop",
        InvalidIdentifier,
        r#"invalid identifier "title;drop" at position 0, character ";" is not allowed"#,
    );
}

#[test]
fn sort_term_length_limit() {
    let name = "a".repeat(255);
    assert_eq!(parse_sort(&name).map(|t| t.len()), Ok(1));
    assert_eq!(parse_sort(&format!("-{name}")).map(|t| t.len()), Ok(1));
    let long = "a".repeat(256);
    let err = parse_sort(&long).expect_err("too long");
    assert_eq!(*err.kind(), ErrorKind::TooLong);
    assert_eq!(
        err.to_string(),
        "sort term is too long at position 0: 256 bytes, the limit is 255"
    );
    let err = parse_sort(&format!("x,-{long}")).expect_err("too long");
    assert_eq!(
        err.to_string(),
        "sort term is too long at position 3: 256 bytes, the limit is 255"
    );
}

#[test]
fn sort_terms_print_back() {
    let terms = parse_sort("-created, +title ,@random,-@rowid").expect("parses");
    let printed: Vec<String> = terms.iter().map(ToString::to_string).collect();
    assert_eq!(printed, ["-created", "title", "@random", "-@rowid"]);
}
