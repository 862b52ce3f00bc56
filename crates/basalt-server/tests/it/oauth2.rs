//! OAuth2 sign-in against a real OpenID Connect provider written for these tests and
//! run on loopback: it shows a (pretend) login page at `/authorize` that redirects back
//! with a code, checks the code, the client secret and the PKCE S256 verifier at
//! `/token`, signs real RS256 id_tokens (key in `support/oidc_test_key.pem`, public half
//! at `/jwks`) and serves `/userinfo`. The test plays the browser.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use reqwest::Method;
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};

use crate::realtime::Sse;
use crate::support::{TestApp, Who};

const KEY_PEM: &str = include_str!("support/oidc_test_key.pem");
/// The modulus of that key, base64url.
const KEY_N: &str = "xy3sayXUkrbck8wNvBsgtghqhO_uNdvzr-x3UcNkjgfaAN5VO1GOFXizoJS6AvWJqZBq-QM72Emg2p-H3jMWUigXxg_IIYf2h_iT4dvAHwQbQwFXbQ-9XmyU24Datiexdxxq5RryLSSU3WJV2rhhs0oTw6Udw45cWLJfp8P_hvZTErxeDjRzb2HdPXif1XsNbmjnhEpmUfLeZq-n3EX3qHSEH-AiwCmKfKo1-Jgq6OdcCsiRJS-9JPuhv6nXBTrTgBR4muTKN4c-YTPeTFAEcskJ42j0nA9Zu1JwGP2_dm8aiJUDcBMNVBE-xrFjHo9EM72Vh9awhhUQzLvyu-f8Ow";
const CLIENT_ID: &str = "basalt-client";
const CLIENT_SECRET: &str = "client-secret-0123456789";

/// How the provider spoils the next id_tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spoil {
    None,
    /// The payload of one token with the signature of another.
    Signature,
    WrongAudience,
    Expired,
    WrongNonce,
    WrongIssuer,
    AlgNone,
    /// HS256 with the client secret (a valid form).
    Hs256,
    /// HS256 with some other secret.
    Hs256WrongSecret,
    /// No id_token at all.
    Missing,
}

struct Grant {
    user: Json,
    challenge: String,
    nonce: String,
    redirect_uri: String,
}

struct Idp {
    base: String,
    /// The user signed in at the provider (its userinfo document).
    session: Mutex<Json>,
    codes: Mutex<HashMap<String, Grant>>,
    access: Mutex<HashMap<String, Json>>,
    spoil: Mutex<Spoil>,
    /// A userinfo answer replacing the real one (for broken-provider cases).
    userinfo_override: Mutex<Option<Json>>,
    /// Requests that reached `/avatar.png` or `/to-avatar`.
    avatar_hits: std::sync::atomic::AtomicUsize,
}

type Shared = Arc<Idp>;

fn rand_token(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}{n}x{nanos}")
}

async fn authorize(
    State(idp): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let field = |k: &str| q.get(k).cloned().unwrap_or_default();
    if field("client_id") != CLIENT_ID || field("response_type") != "code" {
        return (StatusCode::BAD_REQUEST, "bad client or response_type").into_response();
    }
    if field("code_challenge_method") != "S256" || field("code_challenge").is_empty() {
        return (StatusCode::BAD_REQUEST, "PKCE S256 required").into_response();
    }
    let redirect = field("redirect_uri");
    if redirect.is_empty() {
        return (StatusCode::BAD_REQUEST, "no redirect_uri").into_response();
    }
    let code = rand_token("code");
    let user = idp.session.lock().unwrap().clone();
    idp.codes.lock().unwrap().insert(
        code.clone(),
        Grant {
            user,
            challenge: field("code_challenge"),
            nonce: field("nonce"),
            redirect_uri: redirect.clone(),
        },
    );
    let query = serde_urlencoded::to_string([("code", code), ("state", field("state"))]).unwrap();
    let joiner = if redirect.contains('?') { '&' } else { '?' };
    (
        StatusCode::FOUND,
        [("location", format!("{redirect}{joiner}{query}"))],
    )
        .into_response()
}

/// The PKCS#1 DER inside the PEM file.
fn pkcs1_der() -> Vec<u8> {
    let body: String = KEY_PEM
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

fn sign(idp: &Idp, grant: &Grant, spoil: Spoil) -> Option<String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = |aud: &str, exp: i64, nonce: &str, iss: &str| {
        json!({
            "iss": iss, "sub": grant.user["sub"], "aud": aud, "exp": exp, "iat": now,
            "nonce": nonce, "email": grant.user["email"],
        })
    };
    let good = claims(CLIENT_ID, now + 300, &grant.nonce, &idp.base);
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("k1".into());
    let rsa = EncodingKey::from_rsa_der(&pkcs1_der());
    let rs = |c: &Json| encode(&header, c, &rsa).unwrap();
    let hs = |c: &Json, secret: &str| {
        encode(
            &Header::new(Algorithm::HS256),
            c,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    Some(match spoil {
        Spoil::None => rs(&good),
        Spoil::Signature => {
            let real = rs(&good);
            let mut other = good.clone();
            other["sub"] = json!("someone-else");
            let forged = rs(&other);
            let parts: Vec<&str> = real.split('.').collect();
            let forged_parts: Vec<&str> = forged.split('.').collect();
            format!("{}.{}.{}", parts[0], forged_parts[1], parts[2])
        }
        Spoil::WrongAudience => rs(&claims(
            "another-client",
            now + 300,
            &grant.nonce,
            &idp.base,
        )),
        Spoil::Expired => rs(&claims(CLIENT_ID, now - 3600, &grant.nonce, &idp.base)),
        Spoil::WrongNonce => rs(&claims(CLIENT_ID, now + 300, "not-the-nonce", &idp.base)),
        Spoil::WrongIssuer => rs(&claims(CLIENT_ID, now + 300, &grant.nonce, "https://evil")),
        Spoil::AlgNone => {
            let payload = URL_SAFE_NO_PAD.encode(good.to_string());
            let head = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
            format!("{head}.{payload}.")
        }
        Spoil::Hs256 => hs(&good, CLIENT_SECRET),
        Spoil::Hs256WrongSecret => hs(&good, "guessed-secret"),
        Spoil::Missing => return None,
    })
}

async fn token(State(idp): State<Shared>, Form(form): Form<HashMap<String, String>>) -> Response {
    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
    let refuse = |why: &str| {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_grant", "error_description": why})),
        )
            .into_response()
    };
    if field("grant_type") != "authorization_code" {
        return refuse("grant_type");
    }
    if field("client_id") != CLIENT_ID || field("client_secret") != CLIENT_SECRET {
        return refuse("client authentication failed");
    }
    // Codes are single use.
    let Some(grant) = idp.codes.lock().unwrap().remove(&field("code")) else {
        return refuse("unknown code");
    };
    if grant.redirect_uri != field("redirect_uri") {
        return refuse("redirect_uri mismatch");
    }
    let verifier = field("code_verifier");
    if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != grant.challenge {
        return refuse("code_verifier mismatch");
    }
    let access = rand_token("at");
    idp.access
        .lock()
        .unwrap()
        .insert(access.clone(), grant.user.clone());
    let spoil = *idp.spoil.lock().unwrap();
    let mut answer = json!({
        "access_token": access, "token_type": "Bearer", "expires_in": 3600,
        "refresh_token": "rt-1", "scope": "openid profile email",
    });
    if let Some(id_token) = sign(&idp, &grant, spoil) {
        answer["id_token"] = json!(id_token);
    }
    axum::Json(answer).into_response()
}

async fn userinfo(State(idp): State<Shared>, headers: HeaderMap) -> Response {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_string();
    let Some(user) = idp.access.lock().unwrap().get(&bearer).cloned() else {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "invalid_token"})),
        )
            .into_response();
    };
    if let Some(answer) = idp.userinfo_override.lock().unwrap().clone() {
        return axum::Json(answer).into_response();
    }
    axum::Json(user).into_response()
}

/// A 1x1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, 0x49, 0x48, 0x44, 0x52, 0, 0, 0,
    1, 0, 0, 0, 1, 8, 6, 0, 0, 0, 0x1f, 0x15, 0xc4, 0x89, 0, 0, 0, 0x0d, 0x49, 0x44, 0x41, 0x54,
    0x78, 0x9c, 0x63, 0, 1, 0, 0, 5, 0, 1, 0x0d, 0x0a, 0x2d, 0xb4, 0, 0, 0, 0, 0x49, 0x45, 0x4e,
    0x44, 0xae, 0x42, 0x60, 0x82,
];

async fn avatar(State(idp): State<Shared>) -> Response {
    idp.avatar_hits
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    ([("content-type", "image/png")], PNG).into_response()
}

async fn to_avatar(State(idp): State<Shared>) -> Response {
    idp.avatar_hits
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    (
        StatusCode::FOUND,
        [("location", format!("{}/avatar.png", idp.base))],
    )
        .into_response()
}

/// GitHub's shapes: a numeric id, `login`, and the addresses at `/user/emails`.
async fn github_user(State(idp): State<Shared>, headers: HeaderMap) -> Response {
    let Some(user) = bearer_user(&idp, &headers) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    axum::Json(
        json!({"id": user["gh_id"], "login": user["preferred_username"],
        "name": user["name"], "avatar_url": user["picture"], "email": "public@example.com"}),
    )
    .into_response()
}

async fn github_emails(State(idp): State<Shared>, headers: HeaderMap) -> Response {
    let Some(user) = bearer_user(&idp, &headers) else {
        return StatusCode::UNAUTHORIZED.into_response();
    };
    axum::Json(json!([
        {"email": "public@example.com", "primary": false, "verified": true},
        {"email": user["email"], "primary": true, "verified": user["email_verified"]},
    ]))
    .into_response()
}

fn bearer_user(idp: &Idp, headers: &HeaderMap) -> Option<Json> {
    let bearer = headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?
        .to_string();
    idp.access.lock().unwrap().get(&bearer).cloned()
}

async fn jwks() -> Response {
    axum::Json(json!({"keys": [
        {"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256", "n": KEY_N, "e": "AQAB"}
    ]}))
    .into_response()
}

async fn start_idp() -> Shared {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let idp = Arc::new(Idp {
        base,
        session: Mutex::new(Json::Null),
        codes: Mutex::new(HashMap::new()),
        access: Mutex::new(HashMap::new()),
        spoil: Mutex::new(Spoil::None),
        userinfo_override: Mutex::new(None),
        avatar_hits: std::sync::atomic::AtomicUsize::new(0),
    });
    let router = Router::new()
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .route("/userinfo", get(userinfo))
        .route("/jwks", get(jwks))
        .route("/avatar.png", get(avatar))
        .route("/gh/user", get(github_user))
        .route("/gh/user/emails", get(github_emails))
        .route("/to-avatar", get(to_avatar))
        .with_state(idp.clone());
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    idp
}

fn provider(idp: &Idp, name: &str) -> Json {
    json!({
        "name": name, "clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET,
        "displayName": "Test IdP", "pkce": true,
        "authURL": format!("{}/authorize", idp.base),
        "tokenURL": format!("{}/token", idp.base),
        "userInfoURL": format!("{}/userinfo", idp.base),
        "extra": {"jwksURL": format!("{}/jwks", idp.base), "issuers": [idp.base]},
    })
}

/// A server whose `users` collection signs in with the test provider as `oidc` and `oidc2`.
async fn setup() -> (TestApp, Shared) {
    setup_with(&[]).await
}

async fn setup_with(args: &[&str]) -> (TestApp, Shared) {
    let app = TestApp::spawn_with(args).await;
    let idp = start_idp().await;
    app.expect(
        200,
        Method::PATCH,
        "/api/collections/users",
        &Who::Superuser,
        Some(json!({"oauth2": {
            "enabled": true,
            "mappedFields": {"name": "name"},
            "providers": [provider(&idp, "oidc"), provider(&idp, "oidc2")],
        }})),
    )
    .await;
    (app, idp)
}

fn user(sub: &str, email: &str, verified: bool, name: &str) -> Json {
    json!({"sub": sub, "email": email, "email_verified": verified, "name": name,
           "preferred_username": "u", "picture": "http://127.0.0.1:1/a.png"})
}

fn redirect_url(app: &TestApp) -> String {
    format!("{}/api/oauth2-redirect", app.base)
}

/// One provider entry of `auth-methods`.
async fn method(app: &TestApp, name: &str) -> Json {
    let methods = app
        .expect(
            200,
            Method::GET,
            "/api/collections/users/auth-methods",
            &Who::Guest,
            None,
        )
        .await;
    methods["oauth2"]["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no provider {name} in {methods}"))
}

/// The browser: opens the authorization URL with `redirect` appended, signs in at the
/// provider (as the session user) and returns the `code` and `state` of the redirect.
async fn browse(auth_url: &str, redirect: &str) -> (String, String) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = format!("{auth_url}{}", crate::realtime::encode(redirect));
    let res = client.get(&url).send().await.unwrap();
    assert_eq!(
        res.status().as_u16(),
        302,
        "authorize: {}",
        res.text().await.unwrap()
    );
    let location = res.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with(redirect), "{location}");
    let query = location.split_once('?').unwrap().1;
    let params: HashMap<String, String> = serde_urlencoded::from_str(query).unwrap();
    (params["code"].clone(), params["state"].clone())
}

/// The full code flow for the provider's session user; returns the status and body of
/// `auth-with-oauth2` (`verifier` overrides the code verifier sent to Basalt).
async fn sign_in(
    app: &TestApp,
    idp: &Idp,
    provider: &str,
    who: &Who,
    create_data: Option<Json>,
    verifier: Option<&str>,
) -> (u16, Json) {
    let entry = method(app, provider).await;
    let (code, state) = browse(entry["authURL"].as_str().unwrap(), &redirect_url(app)).await;
    assert_eq!(state, entry["state"]);
    let _ = idp;
    let mut body = json!({
        "provider": provider, "code": code, "redirectURL": redirect_url(app),
        "codeVerifier": verifier.map(str::to_string).unwrap_or_else(|| entry["codeVerifier"].as_str().unwrap().to_string()),
    });
    if let Some(data) = create_data {
        body["createData"] = data;
    }
    app.request(
        Method::POST,
        "/api/collections/users/auth-with-oauth2",
        who,
        Some(body),
    )
    .await
}

async fn user_count(app: &TestApp) -> u64 {
    app.expect(
        200,
        Method::GET,
        "/api/collections/users/records",
        &Who::Superuser,
        None,
    )
    .await["totalItems"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn auth_methods_lists_the_provider_with_state_and_pkce() {
    let (app, _idp) = setup().await;
    let methods = app
        .expect(
            200,
            Method::GET,
            "/api/collections/users/auth-methods",
            &Who::Guest,
            None,
        )
        .await;
    assert_eq!(methods["oauth2"]["enabled"], true);
    let entry = &methods["oauth2"]["providers"][0];
    assert_eq!(entry["name"], "oidc");
    assert_eq!(entry["displayName"], "Test IdP");
    assert_eq!(entry["state"].as_str().unwrap().len(), 30);
    let verifier = entry["codeVerifier"].as_str().unwrap();
    assert_eq!(verifier.len(), 43);
    assert_eq!(
        entry["codeChallenge"],
        URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
    );
    assert_eq!(entry["codeChallengeMethod"], "S256");
    let url = entry["authURL"].as_str().unwrap();
    assert_eq!(entry["authUrl"], url);
    assert!(url.ends_with("&redirect_uri="), "{url}");
    for part in [
        "client_id=basalt-client",
        "response_type=code",
        "code_challenge_method=S256",
        "scope=openid+profile+email",
    ] {
        assert!(url.contains(part), "{part} missing in {url}");
    }
    assert!(url.contains(&format!("state={}", entry["state"].as_str().unwrap())));
    assert_eq!(methods["authProviders"], methods["oauth2"]["providers"]);
    // The client secret is never shown.
    assert!(!methods.to_string().contains(CLIENT_SECRET));
    // Two calls give different states and verifiers.
    let again = method(&app, "oidc").await;
    assert_ne!(again["state"], entry["state"]);
    assert_ne!(again["codeVerifier"], entry["codeVerifier"]);
}

#[tokio::test]
async fn code_flow_creates_a_user_then_signs_the_same_user_in() {
    let (app, idp) = setup().await;
    code_flow(&app, &idp).await;
}

#[tokio::test]
async fn code_flow_and_takeover_rules_on_postgres() {
    let db = crate::multinode::TestDb::create().await;
    crate::support::upsert_superuser_on(&db.url);
    let (app, idp) = setup_with(&["--db", &db.url]).await;
    code_flow(&app, &idp).await;
    takeover(&app, &idp).await;
}

async fn code_flow(app: &TestApp, idp: &Idp) {
    *idp.session.lock().unwrap() = user("sub-alice", "alice@example.com", true, "Alice");
    let (status, body) = sign_in(app, idp, "oidc", &Who::Guest, None, None).await;
    assert_eq!(status, 200, "{body}");
    let meta = &body["meta"];
    assert_eq!(meta["isNew"], true);
    assert_eq!(meta["id"], "sub-alice");
    assert_eq!(meta["email"], "alice@example.com");
    assert_eq!(meta["name"], "Alice");
    assert_eq!(meta["avatarURL"], meta["avatarUrl"]);
    assert_eq!(meta["refreshToken"], "rt-1");
    assert_eq!(meta["rawUser"]["sub"], "sub-alice");
    assert!(meta["accessToken"].as_str().unwrap().starts_with("at"));
    let record = &body["record"];
    assert_eq!(record["email"], "alice@example.com");
    assert_eq!(record["name"], "Alice");
    assert_eq!(record["verified"], true);
    let id = record["id"].as_str().unwrap().to_string();
    // The token works.
    let token = body["token"].as_str().unwrap().to_string();
    let refreshed = app
        .expect(
            200,
            Method::POST,
            "/api/collections/users/auth-refresh",
            &Who::Token(token),
            None,
        )
        .await;
    assert_eq!(refreshed["record"]["id"], id);
    // The second sign-in finds the link.
    let (status, body) = sign_in(app, idp, "oidc", &Who::Guest, None, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["meta"]["isNew"], false);
    assert_eq!(body["record"]["id"], id);
    assert_eq!(user_count(app).await, 1);
    // A replayed code is refused by the provider, and so by Basalt.
    let entry = method(app, "oidc").await;
    let (code, _) = browse(entry["authURL"].as_str().unwrap(), &redirect_url(app)).await;
    let body = json!({"provider": "oidc", "code": code, "redirectURL": redirect_url(app),
        "codeVerifier": entry["codeVerifier"]});
    app.expect(
        200,
        Method::POST,
        "/api/collections/users/auth-with-oauth2",
        &Who::Guest,
        Some(body.clone()),
    )
    .await;
    app.expect(
        400,
        Method::POST,
        "/api/collections/users/auth-with-oauth2",
        &Who::Guest,
        Some(body),
    )
    .await;
}

#[tokio::test]
async fn all_in_one_flow_forwards_the_code_to_the_realtime_client() {
    let (app, idp) = setup().await;
    *idp.session.lock().unwrap() = user("sub-rt", "rt@example.com", true, "Rita");
    let mut sse = Sse::connect(&app.base).await;
    sse.subscribe(&app, &Who::Guest, &["@oauth2".to_string()])
        .await;
    let entry = method(&app, "oidc").await;
    // The SDK replaces the state with its realtime client id.
    let url = entry["authURL"]
        .as_str()
        .unwrap()
        .replace(entry["state"].as_str().unwrap(), &sse.client_id);
    let (code, state) = browse(&url, &redirect_url(&app)).await;
    assert_eq!(state, sse.client_id);
    // The browser lands on the redirect endpoint.
    let page = reqwest::get(format!(
        "{}?state={}&code={}",
        redirect_url(&app),
        state,
        crate::realtime::encode(&code)
    ))
    .await
    .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let event = sse
        .next(Duration::from_secs(5))
        .await
        .expect("an @oauth2 message");
    assert_eq!(event.name, "@oauth2");
    assert_eq!(event.data, json!({"state": state, "code": code}));
    let (status, body) = app
        .request(
            Method::POST,
            "/api/collections/users/auth-with-oauth2",
            &Who::Guest,
            Some(json!({"provider": "oidc", "code": event.data["code"],
                "codeVerifier": entry["codeVerifier"], "redirectURL": redirect_url(&app)})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["record"]["email"], "rt@example.com");
    // An unknown state, and a client not subscribed to @oauth2, get an error page.
    let page = reqwest::get(format!("{}?state=nope&code=x", redirect_url(&app)))
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 404);
    let other = Sse::connect(&app.base).await;
    let page = reqwest::get(format!(
        "{}?state={}&code=x",
        redirect_url(&app),
        other.client_id
    ))
    .await
    .unwrap();
    assert_eq!(page.status().as_u16(), 404);
    // POST form (form_post providers) works as well, and `error` is forwarded.
    let page = reqwest::Client::new()
        .post(redirect_url(&app))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("state={}&error=access_denied", sse.client_id))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let event = sse
        .next(Duration::from_secs(5))
        .await
        .expect("an @oauth2 message");
    assert_eq!(
        event.data,
        json!({"state": sse.client_id, "code": "", "error": "access_denied"})
    );
}

#[tokio::test]
async fn a_wrong_code_verifier_is_refused() {
    let (app, idp) = setup().await;
    *idp.session.lock().unwrap() = user("sub-v", "v@example.com", true, "V");
    let other = "x".repeat(43);
    let (status, body) = sign_in(&app, &idp, "oidc", &Who::Guest, None, Some(&other)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(user_count(&app).await, 0);
}

#[tokio::test]
async fn bad_id_tokens_are_refused_and_create_nothing() {
    let (app, idp) = setup().await;
    *idp.session.lock().unwrap() = user("sub-t", "t@example.com", true, "T");
    for spoil in [
        Spoil::Signature,
        Spoil::WrongAudience,
        Spoil::Expired,
        Spoil::WrongNonce,
        Spoil::WrongIssuer,
        Spoil::AlgNone,
        Spoil::Hs256WrongSecret,
        Spoil::Missing,
    ] {
        *idp.spoil.lock().unwrap() = spoil;
        let (status, body) = sign_in(&app, &idp, "oidc", &Who::Guest, None, None).await;
        assert_eq!(status, 400, "{spoil:?}: {body}");
        assert_eq!(body["message"], "Failed to fetch OAuth2 user.", "{spoil:?}");
        assert_eq!(user_count(&app).await, 0, "{spoil:?}");
    }
    // HS256 keyed with the client secret is a valid form.
    *idp.spoil.lock().unwrap() = Spoil::Hs256;
    let (status, body) = sign_in(&app, &idp, "oidc", &Who::Guest, None, None).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_provider_without_a_user_id_is_refused() {
    let (app, idp) = setup().await;
    *idp.session.lock().unwrap() = user("", "e@example.com", true, "E");
    let (status, body) = sign_in(&app, &idp, "oidc", &Who::Guest, None, None).await;
    assert_eq!(status, 400, "{body}");
    // Broken userinfo answers that are still JSON: never a user.
    *idp.session.lock().unwrap() = user("sub-e", "e@example.com", true, "E");
    for answer in [
        json!({}),
        json!({"error": "server_error"}),
        json!({"sub": ""}),
        json!([1]),
    ] {
        *idp.userinfo_override.lock().unwrap() = Some(answer.clone());
        let (status, body) = sign_in(&app, &idp, "oidc", &Who::Guest, None, None).await;
        assert_eq!(status, 400, "{answer}: {body}");
    }
    assert_eq!(user_count(&app).await, 0);
}

#[tokio::test]
async fn an_unverified_account_with_the_same_email_is_not_taken_over_silently() {
    let (app, idp) = setup().await;
    takeover(&app, &idp).await;
}

async fn takeover(app: &TestApp, idp: &Idp) {
    let before = user_count(app).await;
    // Someone registered the victim's address with their own password.
    let squatter = app
        .create_user("victim@example.com", "squatter-pass-1")
        .await;
    assert_eq!(squatter["verified"], false);
    // A provider that does not vouch for the email links nothing.
    *idp.session.lock().unwrap() = user("sub-x", "victim@example.com", false, "X");
    let (status, body) = sign_in(app, idp, "oidc", &Who::Guest, None, None).await;
    assert_eq!(status, 400, "{body}");
    app.login("users", "victim@example.com", "squatter-pass-1")
        .await;
    // The owner of the mailbox signs in with a verified email: the account becomes
    // theirs, verified, and the squatter's password stops working.
    *idp.session.lock().unwrap() = user("sub-victim", "victim@example.com", true, "Victim");
    let (status, body) = sign_in(app, idp, "oidc", &Who::Guest, None, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["record"]["id"], squatter["id"]);
    assert_eq!(body["record"]["verified"], true);
    assert_eq!(body["meta"]["isNew"], false);
    let (status, _) = app
        .request(
            Method::POST,
            "/api/collections/users/auth-with-password",
            &Who::Guest,
            Some(json!({"identity": "victim@example.com", "password": "squatter-pass-1"})),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(user_count(app).await, before + 1);
}

#[tokio::test]
async fn a_create_data_email_other_than_the_providers_stays_unverified() {
    let (app, idp) = setup().await;
    // The attacker signs in through provider A with their own identity but asks for the
    // victim's address.
    *idp.session.lock().unwrap() = user("sub-attacker", "attacker@example.com", true, "A");
    let (status, body) = sign_in(
        &app,
        &idp,
        "oidc",
        &Who::Guest,
        Some(json!({"email": "victim@example.com"})),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["record"]["email"], "victim@example.com");
    assert_eq!(body["record"]["verified"], false);
    let planted = body["record"]["id"].clone();
    // The victim comes in through provider B with a verified address: the record is
    // theirs now, and the attacker's link to it is gone.
    *idp.session.lock().unwrap() = user("sub-victim-b", "victim@example.com", true, "V");
    let (status, body) = sign_in(&app, &idp, "oidc2", &Who::Guest, None, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["record"]["id"], planted);
    assert_eq!(body["record"]["verified"], true);
    *idp.session.lock().unwrap() = user("sub-attacker", "attacker@example.com", true, "A");
    let (status, body) = sign_in(&app, &idp, "oidc", &Who::Guest, None, None).await;
    assert_eq!(status, 200, "{body}");
    assert_ne!(
        body["record"]["id"], planted,
        "the attacker got the victim's record"
    );
    assert_eq!(body["meta"]["isNew"], true);
    // createData cannot make a record verified.
    *idp.session.lock().unwrap() = user("sub-c", "c@example.com", true, "C");
    let (status, _) = sign_in(
        &app,
        &idp,
        "oidc",
        &Who::Guest,
        Some(json!({"email": "d@example.com", "verified": true})),
        None,
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn a_signed_in_caller_links_the_identity_to_itself() {
    let (app, idp) = setup().await;
    let id = app.add_user("bob", "bob-password-1").await;
    *idp.session.lock().unwrap() = user("sub-bob", "other-bob@example.com", false, "Bob");
    let (status, body) = sign_in(&app, &idp, "oidc", &Who::User("bob"), None, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["record"]["id"], id);
    let (status, body) = sign_in(&app, &idp, "oidc", &Who::Guest, None, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["record"]["id"], id);
}

#[tokio::test]
async fn disabled_unknown_and_incomplete_requests() {
    let (app, idp) = setup().await;
    *idp.session.lock().unwrap() = user("sub-d", "d@example.com", true, "D");
    let path = "/api/collections/users/auth-with-oauth2";
    let (status, body) = app
        .request(Method::POST, path, &Who::Guest,
            Some(json!({"provider": "nope", "code": "c", "codeVerifier": "v", "redirectURL": "http://x"})))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["data"]["provider"]["code"],
        "validation_invalid_provider"
    );
    let (status, body) = app
        .request(
            Method::POST,
            path,
            &Who::Guest,
            Some(json!({"provider": "oidc"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["data"]["code"]["code"], "validation_required");
    app.expect(
        200,
        Method::PATCH,
        "/api/collections/users",
        &Who::Superuser,
        Some(json!({"oauth2": {"enabled": false}})),
    )
    .await;
    let (status, body) = sign_in_disabled(&app).await;
    assert_eq!(status, 403, "{body}");
    let methods = app
        .expect(
            200,
            Method::GET,
            "/api/collections/users/auth-methods",
            &Who::Guest,
            None,
        )
        .await;
    assert_eq!(
        methods["oauth2"],
        json!({"enabled": false, "providers": []})
    );
}

async fn sign_in_disabled(app: &TestApp) -> (u16, Json) {
    app.request(
        Method::POST,
        "/api/collections/users/auth-with-oauth2",
        &Who::Guest,
        Some(json!({"provider": "oidc", "code": "c", "codeVerifier": "v", "redirectURL": "http://x"})),
    )
    .await
}

#[tokio::test]
async fn avatar_urls_to_internal_addresses_are_never_fetched() {
    let (app, idp) = setup().await;
    app.expect(
        200,
        Method::PATCH,
        "/api/collections/users",
        &Who::Superuser,
        Some(json!({"oauth2": {
            "enabled": true,
            "mappedFields": {"name": "name", "avatarURL": "avatar"},
            "providers": [provider(&idp, "oidc")],
        }})),
    )
    .await;
    let port = idp.base.rsplit(':').next().unwrap().to_string();
    let urls = [
        format!("http://127.0.0.1:{port}/avatar.png"),
        format!("http://localhost:{port}/avatar.png"),
        format!("http://[::ffff:127.0.0.1]:{port}/avatar.png"),
        format!("http://[::1]:{port}/avatar.png"),
        format!("http://2130706433:{port}/avatar.png"),
        format!("http://0.0.0.0:{port}/avatar.png"),
        format!("http://127.0.0.1:{port}/to-avatar"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://10.0.0.1/a.png".to_string(),
        "http://100.64.0.1/a.png".to_string(),
    ];
    for (n, url) in urls.iter().enumerate() {
        let mut person = user(
            &format!("sub-av{n}"),
            &format!("av{n}@example.com"),
            true,
            "Av",
        );
        person["picture"] = json!(url);
        *idp.session.lock().unwrap() = person;
        let (status, body) = sign_in(&app, &idp, "oidc", &Who::Guest, None, None).await;
        // The sign-in succeeds without the avatar.
        assert_eq!(status, 200, "{url}: {body}");
        assert_eq!(body["record"]["avatar"], "", "{url}");
        assert_eq!(body["meta"]["avatarURL"], json!(url));
    }
    assert_eq!(
        idp.avatar_hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "an internal avatar URL was fetched"
    );
}

#[tokio::test]
async fn the_github_preset_maps_its_user_and_trusts_only_a_verified_primary_email() {
    let (app, idp) = setup().await;
    let github = json!({
        "name": "github", "clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET,
        "authURL": format!("{}/authorize", idp.base),
        "tokenURL": format!("{}/token", idp.base),
        "userInfoURL": format!("{}/gh/user", idp.base),
    });
    app.expect(
        200,
        Method::PATCH,
        "/api/collections/users",
        &Who::Superuser,
        Some(
            json!({"oauth2": {"enabled": true, "mappedFields": {"name": "name"},
            "providers": [github]}}),
        ),
    )
    .await;
    assert_eq!(method(&app, "github").await["displayName"], "GitHub");
    let mut octo = user("ignored", "octo@example.com", true, "Octo");
    octo["gh_id"] = json!(12345);
    octo["preferred_username"] = json!("octocat");
    *idp.session.lock().unwrap() = octo.clone();
    let (status, body) = sign_in(&app, &idp, "github", &Who::Guest, None, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["meta"]["id"], "12345");
    assert_eq!(body["meta"]["username"], "octocat");
    assert_eq!(body["meta"]["email"], "octo@example.com");
    assert_eq!(body["record"]["email"], "octo@example.com");
    assert_eq!(body["record"]["verified"], true);
    assert_eq!(body["record"]["name"], "Octo");
    // An unverified primary address is not used: nothing links to the existing record,
    // and the new record has no email, which `users` requires.
    app.create_user("squat@example.com", "squatter-pass-1")
        .await;
    let mut other = user("ignored", "squat@example.com", false, "S");
    other["gh_id"] = json!(777);
    *idp.session.lock().unwrap() = other;
    let (status, body) = sign_in(&app, &idp, "github", &Who::Guest, None, None).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["data"]["email"]["code"], "validation_required",
        "{body}"
    );
    app.login("users", "squat@example.com", "squatter-pass-1")
        .await;
}

/// Rows of `_externalAuths` for one provider identity (read from the SQLite file).
fn links_of(app: &TestApp, provider_id: &str) -> Vec<(String, String)> {
    let conn = rusqlite::Connection::open_with_flags(
        app.data_dir().join("data.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut statement = conn
        .prepare(
            "SELECT \"recordRef\", \"provider\" FROM \"_externalAuths\" WHERE \"providerId\" = ?1",
        )
        .unwrap();
    statement
        .query_map([provider_id], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Fires `n` first sign-ins of the provider's session user at once, spread over `nodes`
/// (each with its own code and verifier, as `n` browsers would); asserts that all
/// succeed with one record, `isNew` exactly once, and returns the record id.
async fn race(nodes: &[&TestApp], n: usize) -> String {
    let mut requests = Vec::new();
    for i in 0..n {
        let node = nodes[i % nodes.len()];
        let entry = method(node, "oidc").await;
        let (code, _) = browse(entry["authURL"].as_str().unwrap(), &redirect_url(node)).await;
        let body = json!({"provider": "oidc", "code": code, "redirectURL": redirect_url(node),
            "codeVerifier": entry["codeVerifier"]});
        let url = format!("{}/api/collections/users/auth-with-oauth2", node.base);
        requests.push((url, body));
    }
    let start = Arc::new(tokio::sync::Barrier::new(n));
    let mut tasks = tokio::task::JoinSet::new();
    for (url, body) in requests {
        let start = start.clone();
        tasks.spawn(async move {
            start.wait().await;
            let res = reqwest::Client::new()
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Json>().await.unwrap())
        });
    }
    let mut ids = std::collections::BTreeSet::new();
    let mut new_records = 0;
    while let Some(done) = tasks.join_next().await {
        let (status, body) = done.unwrap();
        assert_eq!(status, 200, "{body}");
        ids.insert(body["record"]["id"].as_str().unwrap().to_string());
        if body["meta"]["isNew"] == true {
            new_records += 1;
        }
    }
    assert_eq!(ids.len(), 1, "different records: {ids:?}");
    assert_eq!(new_records, 1, "isNew must be true exactly once");
    ids.into_iter().next().unwrap()
}

/// The records of `users` with this email (through the API).
async fn with_email(app: &TestApp, email: &str) -> Json {
    app.expect(
        200,
        Method::GET,
        &format!(
            "/api/collections/users/records?filter={}",
            crate::realtime::encode(&format!("email='{email}'"))
        ),
        &Who::Superuser,
        None,
    )
    .await
}

/// Makes the email of `users` optional (all other fields as they are).
async fn email_optional(app: &TestApp) {
    let users = app
        .expect(
            200,
            Method::GET,
            "/api/collections/users",
            &Who::Superuser,
            None,
        )
        .await;
    let mut fields = users["fields"].as_array().unwrap().clone();
    for field in &mut fields {
        if field["name"] == "email" {
            field["required"] = json!(false);
        }
    }
    app.expect(
        200,
        Method::PATCH,
        "/api/collections/users",
        &Who::Superuser,
        Some(json!({ "fields": fields })),
    )
    .await;
}

#[tokio::test]
async fn concurrent_first_sign_ins_of_one_identity_get_one_record_and_one_link() {
    let (app, idp) = setup().await;
    *idp.session.lock().unwrap() = user("sub-race", "race@example.com", true, "Race");
    let id = race(&[&app], 8).await;
    let listed = with_email(&app, "race@example.com").await;
    assert_eq!(listed["totalItems"], 1, "{listed}");
    assert_eq!(listed["items"][0]["id"], json!(id));
    assert_eq!(user_count(&app).await, 1);
    assert_eq!(
        links_of(&app, "sub-race"),
        vec![(id.clone(), "oidc".to_string())]
    );
    // The same without an email (the provider does not vouch for it): nothing on the
    // record is unique then, so only the link decides.
    *idp.session.lock().unwrap() = user("sub-race-2", "race2@example.com", false, "Race");
    email_optional(&app).await;
    let second = race(&[&app], 8).await;
    assert_ne!(second, id);
    assert_eq!(user_count(&app).await, 2);
    assert_eq!(
        links_of(&app, "sub-race-2"),
        vec![(second, "oidc".to_string())]
    );
}

#[tokio::test]
async fn concurrent_first_sign_ins_on_two_nodes_get_one_record_and_one_link() {
    let db = crate::multinode::TestDb::create().await;
    crate::support::upsert_superuser_on(&db.url);
    let (a, idp) = setup_with(&["--db", &db.url]).await;
    let b = TestApp::spawn_with(&["--db", &db.url]).await;
    // The OAuth2 options reach the second node.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, methods) = b
            .request(
                Method::GET,
                "/api/collections/users/auth-methods",
                &Who::Guest,
                None,
            )
            .await;
        if methods["oauth2"]["enabled"] == true {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{methods}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Two identities: one with a verified email, one without an email on an optional
    // email field; the in-process serialization does not span nodes, the database does.
    *idp.session.lock().unwrap() = user("sub-mn", "mn@example.com", true, "Mn");
    let id = race(&[&a, &b], 8).await;
    let listed = with_email(&b, "mn@example.com").await;
    assert_eq!(listed["totalItems"], 1, "{listed}");
    assert_eq!(listed["items"][0]["id"], json!(id));
    email_optional(&a).await;
    // The schema change reaches the other node within its poll.
    tokio::time::sleep(Duration::from_secs(2)).await;
    *idp.session.lock().unwrap() = user("sub-mn-2", "mn2@example.com", false, "Mn");
    let second = race(&[&a, &b], 8).await;
    assert_ne!(second, id);
    assert_eq!(user_count(&a).await, 2);
    let url = db.url.clone();
    let links: Vec<(String, String)> = tokio::task::spawn_blocking(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        client
            .query(
                "SELECT \"recordRef\", \"providerId\" FROM \"_externalAuths\" ORDER BY 2",
                &[],
            )
            .unwrap()
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect()
    })
    .await
    .unwrap();
    assert_eq!(
        links,
        vec![(id, "sub-mn".to_string()), (second, "sub-mn-2".to_string())]
    );
}

#[tokio::test]
async fn options_saved_back_without_the_client_secret_keep_it() {
    let (app, idp) = setup().await;
    let users = app
        .expect(
            200,
            Method::GET,
            "/api/collections/users",
            &Who::Superuser,
            None,
        )
        .await;
    assert!(!users.to_string().contains(CLIENT_SECRET), "{users}");
    // What an admin UI does: the options as shown, saved back.
    app.expect(
        200,
        Method::PATCH,
        "/api/collections/users",
        &Who::Superuser,
        Some(json!({"oauth2": users["oauth2"]})),
    )
    .await;
    *idp.session.lock().unwrap() = user("sub-resaved", "resaved@example.com", true, "R");
    let (status, body) = sign_in(&app, &idp, "oidc", &Who::Guest, None, None).await;
    assert_eq!(status, 200, "{body}");
    // A new secret replaces it (and the provider refuses that one).
    let mut oauth2 = users["oauth2"].clone();
    oauth2["providers"][0]["clientSecret"] = json!("another-secret");
    app.expect(
        200,
        Method::PATCH,
        "/api/collections/users",
        &Who::Superuser,
        Some(json!({ "oauth2": oauth2 })),
    )
    .await;
    let (status, body) = sign_in(&app, &idp, "oidc", &Who::Guest, None, None).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["message"], "Failed to fetch OAuth2 token.");
}

// `_externalAuths`: the links are records of a system collection.

/// A server on a PostgreSQL test database.
pub(crate) async fn spawn_on(db: &crate::multinode::TestDb) -> TestApp {
    crate::support::upsert_superuser_on(&db.url);
    TestApp::spawn_with(&["--db", &db.url]).await
}

/// A filter query string (`?filter=...`).
fn filter(text: &str) -> String {
    format!("filter={}", crate::realtime::encode(text))
}

/// The `_externalAuths` records the caller can list, with `query` (e.g. a filter).
async fn links(app: &TestApp, who: &Who, query: &str) -> Vec<Json> {
    let body = app
        .expect(
            200,
            Method::GET,
            &format!("/api/collections/_externalAuths/records?sort=provider,providerId&{query}"),
            who,
            None,
        )
        .await;
    body["items"].as_array().unwrap().clone()
}

/// Signs the provider user in as `who`; asserts 200 and returns (record id, token).
async fn sign_in_ok(app: &TestApp, idp: &Idp, provider: &str, who: &Who) -> (String, String) {
    let (status, body) = sign_in(app, idp, provider, who, None, None).await;
    assert_eq!(status, 200, "{body}");
    (
        body["record"]["id"].as_str().unwrap().to_string(),
        body["token"].as_str().unwrap().to_string(),
    )
}

/// What the records API shows of links: the owner lists, views and deletes its own and
/// nothing else, a guest nothing, only superusers write, and a deleted record's links
/// go with it.
async fn links_through_the_records_api(app: &TestApp, idp: &Idp) {
    *idp.session.lock().unwrap() = user("sub-ann", "ann@example.com", true, "Ann");
    let (ann, ann_token) = sign_in_ok(app, idp, "oidc", &Who::Guest).await;
    let ann_who = Who::Token(ann_token.clone());
    // Ann links a second identity to herself.
    *idp.session.lock().unwrap() = user("sub-ann-2", "ann-2@example.com", false, "Ann");
    assert_eq!(sign_in_ok(app, idp, "oidc2", &ann_who).await.0, ann);
    *idp.session.lock().unwrap() = user("sub-ben", "ben@example.com", true, "Ben");
    let (ben, ben_token) = sign_in_ok(app, idp, "oidc", &Who::Guest).await;
    let ben_who = Who::Token(ben_token);

    // The superuser sees all three, as PocketBase shows records of the collection.
    let all = links(app, &Who::Superuser, "").await;
    assert_eq!(all.len(), 3, "{all:?}");
    for link in &all {
        let mut keys: Vec<&str> = link
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "collectionId",
                "collectionName",
                "collectionRef",
                "created",
                "id",
                "provider",
                "providerId",
                "recordRef",
                "updated"
            ]
        );
        assert_eq!(link["collectionId"], "pbc_2281828961");
        assert_eq!(link["collectionName"], "_externalAuths");
        assert_eq!(link["collectionRef"], "_pb_users_auth_");
        assert_eq!(link["created"], link["updated"]);
        let created = link["created"].as_str().unwrap();
        assert!(
            created.len() == 24 && created.ends_with('Z') && created.as_bytes()[10] == b' ',
            "a record date: {created}"
        );
        assert_eq!(link["id"].as_str().unwrap().len(), 15);
    }
    let summary: Vec<(String, String, String)> = all
        .iter()
        .map(|l| {
            (
                l["recordRef"].as_str().unwrap().to_string(),
                l["provider"].as_str().unwrap().to_string(),
                l["providerId"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected = |r: &str, p: &str, pid: &str| (r.to_string(), p.to_string(), pid.to_string());
    assert_eq!(
        summary,
        vec![
            expected(&ann, "oidc", "sub-ann"),
            expected(&ben, "oidc", "sub-ben"),
            expected(&ann, "oidc2", "sub-ann-2"),
        ]
    );
    let id_of = |record: &str, provider: &str| {
        all.iter()
            .find(|l| l["recordRef"] == record && l["provider"] == provider)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (ann_oidc, ben_oidc) = (id_of(&ann, "oidc"), id_of(&ben, "oidc"));

    // Ann lists her own only, also when she asks for Ben's (the SDK's filter).
    let own = links(app, &ann_who, "").await;
    assert_eq!(own.len(), 2, "{own:?}");
    assert!(
        own.iter().all(|l| l["recordRef"] == ann.as_str()),
        "{own:?}"
    );
    assert!(
        links(app, &ann_who, &filter(&format!("recordRef = '{ben}'")))
            .await
            .is_empty()
    );
    assert_eq!(
        links(app, &ben_who, &filter(&format!("recordRef = '{ben}'")))
            .await
            .len(),
        1
    );
    // Ben's link is not found for Ann, nor for a guest; guests list nothing.
    let ben_link = format!("/api/collections/_externalAuths/records/{ben_oidc}");
    let ann_link = format!("/api/collections/_externalAuths/records/{ann_oidc}");
    for who in [&ann_who, &Who::Guest] {
        for method in [Method::GET, Method::DELETE] {
            let (status, body) = app.request(method.clone(), &ben_link, who, None).await;
            assert_eq!(status, 404, "{method} as {who:?}: {body}");
        }
    }
    assert!(links(app, &Who::Guest, "").await.is_empty());
    for method in [Method::GET, Method::DELETE] {
        let (status, body) = app
            .request(method.clone(), &ann_link, &Who::Guest, None)
            .await;
        assert_eq!(status, 404, "{method} as a guest: {body}");
    }
    let (status, _) = app.request(Method::GET, &ann_link, &ann_who, None).await;
    assert_eq!(status, 200);
    // Only superusers create or change links.
    let (status, body) = app
        .request(
            Method::POST,
            "/api/collections/_externalAuths/records",
            &ann_who,
            Some(json!({"collectionRef": "_pb_users_auth_", "recordRef": ann,
                        "provider": "oidc3", "providerId": "forged"})),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = app
        .request(
            Method::PATCH,
            &ann_link,
            &ann_who,
            Some(json!({"providerId": "sub-ben"})),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(links(app, &Who::Superuser, "").await.len(), 3);

    // Ann unlinks oidc (as the SDK's unlinkExternalAuth does): gone, her other link
    // stays; signing in through it again finds her by her verified email and links anew.
    let (status, _) = app.request(Method::DELETE, &ann_link, &ann_who, None).await;
    assert_eq!(status, 204);
    let own = links(app, &ann_who, "").await;
    assert_eq!(own.len(), 1, "{own:?}");
    assert_eq!(own[0]["provider"], "oidc2");
    *idp.session.lock().unwrap() = user("sub-ann", "ann@example.com", true, "Ann");
    let (status, body) = sign_in(app, idp, "oidc", &Who::Guest, None, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["record"]["id"], ann.as_str());
    assert_eq!(body["meta"]["isNew"], false);
    assert_eq!(links(app, &ann_who, "").await.len(), 2);

    // Deleting a record deletes its links (and only its own).
    app.expect(
        204,
        Method::DELETE,
        &format!("/api/collections/users/records/{ben}"),
        &Who::Superuser,
        None,
    )
    .await;
    let left = links(app, &Who::Superuser, "").await;
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(
        left.iter().all(|l| l["recordRef"] == ann.as_str()),
        "{left:?}"
    );
    // Ben's identity is nobody's now: it signs in to a new record.
    *idp.session.lock().unwrap() = user("sub-ben", "ben@example.com", true, "Ben");
    let (status, body) = sign_in(app, idp, "oidc", &Who::Guest, None, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["meta"]["isNew"], true);
    assert_ne!(body["record"]["id"], ben.as_str());
    // Ann deletes her own account (the users delete rule): her links go too.
    app.expect(
        204,
        Method::DELETE,
        &format!("/api/collections/users/records/{ann}"),
        &ann_who,
        None,
    )
    .await;
    let left = links(app, &Who::Superuser, "").await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["providerId"], "sub-ben");
}

#[tokio::test]
async fn links_are_records_their_owner_lists_and_deletes() {
    let (app, idp) = setup().await;
    links_through_the_records_api(&app, &idp).await;
}

#[tokio::test]
async fn links_are_records_their_owner_lists_and_deletes_on_postgres() {
    let db = crate::multinode::TestDb::create().await;
    crate::support::upsert_superuser_on(&db.url);
    let (app, idp) = setup_with(&["--db", &db.url]).await;
    links_through_the_records_api(&app, &idp).await;
}

/// SQL straight on the database of a server: its SQLite file, or `pg` when given.
async fn raw_sql(app: &TestApp, pg: Option<&str>, sql: &str) {
    match pg {
        Some(url) => {
            let (url, sql) = (url.to_string(), sql.to_string());
            tokio::task::spawn_blocking(move || {
                let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
                client.batch_execute(&sql).unwrap();
            })
            .await
            .unwrap();
        }
        None => {
            let conn = rusqlite::Connection::open(app.data_dir().join("data.db")).unwrap();
            conn.execute_batch(sql).unwrap();
        }
    }
}

/// The first column of a one-row count query on the database of a server.
async fn raw_count(app: &TestApp, pg: Option<&str>, sql: &str) -> i64 {
    match pg {
        Some(url) => {
            let (url, sql) = (url.to_string(), sql.to_string());
            tokio::task::spawn_blocking(move || {
                let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
                client.query_one(&sql, &[]).unwrap().get::<_, i64>(0)
            })
            .await
            .unwrap()
        }
        None => {
            let conn = rusqlite::Connection::open(app.data_dir().join("data.db")).unwrap();
            conn.query_row(sql, [], |row| row.get(0)).unwrap()
        }
    }
}

/// Turns a server's stopped database back into the layout of the versions that kept
/// the links in an internal table: no `_externalAuths` collection, no delete triggers,
/// the old table (unix-second `created`, no `updated`) with its old indexes and `rows`.
async fn make_it_an_old_database(
    app: &TestApp,
    pg: Option<&str>,
    rows: &[(&str, &str, &str, &str, i64)],
) {
    let text = if pg.is_some() {
        "TEXT COLLATE \"C\""
    } else {
        "TEXT"
    };
    let triggers = match pg {
        Some(_) => {
            "DROP TRIGGER \"_basalt_auth_cleanup__pb_users_auth_\" ON \"users\"; \
                    DROP TRIGGER \"_basalt_auth_cleanup_pbc_3142635823\" ON \"_superusers\"; \
                    DROP FUNCTION \"_basalt_auth_record_deleted\"();"
        }
        None => {
            "DROP TRIGGER \"_basalt_auth_cleanup__pb_users_auth_\"; \
                 DROP TRIGGER \"_basalt_auth_cleanup_pbc_3142635823\";"
        }
    };
    let mut sql = format!(
        "{triggers} \
         DROP TABLE \"_externalAuths\"; \
         DELETE FROM \"_collections\" WHERE \"id\" = 'pbc_2281828961'; \
         CREATE TABLE \"_externalAuths\" (\"id\" {text} PRIMARY KEY NOT NULL, \
           \"collectionRef\" {text} NOT NULL, \"recordRef\" {text} NOT NULL, \
           \"provider\" {text} NOT NULL, \"providerId\" {text} NOT NULL, \
           \"created\" BIGINT NOT NULL); \
         CREATE UNIQUE INDEX \"idx_externalAuths_provider\" ON \"_externalAuths\" \
           (\"collectionRef\", \"provider\", \"providerId\"); \
         CREATE UNIQUE INDEX \"idx_externalAuths_record\" ON \"_externalAuths\" \
           (\"collectionRef\", \"recordRef\", \"provider\");"
    );
    for (id, record, provider, provider_id, created) in rows {
        sql.push_str(&format!(
            " INSERT INTO \"_externalAuths\" VALUES ('{id}', '_pb_users_auth_', '{record}', \
             '{provider}', '{provider_id}', {created});"
        ));
    }
    raw_sql(app, pg, &sql).await;
}

/// A data dir from before gets the collection at start: its links are kept (ids, record
/// dates from their unix seconds), signed in through, listed by their owners, deleted
/// with their records (the trigger is added to the auth collections), and a second
/// start changes nothing.
async fn old_links_move_into_the_collection(mut app: TestApp, idp: Shared, pg: Option<&str>) {
    let mut ids = Vec::new();
    for name in ["old-one", "old-two"] {
        let record = app
            .create_record(
                "users",
                json!({"email": format!("{name}@example.com"), "password": "old-password-1",
                       "passwordConfirm": "old-password-1", "verified": true}),
            )
            .await;
        ids.push(record["id"].as_str().unwrap().to_string());
    }
    let (one, two) = (ids[0].clone(), ids[1].clone());
    app.stop().await;
    make_it_an_old_database(
        &app,
        pg,
        &[
            (
                "linkoneoidc0000",
                &one,
                "oidc",
                "sub-old-one",
                1_700_000_000,
            ),
            (
                "linkonegoogle00",
                &one,
                "google",
                "g-old-one",
                1_700_000_061,
            ),
            (
                "linktwooidc0000",
                &two,
                "oidc",
                "sub-old-two",
                1_700_003_600,
            ),
        ],
    )
    .await;
    app.start().await;

    crate::collections::assert_external_auths_collection(&app).await;
    let all = links(&app, &Who::Superuser, "sort=id").await;
    let rows: Vec<Json> = all
        .iter()
        .map(|l| {
            json!([
                l["id"],
                l["collectionRef"],
                l["recordRef"],
                l["provider"],
                l["providerId"],
                l["created"],
                l["updated"]
            ])
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            json!([
                "linkonegoogle00",
                "_pb_users_auth_",
                one,
                "google",
                "g-old-one",
                "2023-11-14 22:14:21.000Z",
                "2023-11-14 22:14:21.000Z"
            ]),
            json!([
                "linkoneoidc0000",
                "_pb_users_auth_",
                one,
                "oidc",
                "sub-old-one",
                "2023-11-14 22:13:20.000Z",
                "2023-11-14 22:13:20.000Z"
            ]),
            json!([
                "linktwooidc0000",
                "_pb_users_auth_",
                two,
                "oidc",
                "sub-old-two",
                "2023-11-14 23:13:20.000Z",
                "2023-11-14 23:13:20.000Z"
            ]),
        ]
    );
    // The old table and its indexes are gone; the unique indexes are the collection's.
    let (tables, indexes) = match pg {
        Some(_) => (
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_name LIKE '\\_externalAuths%'",
            "SELECT COUNT(*) FROM pg_indexes WHERE tablename = '_externalAuths' AND indexname LIKE 'idx%'",
        ),
        None => (
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name LIKE '\\_externalAuths%' ESCAPE '\\'",
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = '_externalAuths' AND name LIKE 'idx%'",
        ),
    };
    assert_eq!(raw_count(&app, pg, tables).await, 1);
    assert_eq!(raw_count(&app, pg, indexes).await, 2);
    let (status, body) = app
        .request(
            Method::POST,
            "/api/collections/_externalAuths/records",
            &Who::Superuser,
            Some(json!({"collectionRef": "_pb_users_auth_", "recordRef": two,
                        "provider": "oidc", "providerId": "sub-old-one"})),
        )
        .await;
    assert_eq!(status, 400, "one record per provider identity: {body}");

    // The moved link still signs its identity in (its email is nobody's).
    *idp.session.lock().unwrap() = user("sub-old-one", "elsewhere@example.com", false, "Old");
    let (status, body) = sign_in(&app, &idp, "oidc", &Who::Guest, None, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["record"]["id"], one.as_str());
    assert_eq!(body["meta"]["isNew"], false);
    // Its owner lists its two.
    let token = app
        .login("users", "old-one@example.com", "old-password-1")
        .await;
    let own = links(&app, &Who::Token(token), "").await;
    assert_eq!(own.len(), 2, "{own:?}");
    // Deleting a record of the old collection deletes its links.
    app.expect(
        204,
        Method::DELETE,
        &format!("/api/collections/users/records/{two}"),
        &Who::Superuser,
        None,
    )
    .await;
    assert_eq!(links(&app, &Who::Superuser, "").await.len(), 2);

    // Started again: one `_externalAuths` collection, the same links.
    app.stop().await;
    app.start().await;
    let token = app
        .login(
            "_superusers",
            crate::support::SU_EMAIL,
            crate::support::SU_PASSWORD,
        )
        .await;
    app.set_token("superuser", &token);
    let names = app
        .expect(
            200,
            Method::GET,
            "/api/collections?fields=name",
            &Who::Superuser,
            None,
        )
        .await;
    assert_eq!(
        names["items"],
        json!([{"name": "_superusers"}, {"name": "users"}, {"name": "_externalAuths"}])
    );
    assert_eq!(links(&app, &Who::Superuser, "").await.len(), 2);
}

#[tokio::test]
async fn old_data_dirs_get_the_collection_with_their_links_kept() {
    let (app, idp) = setup().await;
    old_links_move_into_the_collection(app, idp, None).await;
}

#[tokio::test]
async fn old_postgres_databases_get_the_collection_with_their_links_kept() {
    let db = crate::multinode::TestDb::create().await;
    crate::support::upsert_superuser_on(&db.url);
    let (app, idp) = setup_with(&["--db", &db.url]).await;
    old_links_move_into_the_collection(app, idp, Some(&db.url)).await;
}
