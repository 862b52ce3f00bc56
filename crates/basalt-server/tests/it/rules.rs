//! The five API rules: the guest / owner / other user / superuser matrix on an owner
//! rule, locked (null) rules, and open ("") rules.

use serde_json::json;

use crate::support::scenario::{Scenario, delete, get, patch, post};
use crate::support::{TestApp, Who};

const NOT_FOUND: &str = "The requested resource wasn't found.";
const SUPERUSERS_ONLY: &str = "Only superusers can perform this action.";

struct Fixture {
    app: TestApp,
    alice: String,
    alice_note: String,
    alice_spare: String,
    bob_note: String,
}

async fn fixture() -> Fixture {
    let app = TestApp::spawn().await;
    let alice = app.add_user("alice", "alice-password").await;
    let bob = app.add_user("bob", "bob-password1").await;
    let owner = "owner = @request.auth.id";
    app.create_collection(json!({
        "name": "notes",
        "listRule": owner, "viewRule": owner, "createRule": owner,
        "updateRule": owner, "deleteRule": owner,
        "fields": [
            {"name": "title", "type": "text"},
            {"name": "owner", "type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 1}
        ]
    }))
    .await;
    let note = |title: &str, owner: &str| json!({"title": title, "owner": owner});
    let alice_note = app.create_record("notes", note("alice note", &alice)).await;
    let alice_spare = app
        .create_record("notes", note("alice spare", &alice))
        .await;
    let bob_note = app.create_record("notes", note("bob note", &bob)).await;
    let id = |v: &serde_json::Value| v["id"].as_str().unwrap().to_string();
    Fixture {
        alice_note: id(&alice_note),
        alice_spare: id(&alice_spare),
        bob_note: id(&bob_note),
        alice,
        app,
    }
}

fn titles(titles: &[&str]) -> serde_json::Value {
    json!({
        "totalItems": titles.len(),
        "items": titles.iter().map(|t| json!({"title": t})).collect::<Vec<_>>(),
    })
}

#[tokio::test]
async fn owner_rule_matrix() {
    let f = fixture().await;
    let records = "/api/collections/notes/records";
    let list = format!("{records}?fields=title");
    let alice_note = format!("{records}/{}", f.alice_note);
    let alice = Who::User("alice");
    let bob = Who::User("bob");
    let su = Who::Superuser;
    let create_body = json!({"title": "new", "owner": f.alice});
    let failed_create = "Failed to create record.";
    f.app
        .check(vec![
            // list: filtered, never an error
            get("list as guest", list.clone()).subset(titles(&[])),
            get("list as owner", list.clone())
                .who(alice.clone())
                .subset(titles(&["alice note", "alice spare"])),
            get("list as other user", list.clone())
                .who(bob.clone())
                .subset(titles(&["bob note"])),
            get("list as superuser", list.clone())
                .who(su.clone())
                .subset(titles(&["alice note", "alice spare", "bob note"])),
            get(
                "client filter is ANDed with the rule",
                format!("{list}&filter=title%20~%20%27bob%27"),
            )
            .who(alice.clone())
            .subset(titles(&[])),
            // view: 404 when denied
            get("view as guest", alice_note.clone()).error(404, NOT_FOUND),
            get("view as other user", alice_note.clone())
                .who(bob.clone())
                .error(404, NOT_FOUND),
            get("view as owner", alice_note.clone())
                .who(alice.clone())
                .subset(json!({"title": "alice note", "owner": f.alice})),
            get("view as superuser", alice_note.clone())
                .who(su.clone())
                .subset(json!({"title": "alice note"})),
            // create: 400 when denied
            post("create as guest", records)
                .json(create_body.clone())
                .error(400, failed_create),
            post("create for someone else", records)
                .who(bob.clone())
                .json(create_body.clone())
                .error(400, failed_create),
            post("create as owner", records)
                .who(alice.clone())
                .json(create_body.clone())
                .subset(json!({"title": "new", "owner": f.alice})),
            post("create as superuser", records)
                .who(su.clone())
                .json(create_body.clone())
                .subset(json!({"title": "new"})),
            get("denied creates wrote nothing", list.clone())
                .who(su.clone())
                .subset(json!({"totalItems": 5})),
            // update: 404 when denied
            patch("update as guest", alice_note.clone())
                .json(json!({"title": "guest edit"}))
                .error(404, NOT_FOUND),
            patch("update as other user", alice_note.clone())
                .who(bob.clone())
                .json(json!({"title": "bob edit"}))
                .error(404, NOT_FOUND),
            patch("update as owner", alice_note.clone())
                .who(alice.clone())
                .json(json!({"title": "alice edit"}))
                .subset(json!({"title": "alice edit"})),
            patch("update as superuser", alice_note.clone())
                .who(su.clone())
                .json(json!({"title": "su edit"}))
                .subset(json!({"title": "su edit"})),
            // delete: 404 when denied
            delete("delete as guest", alice_note.clone()).error(404, NOT_FOUND),
            delete("delete as other user", alice_note.clone())
                .who(bob.clone())
                .error(404, NOT_FOUND),
            get("denied deletes kept the record", alice_note.clone())
                .who(su.clone())
                .subset(json!({"title": "su edit"})),
            delete("delete as owner", format!("{records}/{}", f.alice_spare))
                .who(alice.clone())
                .no_content(),
            delete("delete as superuser", format!("{records}/{}", f.bob_note))
                .who(su.clone())
                .no_content(),
            get("what is left", list.clone())
                .who(su.clone())
                .subset(titles(&["su edit", "new", "new"])),
        ])
        .await;
}

#[tokio::test]
async fn null_rules_are_superuser_only_and_empty_rules_are_open() {
    let app = TestApp::spawn().await;
    app.add_user("alice", "alice-password").await;
    let fields = json!([{"name": "title", "type": "text"}]);
    app.create_collection(json!({"name": "locked", "fields": fields}))
        .await;
    app.create_collection(json!({
        "name": "open", "fields": fields,
        "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": ""
    }))
    .await;
    let locked = app
        .create_record("locked", json!({"title": "secret"}))
        .await;
    let locked_id = locked["id"].as_str().unwrap();
    let open = app.create_record("open", json!({"title": "public"})).await;
    let open_id = open["id"].as_str().unwrap();
    let mut table: Vec<Scenario> = Vec::new();
    for who in [Who::Guest, Who::User("alice")] {
        let base = "/api/collections/locked/records";
        for (action, scenario) in [
            ("list", get("", base.to_string())),
            ("view", get("", format!("{base}/{locked_id}"))),
            (
                "view of a missing id",
                get("", format!("{base}/nosuch000000000")),
            ),
            ("create", post("", base).json(json!({"title": "x"}))),
            (
                "update",
                patch("", format!("{base}/{locked_id}")).json(json!({"title": "x"})),
            ),
            (
                "update of a missing id",
                patch("", format!("{base}/nosuch000000000")).json(json!({"title": "x"})),
            ),
            ("delete", delete("", format!("{base}/{locked_id}"))),
        ] {
            let mut scenario = scenario.who(who.clone()).error(403, SUPERUSERS_ONLY);
            scenario.name = format!("null rule: {action} as {who:?}");
            table.push(scenario);
        }
    }
    let su = Who::Superuser;
    let locked_base = "/api/collections/locked/records";
    table.extend([
        get(
            "null rule: superuser list",
            format!("{locked_base}?fields=title"),
        )
        .who(su.clone())
        .subset(titles(&["secret"])),
        post("null rule: superuser create", locked_base)
            .who(su.clone())
            .json(json!({"title": "by su"}))
            .subset(json!({"title": "by su"})),
        patch(
            "null rule: superuser update",
            format!("{locked_base}/{locked_id}"),
        )
        .who(su.clone())
        .json(json!({"title": "changed"}))
        .subset(json!({"title": "changed"})),
        delete(
            "null rule: superuser delete",
            format!("{locked_base}/{locked_id}"),
        )
        .who(su.clone())
        .no_content(),
    ]);
    let open_base = "/api/collections/open/records";
    table.extend([
        get("open rule: guest list", format!("{open_base}?fields=title"))
            .subset(titles(&["public"])),
        get("open rule: guest view", format!("{open_base}/{open_id}"))
            .subset(json!({"title": "public"})),
        post("open rule: guest create", open_base)
            .json(json!({"title": "by guest"}))
            .subset(json!({"title": "by guest"})),
        patch("open rule: guest update", format!("{open_base}/{open_id}"))
            .json(json!({"title": "edited"}))
            .subset(json!({"title": "edited"})),
        delete("open rule: guest delete", format!("{open_base}/{open_id}")).no_content(),
        get(
            "open rule: what is left",
            format!("{open_base}?fields=title"),
        )
        .who(Who::User("alice"))
        .subset(titles(&["by guest"])),
    ]);
    app.check(table).await;
}

#[tokio::test]
async fn default_users_rules_expose_only_yourself() {
    let app = TestApp::spawn().await;
    let alice = app.add_user("alice", "alice-password").await;
    let bob = app.add_user("bob", "bob-password1").await;
    let users = "/api/collections/users/records";
    app.check(vec![
        get("guest list of users is empty", users).subset(json!({"totalItems": 0, "items": []})),
        get(
            "a user lists only themself",
            format!("{users}?fields=id,email"),
        )
        .who(Who::User("alice"))
        .snapshot(
            json!({"page": 1, "perPage": 30, "totalItems": 1, "totalPages": 1,
                             "items": [{"id": alice, "email": "alice@example.com"}]}),
        ),
        get("a user cannot view another", format!("{users}/{bob}"))
            .who(Who::User("alice"))
            .error(404, NOT_FOUND),
        get(
            "a user views themself with email",
            format!("{users}/{alice}"),
        )
        .who(Who::User("alice"))
        .subset(json!({"email": "alice@example.com", "password": "[absent]",
                           "tokenKey": "[absent]", "emailVisibility": false})),
        get("superusers see emails", format!("{users}/{bob}"))
            .who(Who::Superuser)
            .subset(
                json!({"email": "bob@example.com", "password": "[absent]", "tokenKey": "[absent]"}),
            ),
        patch("a user cannot update another", format!("{users}/{bob}"))
            .who(Who::User("alice"))
            .json(json!({"name": "hacked"}))
            .error(404, NOT_FOUND),
        delete("a user cannot delete another", format!("{users}/{bob}"))
            .who(Who::User("alice"))
            .error(404, NOT_FOUND),
        get(
            "the superusers collection is locked",
            "/api/collections/_superusers/records",
        )
        .who(Who::User("alice"))
        .error(403, SUPERUSERS_ONLY),
    ])
    .await;
}

/// PocketBase re-fetches the record through the update rule before it validates the
/// submitted data, so a denied caller learns nothing from validation errors.
#[tokio::test]
async fn update_denied_by_the_rule_is_404_even_with_invalid_data() {
    let app = TestApp::spawn().await;
    let alice = app.add_user("alice", "alice-password").await;
    app.add_user("bob", "bob-password1").await;
    let owner = "owner = @request.auth.id";
    app.create_collection(json!({
        "name": "notes", "viewRule": owner, "updateRule": owner,
        "fields": [
            {"name": "title", "type": "text", "max": 10},
            {"name": "owner", "type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 1}
        ]
    }))
    .await;
    let note = app
        .create_record("notes", json!({"title": "mine", "owner": alice}))
        .await;
    let path = format!(
        "/api/collections/notes/records/{}",
        note["id"].as_str().unwrap()
    );
    let not_found = "The requested resource wasn't found.";
    app.check(vec![
        patch("other user, invalid title", path.clone())
            .who(Who::User("bob"))
            .json(json!({"title": "far too long for the field"}))
            .error(404, not_found),
        patch("other user, id change", path.clone())
            .who(Who::User("bob"))
            .json(json!({"id": "abcdefghijklmno"}))
            .error(404, not_found),
        patch("guest, invalid title", path.clone())
            .json(json!({"title": "far too long for the field"}))
            .error(404, not_found),
        get("unchanged", path)
            .who(Who::User("alice"))
            .subset(json!({"title": "mine"})),
    ])
    .await;
}

#[tokio::test]
async fn rules_read_request_headers_query_body_and_other_collections() {
    let app = TestApp::spawn().await;
    let alice = app.add_user("alice", "alice-password").await;
    let bob = app.add_user("bob", "bob-password1").await;
    let users = json!({"type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 1});
    let mut user_field = users.clone();
    user_field["name"] = json!("user");
    app.create_collection(json!({"name": "admins", "fields": [user_field]}))
        .await;
    app.create_record("admins", json!({"user": bob})).await;
    let mut author = users.clone();
    author["name"] = json!("author");
    app.create_collection(json!({
        "name": "msgs",
        "listRule": "@request.headers.x_team = 'red'",
        "viewRule": "@request.query.key = 'open' || author = @request.auth.id",
        "createRule": "@request.auth.id != '' && @request.body.author = @request.auth.id && @request.body.body != 'forbidden'",
        "updateRule": "author = @request.auth.id && @request.body.status:isset = false",
        "deleteRule": "@collection.admins.user ?= @request.auth.id",
        "fields": [
            {"name": "body", "type": "text"},
            {"name": "status", "type": "select", "values": ["open", "closed"], "maxSelect": 1},
            author
        ]
    }))
    .await;
    let msg = app
        .create_record("msgs", json!({"body": "hello", "author": alice}))
        .await;
    let records = "/api/collections/msgs/records";
    let one = format!("{records}/{}", msg["id"].as_str().unwrap());
    let alice_who = Who::User("alice");
    let bob_who = Who::User("bob");
    app.check(vec![
        get("list without the header", records).subset(json!({"totalItems": 0})),
        get("list with the header", records)
            .header("X-Team", "red")
            .subset(json!({"totalItems": 1, "items": [{"body": "hello"}]})),
        get("list with another team", records)
            .header("X-Team", "blue")
            .subset(json!({"totalItems": 0})),
        get("view as guest", one.clone()).error(404, NOT_FOUND),
        get("view with the query key", format!("{one}?key=open")).subset(json!({"body": "hello"})),
        get("view as author", one.clone())
            .who(alice_who.clone())
            .subset(json!({"body": "hello"})),
        get("view as someone else", one.clone())
            .who(bob_who.clone())
            .error(404, NOT_FOUND),
        post("create for yourself", records)
            .who(alice_who.clone())
            .json(json!({"body": "mine", "author": alice}))
            .subset(json!({"body": "mine"})),
        post("create with a forbidden body", records)
            .who(alice_who.clone())
            .json(json!({"body": "forbidden", "author": alice}))
            .error(400, "Failed to create record."),
        post("create for someone else", records)
            .who(alice_who.clone())
            .json(json!({"body": "theirs", "author": bob}))
            .error(400, "Failed to create record."),
        post("create as guest", records)
            .json(json!({"body": "guest", "author": alice}))
            .error(400, "Failed to create record."),
        patch("update without status", one.clone())
            .who(alice_who.clone())
            .json(json!({"body": "edited"}))
            .subset(json!({"body": "edited"})),
        patch("update that sets status", one.clone())
            .who(alice_who.clone())
            .json(json!({"status": "closed"}))
            .error(404, NOT_FOUND),
        patch("update by someone else", one.clone())
            .who(bob_who.clone())
            .json(json!({"body": "bob"}))
            .error(404, NOT_FOUND),
        delete("delete by a non-admin author", one.clone())
            .who(alice_who.clone())
            .error(404, NOT_FOUND),
        delete("delete by an admin", one.clone())
            .who(bob_who.clone())
            .no_content(),
        get("what is left", records)
            .header("X-Team", "red")
            .subset(json!({"totalItems": 1, "items": [{"body": "mine", "status": ""}]})),
    ])
    .await;
}
