//! The rule cache: hits do not re-parse, keys separate what changes the SQL, the
//! capacity is a bound.

use basalt_sql::Dialect;
use basalt_sql::filter::{CompileOptions, FilterMode, RequestContext, RuleCache};

use crate::schema::{NOW_MS, schema, user_ctx};

#[test]
fn cached_rules_are_compiled_once_and_bound_per_request() {
    let schema = schema();
    let posts = schema.get("posts");
    let cache = RuleCache::new(8);
    let user = user_ctx(&schema);
    let guest = RequestContext::guest(NOW_MS);
    let opts = CompileOptions::rule(Dialect::Sqlite, &user);
    let rule = "author = @request.auth.id && created < @now";
    let first = cache.get(&schema, posts, rule, &opts, 1).expect("compiles");
    for _ in 0..100 {
        let again = cache.get(&schema, posts, rule, &opts, 1).expect("compiles");
        assert!(std::sync::Arc::ptr_eq(&first, &again));
    }
    let stats = cache.stats();
    assert_eq!((stats.hits, stats.misses, stats.entries), (100, 1, 1));
    // One entry, different binds per request.
    let for_user = first.to_query(&user, "\"posts\"");
    let for_guest = first.to_query(&guest, "\"posts\"");
    assert_eq!(for_user.sql, for_guest.sql);
    assert_ne!(for_user.binds, for_guest.binds);
}

#[test]
fn cache_keys_and_capacity() {
    let schema = schema();
    let posts = schema.get("posts");
    let cache = RuleCache::new(3);
    let user = user_ctx(&schema);
    let sqlite = CompileOptions::rule(Dialect::Sqlite, &user);
    let pg = CompileOptions::rule(Dialect::Postgres, &user);
    let mut client = sqlite.clone();
    client.mode = FilterMode::ClientFilter { superuser: false };
    cache
        .get(&schema, posts, "title = 'a'", &sqlite, 1)
        .expect("compiles");
    cache
        .get(&schema, posts, "title = 'a'", &pg, 1)
        .expect("compiles");
    cache
        .get(&schema, posts, "title = 'a'", &client, 1)
        .expect("compiles");
    cache
        .get(&schema, posts, "title = 'a'", &sqlite, 2)
        .expect("compiles");
    let stats = cache.stats();
    assert_eq!((stats.misses, stats.entries), (4, 3));
    // The oldest entry (sqlite, version 1) went first.
    cache
        .get(&schema, posts, "title = 'a'", &sqlite, 1)
        .expect("compiles");
    assert_eq!(cache.stats().misses, 5);
    // Errors are returned, not cached.
    assert!(cache.get(&schema, posts, "nope = 1", &sqlite, 1).is_err());
    assert!(cache.get(&schema, posts, "secret = 1", &client, 1).is_err());
    cache.clear();
    assert_eq!(cache.stats().entries, 0);
}
