//! Differential property test: random rules over a fixed random dataset give the same
//! record ids on SQLite, on PostgreSQL and in a small reference evaluator written here
//! (independent of the compiler), for a signed-in user and for a guest.

use std::cell::RefCell;
use std::collections::BTreeMap;

use basalt_sql::Dialect;
use basalt_sql::filter::{
    AuthContext, CompileOptions, RequestContext, SelectBuilder, compile_rule,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value as Json, json};

use crate::db::{Db, Postgres, Sqlite, both, setup};
use crate::schema::{NOW_MS, TestSchema, schema};

// ---------------------------------------------------------------------------
// The dataset.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct User {
    id: String,
    name: String,
    age: f64,
}

#[derive(Debug, Clone)]
struct Post {
    id: String,
    title: String,
    status: String,
    views: f64,
    active: bool,
    tags: Vec<String>,
    author: String,
    likes: Vec<String>,
    /// `meta.a`: None when `meta` is null or has no `a`.
    meta_a: Option<Json>,
    meta_null: bool,
}

#[derive(Debug, Clone)]
struct Comment {
    post: String,
    text: String,
}

struct Data {
    users: Vec<User>,
    posts: Vec<Post>,
    comments: Vec<Comment>,
}

/// A small deterministic generator (xorshift), so the dataset is fixed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const TEXTS: &[&str] = &[
    "", "a", "b", "A", "ab", "U One", "x_y", "x%y", "hello", "Hello", "zz",
];
const NUMBERS: &[f64] = &[0.0, 1.0, 2.0, 5.0, -3.0, 2.5, 10.0];

fn dataset() -> Data {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let users: Vec<User> = (1..=4)
        .map(|n| User {
            id: format!("u{n}"),
            name: rng.pick(&["", "U One", "u two", "Ann", "b"]).to_string(),
            age: *rng.pick(NUMBERS),
        })
        .collect();
    let ids: Vec<String> = users
        .iter()
        .map(|u| u.id.clone())
        .chain(["zz".to_string()])
        .collect();
    let mut posts = Vec::new();
    for n in 1..=14 {
        let mut tags: Vec<String> = Vec::new();
        for tag in ["a", "b", "c"] {
            if rng.chance(40) {
                tags.push(tag.to_string());
            }
        }
        let mut likes: Vec<String> = Vec::new();
        for user in &users {
            if rng.chance(35) {
                likes.push(user.id.clone());
            }
        }
        let meta_null = rng.chance(20);
        let meta_a = if meta_null || rng.chance(20) {
            None
        } else {
            Some(match rng.next() % 4 {
                // Integral numbers as JSON integers: `-3.0` would read back as `-3.0`
                // text on both databases, which the reference does not model.
                0 => {
                    let n = *rng.pick(NUMBERS);
                    if n.fract() == 0.0 {
                        json!(n as i64)
                    } else {
                        json!(n)
                    }
                }
                1 => json!(*rng.pick(TEXTS)),
                2 => Json::Null,
                _ => json!(rng.chance(50)),
            })
        };
        posts.push(Post {
            id: format!("p{n:02}"),
            title: rng.pick(TEXTS).to_string(),
            status: rng.pick(&["", "draft", "live"]).to_string(),
            views: *rng.pick(NUMBERS),
            active: rng.chance(50),
            tags,
            author: if rng.chance(25) {
                String::new()
            } else {
                rng.pick(&ids[..4]).to_string()
            },
            likes,
            meta_a,
            meta_null,
        });
    }
    let mut comments = Vec::new();
    for _ in 0..12 {
        let post = rng.pick(&posts).id.clone();
        comments.push(Comment {
            post,
            text: rng.pick(TEXTS).to_string(),
        });
    }
    Data {
        users,
        posts,
        comments,
    }
}

fn rows(data: &Data) -> Vec<(&'static str, Map<String, Json>)> {
    let mut out = Vec::new();
    let obj = |value: Json| match value {
        Json::Object(map) => map,
        _ => Map::new(),
    };
    for user in &data.users {
        out.push(("users", obj(json!({"id": user.id, "name": user.name, "age": user.age, "email": format!("{}@x.io", user.id)}))));
    }
    for post in &data.posts {
        let meta = if post.meta_null {
            Json::Null
        } else {
            match &post.meta_a {
                Some(value) => json!({"a": value, "z": 1}),
                None => json!({"z": 1}),
            }
        };
        out.push((
            "posts",
            obj(json!({"id": post.id, "title": post.title, "status": post.status, "views": post.views,
                "active": post.active, "tags": post.tags, "author": post.author, "likes": post.likes, "meta": meta})),
        ));
    }
    for (n, comment) in data.comments.iter().enumerate() {
        out.push((
            "comments",
            obj(json!({"id": format!("c{n:02}"), "post": comment.post, "text": comment.text})),
        ));
    }
    out
}

// ---------------------------------------------------------------------------
// The reference evaluator.
// ---------------------------------------------------------------------------

/// A value as SQLite sees it.
#[derive(Debug, Clone, PartialEq)]
enum V {
    Null,
    Num(f64),
    Text(String),
}

fn json_v(value: &Option<Json>) -> V {
    match value {
        None | Some(Json::Null) => V::Null,
        Some(Json::Bool(b)) => V::Num(if *b { 1.0 } else { 0.0 }),
        Some(Json::Number(n)) => V::Num(n.as_f64().unwrap_or(0.0)),
        Some(Json::String(s)) => V::Text(s.clone()),
        Some(other) => V::Text(other.to_string()),
    }
}

/// The operands the generator uses, with their type class and their source of values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Title,
    TitleLower,
    Status,
    Views,
    Active,
    Author,
    TagsEach,
    TagsLength,
    LikesEach,
    LikesLength,
    AuthorName,
    AuthorAge,
    LikesName,
    LikesAge,
    ViaText,
    MetaA,
    AuthId,
    AuthName,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Text,
    Num,
    Bool,
    Json,
}

impl Op {
    const ALL: [Op; 18] = [
        Op::Title,
        Op::TitleLower,
        Op::Status,
        Op::Views,
        Op::Active,
        Op::Author,
        Op::TagsEach,
        Op::TagsLength,
        Op::LikesEach,
        Op::LikesLength,
        Op::AuthorName,
        Op::AuthorAge,
        Op::LikesName,
        Op::LikesAge,
        Op::ViaText,
        Op::MetaA,
        Op::AuthId,
        Op::AuthName,
    ];

    fn text(self) -> &'static str {
        match self {
            Op::Title => "title",
            Op::TitleLower => "title:lower",
            Op::Status => "status",
            Op::Views => "views",
            Op::Active => "active",
            Op::Author => "author",
            Op::TagsEach => "tags:each",
            Op::TagsLength => "tags:length",
            Op::LikesEach => "likes:each",
            Op::LikesLength => "likes:length",
            Op::AuthorName => "author.name",
            Op::AuthorAge => "author.age",
            Op::LikesName => "likes.name",
            Op::LikesAge => "likes.age",
            Op::ViaText => "comments_via_post.text",
            Op::MetaA => "meta.a",
            Op::AuthId => "@request.auth.id",
            Op::AuthName => "@request.auth.name",
        }
    }

    fn class(self) -> Class {
        match self {
            Op::Views | Op::TagsLength | Op::LikesLength | Op::AuthorAge | Op::LikesAge => {
                Class::Num
            }
            Op::Active => Class::Bool,
            Op::MetaA => Class::Json,
            _ => Class::Text,
        }
    }

    /// The multi-valued source the operand ranges over (shared sources correlate).
    fn source(self) -> Option<&'static str> {
        match self {
            Op::TagsEach => Some("tags"),
            Op::LikesEach | Op::LikesName | Op::LikesAge => Some("likes"),
            Op::ViaText => Some("via"),
            _ => None,
        }
    }

    fn auth(self) -> bool {
        matches!(self, Op::AuthId | Op::AuthName)
    }
}

/// One side of a generated comparison.
#[derive(Debug, Clone, PartialEq)]
enum Side {
    Op(Op),
    Text(String),
    Num(f64),
    Bool(bool),
    Null,
}

impl Side {
    fn write(&self) -> String {
        match self {
            Side::Op(op) => op.text().to_string(),
            Side::Text(t) => format!("'{t}'"),
            Side::Num(n) => format!("{n}"),
            Side::Bool(b) => b.to_string(),
            Side::Null => "null".to_string(),
        }
    }

    fn is_empty_lit(&self) -> bool {
        matches!(self, Side::Null) || matches!(self, Side::Text(t) if t.is_empty())
    }
}

#[derive(Debug, Clone)]
enum Rule {
    Cmp(Side, &'static str, Side),
    And(Box<Rule>, Box<Rule>),
    Or(Box<Rule>, Box<Rule>),
}

impl Rule {
    fn write(&self) -> String {
        match self {
            Rule::Cmp(a, op, b) => format!("{} {op} {}", a.write(), b.write()),
            Rule::And(a, b) => format!("({} && {})", a.write(), b.write()),
            Rule::Or(a, b) => format!("({} || {})", a.write(), b.write()),
        }
    }

    fn sources(&self, out: &mut Vec<&'static str>) {
        match self {
            Rule::Cmp(a, op, b) => {
                if op.starts_with('?') {
                    for side in [a, b] {
                        if let Side::Op(o) = side
                            && let Some(src) = o.source()
                            && !out.contains(&src)
                        {
                            out.push(src);
                        }
                    }
                }
            }
            Rule::And(a, b) | Rule::Or(a, b) => {
                a.sources(out);
                b.sources(out);
            }
        }
    }
}

struct Eval<'a> {
    data: &'a Data,
    auth: Option<&'a str>,
}

impl Eval<'_> {
    fn user(&self, id: &str) -> Option<&User> {
        self.data.users.iter().find(|u| u.id == id)
    }

    /// The items of a source for a post; an empty list is one missing item.
    fn items(&self, post: &Post, source: &str) -> Vec<Option<String>> {
        let items: Vec<String> = match source {
            "tags" => post.tags.clone(),
            "likes" => post.likes.clone(),
            _ => self
                .data
                .comments
                .iter()
                .filter(|c| c.post == post.id)
                .map(|c| c.text.clone())
                .collect(),
        };
        if items.is_empty() {
            vec![None]
        } else {
            items.into_iter().map(Some).collect()
        }
    }

    fn value(&self, post: &Post, op: Op, item: Option<&Option<String>>) -> V {
        let text = |s: &str| V::Text(s.to_string());
        let item = item.cloned().flatten();
        match op {
            Op::Title => text(&post.title),
            Op::TitleLower => text(&post.title.to_ascii_lowercase()),
            Op::Status => text(&post.status),
            Op::Views => V::Num(post.views),
            Op::Active => V::Num(if post.active { 1.0 } else { 0.0 }),
            Op::Author => text(&post.author),
            Op::TagsLength => V::Num(post.tags.len() as f64),
            Op::LikesLength => V::Num(post.likes.len() as f64),
            Op::AuthorName => self.user(&post.author).map_or(V::Null, |u| text(&u.name)),
            Op::AuthorAge => self.user(&post.author).map_or(V::Null, |u| V::Num(u.age)),
            Op::MetaA => json_v(&post.meta_a),
            Op::AuthId => self.auth.map_or(V::Null, text),
            Op::AuthName => self
                .auth
                .and_then(|id| self.user(id))
                .map_or(V::Null, |u| text(&u.name)),
            Op::TagsEach | Op::LikesEach | Op::ViaText => item.map_or(V::Null, V::Text),
            Op::LikesName => item
                .and_then(|id| self.user(&id).cloned())
                .map_or(V::Null, |u| V::Text(u.name)),
            Op::LikesAge => item
                .and_then(|id| self.user(&id).cloned())
                .map_or(V::Null, |u| V::Num(u.age)),
        }
    }

    fn lit(side: &Side, other: Option<Class>, equality: bool) -> V {
        match side {
            Side::Text(t) => match other {
                Some(Class::Num) => t.trim().parse::<f64>().map_or(V::Text(t.clone()), V::Num),
                _ => V::Text(t.clone()),
            },
            Side::Num(n) => match other {
                Some(Class::Text) if !equality => V::Text(format_num(*n)),
                _ => V::Num(*n),
            },
            Side::Bool(b) => V::Num(if *b { 1.0 } else { 0.0 }),
            Side::Null => V::Null,
            Side::Op(_) => V::Null,
        }
    }

    /// The candidate values of a side: the assigned item for `?` sources, every item
    /// for a plain operator over a multi-valued source.
    fn side_values(
        &self,
        post: &Post,
        side: &Side,
        other: &Side,
        env: &BTreeMap<&str, Option<String>>,
        all: bool,
        equality: bool,
    ) -> Vec<V> {
        match side {
            Side::Op(op) => match op.source() {
                Some(src) if all => self
                    .items(post, src)
                    .iter()
                    .map(|item| self.value(post, *op, Some(item)))
                    .collect(),
                Some(src) => vec![self.value(post, *op, env.get(src))],
                None => vec![self.value(post, *op, None)],
            },
            lit => {
                let other_class = match other {
                    Side::Op(op) if op.class() != Class::Json => Some(op.class()),
                    _ => None,
                };
                vec![Self::lit(lit, other_class, equality)]
            }
        }
    }

    fn cmp(
        &self,
        post: &Post,
        a: &Side,
        op: &str,
        b: &Side,
        env: &BTreeMap<&str, Option<String>>,
    ) -> bool {
        let any = op.starts_with('?');
        let base = op.trim_start_matches('?');
        let equality = matches!(base, "=" | "!=");
        let la = self.side_values(post, a, b, env, !any, equality);
        let lb = self.side_values(post, b, a, env, !any, equality);
        let guest_blocked = self.auth.is_none()
            && ((matches!(a, Side::Op(o) if o.auth()) && !b.is_empty_lit())
                || (matches!(b, Side::Op(o) if o.auth()) && !a.is_empty_lit()));
        if guest_blocked {
            return false;
        }
        let one = |x: &V, y: &V| -> Option<bool> {
            match base {
                "=" | "!=" => {
                    let eq = if a.is_empty_lit() || b.is_empty_lit() {
                        if a.is_empty_lit() && b.is_empty_lit() {
                            true
                        } else {
                            let v = if a.is_empty_lit() { y } else { x };
                            matches!(v, V::Null) || *v == V::Text(String::new())
                        }
                    } else {
                        fold(x) == fold(y)
                    };
                    Some(if base == "=" { eq } else { !eq })
                }
                "~" | "!~" => {
                    let subject = text_of(x)?;
                    let pattern = match b {
                        Side::Op(_) => format!("%{}%", text_of(y)?),
                        Side::Null => return None,
                        // PocketBase writes a boolean pattern out as `true` / `false`.
                        Side::Bool(value) => like_pattern(&value.to_string()),
                        _ => like_pattern(&text_of(y)?),
                    };
                    let matched = like(&subject, &pattern);
                    Some(if base == "~" { matched } else { !matched })
                }
                _ => {
                    let ord = order(x, y)?;
                    Some(match base {
                        ">" => ord == std::cmp::Ordering::Greater,
                        ">=" => ord != std::cmp::Ordering::Less,
                        "<" => ord == std::cmp::Ordering::Less,
                        _ => ord != std::cmp::Ordering::Greater,
                    })
                }
            }
        };
        let mut all_true = true;
        for x in &la {
            for y in &lb {
                if one(x, y) != Some(true) {
                    all_true = false;
                }
            }
        }
        all_true
    }

    fn eval(&self, post: &Post, rule: &Rule, env: &BTreeMap<&str, Option<String>>) -> bool {
        match rule {
            Rule::Cmp(a, op, b) => self.cmp(post, a, op, b, env),
            Rule::And(a, b) => self.eval(post, a, env) && self.eval(post, b, env),
            Rule::Or(a, b) => self.eval(post, a, env) || self.eval(post, b, env),
        }
    }

    /// Whether some assignment of the `?`-sources satisfies the rule.
    fn matches(&self, post: &Post, rule: &Rule) -> bool {
        let mut sources = Vec::new();
        rule.sources(&mut sources);
        let mut envs = vec![BTreeMap::new()];
        for src in sources {
            let items = self.items(post, src);
            envs = envs
                .into_iter()
                .flat_map(|env| {
                    items.iter().map(move |item| {
                        let mut env = env.clone();
                        env.insert(src, item.clone());
                        env
                    })
                })
                .collect();
        }
        envs.iter().any(|env| self.eval(post, rule, env))
    }
}

fn format_num(n: f64) -> String {
    if n.fract() == 0.0 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

fn fold(v: &V) -> V {
    match v {
        V::Null => V::Text(String::new()),
        other => other.clone(),
    }
}

fn text_of(v: &V) -> Option<String> {
    match v {
        V::Null => None,
        V::Num(n) => Some(format_num(*n)),
        V::Text(t) => Some(t.clone()),
    }
}

fn order(x: &V, y: &V) -> Option<std::cmp::Ordering> {
    match (x, y) {
        (V::Null, _) | (_, V::Null) => None,
        (V::Num(a), V::Num(b)) => a.partial_cmp(b),
        (V::Text(a), V::Text(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
        (V::Num(_), V::Text(_)) => Some(std::cmp::Ordering::Less),
        (V::Text(_), V::Num(_)) => Some(std::cmp::Ordering::Greater),
    }
}

/// PocketBase's wrapping of a bound `~` value (written independently of the compiler).
fn like_pattern(text: &str) -> String {
    if text.contains('%') {
        return text.to_string();
    }
    let mut out = String::from("%");
    for ch in text.chars() {
        if matches!(ch, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('%');
    out
}

/// SQL LIKE with `ESCAPE '\'`, ASCII case-insensitive.
fn like(subject: &str, pattern: &str) -> bool {
    fn go(s: &[u8], p: &[u8]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some((b'%', rest)) => (0..=s.len()).any(|i| go(&s[i..], rest)),
            Some((b'_', rest)) => !s.is_empty() && go(&s[1..], rest),
            Some((b'\\', rest)) if !rest.is_empty() => {
                !s.is_empty() && s[0].eq_ignore_ascii_case(&rest[0]) && go(&s[1..], &rest[1..])
            }
            Some((c, rest)) => !s.is_empty() && s[0].eq_ignore_ascii_case(c) && go(&s[1..], rest),
        }
    }
    go(subject.as_bytes(), pattern.as_bytes())
}

// ---------------------------------------------------------------------------
// The generator.
// ---------------------------------------------------------------------------

const OPS: [&str; 16] = [
    "=", "!=", ">", ">=", "<", "<=", "~", "!~", "?=", "?!=", "?>", "?>=", "?<", "?<=", "?~", "?!~",
];

fn literal(class: Class) -> BoxedStrategy<Side> {
    let empty = prop_oneof![Just(Side::Null), Just(Side::Text(String::new()))];
    match class {
        Class::Text => prop_oneof![3 => proptest::sample::select(TEXTS).prop_map(|t| Side::Text(t.to_string())), 1 => empty]
            .boxed(),
        Class::Num => prop_oneof![3 => proptest::sample::select(NUMBERS).prop_map(Side::Num), 1 => empty].boxed(),
        Class::Bool => prop_oneof![any::<bool>().prop_map(Side::Bool), Just(Side::Null)].boxed(),
        Class::Json => prop_oneof![
            proptest::sample::select(NUMBERS).prop_map(Side::Num),
            proptest::sample::select(TEXTS).prop_map(|t| Side::Text(t.to_string())),
            any::<bool>().prop_map(Side::Bool),
            empty,
        ]
        .boxed(),
    }
}

fn comparison() -> impl Strategy<Value = Rule> {
    (
        proptest::sample::select(&Op::ALL[..]),
        proptest::sample::select(&OPS[..]),
        any::<u8>(),
        any::<u8>(),
    )
        .prop_flat_map(|(left, op, pick, flip)| {
            let class = left.class();
            let same_class: Vec<Op> = Op::ALL
                .iter()
                .copied()
                .filter(|o| {
                    o.class() == class
                        && *o != left
                        && (o.source().is_none() || o.source() != left.source())
                        && class != Class::Json
                })
                .collect();
            let right: BoxedStrategy<Side> = if pick % 3 == 0 && !same_class.is_empty() {
                proptest::sample::select(same_class)
                    .prop_map(Side::Op)
                    .boxed()
            } else {
                literal(class)
            };
            right.prop_map(move |right| {
                if flip % 4 == 0 {
                    Rule::Cmp(right, op, Side::Op(left))
                } else {
                    Rule::Cmp(Side::Op(left), op, right)
                }
            })
        })
}

fn rule() -> impl Strategy<Value = Rule> {
    comparison().prop_recursive(3, 6, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Rule::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner).prop_map(|(a, b)| Rule::Or(Box::new(a), Box::new(b))),
        ]
    })
}

// ---------------------------------------------------------------------------
// The test.
// ---------------------------------------------------------------------------

fn contexts(schema: &TestSchema) -> Vec<(Option<&'static str>, RequestContext)> {
    let mut user = RequestContext::guest(NOW_MS);
    let record = match json!({"id": "u1", "email": "u1@x.io"}) {
        Json::Object(map) => map,
        _ => Map::new(),
    };
    user.auth = Some(AuthContext::new(schema.get("users"), record));
    vec![(Some("u1"), user), (None, RequestContext::guest(NOW_MS))]
}

fn run_rule(db: &mut dyn Db, schema: &TestSchema, ctx: &RequestContext, text: &str) -> Vec<String> {
    let posts = schema.get("posts");
    let opts = CompileOptions::rule(db.dialect(), ctx);
    let expr =
        compile_rule(schema, posts, text, &opts).unwrap_or_else(|err| panic!("{text}: {err}"));
    let query = SelectBuilder::new(db.dialect(), posts, ctx)
        .filter(&expr)
        .list();
    let mut ids = db
        .ids(&query)
        .unwrap_or_else(|err| panic!("{:?}: {text}: {err}\n{}", db.dialect(), query.sql));
    ids.sort();
    ids
}

#[test]
fn random_rules_agree_with_the_reference_on_both_databases() {
    let schema = schema();
    let data = dataset();
    let rows = rows(&data);
    let lite = RefCell::new(Sqlite::new());
    setup(&mut *lite.borrow_mut(), &schema, &rows);
    let pg = RefCell::new(Postgres::new("diff"));
    setup(&mut *pg.borrow_mut(), &schema, &rows);
    let contexts = contexts(&schema);
    let cases = std::env::var("BASALT_DIFF_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(400);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&rule(), |rule| {
        let text = rule.write();
        for (auth, ctx) in &contexts {
            let eval = Eval {
                data: &data,
                auth: *auth,
            };
            let mut expected: Vec<String> = data
                .posts
                .iter()
                .filter(|post| eval.matches(post, &rule))
                .map(|post| post.id.clone())
                .collect();
            expected.sort();
            let on_sqlite = run_rule(&mut *lite.borrow_mut(), &schema, ctx, &text);
            let on_pg = run_rule(&mut *pg.borrow_mut(), &schema, ctx, &text);
            prop_assert_eq!(
                &on_sqlite,
                &expected,
                "sqlite vs reference, auth {:?}: {}",
                auth,
                text
            );
            prop_assert_eq!(
                &on_pg,
                &expected,
                "postgres vs reference, auth {:?}: {}",
                auth,
                text
            );
        }
        Ok(())
    });
    if let Err(err) = result {
        panic!("{err}");
    }
}

/// A guest never passes a rule that compares `@request.auth.*` with a record value or
/// a non-empty literal, whatever the operator and whatever else is ANDed to it.
#[test]
fn a_guest_never_passes_a_rule_naming_the_auth_id() {
    let schema = schema();
    let data = dataset();
    let rows = rows(&data);
    let (mut lite, mut pg) = both(&schema, &rows, "guest");
    let guest = RequestContext::guest(NOW_MS);
    let others = [
        "author",
        "title",
        "likes:each",
        "likes.id",
        "tags:each",
        "comments_via_post.post",
        "author.name",
        "''x'",
    ];
    let mut checked = 0;
    for other in others {
        for op in OPS {
            for auth in [
                "@request.auth.id",
                "@request.auth.name",
                "@request.auth.email",
            ] {
                for text in [
                    format!("{other} {op} {auth}"),
                    format!("{auth} {op} {other}"),
                    format!("{other} {op} {auth} && views >= 0"),
                ] {
                    let text = text.replace("''x'", "'x'");
                    for db in [&mut lite as &mut dyn Db, &mut pg as &mut dyn Db] {
                        let ids = run_rule(db, &schema, &guest, &text);
                        assert!(
                            ids.is_empty(),
                            "a guest passed {text:?} on {:?}: {ids:?}",
                            db.dialect()
                        );
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked > 1000);
    // The explicit guest check still works.
    let ids = run_rule(&mut lite, &schema, &guest, "@request.auth.id = ''");
    assert_eq!(ids.len(), data.posts.len());
    let _ = Dialect::Sqlite;
}
