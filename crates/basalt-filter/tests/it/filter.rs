//! Filter expressions: one line per case, input and expected tree or error message.

use basalt_filter::ErrorKind::{self, *};
use basalt_filter::{Expr, parse};

use crate::sexp;

/// Parses `input`, compares the tree with `expected`, and checks that the printed
/// form parses back to the same tree.
#[track_caller]
fn check(input: &str, expected: &str) {
    let expr = match parse(input) {
        Ok(expr) => expr,
        Err(err) => panic!("{input:?} failed: {err}"),
    };
    assert_eq!(sexp::expr(&expr), expected, "input: {input:?}");
    assert_reparses(&expr);
}

/// Parses `input`, which must print as `printed`.
#[track_caller]
fn check_print(input: &str, printed: &str) {
    let expr = parse(input).unwrap_or_else(|err| panic!("{input:?} failed: {err}"));
    assert_eq!(expr.to_string(), printed, "input: {input:?}");
    assert_reparses(&expr);
}

#[track_caller]
fn assert_reparses(expr: &Expr) {
    let printed = expr.to_string();
    let reparsed = parse(&printed).unwrap_or_else(|err| panic!("reparse of {printed:?}: {err}"));
    assert_eq!(
        reparsed.without_spans(),
        expr.without_spans(),
        "printed: {printed:?}"
    );
}

/// Parses `input`, which must fail with `kind` and exactly `message`.
#[track_caller]
fn check_err(input: &str, kind: ErrorKind, message: &str) {
    match parse(input) {
        Ok(expr) => panic!("{input:?} parsed as {}", sexp::expr(&expr)),
        Err(err) => {
            assert_eq!(err.to_string(), message, "input: {input:?}");
            assert_eq!(*err.kind(), kind, "input: {input:?}");
            let span = err.span();
            assert!(
                span.start <= span.end && span.end <= input.len(),
                "span {span:?}"
            );
            assert!(input.is_char_boundary(span.start) && input.is_char_boundary(span.end));
        }
    }
}

#[test]
fn every_operator() {
    check("a = b", "(= a b)");
    check("a != b", "(!= a b)");
    check("a > b", "(> a b)");
    check("a >= b", "(>= a b)");
    check("a < b", "(< a b)");
    check("a <= b", "(<= a b)");
    check("a ~ b", "(~ a b)");
    check("a !~ b", "(!~ a b)");
    check("a ?= b", "(?= a b)");
    check("a ?!= b", "(?!= a b)");
    check("a ?> b", "(?> a b)");
    check("a ?>= b", "(?>= a b)");
    check("a ?< b", "(?< a b)");
    check("a ?<= b", "(?<= a b)");
    check("a ?~ b", "(?~ a b)");
    check("a ?!~ b", "(?!~ a b)");
    check("a=b", "(= a b)");
    check("a?!~b", "(?!~ a b)");
    check("a>=-1", "(>= a -1)");
    check("a<-1", "(< a -1)");
}

#[test]
fn number_literals() {
    check("a = 0", "(= a 0)");
    check("a = 12", "(= a 12)");
    check("a = -3", "(= a -3)");
    check("a = 1.5", "(= a 1.5)");
    check("a = -0.25", "(= a -0.25)");
    check("a = 007", "(= a 7)");
    check("a = 10.50", "(= a 10.5)");
    check("a = -0", "(= a -0)");
    check(
        "a = 123456789012345678901234567890",
        "(= a 123456789012345680000000000000)",
    );
    check("a = 0.000001", "(= a 0.000001)");
    check("1 = 1", "(= 1 1)");
    check("a = 1&&b = 2", "(and (= a 1) (= b 2))");
}

#[test]
fn text_literals_and_escapes() {
    check("a = 'x'", r#"(= a "x")"#);
    check(r#"a = "x""#, r#"(= a "x")"#);
    check("a = ''", r#"(= a "")"#);
    check(r#"a = """#, r#"(= a "")"#);
    check(r#"a = "it's""#, r#"(= a "it's")"#);
    check(r#"a = 'say "hi"'"#, r#"(= a "say \"hi\"")"#);
    check(r"a = 'it\'s'", r#"(= a "it's")"#);
    check(r#"a = "say \"hi\"""#, r#"(= a "say \"hi\"")"#);
    check(r#"a = 'a\"b'"#, r#"(= a "a\\\"b")"#);
    check(r#"a = "a\'b""#, r#"(= a "a\\'b")"#);
    check(r"a = 'C:\path'", r#"(= a "C:\\path")"#);
    check(r"a = 'a\\b'", r#"(= a "a\\\\b")"#);
    check(r"a = 'a\\'b'", r#"(= a "a\\'b")"#);
    check(r"a = '\''", r#"(= a "'")"#);
    check(r"a = '\n'", r#"(= a "\\n")"#);
    check("a = 'line\nbreak'", r#"(= a "line\nbreak")"#);
    check("a = '%_'", r#"(= a "%_")"#);
    check("a = '日本語 ✓'", r#"(= a "日本語 ✓")"#);
    check(
        "a = '&& || ( ) // not a comment'",
        r#"(= a "&& || ( ) // not a comment")"#,
    );
    check("'a' = title", r#"(= "a" title)"#);
}

#[test]
fn keywords() {
    check("a = true", "(= a true)");
    check("a = false", "(= a false)");
    check("a = null", "(= a null)");
    check("a = TRUE", "(= a true)");
    check("a = False", "(= a false)");
    check("a = NuLL", "(= a null)");
    check("null = a", "(= null a)");
    check("a = true.x", "(= a true.x)");
    check("a = nullable", "(= a nullable)");
    check("a = true:lower", "(= a true:lower)");
}

#[test]
fn paths_modifiers_and_macros() {
    check("title = 1", "(= title 1)");
    check("author.profile.name = 1", "(= author.profile.name 1)");
    check("@request.auth.id = id", "(= @request.auth.id id)");
    check(
        "@request.body.x:isset = true",
        "(= @request.body.x:isset true)",
    );
    check(
        "@request.body.tags:each ?= 'a'",
        r#"(?= @request.body.tags:each "a")"#,
    );
    check(
        "@collection.users:u.email = 1",
        "(= @collection.users:u.email 1)",
    );
    check("tags:each ?= 'x'", r#"(?= tags:each "x")"#);
    check("tags:length > 2", "(> tags:length 2)");
    check("name:lower = 'x'", r#"(= name:lower "x")"#);
    check("created > @now", "(> created @now)");
    check("created >= @todayStart", "(>= created @todayStart)");
    check("_id = 1", "(= _id 1)");
    check("#tag = 1", "(= #tag 1)");
    check("data.0.x = 1", "(= data.0.x 1)");
    check("comments_via_post.user = 1", "(= comments_via_post.user 1)");
    check("a:b:c = 1", "(= a:b:c 1)");
    check("@.a = 1", "(= @.a 1)");
}

#[test]
fn calls() {
    check("f() = 1", "(= (call f) 1)");
    check(
        "geoDistance(a, b, 1, -2.5) < 25",
        "(< (call geoDistance a b 1 -2.5) 25)",
    );
    check(
        "strftime('%Y', created) = '2024'",
        r#"(= (call strftime "%Y" created) "2024")"#,
    );
    check("f(a,) = 1", "(= (call f a) 1)");
    check("f(  a  ,  b  , ) = 1", "(= (call f a b) 1)");
    check("f(true, null, 'x') = 1", r#"(= (call f true null "x") 1)"#);
    check("a = f(1)", "(= a (call f 1))");
    check("f(1) = g(2)", "(= (call f 1) (call g 2))");
    check("a(b(c(1))) = 1", "(= (call a (call b (call c 1))) 1)");
    check(
        "f(a, g(b), h(c(d))) = 1",
        "(= (call f a (call g b) (call h (call c d))) 1)",
    );
    check("@a.b:c(1) = 1", "(= (call @a.b:c 1) 1)");
    check("f(a //comment\n) = 1", "(= (call f a) 1)");
    check("f(a, //comment\n b) = 1", "(= (call f a b) 1)");
    check("f('a,b', \"c)\") = 1", r#"(= (call f "a,b" "c)") 1)"#);
}

#[test]
fn precedence_and_parentheses() {
    check("a = 1 && b = 2", "(and (= a 1) (= b 2))");
    check("a = 1 || b = 2", "(or (= a 1) (= b 2))");
    check(
        "a = 1 && b = 2 && c = 3",
        "(and (and (= a 1) (= b 2)) (= c 3))",
    );
    check(
        "a = 1 || b = 2 || c = 3",
        "(or (or (= a 1) (= b 2)) (= c 3))",
    );
    check(
        "a = 1 || b = 2 && c = 3",
        "(or (= a 1) (and (= b 2) (= c 3)))",
    );
    check(
        "a = 1 && b = 2 || c = 3",
        "(or (and (= a 1) (= b 2)) (= c 3))",
    );
    check(
        "(a = 1 || b = 2) && c = 3",
        "(and (or (= a 1) (= b 2)) (= c 3))",
    );
    check(
        "a = 1 && (b = 2 || c = 3)",
        "(and (= a 1) (or (= b 2) (= c 3)))",
    );
    check(
        "a = 1 && (b = 2 && c = 3)",
        "(and (= a 1) (and (= b 2) (= c 3)))",
    );
    check("(a = 1)", "(= a 1)");
    check("((((a = 1))))", "(= a 1)");
    check("(a = 1) && (b = 2)", "(and (= a 1) (= b 2))");
    check(
        "a = 1 || b = 2 && c = 3 || d = 4",
        "(or (or (= a 1) (and (= b 2) (= c 3))) (= d 4))",
    );
}

#[test]
fn whitespace_and_comments() {
    check("  a = 1  ", "(= a 1)");
    check("a\t=\t1", "(= a 1)");
    check("a = 1\r\n&& b = 2", "(and (= a 1) (= b 2))");
    check("a = 1 // trailing comment", "(= a 1)");
    check("// leading comment\na = 1", "(= a 1)");
    check("a = 1 // one\n&& // two\nb = 2", "(and (= a 1) (= b 2))");
    check("a = 1 //", "(= a 1)");
    check("a = 1 ///x", "(= a 1)");
    check("(a = 1 // ) in a comment\n)", "(= a 1)");
    check("(a = 1 // don't\n)", "(= a 1)");
}

#[test]
fn printer_canonical_form() {
    check_print("a=1", "a = 1");
    check_print("a = 1.50", "a = 1.5");
    check_print("a = \"x\"", "a = 'x'");
    check_print(r#"a = "it's""#, r#"a = "it's""#);
    check_print(r#"a = 'both \' and "'"#, r#"a = 'both \' and "'"#);
    check_print(r"a = 'C:\path'", r"a = 'C:\path'");
    check_print(r#"a = "x\"y'z""#, r#"a = 'x"y\'z'"#);
    check_print(r"a = 'a\\'b'", r#"a = "a\'b""#);
    check_print("a = TRUE && b = Null", "a = true && b = null");
    check_print("f( a ,b, ) = 1", "f(a, b) = 1");
    check_print("((a = 1))", "a = 1");
    check_print("(a = 1 && b = 2) && c = 3", "a = 1 && b = 2 && c = 3");
    check_print("a = 1 && (b = 2 && c = 3)", "a = 1 && (b = 2 && c = 3)");
    check_print("a = 1 || (b = 2 || c = 3)", "a = 1 || (b = 2 || c = 3)");
    check_print("(a = 1 || b = 2) && c = 3", "(a = 1 || b = 2) && c = 3");
    check_print("a = 1 || (b = 2 && c = 3)", "a = 1 || b = 2 && c = 3");
    check_print("(a = 1 && b = 2) || c = 3", "a = 1 && b = 2 || c = 3");
    check_print(
        "a = 1 && (b = 2 || c = 3) && d = 4",
        "a = 1 && (b = 2 || c = 3) && d = 4",
    );
    check_print("a = 0.1 // comment", "a = 0.1");
}

#[test]
fn unexpected_characters() {
    check_err(
        "a = $",
        UnexpectedChar,
        r#"unexpected character "$" at position 4"#,
    );
    check_err(
        "a = 1 / 2",
        UnexpectedChar,
        r#"unexpected character "/" at position 6"#,
    );
    check_err(
        "é = 1",
        UnexpectedChar,
        r#"unexpected character "é" at position 0"#,
    );
    check_err(
        "a = 1 && ✓",
        UnexpectedChar,
        r#"unexpected character "✓" at position 9"#,
    );
    check_err(
        "a = .5",
        UnexpectedChar,
        r#"unexpected character "." at position 4"#,
    );
    check_err(
        "a = [1]",
        UnexpectedChar,
        r#"unexpected character "[" at position 4"#,
    );
    check_err(
        "a = `x`",
        UnexpectedChar,
        r#"unexpected character "`" at position 4"#,
    );
    check_err(
        "a\u{0}= 1",
        UnexpectedChar,
        r#"unexpected character "\0" at position 1"#,
    );
    check_err(
        "a\u{b}= 1",
        UnexpectedChar,
        r#"unexpected character "\u{b}" at position 1"#,
    );
}

#[test]
fn unexpected_tokens_and_end() {
    check_err(
        "active",
        UnexpectedEnd,
        r#"unexpected end of input at position 6, expected an operator such as "=""#,
    );
    check_err(
        "active && b = 1",
        UnexpectedToken,
        r#"unexpected token "&&" at position 7, expected an operator such as "=""#,
    );
    check_err(
        "a =",
        UnexpectedEnd,
        "unexpected end of input at position 3, expected an operand",
    );
    check_err(
        "= 1",
        UnexpectedToken,
        r#"unexpected token "=" at position 0, expected an operand or "(""#,
    );
    check_err(
        "a = = 1",
        UnexpectedToken,
        r#"unexpected token "=" at position 4, expected an operand"#,
    );
    check_err(
        "a = 1)",
        UnexpectedToken,
        r#"unexpected token ")" at position 5, expected "&&", "||" or the end of the filter"#,
    );
    check_err(
        "a = 1 b = 2",
        UnexpectedToken,
        r#"unexpected token "b" at position 6, expected "&&", "||" or the end of the filter"#,
    );
    check_err(
        "(a = 1",
        UnexpectedEnd,
        r#"unexpected end of input at position 6, expected "&&", "||" or ")""#,
    );
    check_err(
        "(a = 1 b",
        UnexpectedToken,
        r#"unexpected token "b" at position 7, expected "&&", "||" or ")""#,
    );
    check_err(
        "()",
        UnexpectedToken,
        r#"unexpected token ")" at position 1, expected an operand or "(""#,
    );
    check_err(
        "a = 1 &&",
        UnexpectedEnd,
        r#"unexpected end of input at position 8, expected an operand or "(""#,
    );
    check_err(
        "a = 1 && || b = 2",
        UnexpectedToken,
        r#"unexpected token "||" at position 9, expected an operand or "(""#,
    );
    check_err(
        "a = (1)",
        UnexpectedToken,
        r#"unexpected token "(" at position 4, expected an operand"#,
    );
    check_err(
        "f (1) = 1",
        UnexpectedToken,
        r#"unexpected token "(" at position 2, expected an operator such as "=""#,
    );
    check_err(
        "f(1 2) = 1",
        UnexpectedToken,
        r#"unexpected token "2" at position 4, expected "," or ")""#,
    );
    check_err(
        "f(,) = 1",
        UnexpectedToken,
        r#"unexpected token "," at position 2, expected a function argument or ")""#,
    );
    check_err(
        "f(a,,) = 1",
        UnexpectedToken,
        r#"unexpected token "," at position 4, expected a function argument or ")""#,
    );
    check_err(
        "f(a = 1",
        UnexpectedToken,
        r#"unexpected token "=" at position 4, expected "," or ")""#,
    );
    check_err(
        "f(a",
        UnexpectedEnd,
        r#"unexpected end of input at position 3, expected "," or ")""#,
    );
    check_err(
        "f(a //comment) = 1",
        UnexpectedEnd,
        r#"unexpected end of input at position 18, expected "," or ")""#,
    );
    check_err(
        "a = 1, b = 2",
        UnexpectedToken,
        r#"unexpected token "," at position 5, expected "&&", "||" or the end of the filter"#,
    );
    check_err(
        "'a' 'b'",
        UnexpectedToken,
        r#"unexpected token "'b'" at position 4, expected an operator such as "=""#,
    );
}

#[test]
fn bad_literals() {
    check_err(
        "a = 'abc",
        UnterminatedString,
        "unterminated string starting at position 4",
    );
    check_err(
        r#"a = "abc\""#,
        UnterminatedString,
        "unterminated string starting at position 4",
    );
    check_err(
        r"a = 'a\\'",
        UnterminatedString,
        "unterminated string starting at position 4",
    );
    check_err(
        r#"a = 'x" && b = 1"#,
        UnterminatedString,
        "unterminated string starting at position 4",
    );
    check_err(
        "a = 1.",
        InvalidNumber,
        r#"invalid number "1." at position 4"#,
    );
    check_err(
        "a = 1.2.3",
        InvalidNumber,
        r#"invalid number "1.2.3" at position 4"#,
    );
    check_err(
        "a = -",
        InvalidNumber,
        r#"invalid number "-" at position 4"#,
    );
    check_err(
        "a = - 1",
        InvalidNumber,
        r#"invalid number "-" at position 4"#,
    );
    check_err(
        "a = --1",
        InvalidNumber,
        r#"invalid number "-" at position 4"#,
    );
    check_err(
        "a = -.5",
        InvalidNumber,
        r#"invalid number "-.5" at position 4"#,
    );
    check_err(
        "a = 1e5",
        InvalidNumber,
        r#"invalid number "1e5" at position 4"#,
    );
    check_err(
        "a = 0x10",
        InvalidNumber,
        r#"invalid number "0x10" at position 4"#,
    );
    check_err(
        "a = 1abc",
        InvalidNumber,
        r#"invalid number "1abc" at position 4"#,
    );
    check_err(
        "a = -b",
        InvalidNumber,
        r#"invalid number "-b" at position 4"#,
    );
    check_err(
        "1a = 1",
        InvalidNumber,
        r#"invalid number "1a" at position 0"#,
    );
    check_err(
        &format!("a = 1{}", "0".repeat(400)),
        InvalidNumber,
        r#"invalid number "1000000000000000000000000000000000000000..." at position 4, it is too large"#,
    );
}

#[test]
fn bad_identifiers() {
    let end = r#", it must not end with "." or ":""#;
    check_err(
        "a. = 1",
        InvalidIdentifier,
        &format!(r#"invalid identifier "a." at position 0{end}"#),
    );
    check_err(
        "a: = 1",
        InvalidIdentifier,
        &format!(r#"invalid identifier "a:" at position 0{end}"#),
    );
    check_err(
        "x = a.b.",
        InvalidIdentifier,
        &format!(r#"invalid identifier "a.b." at position 4{end}"#),
    );
    check_err(
        "a..b = 1",
        InvalidIdentifier,
        r#"invalid identifier "a..b" at position 0, it has an empty segment"#,
    );
    check_err(
        "a.:m = 1",
        InvalidIdentifier,
        r#"invalid identifier "a.:m" at position 0, it has an empty segment"#,
    );
    check_err(
        "a::m = 1",
        InvalidIdentifier,
        r#"invalid identifier "a::m" at position 0, it has an empty modifier"#,
    );
    let lone = ", it needs a name after the first character";
    check_err(
        "@ = 1",
        InvalidIdentifier,
        &format!(r#"invalid identifier "@" at position 0{lone}"#),
    );
    check_err(
        "_ = 1",
        InvalidIdentifier,
        &format!(r#"invalid identifier "_" at position 0{lone}"#),
    );
    check_err(
        "a = #",
        InvalidIdentifier,
        &format!(r##"invalid identifier "#" at position 4{lone}"##),
    );
    check_err(
        "a.(1) = 1",
        InvalidIdentifier,
        &format!(r#"invalid identifier "a." at position 0{end}"#),
    );
    check_err(
        "x = a.@b",
        InvalidIdentifier,
        &format!(r#"invalid identifier "a." at position 4{end}"#),
    );
}

#[test]
fn bad_operators() {
    check_err(
        "a == 1",
        InvalidOperator,
        r#"invalid operator "==" at position 2"#,
    );
    check_err(
        "a =! 1",
        InvalidOperator,
        r#"invalid operator "=!" at position 2"#,
    );
    check_err(
        "a <> 1",
        InvalidOperator,
        r#"invalid operator "<>" at position 2"#,
    );
    check_err(
        "a ? 1",
        InvalidOperator,
        r#"invalid operator "?" at position 2"#,
    );
    check_err(
        "a ! 1",
        InvalidOperator,
        r#"invalid operator "!" at position 2"#,
    );
    check_err(
        "a ?? 1",
        InvalidOperator,
        r#"invalid operator "??" at position 2"#,
    );
    check_err(
        "a =~ 1",
        InvalidOperator,
        r#"invalid operator "=~" at position 2"#,
    );
    check_err(
        "a = 1 & b = 2",
        InvalidOperator,
        r#"invalid operator "&" at position 6"#,
    );
    check_err(
        "a = 1 | b = 2",
        InvalidOperator,
        r#"invalid operator "|" at position 6"#,
    );
    check_err(
        "a = 1 ||| b = 2",
        InvalidOperator,
        r#"invalid operator "|||" at position 6"#,
    );
    check_err(
        "a = 1 &| b = 2",
        InvalidOperator,
        r#"invalid operator "&|" at position 6"#,
    );
}

#[test]
fn empty_input() {
    let message = "filter is empty: it has no comparison";
    check_err("", Empty, message);
    check_err("   \n\t", Empty, message);
    check_err("// only a comment", Empty, message);
    check_err("// one\n// two\n", Empty, message);
}

#[test]
fn spans_point_into_the_source() {
    let input = "title ~ 'x' && f(a, 1) >= -2";
    let expr = parse(input).expect("parses");
    let cmps = expr.comparisons();
    let text = |span: basalt_filter::Span| &input[span.start..span.end];
    assert_eq!(text(cmps[0].span), "title ~ 'x'");
    assert_eq!(text(cmps[0].lhs.span), "title");
    assert_eq!(text(cmps[0].rhs.span), "'x'");
    assert_eq!(text(cmps[1].span), "f(a, 1) >= -2");
    assert_eq!(text(cmps[1].lhs.span), "f(a, 1)");
    assert_eq!(text(cmps[1].rhs.span), "-2");
    assert_eq!(text(expr.span()), input);
    let nested = parse("(a = 1)").expect("parses");
    assert_eq!(nested.span(), basalt_filter::Span::new(1, 6));
}

#[test]
fn error_values_implement_std_error() {
    let err = parse("a =").expect_err("fails");
    let dynamic: &dyn std::error::Error = &err;
    assert_eq!(
        dynamic.to_string(),
        "unexpected end of input at position 3, expected an operand"
    );
    assert_eq!(err.span(), basalt_filter::Span::new(3, 3));
}
