//! Compile cost of a three-clause rule, cold (parse + resolve + emit) and through the
//! cache (lookup + bind), for both dialects.
//!
//! `cargo bench -p basalt-sql --bench compile`

use std::hint::black_box;

use basalt_schema::{Collection, CollectionType, Field, FieldKind, SchemaLookup};
use basalt_sql::Dialect;
use basalt_sql::filter::{AuthContext, CompileOptions, RequestContext, RuleCache, compile_rule};
use criterion::{Criterion, criterion_group, criterion_main};

struct Schema(Vec<Collection>);

impl SchemaLookup for Schema {
    fn find(&self, name_or_id: &str) -> Option<&Collection> {
        self.0
            .iter()
            .find(|c| c.id == name_or_id || c.name.eq_ignore_ascii_case(name_or_id))
    }
    fn all(&self) -> Vec<&Collection> {
        self.0.iter().collect()
    }
}

fn schema() -> Schema {
    let users = basalt_schema::default_users();
    let mut posts = Collection::new(CollectionType::Base, "posts");
    posts.fields.push(Field::new("title", FieldKind::text()));
    posts.fields.push(Field::new(
        "views",
        FieldKind::Number {
            required: false,
            min: None,
            max: None,
            only_int: false,
        },
    ));
    posts
        .fields
        .push(Field::new("active", FieldKind::Bool { required: false }));
    posts.fields.push(Field::new(
        "author",
        FieldKind::Relation {
            required: false,
            collection_id: users.id.clone(),
            cascade_delete: false,
            min_select: 0,
            max_select: 1,
        },
    ));
    Schema(vec![users, posts])
}

const RULE: &str = "author = @request.auth.id && active = true && views > 10";

fn bench(c: &mut Criterion) {
    let schema = schema();
    let posts = schema.find("posts").expect("posts");
    let mut ctx = RequestContext::guest(1_700_000_000_000);
    let record = serde_json::json!({"id": "u1"})
        .as_object()
        .cloned()
        .unwrap_or_default();
    ctx.auth = Some(AuthContext::new(
        schema.find("users").expect("users"),
        record,
    ));
    for dialect in [Dialect::Sqlite, Dialect::Postgres] {
        let opts = CompileOptions::rule(dialect, &ctx);
        c.bench_function(
            &format!("parse+compile+render 3-clause rule ({dialect:?})"),
            |b| {
                b.iter(|| {
                    let expr =
                        compile_rule(&schema, posts, black_box(RULE), &opts).expect("compiles");
                    black_box(expr.to_query(&ctx, "\"posts\""))
                })
            },
        );
        let cache = RuleCache::new(256);
        c.bench_function(&format!("cached rule lookup+render ({dialect:?})"), |b| {
            b.iter(|| {
                let expr = cache
                    .get(&schema, posts, black_box(RULE), &opts, 1)
                    .expect("compiles");
                black_box(expr.to_query(&ctx, "\"posts\""))
            })
        });
        let stats = cache.stats();
        assert_eq!(stats.misses, 1, "the cached path parsed more than once");
        println!("cache after the run ({dialect:?}): {stats:?}");
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
