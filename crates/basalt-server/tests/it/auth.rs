//! Auth collections: auth-with-password, auth-refresh, auth-methods and sign-up.

use serde_json::json;

use crate::support::scenario::{get, patch, post};
use crate::support::{SU_EMAIL, SU_PASSWORD, TestApp, Who};

const FAILED: &str = "Failed to authenticate.";

#[tokio::test]
async fn auth_with_password() {
    let app = TestApp::spawn().await;
    let alice = app.add_user("alice", "alice-password").await;
    app.create_collection(json!({"name": "posts", "fields": [{"name": "title", "type": "text"}]}))
        .await;
    let login = |collection: &str| format!("/api/collections/{collection}/auth-with-password");
    let credentials =
        |identity: &str, password: &str| json!({"identity": identity, "password": password});
    app.check(vec![
        post("user login", login("users"))
            .json(credentials("alice@example.com", "alice-password"))
            .snapshot(json!({
                "token": "[token]",
                "record": {
                    "collectionId": "_pb_users_auth_", "collectionName": "users", "id": alice,
                    "email": "alice@example.com", "emailVisibility": false, "verified": false,
                    "name": "", "avatar": "", "created": "[date]", "updated": "[date]",
                },
            })),
        post("superuser login", login("_superusers"))
            .json(credentials(SU_EMAIL, SU_PASSWORD))
            .subset(json!({"token": "[token]", "record": {
                "collectionId": "pbc_3142635823", "collectionName": "_superusers",
                "email": SU_EMAIL, "password": "[absent]", "tokenKey": "[absent]"}})),
        post("wrong password", login("users"))
            .json(credentials("alice@example.com", "wrong-password"))
            .error(400, FAILED),
        post("unknown user gets the same answer", login("users"))
            .json(credentials("nobody@example.com", "alice-password"))
            .error(400, FAILED),
        post("a user is not a superuser", login("_superusers"))
            .json(credentials("alice@example.com", "alice-password"))
            .error(400, FAILED),
        post("empty identity and password", login("users"))
            .json(credentials("", ""))
            .status(400)
            .snapshot(json!({"status": 400,
            "message": "An error occurred while validating the submitted data.",
            "data": {
                "identity": {"code": "validation_required", "message": "Cannot be blank."},
                "password": {"code": "validation_required", "message": "Cannot be blank."},
            }})),
        post("empty body", login("users"))
            .status(400)
            .subset(json!({"data": {"identity": {"code": "validation_required"},
                                    "password": {"code": "validation_required"}}})),
        post("malformed JSON", login("users"))
            .raw("application/json", "{\"identity\":")
            .error(400, "An error occurred while loading the submitted data."),
        post("urlencoded credentials", login("users"))
            .raw(
                "application/x-www-form-urlencoded",
                "identity=alice%40example.com&password=alice-password",
            )
            .subset(json!({"token": "[token]", "record": {"id": alice}})),
        post("a base collection has no auth", login("posts"))
            .json(credentials("alice@example.com", "alice-password"))
            .error(404, "Missing or invalid auth collection context."),
        post("unknown collection", login("nosuch"))
            .json(credentials("alice@example.com", "alice-password"))
            .error(404, "Missing or invalid auth collection context."),
        get(
            "a Bearer prefix is accepted",
            format!("/api/collections/users/records/{alice}"),
        )
        .who(Who::Token(format!(
            "Bearer {}",
            app.token(&Who::User("alice")).unwrap()
        )))
        .subset(json!({"id": alice})),
    ])
    .await;
}

#[tokio::test]
async fn auth_refresh_and_methods() {
    let app = TestApp::spawn().await;
    let alice = app.add_user("alice", "alice-password").await;
    let refresh = |collection: &str| format!("/api/collections/{collection}/auth-refresh");
    app.check(vec![
        post("guest refresh", refresh("users")).error(
            401,
            "The request requires valid record authorization token.",
        ),
        post("refresh with an invalid token", refresh("users"))
            .who(Who::Token("garbage".into()))
            .error(
                401,
                "The request requires valid record authorization token.",
            ),
        post("refresh on another collection", refresh("_superusers"))
            .who(Who::User("alice"))
            .error(
                403,
                "The request requires auth record from users collection.",
            ),
        post("refresh", refresh("users"))
            .who(Who::User("alice"))
            .subset(
                json!({"token": "[token]", "record": {"id": alice, "email": "alice@example.com"}}),
            ),
        post("superuser refresh", refresh("_superusers"))
            .who(Who::Superuser)
            .subset(json!({"token": "[token]", "record": {"email": SU_EMAIL}})),
        get("auth methods", "/api/collections/users/auth-methods").subset(json!({
            "password": {"enabled": true, "identityFields": ["email"]},
            "oauth2": {"enabled": false, "providers": []},
            "mfa": {"enabled": false},
            "otp": {"enabled": false},
        })),
        get(
            "auth methods with fields",
            "/api/collections/users/auth-methods?fields=password",
        )
        .snapshot(json!({"password": {"enabled": true, "identityFields": ["email"]}})),
        get(
            "auth methods of an unknown collection",
            "/api/collections/nosuch/auth-methods",
        )
        .status(404),
    ])
    .await;
    // A refreshed token authenticates.
    let (status, body) = app
        .request(
            reqwest::Method::POST,
            &refresh("users"),
            &Who::User("alice"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let fresh = Who::Token(body["token"].as_str().unwrap().to_string());
    let me = app
        .expect(
            200,
            reqwest::Method::GET,
            &format!("/api/collections/users/records/{alice}"),
            &fresh,
            None,
        )
        .await;
    assert_eq!(me["id"], alice.as_str());
}

#[tokio::test]
async fn sign_up_validates_and_hides_the_email() {
    let app = TestApp::spawn().await;
    let users = "/api/collections/users/records";
    let signup = |email: &str, password: &str, confirm: &str| json!({"email": email, "password": password, "passwordConfirm": confirm});
    app.check(vec![
        post("guest sign-up", users)
            .json(signup(
                "carol@example.com",
                "carol-password",
                "carol-password",
            ))
            .snapshot(json!({
                "collectionId": "_pb_users_auth_", "collectionName": "users", "id": "[id]",
                "emailVisibility": false, "verified": false, "name": "", "avatar": "",
                "created": "[date]", "updated": "[date]",
            })),
        post("duplicate email", users)
            .json(signup(
                "carol@example.com",
                "carol-password",
                "carol-password",
            ))
            .status(400)
            .subset(json!({"data": {"email": {"code": "validation_not_unique"}}})),
        post("password mismatch", users)
            .json(signup(
                "dave@example.com",
                "dave-password",
                "other-password",
            ))
            .status(400)
            .subset(json!({"data": {"passwordConfirm": {"code": "validation_values_mismatch"}}})),
        post("short password", users)
            .json(signup("dave@example.com", "short", "short"))
            .status(400)
            .subset(json!({"data": {"password": {"code": "validation_min_text_constraint"}}})),
        post("missing email", users)
            .json(json!({"password": "dave-password", "passwordConfirm": "dave-password"}))
            .status(400)
            .subset(json!({"data": {"email": {"code": "validation_required"}}})),
        post("a guest cannot set verified", users)
            .json(
                json!({"email": "erin@example.com", "password": "erin-password",
                         "passwordConfirm": "erin-password", "verified": true}),
            )
            .status(400)
            .subset(json!({"data": {"verified": {"code": "validation_values_mismatch"}}})),
        post("visible email is returned", users)
            .json(
                json!({"email": "fred@example.com", "password": "fred-password",
                         "passwordConfirm": "fred-password", "emailVisibility": true}),
            )
            .subset(json!({"email": "fred@example.com", "emailVisibility": true})),
        post(
            "the new user can log in",
            "/api/collections/users/auth-with-password",
        )
        .json(json!({"identity": "carol@example.com", "password": "carol-password"}))
        .subset(json!({"token": "[token]", "record": {"email": "carol@example.com"}})),
        get(
            "only the valid sign-ups were stored",
            "/api/collections/users/records?fields=email",
        )
        .who(Who::Superuser)
        .subset(json!({"totalItems": 2})),
    ])
    .await;
}

#[tokio::test]
async fn users_cannot_change_protected_fields_of_their_own_record() {
    let app = TestApp::spawn().await;
    let alice = app.add_user("alice", "alice-password").await;
    let me = format!("/api/collections/users/records/{alice}");
    app.check(vec![
        patch("a user changes their name", me.clone())
            .who(Who::User("alice"))
            .json(json!({"name": "Alice"}))
            .subset(json!({"name": "Alice", "email": "alice@example.com"})),
        patch("a user cannot change their email directly", me.clone())
            .who(Who::User("alice"))
            .json(json!({"email": "new-alice@example.com"}))
            .status(400)
            .subset(json!({"data": {"email": {"code": "validation_values_mismatch"}}})),
        patch("a user cannot verify themself", me.clone())
            .who(Who::User("alice"))
            .json(json!({"verified": true}))
            .status(400)
            .subset(json!({"data": {"verified": {"code": "validation_values_mismatch"}}})),
        patch("a superuser can", me.clone())
            .who(Who::Superuser)
            .json(json!({"verified": true, "email": "alice2@example.com"}))
            .subset(json!({"verified": true, "email": "alice2@example.com"})),
        post(
            "login with the new email",
            "/api/collections/users/auth-with-password",
        )
        .json(json!({"identity": "alice2@example.com", "password": "alice-password"}))
        .subset(json!({"record": {"id": alice, "verified": true}})),
    ])
    .await;
}

#[tokio::test]
async fn hidden_emails_are_neither_shown_nor_filterable() {
    let app = TestApp::spawn().await;
    let alice = app.add_user("alice", "alice-password").await;
    app.create_record(
        "users",
        json!({"email": "fred@example.com", "password": "fred-password",
               "passwordConfirm": "fred-password", "emailVisibility": true}),
    )
    .await;
    app.expect(
        200,
        reqwest::Method::PATCH,
        "/api/collections/users",
        &Who::Superuser,
        Some(json!({"listRule": "", "viewRule": ""})),
    )
    .await;
    app.create_collection(json!({"name": "posts", "listRule": "", "fields": [
        {"name": "title", "type": "text"},
        {"name": "author", "type": "relation", "collectionId": "_pb_users_auth_", "maxSelect": 1}
    ]}))
    .await;
    app.create_record("posts", json!({"title": "by alice", "author": alice}))
        .await;
    let users = "/api/collections/users/records";
    let filter = |expr: &str| {
        format!(
            "{users}?fields=id&filter={}",
            crate::records_list::encode(expr)
        )
    };
    app.check(vec![
        get(
            "a guest sees emails only when visible",
            format!("{users}?sort=created&fields=email,emailVisibility"),
        )
        .snapshot(
            json!({"page": 1, "perPage": 30, "totalItems": 2, "totalPages": 1, "items": [
                {"emailVisibility": false},
                {"email": "fred@example.com", "emailVisibility": true},
            ]}),
        ),
        get(
            "a hidden email does not match a guest filter",
            filter("email = 'alice@example.com'"),
        )
        .subset(json!({"totalItems": 0})),
        get(
            "a hidden email does not match a LIKE either",
            filter("email ~ 'alice'"),
        )
        .subset(json!({"totalItems": 0})),
        get(
            "a visible email matches",
            filter("email = 'fred@example.com'"),
        )
        .subset(json!({"totalItems": 1})),
        get(
            "not even the owner matches their own hidden email (as in PocketBase)",
            filter("email = 'alice@example.com'"),
        )
        .who(Who::User("alice"))
        .subset(json!({"totalItems": 0})),
        get(
            "a superuser matches any email",
            filter("email = 'alice@example.com'"),
        )
        .who(Who::Superuser)
        .subset(json!({"totalItems": 1})),
        get(
            "a hidden email through a relation",
            format!(
                "/api/collections/posts/records?fields=title&filter={}",
                crate::records_list::encode("author.email = 'alice@example.com'")
            ),
        )
        .subset(json!({"totalItems": 0})),
        get("tokenKey is not filterable", filter("tokenKey != ''")).error_any_message(400),
        get("password is not filterable", filter("password != ''")).error_any_message(400),
        get("tokenKey is not sortable", format!("{users}?sort=tokenKey")).error_any_message(400),
    ])
    .await;
}
