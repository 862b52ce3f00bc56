//! Every snapshot case runs on a real SQLite and a real PostgreSQL over the same rows,
//! and both must return the same records (sorts: in the same order).

use basalt_sql::filter::{
    CompileOptions, FilterMode, SelectBuilder, compile_filter, compile_rule, compile_sort,
};

use crate::db::{Db, both};
use crate::schema::{dataset, schema, superuser_ctx, user_ctx};
use crate::snapshots::CASES;

fn run(db: &mut dyn Db, kind: &str, coll: &str, input: &str) -> Result<Vec<String>, String> {
    let schema = schema();
    let collection = schema.get(coll);
    let dialect = db.dialect();
    let ctx = if kind.starts_with('s') && kind != "sort" {
        superuser_ctx()
    } else {
        user_ctx(&schema)
    };
    let mut opts = CompileOptions::rule(dialect, &ctx);
    let query = match kind {
        "rule" => {
            let expr = compile_rule(&schema, collection, input, &opts)
                .map_err(|e| format!("compile: {e}"))?;
            SelectBuilder::new(dialect, collection, &ctx)
                .filter(&expr)
                .list()
        }
        "client" | "super" => {
            opts.mode = FilterMode::ClientFilter {
                superuser: kind == "super",
            };
            let expr = compile_filter(&schema, collection, input, &opts)
                .map_err(|e| format!("compile: {e}"))?;
            SelectBuilder::new(dialect, collection, &ctx)
                .filter(&expr)
                .list()
        }
        _ => {
            opts.mode = FilterMode::ClientFilter {
                superuser: kind == "ssort",
            };
            let sort = compile_sort(&schema, collection, input, &opts)
                .map_err(|e| format!("compile: {e}"))?;
            SelectBuilder::new(dialect, collection, &ctx)
                .sort(&sort)
                .list()
        }
    };
    let mut ids = db
        .ids(&query)
        .map_err(|e| format!("{dialect:?} failed: {e}\n    {}", query.sql))?;
    if !kind.ends_with("sort") {
        ids.sort();
    }
    Ok(ids)
}

#[test]
fn snapshot_cases_agree_on_sqlite_and_postgres() {
    let schema = schema();
    let rows = dataset();
    let (mut lite, mut pg) = both(&schema, &rows, "cases");
    let mut failures = Vec::new();
    let mut ran = 0;
    for (kind, coll, input) in CASES {
        if input.contains("@random") {
            continue;
        }
        let a = run(&mut lite, kind, coll, input);
        let b = run(&mut pg, kind, coll, input);
        match (&a, &b) {
            (Ok(x), Ok(y)) if x == y => ran += 1,
            (Err(x), Err(y)) if x.starts_with("compile") && y.starts_with("compile") => {}
            // Documented dialect differences: PostgreSQL has no rowid (sorts by
            // `created`, then `id`) and no emulation of some strftime features.
            (Ok(_), Ok(_)) if input.contains("@rowid") => {}
            (Ok(_), Err(y)) if y.contains("not supported on postgres") => {}
            _ => failures.push(format!(
                "{kind} {coll}: {input}\n  sqlite: {a:?}\n  pg:     {b:?}"
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases disagree:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
    assert!(ran >= 140, "only {ran} cases ran");
}

/// list / count / view / exists / create-check statements run on both databases.
#[test]
fn statements_run_on_sqlite_and_postgres() {
    use basalt_sql::filter::{RequestContext, create_check};
    let schema = schema();
    let rows = dataset();
    let posts = schema.get("posts");
    let (mut lite, mut pg) = both(&schema, &rows, "stmts");
    let user = user_ctx(&schema);
    let guest = RequestContext::guest(crate::schema::NOW_MS);
    let mut results = Vec::new();
    for db in [&mut lite as &mut dyn Db, &mut pg as &mut dyn Db] {
        let dialect = db.dialect();
        let mut out = Vec::new();
        for ctx in [&user, &guest] {
            let rule_opts = CompileOptions::rule(dialect, ctx);
            let client_opts = CompileOptions::client_filter(dialect, ctx);
            let rule = compile_rule(
                &schema,
                posts,
                "author = @request.auth.id || active = true",
                &rule_opts,
            )
            .expect("rule");
            let filter = compile_filter(
                &schema,
                posts,
                "likes.name ?~ 'u' || views > 2",
                &client_opts,
            )
            .expect("filter");
            let sort =
                compile_sort(&schema, posts, "-author.name,-views", &client_opts).expect("sort");
            let list = SelectBuilder::new(dialect, posts, ctx)
                .filter(&rule)
                .filter(&filter)
                .sort(&sort);
            out.push(format!(
                "list {:?}",
                db.ids(&list.clone().page(2, 0).list()).expect("list")
            ));
            out.push(format!(
                "count {:?}",
                db.count(&list.count()).expect("count")
            ));
            let view = SelectBuilder::new(dialect, posts, ctx)
                .filter(&rule)
                .id("p1");
            out.push(format!("view {:?}", db.ids(&view.list()).expect("view")));
            out.push(format!(
                "exists {:?}",
                db.ids(&view.exists().clone()).map(|r| r.len()).unwrap_or(9)
            ));
            let create_rule = compile_rule(
                &schema,
                posts,
                "@request.auth.id != '' && author = @request.auth.id && @request.body.views:isset = false",
                &rule_opts,
            )
            .expect("create rule");
            for author in ["u1", "u2"] {
                let record = match serde_json::json!({"id": "p9", "title": "t", "views": 3, "author": author, "tags": ["a"]})
                {
                    serde_json::Value::Object(map) => map,
                    _ => serde_json::Map::new(),
                };
                let mut ctx = (*ctx).clone();
                ctx.body.remove("views");
                let check = create_check(dialect, posts, &record, &create_rule, &ctx);
                out.push(format!(
                    "create {author} {:?}",
                    db.count(&check).expect("create check")
                ));
            }
        }
        results.push(out);
    }
    assert_eq!(results[0], results[1]);
    assert_eq!(
        results[0],
        [
            "list [\"p5\", \"p1\"]",
            "count 2",
            "view [\"p1\"]",
            "exists 1",
            "create u1 1",
            "create u2 0",
            "list [\"p5\", \"p1\"]",
            "count 2",
            "view [\"p1\"]",
            "exists 1",
            "create u1 0",
            "create u2 0",
        ]
    );
}

/// Create-rule results on submitted lists, as observed on PocketBase 0.40.6: a
/// multiple field without `:each` is the whole array, and an empty submitted list
/// satisfies `!=` / `?!=` under `:each` but no positive comparison.
#[test]
fn submitted_lists_behave_like_pocketbase() {
    let schema = schema();
    let posts = schema.get("posts");
    let cases: &[(serde_json::Value, &str, i64)] = &[
        (
            serde_json::json!(["a", "b"]),
            "@request.body.tags ?= 'a'",
            0,
        ),
        (serde_json::json!(["a", "b"]), "@request.body.tags = 'a'", 0),
        (
            serde_json::json!(["a", "b"]),
            "@request.body.tags:each ?= 'a'",
            1,
        ),
        (
            serde_json::json!(["a", "b"]),
            "@request.body.tags:each = 'a'",
            0,
        ),
        (serde_json::json!(["a", "b"]), "@request.body.tags ~ 'a'", 1),
        (
            serde_json::json!(["a", "b"]),
            "@request.body.tags:length = 2",
            1,
        ),
        (serde_json::json!([]), "@request.body.tags ?= 'a'", 0),
        (serde_json::json!([]), "@request.body.tags = ''", 0),
        (serde_json::json!([]), "@request.body.tags:each = ''", 0),
        (serde_json::json!([]), "@request.body.tags:each ?= ''", 0),
        (serde_json::json!([]), "@request.body.tags:each = null", 0),
        (serde_json::json!([]), "@request.body.tags:each ~ '%'", 0),
        (serde_json::json!([]), "@request.body.tags:each != 'x'", 1),
        (serde_json::json!([]), "@request.body.tags:each ?!= 'x'", 1),
        (
            serde_json::json!(["a"]),
            "@request.body.tags:each != 'x'",
            1,
        ),
        (serde_json::Value::Null, "@request.body.tags:each = ''", 0),
        (serde_json::Value::Null, "@request.body.tags:each != 'x'", 1),
        (serde_json::Value::Null, "@request.body.views = 0", 0),
        (serde_json::Value::Null, "@request.body.nope = null", 1),
    ];
    let (mut lite, mut pg) = both(&schema, &[], "body");
    for db in [&mut lite as &mut dyn Db, &mut pg as &mut dyn Db] {
        for (tags, rule, expected) in cases {
            let mut ctx = basalt_sql::filter::RequestContext::guest(crate::schema::NOW_MS);
            ctx.body.insert("title".into(), "n".into());
            if !tags.is_null() {
                ctx.body.insert("tags".into(), tags.clone());
            }
            let opts = CompileOptions::rule(db.dialect(), &ctx);
            let compiled = compile_rule(&schema, posts, rule, &opts).expect("compiles");
            let record = ctx.body.clone();
            let check =
                basalt_sql::filter::create_check(db.dialect(), posts, &record, &compiled, &ctx);
            let got = db
                .count(&check)
                .unwrap_or_else(|err| panic!("{rule}: {err}"));
            assert_eq!(
                got,
                *expected,
                "{:?}: {rule} with tags {tags}",
                db.dialect()
            );
        }
    }
}

/// Relation checks: `existing_ids` finds the same ids on both databases in both of its
/// forms (SQLite looks up 2..=MAX_ID_LOOKUPS distinct ids one by one, else uses `IN`).
#[test]
fn existing_ids_agree_on_sqlite_and_postgres_at_the_lookup_limit() {
    use basalt_sql::record::{MAX_ID_LOOKUPS, existing_ids};
    let schema = schema();
    let rows = dataset();
    let users = schema.get("users");
    let (mut lite, mut pg) = both(&schema, &rows, "existing");
    let ids = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let padded = |n: usize| {
        let mut list = ids(&["u1", "u2", "u3"]);
        list.extend((list.len()..n).map(|i| format!("missing{i}")));
        list
    };
    let cases: Vec<(Vec<String>, Vec<&str>, bool)> = vec![
        (ids(&["u1"]), vec!["u1"], false),
        (ids(&["u2", "u1"]), vec!["u1", "u2"], true),
        (ids(&["u1", "nosuch"]), vec!["u1"], true),
        (ids(&["u1", "u1"]), vec!["u1"], false),
        (padded(MAX_ID_LOOKUPS), vec!["u1", "u2", "u3"], true),
        (padded(MAX_ID_LOOKUPS + 1), vec!["u1", "u2", "u3"], false),
    ];
    for (list, expected, lookups) in cases {
        for db in [&mut lite as &mut dyn Db, &mut pg as &mut dyn Db] {
            let query = existing_ids(users, &list, db.dialect());
            let mut found = db.ids(&query).expect("existing_ids runs");
            found.sort();
            assert_eq!(
                found,
                expected,
                "{:?} {list:?}: {}",
                db.dialect(),
                query.sql
            );
            if db.dialect() == basalt_sql::Dialect::Sqlite {
                assert_eq!(query.sql.contains("UNION ALL"), lookups, "{}", query.sql);
            }
        }
    }
}
