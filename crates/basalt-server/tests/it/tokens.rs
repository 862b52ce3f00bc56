//! Tokens: forged, unsigned or differently signed tokens are guests; a password change
//! (tokenKey rotation) and a deleted record revoke existing tokens.

use jsonwebtoken::Algorithm;
use reqwest::Method;
use serde_json::json;

use crate::support::jwt::{claims, resign, unsigned};
use crate::support::scenario::{Scenario, get, patch, post};
use crate::support::{TestApp, Who};

const NEED_AUTH: &str = "The request requires valid record authorization token.";
const NOT_FOUND: &str = "The requested resource wasn't found.";

/// The guest result of three requests: viewing yourself, refreshing, reading settings.
fn as_guest(label: &str, who: Who, user_id: &str) -> Vec<Scenario> {
    vec![
        get(
            &format!("{label}: viewing the user gives the guest 404"),
            format!("/api/collections/users/records/{user_id}"),
        )
        .who(who.clone())
        .error(404, NOT_FOUND),
        post(
            &format!("{label}: refresh gives the guest 401"),
            "/api/collections/users/auth-refresh",
        )
        .who(who.clone())
        .error(401, NEED_AUTH),
        get(
            &format!("{label}: settings give the guest 401"),
            "/api/settings",
        )
        .who(who)
        .error(401, NEED_AUTH),
    ]
}

#[tokio::test]
async fn forged_tokens_are_guests() {
    let app = TestApp::spawn().await;
    let alice = app.add_user("alice", "alice-password").await;
    let real = app.token(&Who::User("alice")).unwrap();
    let su = app.superuser_token();
    let claims = claims(&real);
    assert_eq!(claims["type"], "auth");
    assert_eq!(claims["id"], alice.as_str());
    assert_eq!(claims["collectionId"], "_pb_users_auth_");
    let mut table = vec![
        get(
            "the real token works",
            format!("/api/collections/users/records/{alice}"),
        )
        .who(Who::User("alice"))
        .subset(json!({"id": alice})),
    ];
    let forged = [
        (
            "wrong HS256 key",
            resign(&real, Algorithm::HS256, b"not-the-key"),
        ),
        ("HS512", resign(&real, Algorithm::HS512, b"not-the-key")),
        ("HS384", resign(&real, Algorithm::HS384, b"not-the-key")),
        ("alg none", unsigned(&real)),
        (
            "alg none with the real signature",
            format!("{}{}", unsigned(&real), real.rsplit('.').next().unwrap()),
        ),
        ("truncated signature", real[..real.len() - 2].to_string()),
        ("garbage", "garbage".to_string()),
        (
            "superuser claims with a wrong key",
            resign(&su, Algorithm::HS256, b"not-the-key"),
        ),
        ("superuser claims unsigned", unsigned(&su)),
    ];
    for (label, token) in forged {
        table.extend(as_guest(label, Who::Token(token), &alice));
    }
    table.push(
        get(
            "an invalid token on a public endpoint is a guest, not an error",
            "/api/health",
        )
        .who(Who::Token("garbage".into()))
        .subset(json!({"code": 200, "data": {}})),
    );
    app.check(table).await;
}

#[tokio::test]
async fn a_password_change_revokes_old_tokens() {
    let app = TestApp::spawn().await;
    let alice = app.add_user("alice", "alice-password").await;
    let bob = app.add_user("bob", "bob-password1").await;
    let old_alice = Who::Token(app.token(&Who::User("alice")).unwrap());
    let old_bob = Who::Token(app.token(&Who::User("bob")).unwrap());
    let me = format!("/api/collections/users/records/{alice}");
    let login = "/api/collections/users/auth-with-password";
    let mut table = vec![
        patch("a password change needs oldPassword", me.clone())
            .who(Who::User("alice"))
            .json(
                json!({"password": "alice-new-password", "passwordConfirm": "alice-new-password"}),
            )
            .status(400)
            .subset(json!({"data": {"oldPassword": {"code": "validation_required"}}})),
        patch("a wrong oldPassword", me.clone())
            .who(Who::User("alice"))
            .json(
                json!({"password": "alice-new-password", "passwordConfirm": "alice-new-password",
                         "oldPassword": "wrong-password"}),
            )
            .status(400)
            .subset(json!({"data": {"oldPassword": "[any]"}})),
        get("the token still works after failed changes", me.clone())
            .who(old_alice.clone())
            .subset(json!({"id": alice})),
        patch("the user changes their password", me.clone())
            .who(Who::User("alice"))
            .json(
                json!({"password": "alice-new-password", "passwordConfirm": "alice-new-password",
                         "oldPassword": "alice-password"}),
            )
            .subset(json!({"id": alice, "password": "[absent]"})),
        patch(
            "a superuser sets bob's password",
            format!("/api/collections/users/records/{bob}"),
        )
        .who(Who::Superuser)
        .json(json!({"password": "bob-new-password", "passwordConfirm": "bob-new-password"}))
        .subset(json!({"id": bob})),
        post("the old password fails", login)
            .json(json!({"identity": "alice@example.com", "password": "alice-password"}))
            .error(400, "Failed to authenticate."),
        post("the new password works", login)
            .json(json!({"identity": "alice@example.com", "password": "alice-new-password"}))
            .subset(json!({"record": {"id": alice}})),
    ];
    table.extend(as_guest("alice's old token", old_alice, &alice));
    table.extend(as_guest("bob's old token", old_bob, &bob));
    app.check(table).await;
}

#[tokio::test]
async fn a_deleted_users_token_is_a_guest() {
    let app = TestApp::spawn().await;
    let alice = app.add_user("alice", "alice-password").await;
    app.expect(
        204,
        Method::DELETE,
        &format!("/api/collections/users/records/{alice}"),
        &Who::User("alice"),
        None,
    )
    .await;
    app.check(vec![
        post(
            "refresh after deletion",
            "/api/collections/users/auth-refresh",
        )
        .who(Who::User("alice"))
        .error(401, NEED_AUTH),
        post(
            "login after deletion",
            "/api/collections/users/auth-with-password",
        )
        .json(json!({"identity": "alice@example.com", "password": "alice-password"}))
        .error(400, "Failed to authenticate."),
    ])
    .await;
}

#[tokio::test]
async fn only_fresh_hs256_auth_tokens_with_the_real_key_authenticate() {
    use crate::support::jwt::{now, real_key, sign};
    let app = TestApp::spawn().await;
    let alice = app.add_user("alice", "alice-password").await;
    let key = real_key(&app.data_dir(), "users", &alice);
    let base = json!({"id": alice, "type": "auth", "collectionId": "_pb_users_auth_",
                      "refreshable": true, "exp": now() + 3600});
    let with = |key_name: &str, value: serde_json::Value| {
        let mut claims = base.clone();
        claims[key_name] = value;
        claims
    };
    let control = sign(&base, Algorithm::HS256, &key);
    let mut table = vec![
        get(
            "control: the re-created token authenticates",
            format!("/api/collections/users/records/{alice}"),
        )
        .who(Who::Token(control))
        .subset(json!({"id": alice})),
    ];
    let bad = [
        (
            "expired",
            sign(&with("exp", json!(now() - 60)), Algorithm::HS256, &key),
        ),
        (
            "no exp",
            sign(
                &json!({"id": alice, "type": "auth", "collectionId": "_pb_users_auth_"}),
                Algorithm::HS256,
                &key,
            ),
        ),
        (
            "HS512 with the real key",
            sign(&base, Algorithm::HS512, &key),
        ),
        (
            "HS384 with the real key",
            sign(&base, Algorithm::HS384, &key),
        ),
        (
            "a verification token",
            sign(&with("type", json!("verification")), Algorithm::HS256, &key),
        ),
        (
            "a file token",
            sign(&with("type", json!("file")), Algorithm::HS256, &key),
        ),
        (
            "another collection id",
            sign(
                &with("collectionId", json!("pbc_3142635823")),
                Algorithm::HS256,
                &key,
            ),
        ),
        (
            "another record id",
            sign(
                &with("id", json!("abcdefghijklmno")),
                Algorithm::HS256,
                &key,
            ),
        ),
    ];
    for (label, token) in bad {
        table.extend(as_guest(label, Who::Token(token), &alice));
    }
    app.check(table).await;
}

#[tokio::test]
async fn a_new_auth_token_secret_revokes_the_collections_tokens() {
    let app = TestApp::spawn().await;
    let alice = app.add_user("alice", "alice-password").await;
    let old = Who::Token(app.token(&Who::User("alice")).unwrap());
    let mut table = vec![
        patch("set a new auth token secret", "/api/collections/users")
            .who(Who::Superuser)
            .json(json!({"authToken": {"secret": "x".repeat(50)}}))
            .subset(json!({"authToken": {"duration": 432000, "secret": "[absent]"}})),
    ];
    table.extend(as_guest("a token signed with the old secret", old, &alice));
    table.push(
        post(
            "a fresh login works",
            "/api/collections/users/auth-with-password",
        )
        .json(json!({"identity": "alice@example.com", "password": "alice-password"}))
        .subset(json!({"token": "[token]"})),
    );
    app.check(table).await;
}
