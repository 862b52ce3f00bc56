//! The property checked by the `filter_compile` fuzz target (and replayed over its seed
//! corpus by `cargo test`): for any text that parses, compiling it for every mode and
//! dialect never panics, and when it compiles,
//! - every placeholder has a bind and every bind a placeholder;
//! - every quoted identifier in the SQL is a schema name or a compiler alias;
//! - the SQL text does not depend on the literal values: changing every literal (keeping
//!   what decides the compiled shape: number-like, boolean-like or empty text) gives
//!   the same SQL, so no value of the input can reach the SQL text.

use basalt_filter::{Expr, Limits, Operand, OperandKind};
use basalt_schema::SchemaLookup;
use basalt_sql::Dialect;
use basalt_sql::filter::{CompileOptions, FilterMode, compile_expr, compile_sort};

use crate::schema::{schema, user_ctx};

fn mutate_operand(operand: &Operand) -> Operand {
    let kind = match &operand.kind {
        OperandKind::Text(text) => {
            let keep = text.trim().is_empty()
                || text.trim().parse::<f64>().is_ok()
                || matches!(
                    text.as_str(),
                    "1" | "t"
                        | "T"
                        | "true"
                        | "TRUE"
                        | "True"
                        | "0"
                        | "f"
                        | "F"
                        | "false"
                        | "FALSE"
                        | "False"
                );
            OperandKind::Text(if keep {
                text.clone()
            } else {
                format!("q{}", text.len())
            })
        }
        OperandKind::Number(n) if (n + 1000.5).is_finite() => OperandKind::Number(n + 1000.5),
        OperandKind::Bool(b) => OperandKind::Bool(!b),
        // Call arguments decide the shape (strftime formats): keep them.
        other => other.clone(),
    };
    Operand {
        kind,
        span: operand.span,
    }
}

fn mutate(expr: &Expr) -> Expr {
    match expr {
        Expr::Logic { op, lhs, rhs } => Expr::Logic {
            op: *op,
            lhs: Box::new(mutate(lhs)),
            rhs: Box::new(mutate(rhs)),
        },
        Expr::Compare(cmp) => {
            let mut cmp = cmp.clone();
            cmp.lhs = mutate_operand(&cmp.lhs);
            cmp.rhs = mutate_operand(&cmp.rhs);
            Expr::Compare(cmp)
        }
    }
}

/// Checks placeholders against binds and identifiers against the schema.
fn check_sql(sql: &str, binds: usize, dialect: Dialect, allowed: &[String]) {
    let bytes = sql.as_bytes();
    let mut used = vec![false; binds];
    let mut idx = 0;
    let marker = match dialect {
        Dialect::Sqlite => b'?',
        Dialect::Postgres => b'$',
    };
    while idx < bytes.len() {
        match bytes[idx] {
            b'\'' => {
                idx += 1;
                while idx < bytes.len() && bytes[idx] != b'\'' {
                    idx += 1;
                }
                idx += 1;
            }
            b'"' => {
                let start = idx + 1;
                idx = start;
                while idx < bytes.len() && bytes[idx] != b'"' {
                    idx += 1;
                }
                let ident = &sql[start..idx.min(sql.len())];
                let generated = ident.starts_with("__")
                    && ident[2..]
                        .trim_end_matches(|c: char| c.is_ascii_digit())
                        .chars()
                        .all(|c| c.is_ascii_lowercase());
                assert!(
                    generated || allowed.iter().any(|name| name == ident),
                    "identifier {ident:?} is not from the schema in {sql}"
                );
                idx += 1;
            }
            b if b == marker && bytes.get(idx + 1).is_some_and(u8::is_ascii_digit) => {
                idx += 1;
                let start = idx;
                while idx < bytes.len() && bytes[idx].is_ascii_digit() {
                    idx += 1;
                }
                let n: usize = sql[start..idx].parse().expect("placeholder number");
                assert!(
                    n >= 1 && n <= binds,
                    "placeholder {n} without a bind in {sql}"
                );
                used[n - 1] = true;
            }
            _ => idx += 1,
        }
    }
    assert!(
        used.iter().all(|u| *u),
        "a bind has no placeholder in {sql}"
    );
}

pub(crate) fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let schema = schema();
    let ctx = user_ctx(&schema);
    let mut allowed: Vec<String> = vec!["value".into(), "C".into()];
    for collection in schema.all() {
        allowed.push(collection.name.clone());
        allowed.extend(collection.fields.iter().map(|f| f.name.clone()));
    }
    let modes = [
        FilterMode::Rule,
        FilterMode::ClientFilter { superuser: false },
        FilterMode::ClientFilter { superuser: true },
    ];
    if let Ok(expr) = basalt_filter::parse_with(text, &Limits::client_filter()) {
        let mutated = mutate(&expr);
        for name in ["posts", "comments", "users"] {
            let collection = schema.get(name);
            for dialect in [Dialect::Sqlite, Dialect::Postgres] {
                let base = dialect.quote_ident(name);
                for mode in modes {
                    let mut opts = CompileOptions::rule(dialect, &ctx);
                    opts.mode = mode;
                    let Ok(compiled) = compile_expr(&schema, collection, &expr, &opts) else {
                        continue;
                    };
                    let query = compiled.to_query(&ctx, &base);
                    check_sql(&query.sql, query.binds.len(), dialect, &allowed);
                    let other =
                        compile_expr(&schema, collection, &mutated, &opts).unwrap_or_else(|err| {
                            panic!("{text:?} compiled but its mutation did not: {err}")
                        });
                    let other = other.to_query(&ctx, &base);
                    assert_eq!(
                        query.sql, other.sql,
                        "the SQL depends on literal values for {text:?}"
                    );
                }
            }
        }
    }
    for dialect in [Dialect::Sqlite, Dialect::Postgres] {
        for mode in modes {
            let mut opts = CompileOptions::rule(dialect, &ctx);
            opts.mode = mode;
            if let Ok(sort) = compile_sort(&schema, schema.get("posts"), text, &opts) {
                let query =
                    basalt_sql::filter::SelectBuilder::new(dialect, schema.get("posts"), &ctx)
                        .sort(&sort)
                        .list();
                check_sql(&query.sql, query.binds.len(), dialect, &allowed);
            }
        }
    }
}

/// Replays the committed seed corpus of the fuzz target.
#[test]
fn fuzz_corpus_replays_without_failures() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus/filter_compile");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|err| panic!("{}: {err}", dir.display())) {
        let path = entry.expect("corpus entry").path();
        check(&std::fs::read(&path).expect("corpus file"));
        count += 1;
    }
    assert!(count >= 20, "only {count} seeds in {}", dir.display());
}

/// The snapshot cases pass the fuzz property too.
#[test]
fn snapshot_cases_pass_the_fuzz_property() {
    for (_, _, input) in crate::snapshots::CASES {
        check(input.as_bytes());
    }
}
