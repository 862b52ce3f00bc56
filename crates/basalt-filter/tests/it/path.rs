//! `Path::parse` and the `CmpOp` helpers.

use basalt_filter::{CmpOp, ErrorKind, Path};

/// Renders a path as `[name :mod :mod][name]...`.
fn render(path: &Path) -> String {
    path.segments
        .iter()
        .map(|seg| {
            let mods: String = seg.modifiers.iter().map(|m| format!(" :{m}")).collect();
            format!("[{}{mods}]", seg.name)
        })
        .collect()
}

#[track_caller]
fn check(input: &str, expected: &str) {
    let path = Path::parse(input).unwrap_or_else(|err| panic!("{input:?}: {err}"));
    assert_eq!(render(&path), expected, "input: {input:?}");
    assert_eq!(path.to_string(), input, "printing {input:?}");
}

#[track_caller]
fn check_err(input: &str, message: &str) {
    let err = Path::parse(input).expect_err(input);
    assert_eq!(
        *err.kind(),
        ErrorKind::InvalidIdentifier,
        "input: {input:?}"
    );
    assert_eq!(err.to_string(), message, "input: {input:?}");
}

#[test]
fn paths() {
    check("title", "[title]");
    check("author.profile.name", "[author][profile][name]");
    check(
        "@collection.users:u.email",
        "[@collection][users :u][email]",
    );
    check("tags:each", "[tags :each]");
    check("name:lower", "[name :lower]");
    check("@request.body.x:isset", "[@request][body][x :isset]");
    check("@request.auth.id", "[@request][auth][id]");
    check("a:b:c.d", "[a :b :c][d]");
    check("data.0", "[data][0]");
    check("#x", "[#x]");
    check("_x", "[_x]");
    check("@now", "[@now]");
    check("true", "[true]");
}

#[test]
fn bad_paths() {
    check_err("", r#"invalid identifier "" at position 0, it is empty"#);
    check_err(
        "a.",
        r#"invalid identifier "a." at position 0, it must not end with "." or ":""#,
    );
    check_err(
        "a:",
        r#"invalid identifier "a:" at position 0, it must not end with "." or ":""#,
    );
    check_err(
        "a..b",
        r#"invalid identifier "a..b" at position 0, it has an empty segment"#,
    );
    check_err(
        "a::b",
        r#"invalid identifier "a::b" at position 0, it has an empty modifier"#,
    );
    check_err(
        "1a",
        r#"invalid identifier "1a" at position 0, it cannot start with "1""#,
    );
    check_err(
        ".a",
        r#"invalid identifier ".a" at position 0, it cannot start with ".""#,
    );
    check_err(
        "a b",
        r#"invalid identifier "a b" at position 0, character " " is not allowed"#,
    );
    check_err(
        "a-b",
        r#"invalid identifier "a-b" at position 0, character "-" is not allowed"#,
    );
    check_err(
        "aé",
        r#"invalid identifier "aé" at position 0, character "é" is not allowed"#,
    );
    check_err(
        "a.@b",
        r#"invalid identifier "a.@b" at position 0, character "@" is not allowed"#,
    );
    check_err(
        "@",
        r#"invalid identifier "@" at position 0, it needs a name after the first character"#,
    );
}

#[test]
fn cmp_op_helpers() {
    let table: Vec<String> = CmpOp::ALL
        .iter()
        .map(|op| format!("{} {} {} {}", op.as_str(), op.is_any(), op.base(), op))
        .collect();
    assert_eq!(
        table,
        [
            "= false = =",
            "!= false != !=",
            "> false > >",
            ">= false >= >=",
            "< false < <",
            "<= false <= <=",
            "~ false ~ ~",
            "!~ false !~ !~",
            "?= true = ?=",
            "?!= true != ?!=",
            "?> true > ?>",
            "?>= true >= ?>=",
            "?< true < ?<",
            "?<= true <= ?<=",
            "?~ true ~ ?~",
            "?!~ true !~ ?!~",
        ]
    );
    for op in CmpOp::ALL {
        assert_eq!(CmpOp::from_symbol(op.as_str()), Some(op));
    }
    assert_eq!(CmpOp::from_symbol("=="), None);
}
