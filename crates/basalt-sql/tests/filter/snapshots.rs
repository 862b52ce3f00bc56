//! One line per case: input → SQL for SQLite and PostgreSQL with binds, kept in
//! `snapshots/*.txt`. Run with `BLESS=1` to rewrite the files after a reviewed change.

use std::fmt::Write as _;
use std::path::PathBuf;

use basalt_sql::filter::{
    CompileOptions, FilterMode, RequestContext, SelectBuilder, compile_filter, compile_rule,
    compile_sort, create_check,
};
use basalt_sql::{Dialect, SqlQuery, Value};

use crate::schema::{TestSchema, schema, superuser_ctx, user_ctx};

/// How a case is compiled: `rule`, `client` (non-superuser filter), `super` (superuser
/// filter), `sort` (non-superuser sort), `ssort` (superuser sort).
pub(crate) const CASES: &[(&str, &str, &str)] = &[
    // Operators on plain fields.
    ("rule", "posts", "title = 'a'"),
    ("rule", "posts", "title != 'a'"),
    ("rule", "posts", "title > 'a'"),
    ("rule", "posts", "title >= 'a'"),
    ("rule", "posts", "title < 'a'"),
    ("rule", "posts", "title <= 'a'"),
    ("rule", "posts", "title ~ 'a_b'"),
    ("rule", "posts", "title !~ 'a'"),
    ("rule", "posts", "title ~ 'post %'"),
    ("rule", "posts", "title ?= 'a'"),
    ("rule", "posts", "title ?!= 'a'"),
    ("rule", "posts", "title ?> 'a'"),
    ("rule", "posts", "title ?>= 'a'"),
    ("rule", "posts", "title ?< 'a'"),
    ("rule", "posts", "title ?<= 'a'"),
    ("rule", "posts", "title ?~ 'a'"),
    ("rule", "posts", "title ?!~ 'a'"),
    // Empty folding and literals on either side.
    ("rule", "posts", "title = ''"),
    ("rule", "posts", "title != null"),
    ("rule", "posts", "'' = null"),
    ("rule", "posts", "null != ''"),
    ("rule", "posts", "1 = 1"),
    ("rule", "posts", "'a' = title"),
    ("rule", "posts", "'abc' ~ title"),
    ("rule", "posts", "title = status"),
    ("rule", "posts", "title ~ status"),
    // Types.
    ("rule", "posts", "views > 10"),
    ("rule", "posts", "views = '5'"),
    ("rule", "posts", "views = 'abc'"),
    ("rule", "posts", "views = null"),
    ("rule", "posts", "active = true"),
    ("rule", "posts", "active != false"),
    ("rule", "posts", "active = 1"),
    ("rule", "posts", "title = 5"),
    ("rule", "posts", "views ~ 5"),
    ("rule", "posts", "created >= '2024-01-01 00:00:00.000Z'"),
    (
        "rule",
        "posts",
        "id = 'abc' && (views > 1 || active = true)",
    ),
    ("rule", "posts", "title = 'a' || title = 'b' && views < 3"),
    // Multi-valued columns without modifiers, JSON and geo.
    ("rule", "posts", "tags ~ 'a'"),
    ("rule", "posts", "tags = '[]'"),
    ("rule", "posts", "meta = null"),
    ("rule", "posts", "meta.a = 1"),
    ("rule", "posts", "meta.a.b.0 = 'x'"),
    ("rule", "posts", "meta.a > 2"),
    ("rule", "posts", "meta.a ~ 'x'"),
    ("rule", "posts", "meta.a:lower = 'x'"),
    ("rule", "posts", "geo.lon > 10"),
    ("rule", "posts", "meta.a = title"),
    // Modifiers on record fields.
    ("rule", "posts", "title:lower = 'abc'"),
    ("rule", "posts", "tags:length > 1"),
    ("rule", "posts", "status:length = 0"),
    ("rule", "posts", "title:length = 0"),
    ("rule", "posts", "tags:each = 'a'"),
    ("rule", "posts", "tags:each ?= 'a'"),
    ("rule", "posts", "tags:each != 'a'"),
    ("rule", "posts", "tags:each ?!= 'a'"),
    ("rule", "posts", "tags:each ~ 'a'"),
    ("rule", "posts", "tags:each:lower ?= 'a'"),
    ("rule", "posts", "status:each = 'live'"),
    ("rule", "posts", "title:isset = true"),
    // Relations.
    ("rule", "posts", "author = 'u1'"),
    ("rule", "posts", "author.id = 'u1'"),
    ("rule", "posts", "author.name = 'U One'"),
    ("rule", "posts", "author.name = 'a' && author.age > 3"),
    ("rule", "posts", "author.friends.name ?= 'x'"),
    ("rule", "posts", "likes.id ?= 'u1'"),
    ("rule", "posts", "likes.name = 'U One'"),
    ("rule", "posts", "likes.name ?= 'U One'"),
    ("rule", "posts", "likes.name ?= 'a' && likes.age ?> 3"),
    (
        "rule",
        "posts",
        "likes.name ?= 'a' && active = true && author.name = 'b'",
    ),
    ("rule", "posts", "likes.name = author.name"),
    ("rule", "posts", "likes:each ?= author"),
    ("rule", "posts", "likes:length >= 2"),
    (
        "rule",
        "comments",
        "post.author.friends.friends.friends.friends.name = 'x'",
    ),
    (
        "rule",
        "comments",
        "post.author.friends.friends.friends.friends.friends.name = 'x'",
    ),
    // Back-relations.
    ("rule", "posts", "comments_via_post.text ?~ 'hi'"),
    ("rule", "posts", "comments_via_post.text = 'hi'"),
    ("rule", "posts", "tagged_via_posts.label ?= 'x'"),
    ("rule", "users", "posts_via_author.title ?= 'x'"),
    ("rule", "posts", "comments_via_post.user.name ?= 'x'"),
    // @collection.
    ("rule", "posts", "@collection.comments.post ?= id"),
    (
        "rule",
        "posts",
        "@collection.comments.post ?= id && @collection.comments.user ?= @request.auth.id",
    ),
    (
        "rule",
        "posts",
        "@collection.comments:c1.post ?= id && @collection.comments:c2.user ?= author",
    ),
    ("rule", "posts", "@collection.users.name = 'x'"),
    // @request.auth.
    ("rule", "posts", "author = @request.auth.id"),
    ("rule", "posts", "@request.auth.id != ''"),
    ("rule", "posts", "@request.auth.id = ''"),
    ("rule", "posts", "@request.auth.id != author"),
    ("rule", "posts", "likes ?= @request.auth.id"),
    ("rule", "posts", "likes.id ?= @request.auth.id"),
    ("rule", "posts", "likes:each = @request.auth.id"),
    ("rule", "posts", "@request.auth.collectionName = 'users'"),
    ("rule", "posts", "@request.auth.collectionId = 'x'"),
    ("rule", "posts", "@request.auth.verified = true"),
    ("rule", "posts", "@request.auth.email ~ '@example.com'"),
    ("rule", "posts", "@request.auth.emailVisibility = false"),
    ("rule", "posts", "@request.auth.name = title"),
    ("rule", "posts", "@request.auth.friends.name ?= 'x'"),
    ("rule", "posts", "@request.auth.missing = null"),
    ("rule", "posts", "@request.auth.id:isset = true"),
    // @request.body / query / headers / method / context.
    ("rule", "posts", "@request.body.title = 'hello'"),
    ("rule", "posts", "@request.body.views > 10"),
    ("rule", "posts", "@request.body.active = true"),
    ("rule", "posts", "@request.body.title:isset = false"),
    ("rule", "posts", "@request.body.title:changed = true"),
    ("rule", "posts", "@request.body.views:changed = false"),
    ("rule", "posts", "@request.body.tags:changed = true"),
    ("rule", "posts", "@request.body.tags:length <= 2"),
    ("rule", "posts", "@request.body.tags:each ?= 'a'"),
    ("rule", "posts", "@request.body.tags = 'a'"),
    ("rule", "posts", "@request.body.tags ~ 'a'"),
    ("rule", "posts", "@request.body.tags:each = 'a'"),
    ("rule", "posts", "@request.body.tags:each != 'x'"),
    ("rule", "posts", "@request.body.title:each = 'hello'"),
    ("rule", "posts", "@request.body.author.name = 'x'"),
    ("rule", "posts", "@request.body.likes.name ?= 'x'"),
    ("rule", "posts", "@request.body.meta.a = 1"),
    ("rule", "posts", "@request.body.extra = 5"),
    ("rule", "posts", "@request.body.extra = views"),
    ("rule", "posts", "@request.body.extra = null"),
    ("rule", "posts", "@request.body.title:lower = 'hello'"),
    ("rule", "posts", "@request.query.q = 'x'"),
    ("rule", "posts", "@request.query.n > views"),
    ("rule", "posts", "@request.query.q ~ title"),
    ("rule", "posts", "title ~ @request.query.q"),
    ("rule", "posts", "@request.query.q:isset = true"),
    ("rule", "posts", "@request.headers.x_token = 't'"),
    ("rule", "posts", "@request.method = 'POST'"),
    ("rule", "posts", "@request.context != 'realtime'"),
    ("rule", "posts", "@request.data.x = 1"),
    // Macros.
    ("rule", "posts", "created > @now"),
    (
        "rule",
        "posts",
        "@second >= 0 && @minute >= 0 && @hour >= 0 && @weekday >= 0",
    ),
    ("rule", "posts", "@day = 29 && @month = 2 && @year = 2024"),
    (
        "rule",
        "posts",
        "created >= @todayStart && created <= @todayEnd",
    ),
    (
        "rule",
        "posts",
        "created >= @monthStart && created <= @monthEnd",
    ),
    (
        "rule",
        "posts",
        "created >= @yearStart && created <= @yearEnd",
    ),
    (
        "rule",
        "posts",
        "created > @yesterday && created < @tomorrow",
    ),
    // Functions.
    (
        "rule",
        "posts",
        "geoDistance(geo.lon, geo.lat, 10, 20) < 100",
    ),
    ("rule", "posts", "strftime('%Y-%m', created) = '2024-02'"),
    (
        "rule",
        "posts",
        "strftime('%d %H:%M:%S %j %w %s %f %%', created) != ''",
    ),
    (
        "rule",
        "posts",
        "strftime('%Y', created, 'start of month') = '2024'",
    ),
    (
        "rule",
        "posts",
        "strftime('%Y', @collection.comments.created) ?= '2024'",
    ),
    // Client filters.
    ("client", "posts", "title ~ 'a'"),
    ("client", "posts", "secret = 'x'"),
    ("super", "posts", "secret = 'x'"),
    ("client", "users", "password = 'x'"),
    ("client", "users", "tokenKey ~ 'a'"),
    ("client", "users", "email = 'a@b.c'"),
    ("client", "posts", "author.email = 'a@b.c'"),
    ("client", "posts", "author.name = 'x'"),
    ("super", "posts", "author.name = 'x'"),
    ("client", "posts", "likes.name ?~ 'two'"),
    ("client", "posts", "locked_via_post.name ?= 'x'"),
    ("client", "posts", "comments_via_post.text ?= 'x'"),
    ("client", "posts", "@request.auth.id != ''"),
    ("client", "posts", "@collection.comments.post ?= id"),
    ("super", "posts", "@request.auth.id != ''"),
    ("client", "posts", "title = 'a' &&"),
    ("client", "posts", "nope = 1"),
    ("client", "posts", "author.nope = 1"),
    // Errors.
    ("rule", "posts", "nope = 1"),
    ("rule", "posts", "title.x = 1"),
    ("rule", "posts", "title:foo = 1"),
    ("rule", "posts", "title:each = 1"),
    ("rule", "posts", "tags:each:length = 1"),
    ("rule", "posts", "author:lower.name = 1"),
    ("rule", "posts", "title:changed = true"),
    ("rule", "posts", "geo.x = 1"),
    ("rule", "posts", "meta.a:each = 1"),
    ("rule", "posts", "comments_via_nope.text = 1"),
    ("rule", "posts", "comments_via_post = 1"),
    ("rule", "posts", "@collection.nope.x = 1"),
    ("rule", "posts", "@collection.users = 1"),
    ("rule", "posts", "@request.body.title:length = 1"),
    ("rule", "posts", "@request.body.nope:each = 1"),
    ("rule", "posts", "@request.body.nope:changed = true"),
    ("rule", "posts", "@request.query.q:each = 1"),
    ("rule", "posts", "@nope = 1"),
    ("rule", "posts", "nope(1) = 1"),
    ("rule", "posts", "geoDistance(1, 2, 3) = 1"),
    ("rule", "posts", "geoDistance(true, 2, 3, 4) = 1"),
    ("rule", "posts", "strftime(1, created) = 1"),
    ("rule", "posts", "strftime('%Q', created) = 1"),
    // Sort.
    ("sort", "posts", "-created,title"),
    ("sort", "posts", "+views,-active"),
    ("sort", "posts", "@random"),
    ("sort", "posts", "@rowid"),
    ("sort", "posts", "-@rowid"),
    ("sort", "posts", "meta.a"),
    ("sort", "posts", "author.name"),
    ("sort", "posts", "comments_via_post.text"),
    ("sort", "posts", "likes.name"),
    ("sort", "posts", "secret"),
    ("ssort", "posts", "secret"),
    ("sort", "posts", "@request.auth.id"),
    ("sort", "users", "email"),
    ("sort", "posts", "nope"),
    ("sort", "posts", "a,,b"),
];

fn render_binds(binds: &[Value]) -> String {
    let parts: Vec<String> = binds
        .iter()
        .map(|value| match value {
            Value::Null => "null".to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Int(n) => format!("{n}i"),
            Value::Float(f) => format!("{f}"),
            Value::Text(t) => format!("{t:?}"),
            Value::Blob(b) => format!("blob({})", b.len()),
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

fn run_case(schema: &TestSchema, kind: &str, coll: &str, input: &str, dialect: Dialect) -> String {
    let collection = schema.get(coll);
    let ctx = match kind {
        "super" | "ssort" => superuser_ctx(),
        _ => user_ctx(schema),
    };
    let mut opts = CompileOptions::rule(dialect, &ctx);
    let base = dialect.quote_ident(&collection.name);
    let result = match kind {
        "rule" => compile_rule(schema, collection, input, &opts).map(|e| e.to_query(&ctx, &base)),
        "client" | "super" => {
            opts.mode = FilterMode::ClientFilter {
                superuser: kind == "super",
            };
            compile_filter(schema, collection, input, &opts).map(|e| e.to_query(&ctx, &base))
        }
        _ => {
            opts.mode = FilterMode::ClientFilter {
                superuser: kind == "ssort",
            };
            compile_sort(schema, collection, input, &opts)
                .map(|sort| {
                    SelectBuilder::new(dialect, collection, &ctx)
                        .sort(&sort)
                        .list()
                })
                .map(|query| {
                    let order = query.sql.find(" FROM ").map_or(0, |idx| idx + 1);
                    SqlQuery::with_binds(query.sql[order..].to_string(), query.binds)
                })
        }
    };
    match result {
        Ok(query) => format!("{} {}", query.sql, render_binds(&query.binds)),
        Err(err) => format!("error: {err}"),
    }
}

fn check_file(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/filter/snapshots")
        .join(name);
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&path, actual).expect("write snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if expected != actual {
        let mut report = String::new();
        let (mut shown, mut exp_lines) = (0, expected.lines());
        for (idx, line) in actual.lines().enumerate() {
            let old = exp_lines.next().unwrap_or("<missing>");
            if old != line && shown < 10 {
                let _ = writeln!(
                    report,
                    "line {}:\n  expected: {old}\n  actual:   {line}",
                    idx + 1
                );
                shown += 1;
            }
        }
        panic!("snapshot {name} differs (run with BLESS=1 after review):\n{report}");
    }
}

#[test]
fn filter_snapshots_for_both_dialects() {
    let schema = schema();
    let mut out = String::new();
    for (kind, coll, input) in CASES {
        let sqlite = run_case(&schema, kind, coll, input, Dialect::Sqlite);
        let pg = run_case(&schema, kind, coll, input, Dialect::Postgres);
        let _ = writeln!(out, "{kind} {coll}: {input}");
        if sqlite == pg && sqlite.starts_with("error") {
            let _ = writeln!(out, "  both:   {sqlite}");
        } else {
            let _ = writeln!(out, "  sqlite: {sqlite}");
            let _ = writeln!(out, "  pg:     {pg}");
        }
    }
    check_file("filters.txt", &out);
}

#[test]
fn statement_snapshots() {
    let schema = schema();
    let posts = schema.get("posts");
    let ctx = user_ctx(&schema);
    let mut out = String::new();
    for dialect in [Dialect::Sqlite, Dialect::Postgres] {
        let rule_opts = CompileOptions::rule(dialect, &ctx);
        let client_opts = CompileOptions::client_filter(dialect, &ctx);
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
            "likes.name ?~ 'one' && views > 2",
            &client_opts,
        )
        .expect("filter");
        let sort = compile_sort(&schema, posts, "-author.name,@rowid", &client_opts).expect("sort");
        let list = SelectBuilder::new(dialect, posts, &ctx)
            .filter(&rule)
            .filter(&filter)
            .sort(&sort)
            .page(30, 60);
        let _ = writeln!(
            out,
            "{dialect:?} list:   {} {}",
            list.list().sql,
            render_binds(&list.list().binds)
        );
        let _ = writeln!(
            out,
            "{dialect:?} count:  {} {}",
            list.count().sql,
            render_binds(&list.count().binds)
        );
        let view = SelectBuilder::new(dialect, posts, &ctx)
            .filter(&rule)
            .id("p1");
        let _ = writeln!(
            out,
            "{dialect:?} view:   {} {}",
            view.list().sql,
            render_binds(&view.list().binds)
        );
        let _ = writeln!(
            out,
            "{dialect:?} exists: {} {}",
            view.exists().sql,
            render_binds(&view.exists().binds)
        );
        let create_rule = compile_rule(
            &schema,
            posts,
            "@request.auth.id != '' && author = @request.auth.id && @request.body.views:isset = false",
            &rule_opts,
        )
        .expect("create rule");
        let record = match serde_json::json!({"id": "p9", "title": "t", "views": 3, "author": "u1", "tags": ["a"]})
        {
            serde_json::Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        let check = create_check(dialect, posts, &record, &create_rule, &ctx);
        let _ = writeln!(
            out,
            "{dialect:?} create: {} {}",
            check.sql,
            render_binds(&check.binds)
        );
        let always = compile_rule(&schema, posts, "", &rule_opts).expect("empty rule");
        let open = SelectBuilder::new(dialect, posts, &ctx).filter(&always);
        let _ = writeln!(
            out,
            "{dialect:?} open:   {} {}",
            open.count().sql,
            render_binds(&open.count().binds)
        );
    }
    check_file("statements.txt", &out);
}

#[test]
fn guests_bind_nulls_for_auth_values() {
    let schema = schema();
    let posts = schema.get("posts");
    let guest = RequestContext::guest(crate::schema::NOW_MS);
    let opts = CompileOptions::rule(Dialect::Sqlite, &guest);
    let rule = compile_rule(&schema, posts, "author = @request.auth.id", &opts).expect("rule");
    let query = rule.to_query(&guest, "\"posts\"");
    assert_eq!(query.binds, vec![Value::Null]);
    assert_eq!(
        query.sql,
        "((?1 IS NOT NULL AND COALESCE(\"posts\".\"author\", '') = COALESCE(?1, '')))"
    );
}
