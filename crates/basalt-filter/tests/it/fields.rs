//! `?fields=` and `?expand=` lists.

use basalt_filter::{ErrorKind, normalize_expand, parse_expand, parse_fields};

/// Renders picks as `a.b` or `a.b:excerpt(200,true)`, separated by ` | `.
#[track_caller]
fn check_fields(input: &str, expected: &str) {
    let picks = parse_fields(input).unwrap_or_else(|err| panic!("{input:?}: {err}"));
    let rendered: Vec<String> = picks
        .iter()
        .map(|pick| {
            let mut out = pick.path.join(".");
            if let Some(ex) = pick.excerpt {
                out.push_str(&format!(":excerpt({},{})", ex.max, ex.ellipsis));
            }
            out
        })
        .collect();
    assert_eq!(rendered.join(" | "), expected, "input: {input:?}");
}

#[track_caller]
fn check_fields_err(input: &str, kind: ErrorKind, message: &str) {
    let err = parse_fields(input).expect_err(input);
    assert_eq!(err.to_string(), message, "input: {input:?}");
    assert_eq!(*err.kind(), kind, "input: {input:?}");
}

#[track_caller]
fn check_expand(input: &str, expected: &str) {
    let paths = parse_expand(input).unwrap_or_else(|err| panic!("{input:?}: {err}"));
    let rendered: Vec<String> = paths.iter().map(|p| p.join(".")).collect();
    assert_eq!(rendered.join(" | "), expected, "input: {input:?}");
}

#[track_caller]
fn check_expand_err(input: &str, message: &str) {
    let err = parse_expand(input).expect_err(input);
    assert_eq!(err.to_string(), message, "input: {input:?}");
    assert_eq!(
        *err.kind(),
        ErrorKind::InvalidIdentifier,
        "input: {input:?}"
    );
}

#[test]
fn fields() {
    check_fields("", "");
    check_fields("*", "*");
    check_fields("id,title", "id | title");
    check_fields("*,expand.author.name", "* | expand.author.name");
    check_fields(" a , , b ,", "a | b");
    check_fields("body:excerpt(200,true)", "body:excerpt(200,true)");
    check_fields("body:excerpt(200)", "body:excerpt(200,false)");
    check_fields("body:excerpt( 200 , 1 )", "body:excerpt(200,true)");
    check_fields("body:excerpt(200 T)", "body:excerpt(200,true)");
    check_fields("body:excerpt(10,nope)", "body:excerpt(10,false)");
    check_fields("body:excerpt(10,false)", "body:excerpt(10,false)");
    check_fields(
        "*:excerpt(2),rel.title:excerpt(3, true)",
        "*:excerpt(2,false) | rel.title:excerpt(3,true)",
    );
    check_fields("expand.*", "expand.*");
    check_fields("@collectionName,totalItems", "@collectionName | totalItems");
}

#[test]
fn field_errors() {
    use ErrorKind::*;
    check_fields_err(
        "a..b",
        InvalidIdentifier,
        r#"invalid field path "a..b" at position 0, it has an empty segment"#,
    );
    check_fields_err(
        "id,.a",
        InvalidIdentifier,
        r#"invalid field path ".a" at position 3, it has an empty segment"#,
    );
    check_fields_err(
        "a b",
        InvalidIdentifier,
        r#"invalid field path "a b" at position 0, it holds whitespace, a quote or a parenthesis"#,
    );
    check_fields_err(
        "x,body:foo",
        InvalidModifier,
        r#"unknown field modifier "foo" at position 7, the only one is excerpt(max, ellipsis?)"#,
    );
    let usage = ", expected excerpt(max, ellipsis?) with max a whole number above 0";
    for (input, modifier) in [
        ("body:excerpt", "excerpt"),
        ("body:excerpt()", "excerpt()"),
        ("body:excerpt(0)", "excerpt(0)"),
        ("body:excerpt(-1)", "excerpt(-1)"),
        ("body:excerpt(1.5)", "excerpt(1.5)"),
        ("body:excerpt(1,2,3)", "excerpt(1,2,3)"),
        ("body:excerpt(1)x", "excerpt(1)x"),
        (
            "body:excerpt(99999999999999999999999)",
            "excerpt(99999999999999999999999)",
        ),
    ] {
        check_fields_err(
            input,
            InvalidModifier,
            &format!("invalid modifier {modifier:?} at position 5{usage}"),
        );
    }
    check_fields_err(
        "body:excerpt(200",
        UnexpectedEnd,
        r#"unclosed "(" at position 12"#,
    );
    check_fields_err(
        "a)",
        UnexpectedChar,
        r#"unexpected character ")" at position 1"#,
    );
}

#[test]
fn expand() {
    check_expand("", "");
    check_expand("author", "author");
    check_expand(
        "author,comments_via_post.user",
        "author | comments_via_post.user",
    );
    check_expand(" a . b , c", "a.b | c");
    check_expand(".a.,,b,", "a | b");
    check_expand("a.b.c.d.e.f", "a.b.c.d.e.f");
    check_expand("a.b.c.d.e.f.g.h", "a.b.c.d.e.f");
}

#[test]
fn expand_errors() {
    let tail = r#", expected relation names joined by ".""#;
    check_expand_err(
        "a..b",
        &format!(r#"invalid expand path "a..b" at position 0{tail}"#),
    );
    check_expand_err(
        "x,a-b",
        &format!(r#"invalid expand path "a-b" at position 2{tail}"#),
    );
    check_expand_err(
        "x,demo4(rel)",
        &format!(r#"invalid expand path "demo4(rel)" at position 2{tail}"#),
    );
    check_expand_err(
        "é",
        &format!(r#"invalid expand path "é" at position 0{tail}"#),
    );
}

#[test]
fn expand_normalization_drops_prefixes_and_duplicates() {
    let paths = parse_expand("a,a.b,c,c,a.b.x,d.e,d").expect("parses");
    let rendered: Vec<String> = normalize_expand(paths)
        .iter()
        .map(|p| p.join("."))
        .collect();
    assert_eq!(rendered, ["c", "a.b.x", "d.e"]);
}
