//! The fixed test schema: users (auth), posts, comments, locked.

use basalt_schema::{Collection, CollectionType, Field, FieldKind, SchemaLookup};
use basalt_sql::filter::{AuthContext, RequestContext};
use serde_json::{Value as Json, json};

pub(crate) struct TestSchema {
    pub(crate) collections: Vec<Collection>,
}

impl SchemaLookup for TestSchema {
    fn find(&self, name_or_id: &str) -> Option<&Collection> {
        self.collections
            .iter()
            .find(|c| c.id == name_or_id)
            .or_else(|| {
                self.collections
                    .iter()
                    .find(|c| c.name.eq_ignore_ascii_case(name_or_id))
            })
    }

    fn all(&self) -> Vec<&Collection> {
        self.collections.iter().collect()
    }
}

impl TestSchema {
    pub(crate) fn get(&self, name: &str) -> &Collection {
        self.find(name).expect("test collection")
    }
}

fn text() -> FieldKind {
    FieldKind::text()
}

fn relation(target: &str, max_select: u64) -> FieldKind {
    FieldKind::Relation {
        required: false,
        collection_id: target.to_string(),
        cascade_delete: false,
        min_select: 0,
        max_select,
    }
}

fn autodate(collection: &mut Collection) {
    collection.fields.push(Field::new(
        "created",
        FieldKind::Autodate {
            on_create: true,
            on_update: false,
        },
    ));
    collection.fields.push(Field::new(
        "updated",
        FieldKind::Autodate {
            on_create: true,
            on_update: true,
        },
    ));
}

pub(crate) fn schema() -> TestSchema {
    let mut users = Collection::new(CollectionType::Auth, "users");
    users.id = "_pb_users_auth_".to_string();
    users.fields.push(Field::new("name", text()));
    users.fields.push(Field::new(
        "age",
        FieldKind::Number {
            required: false,
            min: None,
            max: None,
            only_int: false,
        },
    ));
    users
        .fields
        .push(Field::new("friends", relation("_pb_users_auth_", 5)));
    autodate(&mut users);
    users.list_rule = Some("id = @request.auth.id || emailVisibility = true".to_string());

    let mut posts = Collection::new(CollectionType::Base, "posts");
    posts.id = "pbc_posts".to_string();
    posts.fields.push(Field::new("title", text()));
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
        "tags",
        FieldKind::Select {
            required: false,
            values: vec!["a".into(), "b".into(), "c".into()],
            max_select: 3,
        },
    ));
    posts.fields.push(Field::new(
        "status",
        FieldKind::Select {
            required: false,
            values: vec!["draft".into(), "live".into()],
            max_select: 1,
        },
    ));
    posts
        .fields
        .push(Field::new("author", relation("_pb_users_auth_", 1)));
    posts
        .fields
        .push(Field::new("likes", relation("_pb_users_auth_", 5)));
    posts.fields.push(Field::new(
        "meta",
        FieldKind::Json {
            required: false,
            max_size: 0,
        },
    ));
    posts
        .fields
        .push(Field::new("geo", FieldKind::GeoPoint { required: false }));
    posts.fields.push(Field::new(
        "published",
        FieldKind::Date {
            required: false,
            min: String::new(),
            max: String::new(),
        },
    ));
    let mut secret = Field::new("secret", text());
    secret.hidden = true;
    posts.fields.push(secret);
    autodate(&mut posts);
    posts.list_rule = Some(String::new());

    let mut comments = Collection::new(CollectionType::Base, "comments");
    comments.id = "pbc_comments".to_string();
    comments
        .fields
        .push(Field::new("post", relation("pbc_posts", 1)));
    comments.fields.push(Field::new("text", text()));
    comments
        .fields
        .push(Field::new("user", relation("_pb_users_auth_", 1)));
    autodate(&mut comments);
    comments.list_rule = Some(String::new());

    let mut locked = Collection::new(CollectionType::Base, "locked");
    locked.id = "pbc_locked".to_string();
    locked.fields.push(Field::new("name", text()));
    locked
        .fields
        .push(Field::new("post", relation("pbc_posts", 1)));
    locked.list_rule = None;

    let mut tagged = Collection::new(CollectionType::Base, "tagged");
    tagged.id = "pbc_tagged".to_string();
    tagged.fields.push(Field::new("label", text()));
    tagged
        .fields
        .push(Field::new("posts", relation("pbc_posts", 9)));
    tagged.list_rule = Some(String::new());

    TestSchema {
        collections: vec![users, posts, comments, locked, tagged],
    }
}

/// 2024-02-29 13:45:30.250Z
pub(crate) const NOW_MS: i64 = 1_709_214_330_250;

fn object(value: Json) -> serde_json::Map<String, Json> {
    match value {
        Json::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

/// A signed-in user posting a body.
pub(crate) fn user_ctx(schema: &TestSchema) -> RequestContext {
    let mut ctx = RequestContext::guest(NOW_MS);
    ctx.auth = Some(AuthContext::new(
        schema.get("users"),
        object(
            json!({"id": "u1", "email": "u1@example.com", "verified": true, "emailVisibility": false, "name": "U One"}),
        ),
    ));
    ctx.body = object(json!({
        "title": "hello",
        "views": "12",
        "tags": ["a", "b"],
        "author": "u2",
        "likes": ["u1", "u2"],
        "meta": {"a": 1},
        "extra": 5
    }));
    ctx.query.insert("q".into(), "x".into());
    ctx.headers.insert("x_token".into(), "t".into());
    ctx.method = "POST".into();
    ctx
}

pub(crate) fn superuser_ctx() -> RequestContext {
    let mut ctx = RequestContext::guest(NOW_MS);
    let superusers = basalt_schema::default_superusers();
    ctx.auth = Some(AuthContext::new(
        &superusers,
        object(json!({"id": "s1", "email": "s@example.com"})),
    ));
    ctx
}

/// The fixed rows of the snapshot-execution test.
pub(crate) fn dataset() -> Vec<(&'static str, serde_json::Map<String, Json>)> {
    let rows = [
        (
            "users",
            json!({"id": "u1", "email": "u1@example.com", "emailVisibility": true, "verified": true, "name": "U One", "age": 30, "friends": ["u2"], "created": "2024-01-01 00:00:00.000Z"}),
        ),
        (
            "users",
            json!({"id": "u2", "email": "u2@example.com", "emailVisibility": false, "name": "U Two", "age": 20, "friends": ["u1", "u3"]}),
        ),
        (
            "users",
            json!({"id": "u3", "email": "", "name": "", "age": 0, "friends": []}),
        ),
        (
            "posts",
            json!({"id": "p1", "title": "a", "views": 1, "active": true, "tags": ["a", "b"], "status": "live", "author": "u1", "likes": ["u1", "u2"], "meta": {"a": 1, "b": {"c": "x"}}, "geo": {"lon": 10.0, "lat": 20.0}, "published": "2024-01-05 10:00:00.000Z", "created": "2024-02-01 00:00:00.000Z", "secret": "s1"}),
        ),
        (
            "posts",
            json!({"id": "p2", "title": "", "views": 0, "active": false, "tags": [], "status": "", "author": "", "likes": [], "meta": null, "created": "2024-02-29 10:00:00.000Z"}),
        ),
        (
            "posts",
            json!({"id": "p3", "title": "Hello_World", "views": 5.5, "tags": ["a"], "status": "draft", "author": "u2", "likes": ["u2"], "meta": {"a": "x"}, "geo": {"lon": 10.1, "lat": 20.1}, "created": "2023-12-31 23:59:59.999Z"}),
        ),
        (
            "posts",
            json!({"id": "p4", "title": "post 100%", "views": -3, "tags": ["c", "b"], "author": "u3", "likes": ["u3", "u1"], "meta": {"a": [1, 2]}, "created": "2024-02-29 14:00:00.000Z"}),
        ),
        (
            "posts",
            json!({"id": "p5", "title": "5", "views": 12, "active": true, "meta": {"a": true}, "author": "u1", "likes": ["u1"], "created": "2024-03-01 00:00:00.000Z"}),
        ),
        (
            "comments",
            json!({"id": "c1", "post": "p1", "text": "hi there", "user": "u1", "created": "2024-02-01 00:00:00.000Z"}),
        ),
        (
            "comments",
            json!({"id": "c2", "post": "p1", "text": "HI", "user": "u2"}),
        ),
        (
            "comments",
            json!({"id": "c3", "post": "p3", "text": "x", "user": "u3"}),
        ),
        (
            "tagged",
            json!({"id": "t1", "label": "x", "posts": ["p1", "p3"]}),
        ),
        ("tagged", json!({"id": "t2", "label": "y", "posts": []})),
        ("locked", json!({"id": "l1", "name": "x", "post": "p1"})),
    ];
    rows.into_iter()
        .map(|(name, row)| (name, object(row)))
        .collect()
}
