//! OAuth2 sign-in (`auth-with-oauth2`) and the provider list of `auth-methods`.
//!
//! Providers come from the auth collection's `oauth2` options. Kinds: a generic OpenID
//! Connect provider configured by URLs (`oidc`, `oidc2`, `oidc3`; `extra.jwksURL` and
//! `extra.issuers`), and the presets `google` (OIDC with Google's endpoints) and `github`.
//! An OIDC provider without a `userInfoURL` is read from the claims of its id_token.
//!
//! Security decisions:
//! - Outbound requests (token, userinfo, JWKS) use a client with short timeouts that
//!   follows no redirects and reads at most 1 MiB per answer. The URLs are the
//!   superuser's configuration, never the client's. The avatar URL is the
//!   provider's (so untrusted): it is fetched into a mapped file field of a new record
//!   only from public addresses (`safe_fetch`).
//! - OIDC: the token answer must carry an `id_token`, also when the user is read from
//!   the userinfo endpoint. It is accepted only when signed RS256 by a key of the
//!   provider's JWKS, or HS256 with the client secret (no other algorithm, never
//!   `none`), with `aud` = client id, an `exp` in the future, an `iss` from
//!   `extra.issuers` (any non-empty one when none are configured), a `sub` equal to the
//!   userinfo `sub`, and, when PKCE is on, the `nonce` that `auth-methods` put in the
//!   authorization URL (derived from the code verifier, so no server state).
//! - The provider's user id must be non-empty; an answer without one is refused.
//! - An email the provider does not say is verified is not used at all (as if the
//!   provider sent none): it links to no record and does not become a new record's
//!   address (`createData` may still give one, which then stays unverified).
//! - A record signed in to that is not verified yet may have been registered by someone
//!   else: unless it is the caller's own record its password is replaced by a random
//!   one (so the token key rotates), and its other provider links are removed, so
//!   whoever set that password or linked another identity loses access. It becomes
//!   verified when its email is the provider's verified one (or it has none).
//! - A new record is verified only when its email is the provider's verified one (or
//!   both are empty); an email from `createData` that differs stays unverified.
//! - Sign-ins of one provider identity are serialized in the process, and a new record
//!   is created in one transaction with its link, whose unique index decides between
//!   concurrent first sign-ins on several nodes: the loser looks again and signs in to
//!   the winner's record, so one identity never gets two records.
//!
//! Links are records of the system collection `_externalAuths` (`collectionRef`,
//! `recordRef`, `provider`, `providerId`), written here in SQL; through the records API
//! their owner lists and deletes them (the JS SDK's `listExternalAuths` and
//! `unlinkExternalAuth`), and a trigger deletes them with their record.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, OnceLock, Weak};
use std::time::Duration;

use basalt_schema::{Collection, FieldError, FieldErrors, FieldKind, random_id, random_string};
use basalt_sql::authflow;
use basalt_store::{Conn, ErrorKind};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value as Json, json};
use sha2::{Digest, Sha256};

use crate::app::App;
use crate::auth::AuthResult;
use crate::auth_flows::text;
use crate::error::CoreError;
use crate::records::{RequestInfo, WriteOp};

/// The largest answer read from a provider.
const MAX_ANSWER: usize = 1 << 20;

/// What a provider is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Oidc,
    Github,
}

/// One configured provider.
#[derive(Debug, Clone)]
struct Provider {
    name: String,
    display_name: String,
    kind: Kind,
    client_id: String,
    client_secret: String,
    auth_url: String,
    token_url: String,
    user_info_url: String,
    jwks_url: String,
    issuers: Vec<String>,
    scopes: &'static str,
    pkce: bool,
}

/// The user a provider vouched for.
#[derive(Debug, Clone, Default)]
struct ProviderUser {
    id: String,
    name: String,
    username: String,
    /// The address the provider says is verified; empty when it said nothing or no.
    email: String,
    avatar_url: String,
    access_token: String,
    refresh_token: String,
    expiry: String,
    raw: Json,
}

fn str_of<'a>(value: &'a Json, key: &str) -> &'a str {
    value.get(key).and_then(Json::as_str).unwrap_or_default()
}

/// An id that may be a JSON string or number (GitHub's ids are numbers).
fn id_of(value: &Json, key: &str) -> String {
    match value.get(key) {
        Some(Json::String(text)) => text.trim().to_string(),
        Some(Json::Number(number)) => number.to_string(),
        _ => String::new(),
    }
}

fn bool_of(value: &Json, key: &str) -> bool {
    match value.get(key) {
        Some(Json::Bool(flag)) => *flag,
        // Some providers send `"true"` (or another spelling of it), or 1.
        Some(Json::String(text)) => {
            matches!(text.as_str(), "true" | "True" | "TRUE" | "t" | "T" | "1")
        }
        Some(Json::Number(number)) => number.as_f64().is_some_and(|n| n != 0.0),
        _ => false,
    }
}

/// The OAuth2 options of a collection; 403 when disabled.
fn oauth2_options(collection: &Collection) -> Result<Json, CoreError> {
    crate::auth::enabled_method(collection.auth.as_ref().map(|a| &a.oauth2), "OAuth2")
}

/// The provider kind of a configured name, with its preset endpoints.
fn preset(name: &str) -> Option<(Kind, &'static str, [&'static str; 5])> {
    match name {
        "oidc" | "oidc2" | "oidc3" => Some((Kind::Oidc, "OIDC", ["", "", "", "", ""])),
        "google" => Some((
            Kind::Oidc,
            "Google",
            [
                "https://accounts.google.com/o/oauth2/v2/auth",
                "https://oauth2.googleapis.com/token",
                "https://openidconnect.googleapis.com/v1/userinfo",
                "https://www.googleapis.com/oauth2/v3/certs",
                "https://accounts.google.com",
            ],
        )),
        "github" => Some((
            Kind::Github,
            "GitHub",
            [
                "https://github.com/login/oauth/authorize",
                "https://github.com/login/oauth/access_token",
                "https://api.github.com/user",
                "",
                "",
            ],
        )),
        _ => None,
    }
}

/// The enabled, known providers of the options, in their order.
fn providers(options: &Json) -> Vec<Provider> {
    let Some(list) = options.get("providers").and_then(Json::as_array) else {
        return Vec::new();
    };
    list.iter()
        .filter(|p| p.get("enabled").and_then(Json::as_bool) != Some(false))
        .filter_map(|p| {
            let name = str_of(p, "name").to_string();
            let (kind, display, urls) = preset(&name)?;
            let pick = |key: &str, default: &str| {
                let value = str_of(p, key);
                if value.is_empty() {
                    default.to_string()
                } else {
                    value.to_string()
                }
            };
            let extra = p.get("extra").cloned().unwrap_or(Json::Null);
            let mut issuers: Vec<String> = extra
                .get("issuers")
                .and_then(Json::as_array)
                .map(|l| {
                    l.iter()
                        .filter_map(Json::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            if issuers.is_empty() && !urls[4].is_empty() {
                issuers = vec![urls[4].to_string(), "accounts.google.com".to_string()];
            }
            let jwks = str_of(&extra, "jwksURL");
            Some(Provider {
                display_name: pick("displayName", display),
                kind,
                client_id: str_of(p, "clientId").to_string(),
                client_secret: str_of(p, "clientSecret").to_string(),
                auth_url: pick("authURL", urls[0]),
                token_url: pick("tokenURL", urls[1]),
                user_info_url: pick("userInfoURL", urls[2]),
                jwks_url: if jwks.is_empty() {
                    urls[3].to_string()
                } else {
                    jwks.to_string()
                },
                issuers,
                scopes: match kind {
                    Kind::Oidc => "openid profile email",
                    Kind::Github => "read:user user:email",
                },
                // PKCE is on unless switched off explicitly.
                pkce: p.get("pkce").and_then(Json::as_bool) != Some(false),
                name,
            })
        })
        .collect()
}

/// The S256 challenge of a code verifier.
fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// The OIDC nonce of a flow, derived from its code verifier (secret until the token
/// exchange), so the id_token is bound to this flow without server-side state.
fn nonce_for(verifier: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(b"basalt-oidc-nonce:");
    hash.update(verifier.as_bytes());
    URL_SAFE_NO_PAD.encode(hash.finalize())
}

/// The `oauth2.providers` entries of `auth-methods` (each with a fresh state and PKCE
/// pair), for a collection whose OAuth2 is enabled; empty otherwise.
pub fn auth_method_providers(collection: &Collection) -> (bool, Vec<Json>) {
    let Ok(options) = oauth2_options(collection) else {
        return (false, Vec::new());
    };
    let list = providers(&options)
        .into_iter()
        .map(|p| {
            let state = random_string(30);
            // Without PKCE there is no verifier (PocketBase sends empty strings).
            let verifier = if p.pkce {
                random_string(43)
            } else {
                String::new()
            };
            let mut params: Vec<(&str, String)> = vec![
                ("client_id", p.client_id.clone()),
                ("response_type", "code".to_string()),
                ("scope", p.scopes.to_string()),
                ("state", state.clone()),
            ];
            let (code_challenge, method) = if p.pkce {
                let code_challenge = challenge(&verifier);
                params.push(("code_challenge", code_challenge.clone()));
                params.push(("code_challenge_method", "S256".to_string()));
                if p.kind == Kind::Oidc {
                    params.push(("nonce", nonce_for(&verifier)));
                }
                (code_challenge, "S256")
            } else {
                (String::new(), "")
            };
            let query = serde_urlencoded::to_string(&params).unwrap_or_default();
            let joiner = if p.auth_url.contains('?') { '&' } else { '?' };
            let url = format!("{}{joiner}{query}&redirect_uri=", p.auth_url);
            json!({
                "name": p.name,
                "displayName": p.display_name,
                "state": state,
                "authURL": url,
                "authUrl": url,
                "codeVerifier": verifier,
                "codeChallenge": code_challenge,
                "codeChallengeMethod": method,
            })
        })
        .collect();
    (true, list)
}

/// The shared outbound client: short timeouts, no redirects, TLS with the system roots.
fn client() -> Result<&'static reqwest::Client, CoreError> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(5))
                .timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .user_agent("basalt")
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| CoreError::internal(format!("OAuth2 HTTP client: {e}")))
}

/// Reads a JSON answer of at most [`MAX_ANSWER`] bytes; a non-2xx status is an error.
async fn read_json(response: reqwest::Response) -> Result<Json, String> {
    let status = response.status();
    let mut response = response;
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_ANSWER {
            return Err("answer too large".into());
        }
        body.extend_from_slice(&chunk);
    }
    if !status.is_success() {
        return Err(format!("status {status}"));
    }
    serde_json::from_slice(&body).map_err(|e| e.to_string())
}

/// 400 for a failed exchange with the provider; the cause goes to the log.
fn failed(what: &str, cause: impl std::fmt::Display) -> CoreError {
    CoreError::bad_request(&format!("Failed to {what}.")).with_log(cause)
}

impl Provider {
    /// Exchanges the code for tokens (client secret in the body).
    async fn exchange(
        &self,
        code: &str,
        verifier: &str,
        redirect_url: &str,
    ) -> Result<Json, CoreError> {
        let mut form: Vec<(&str, &str)> = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_url),
            ("client_id", &self.client_id),
            ("client_secret", &self.client_secret),
        ];
        if self.pkce {
            form.push(("code_verifier", verifier));
        }
        let body = serde_urlencoded::to_string(&form).map_err(CoreError::internal)?;
        let response = client()?
            .post(&self.token_url)
            .header("accept", "application/json")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|e| failed("fetch OAuth2 token", e))?;
        let token = read_json(response)
            .await
            .map_err(|e| failed("fetch OAuth2 token", e))?;
        if str_of(&token, "access_token").is_empty() {
            return Err(failed(
                "fetch OAuth2 token",
                "no access_token in the answer",
            ));
        }
        Ok(token)
    }

    async fn get_json(&self, url: &str, access_token: &str) -> Result<Json, CoreError> {
        let response = client()?
            .get(url)
            .bearer_auth(access_token)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| failed("fetch OAuth2 user", e))?;
        read_json(response)
            .await
            .map_err(|e| failed("fetch OAuth2 user", e))
    }

    /// The user behind an exchanged token.
    async fn user(&self, token: &Json, verifier: &str) -> Result<ProviderUser, CoreError> {
        let access_token = str_of(token, "access_token").to_string();
        let mut user = ProviderUser {
            access_token,
            refresh_token: str_of(token, "refresh_token").to_string(),
            expiry: token
                .get("expires_in")
                .and_then(Json::as_i64)
                .map(|s| {
                    basalt_schema::format_datetime(
                        time::OffsetDateTime::now_utc() + time::Duration::seconds(s),
                    )
                })
                .unwrap_or_default(),
            ..ProviderUser::default()
        };
        let raw = match self.kind {
            Kind::Oidc => {
                let claims = self.verify_id_token(token, verifier).await?;
                let raw = if self.user_info_url.is_empty() {
                    // No userinfo endpoint: the verified id_token describes the user.
                    claims
                } else {
                    let raw = self
                        .get_json(&self.user_info_url, &user.access_token)
                        .await?;
                    if !raw.is_object() {
                        return Err(failed("fetch OAuth2 user", "userinfo is not an object"));
                    }
                    if id_of(&raw, "sub") != id_of(&claims, "sub") {
                        return Err(failed(
                            "fetch OAuth2 user",
                            "userinfo sub differs from the id_token sub",
                        ));
                    }
                    raw
                };
                user.id = id_of(&raw, "sub");
                user.name = str_of(&raw, "name").to_string();
                user.username = str_of(&raw, "preferred_username").to_string();
                if bool_of(&raw, "email_verified") {
                    user.email = str_of(&raw, "email").to_string();
                }
                user.avatar_url = str_of(&raw, "picture").to_string();
                raw
            }
            Kind::Github => {
                let raw = self
                    .get_json(&self.user_info_url, &user.access_token)
                    .await?;
                if !raw.is_object() {
                    return Err(failed("fetch OAuth2 user", "the user is not an object"));
                }
                user.id = id_of(&raw, "id");
                user.name = str_of(&raw, "name").to_string();
                user.username = str_of(&raw, "login").to_string();
                user.avatar_url = str_of(&raw, "avatar_url").to_string();
                // Only an address GitHub lists as primary and verified counts.
                let url = format!("{}/emails", self.user_info_url.trim_end_matches('/'));
                if let Ok(Json::Array(emails)) = self.get_json(&url, &user.access_token).await
                    && let Some(primary) = emails
                        .iter()
                        .find(|e| bool_of(e, "primary") && bool_of(e, "verified"))
                {
                    user.email = str_of(primary, "email").to_string();
                }
                raw
            }
        };
        user.raw = raw;
        if user.id.is_empty() {
            return Err(failed("fetch OAuth2 user", "the provider sent no user id"));
        }
        Ok(user)
    }

    /// Verifies the OIDC id_token of a token answer and returns its claims.
    async fn verify_id_token(&self, token: &Json, verifier: &str) -> Result<Json, CoreError> {
        use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
        // Reported like any other failure to learn the user (the cause goes to the log).
        let bad = |cause: &str| failed("fetch OAuth2 user", format!("id_token: {cause}"));
        let id_token = str_of(token, "id_token");
        if id_token.is_empty() {
            return Err(bad("no id_token in the token answer"));
        }
        let header = decode_header(id_token).map_err(|e| bad(&e.to_string()))?;
        let key = match header.alg {
            Algorithm::HS256 if !self.client_secret.is_empty() => {
                DecodingKey::from_secret(self.client_secret.as_bytes())
            }
            Algorithm::RS256 if !self.jwks_url.is_empty() => {
                let response = client()?
                    .get(&self.jwks_url)
                    .header("accept", "application/json")
                    .send()
                    .await
                    .map_err(|e| bad(&e.to_string()))?;
                let jwks = read_json(response).await.map_err(|e| bad(&e))?;
                let keys = jwks
                    .get("keys")
                    .and_then(Json::as_array)
                    .cloned()
                    .unwrap_or_default();
                let kid = header.kid.clone().unwrap_or_default();
                let jwk = keys
                    .iter()
                    .filter(|k| str_of(k, "kty") == "RSA")
                    .filter(|k| matches!(str_of(k, "use"), "" | "sig"))
                    .find(|k| kid.is_empty() || str_of(k, "kid") == kid)
                    .ok_or_else(|| bad("no matching key in the JWKS"))?;
                DecodingKey::from_rsa_components(str_of(jwk, "n"), str_of(jwk, "e"))
                    .map_err(|e| bad(&e.to_string()))?
            }
            other => return Err(bad(&format!("id_token algorithm {other:?} not accepted"))),
        };
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&[&self.client_id]);
        validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        validation.leeway = 30;
        if !self.issuers.is_empty() {
            validation.set_issuer(&self.issuers);
        }
        let claims = decode::<Json>(id_token, &key, &validation)
            .map_err(|e| bad(&e.to_string()))?
            .claims;
        if str_of(&claims, "iss").is_empty() {
            return Err(bad("id_token without issuer"));
        }
        if self.pkce && str_of(&claims, "nonce") != nonce_for(verifier) {
            return Err(bad("id_token nonce mismatch"));
        }
        Ok(claims)
    }
}

/// The internal error of a link insert that lost against a concurrent one (the unique
/// index on collection, provider and provider id); the sign-in then looks again.
const LINK_TAKEN: &str = "the OAuth2 identity was linked concurrently";

/// How often a sign-in looks again after losing a race.
const ATTEMPTS: usize = 3;

/// Sign-ins in progress, by provider identity (see [`identity_lock`]).
static SIGN_INS: LazyLock<parking_lot::Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>> =
    LazyLock::new(Default::default);

/// Waits until no other sign-in of this identity runs in the process, and holds that
/// until the guard is dropped. The map keeps weak entries, pruned as new ones come.
async fn identity_lock(key: String) -> tokio::sync::OwnedMutexGuard<()> {
    let lock = {
        let mut locks = SIGN_INS.lock();
        match locks.get(&key).and_then(Weak::upgrade) {
            Some(lock) => lock,
            None => {
                locks.retain(|_, held| held.strong_count() > 0);
                let lock = Arc::new(tokio::sync::Mutex::new(()));
                locks.insert(key, Arc::downgrade(&lock));
                lock
            }
        }
    };
    lock.lock_owned().await
}

/// Whether a failed sign-in may have lost a race: its link insert hit the unique index,
/// or a new record collided with a unique value (the email of a record just created).
fn lost_race(error: &CoreError) -> bool {
    match error {
        CoreError::Internal(message) => message == LINK_TAKEN,
        CoreError::BadRequest { data, .. } => data
            .values()
            .any(|e| e.get("code").and_then(Json::as_str) == Some("validation_not_unique")),
        _ => false,
    }
}

/// The insert of a link; a unique conflict becomes [`LINK_TAKEN`].
fn insert_link(
    conn: &mut dyn Conn,
    collection: &str,
    record: &str,
    provider: &str,
    provider_id: &str,
) -> Result<(), CoreError> {
    let statement = authflow::external_auth_insert(
        conn.dialect(),
        &random_id(),
        collection,
        record,
        provider,
        provider_id,
        &basalt_schema::now_datetime(),
    );
    match conn.execute(&statement) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == ErrorKind::UniqueViolation => {
            Err(CoreError::Internal(LINK_TAKEN.into()))
        }
        Err(error) => Err(error.into()),
    }
}

/// The input of `auth-with-oauth2`.
#[derive(Debug, Clone, Default)]
pub struct OAuth2Input {
    /// Provider name.
    pub provider: String,
    /// The authorization code.
    pub code: String,
    /// The PKCE code verifier from `auth-methods`.
    pub code_verifier: String,
    /// The redirect URL the code was issued for.
    pub redirect_url: String,
    /// Data for a new record.
    pub create_data: Map<String, Json>,
}

impl App {
    /// `auth-with-oauth2`: exchanges the code, finds, links or creates the record, and
    /// signs it in (auth rule and MFA included). Returns the result and `meta`.
    pub async fn auth_with_oauth2(
        &self,
        collection: Arc<Collection>,
        info: &RequestInfo,
        input: OAuth2Input,
        mfa_id: Option<&str>,
    ) -> Result<(AuthResult, Json), CoreError> {
        let options = oauth2_options(&collection)?;
        let mut errors = FieldErrors::new();
        // The redirect URL is not required: a provider that wants one refuses the
        // exchange without it.
        for (key, value) in [("provider", &input.provider), ("code", &input.code)] {
            if value.is_empty() {
                errors.insert(key.into(), FieldError::required());
            }
        }
        let provider = providers(&options)
            .into_iter()
            .find(|p| p.name == input.provider);
        if provider.is_none() && !input.provider.is_empty() {
            errors.insert(
                "provider".into(),
                FieldError::with_params(
                    "validation_invalid_provider",
                    &format!(
                        "Provider with name {} is missing or is not enabled.",
                        input.provider
                    ),
                    json!({"name": input.provider}),
                ),
            );
        }
        let Some(provider) = provider.filter(|_| errors.is_empty()) else {
            return Err(CoreError::validation(
                "An error occurred while loading the submitted data.",
                errors,
            ));
        };
        let token = provider
            .exchange(&input.code, &input.code_verifier, &input.redirect_url)
            .await?;
        let user = provider.user(&token, &input.code_verifier).await?;
        let (record, is_new) = self
            .oauth2_record(&collection, info, &provider, &user, input.create_data)
            .await?;
        let meta = json!({
            "id": user.id,
            "name": user.name,
            "username": user.username,
            "email": user.email,
            "avatarURL": user.avatar_url,
            "avatarUrl": user.avatar_url,
            "accessToken": user.access_token,
            "refreshToken": user.refresh_token,
            "expiry": user.expiry,
            "rawUser": user.raw,
            "isNew": is_new,
        });
        let result = self
            .complete_auth(collection, record, "oauth2", mfa_id)
            .await?;
        Ok((result, meta))
    }

    async fn load(
        &self,
        collection: &Arc<Collection>,
        id: &str,
    ) -> Result<Option<Map<String, Json>>, CoreError> {
        let (lookup, id) = (collection.clone(), id.to_string());
        basalt_store::read(self.store().as_ref(), move |conn: &mut dyn Conn| {
            crate::auth::load_record(conn, &lookup, &id)
        })
        .await
    }

    /// Links a provider identity to a record, replacing the record's older link to the
    /// provider, or all its links with `drop_other_links`. A conflict with a concurrent
    /// link of the identity is [`LINK_TAKEN`].
    async fn link(
        &self,
        collection: &Collection,
        record_id: &str,
        provider: &str,
        provider_id: &str,
        drop_other_links: bool,
    ) -> Result<(), CoreError> {
        let (c, r, p, pid) = (
            collection.id.clone(),
            record_id.to_string(),
            provider.to_string(),
            provider_id.to_string(),
        );
        basalt_store::write(self.store().as_ref(), move |conn: &mut dyn Conn| {
            let dialect = conn.dialect();
            if drop_other_links {
                conn.execute(&authflow::external_auth_unlink_record(dialect, &c, &r))?;
            } else {
                conn.execute(&authflow::external_auth_unlink_provider(
                    dialect, &c, &r, &p,
                ))?;
            }
            insert_link(conn, &c, &r, &p, &pid)
        })
        .await
    }

    /// The record linked to a provider identity, if the link exists; a link whose
    /// record is gone is removed.
    async fn linked_record(
        &self,
        collection: &Arc<Collection>,
        provider: &str,
        provider_id: &str,
    ) -> Result<Option<Map<String, Json>>, CoreError> {
        let (c, p, pid) = (
            collection.id.clone(),
            provider.to_string(),
            provider_id.to_string(),
        );
        let linked = basalt_store::read(self.store().as_ref(), move |conn: &mut dyn Conn| {
            let rows = conn.query(&authflow::external_auth_get(conn.dialect(), &c, &p, &pid))?;
            Ok::<_, CoreError>(rows.rows.into_iter().next().and_then(|row| {
                row.into_iter().next().and_then(|v| match v {
                    basalt_sql::Value::Text(t) => Some(t),
                    _ => None,
                })
            }))
        })
        .await?;
        let Some(record_id) = linked else {
            return Ok(None);
        };
        if let Some(record) = self.load(collection, &record_id).await? {
            return Ok(Some(record));
        }
        let (c, r) = (collection.id.clone(), record_id);
        basalt_store::write(self.store().as_ref(), move |conn: &mut dyn Conn| {
            conn.execute(&authflow::external_auth_unlink_record(
                conn.dialect(),
                &c,
                &r,
            ))?;
            Ok::<_, CoreError>(())
        })
        .await?;
        Ok(None)
    }

    /// The record of a provider user (see [`App::oauth2_resolve`]), with the sign-ins of
    /// one identity one at a time, and another look after a lost race.
    async fn oauth2_record(
        &self,
        collection: &Arc<Collection>,
        info: &RequestInfo,
        provider: &Provider,
        user: &ProviderUser,
        create_data: Map<String, Json>,
    ) -> Result<(Map<String, Json>, bool), CoreError> {
        let _one_at_a_time =
            identity_lock(format!("{}\0{}\0{}", collection.id, provider.name, user.id)).await;
        let mut lost = None;
        for _ in 0..ATTEMPTS {
            match self
                .oauth2_resolve(
                    collection,
                    info,
                    provider,
                    user,
                    &create_data,
                    lost.is_none(),
                )
                .await
            {
                Ok(Some(found)) => return Ok(found),
                // Another look found nothing new: the first failure stands.
                Ok(None) => break,
                Err(error) if lost_race(&error) => {
                    tracing::debug!(%error, "OAuth2 sign-in lost a race; looking again");
                    lost = Some(error);
                }
                Err(error) => return Err(error),
            }
        }
        Err(match lost {
            Some(CoreError::Internal(_)) | None => {
                CoreError::bad_request("Failed to authenticate.")
            }
            Some(error) => error,
        })
    }

    /// Finds the record of a provider user and signs it in: the one linked to the
    /// identity, else the caller signed in to this collection, else the one with the
    /// provider's verified email (each brought up to date by
    /// [`App::oauth2_existing`]), else a new one when `may_create` (`Ok(None)` if not).
    async fn oauth2_resolve(
        &self,
        collection: &Arc<Collection>,
        info: &RequestInfo,
        provider: &Provider,
        user: &ProviderUser,
        create_data: &Map<String, Json>,
        may_create: bool,
    ) -> Result<Option<(Map<String, Json>, bool)>, CoreError> {
        if let Some(record) = self
            .linked_record(collection, &provider.name, &user.id)
            .await?
        {
            let record = self
                .oauth2_existing(collection, info, provider, user, record, true)
                .await?;
            return Ok(Some((record, false)));
        }
        let caller = match info
            .auth
            .as_ref()
            .filter(|a| a.collection.id == collection.id)
        {
            Some(auth) => self.load(collection, auth.id()).await?,
            None => None,
        };
        let found = match caller {
            Some(record) => Some(record),
            None if !user.email.is_empty() => self.find_by_email(collection, &user.email).await?,
            None => None,
        };
        if let Some(record) = found {
            let record = self
                .oauth2_existing(collection, info, provider, user, record, false)
                .await?;
            return Ok(Some((record, false)));
        }
        if !may_create {
            return Ok(None);
        }
        if collection.id == basalt_schema::SUPERUSERS_ID {
            return Err(CoreError::bad_request(
                "Superusers cannot be created with OAuth2.",
            ));
        }
        let record = self
            .oauth2_create(collection, info, provider, user, create_data.clone())
            .await?;
        Ok(Some((record, true)))
    }

    /// Brings an existing record up to date for a sign-in and links the identity to it
    /// (unless `linked` already). A record that is not verified loses its password
    /// (unless it is the caller's) and its other links, and becomes verified when its
    /// email is the provider's (or it has none); an empty email takes the provider's.
    async fn oauth2_existing(
        &self,
        collection: &Arc<Collection>,
        info: &RequestInfo,
        provider: &Provider,
        user: &ProviderUser,
        mut record: Map<String, Json>,
        linked: bool,
    ) -> Result<Map<String, Json>, CoreError> {
        let id = text(&record, "id").to_string();
        let email = text(&record, "email").to_string();
        let verified = record.get("verified").and_then(Json::as_bool) == Some(true);
        let is_caller = info
            .auth
            .as_ref()
            .is_some_and(|a| a.collection.id == collection.id && a.id() == id);
        let mut changes = Map::new();
        if !verified && !is_caller {
            // Someone may have registered this address with their own password: it
            // stops working (and the token key rotates).
            let random = random_string(30);
            let hash = self
                .with_hashing(move || crate::auth::hash_password(&random, 10))
                .await??;
            changes.insert("password".into(), Json::String(hash));
            changes.insert(
                "tokenKey".into(),
                Json::String(crate::auth::new_token_key()),
            );
        }
        let mut email_after = email;
        if email_after.is_empty() && !user.email.is_empty() {
            email_after = user.email.clone();
            changes.insert("email".into(), Json::String(email_after.clone()));
        }
        if !verified && (email_after.is_empty() || email_after == user.email) {
            changes.insert("verified".into(), Json::Bool(true));
        }
        if !changes.is_empty() {
            self.update_held_auth_record(collection, &mut record, changes)
                .await?;
        }
        // An unverified record keeps one link at most: this one.
        if !linked || !verified {
            self.link(collection, &id, &provider.name, &user.id, !verified)
                .await?;
        }
        Ok(record)
    }

    /// Creates the record of a new provider user through the normal create path
    /// (create rule included), verified when its email is the provider's, and links the
    /// identity to it in the same transaction.
    async fn oauth2_create(
        &self,
        collection: &Arc<Collection>,
        info: &RequestInfo,
        provider: &Provider,
        user: &ProviderUser,
        create_data: Map<String, Json>,
    ) -> Result<Map<String, Json>, CoreError> {
        let mut body = create_data;
        let has = |body: &Map<String, Json>, key: &str| {
            body.get(key)
                .is_some_and(|v| !v.is_null() && v.as_str() != Some(""))
        };
        if !has(&body, "email") && !user.email.is_empty() {
            body.insert("email".into(), Json::String(user.email.clone()));
        }
        if !has(&body, "password") {
            let password = random_string(30);
            body.insert("password".into(), Json::String(password.clone()));
            body.insert("passwordConfirm".into(), Json::String(password));
        }
        let mapped = collection
            .auth
            .as_ref()
            .and_then(|a| a.oauth2.get("mappedFields").cloned())
            .unwrap_or(Json::Null);
        let mut avatar = None;
        for (meta_key, value) in [
            ("id", &user.id),
            ("name", &user.name),
            ("username", &user.username),
            ("avatarURL", &user.avatar_url),
        ] {
            let field_name = str_of(&mapped, meta_key);
            if field_name.is_empty() || value.is_empty() || has(&body, field_name) {
                continue;
            }
            let Some(field) = collection.fields.iter().find(|f| f.name == field_name) else {
                continue;
            };
            if let FieldKind::File { max_size, .. } = &field.kind {
                if meta_key == "avatarURL" {
                    let max = if *max_size == 0 {
                        crate::DEFAULT_MAX_FILE_SIZE as usize
                    } else {
                        *max_size as usize
                    };
                    avatar = Some((field_name.to_string(), value.clone(), max));
                }
                continue;
            }
            if matches!(
                field.kind,
                FieldKind::Text { .. } | FieldKind::Url { .. } | FieldKind::Editor { .. }
            ) {
                body.insert(field_name.to_string(), Json::String(value.clone()));
            }
        }
        let mut create_info = info.clone();
        create_info.context = "oauth2".into();
        create_info.body = body.clone();
        // The avatar is fetched from a public address only (see `safe_fetch`); a failed
        // or refused download, or a file the field does not accept, leaves it empty.
        let mut uploads = Vec::new();
        if let Some((field, url, max)) = &avatar {
            match crate::safe_fetch::fetch_public(url, *max).await {
                Ok(bytes) => uploads.push(crate::files::Upload {
                    key: field.clone(),
                    filename: avatar_name(url),
                    bytes,
                }),
                Err(error) => tracing::info!(%error, "OAuth2 avatar not downloaded"),
            }
        }
        let op = match self
            .prepare_create(&collection.id, body.clone(), uploads, &create_info)
            .await
        {
            Err(CoreError::BadRequest { data, .. })
                if avatar
                    .as_ref()
                    .is_some_and(|(field, ..)| data.contains_key(field)) =>
            {
                self.prepare_create(&collection.id, body, Vec::new(), &create_info)
                    .await?
            }
            other => other?,
        };
        // Verified (when the emails match) and linked in the transaction of the insert.
        let (c, p, pid, verified_email) = (
            collection.id.clone(),
            provider.name.clone(),
            user.id.clone(),
            user.email.clone(),
        );
        let target = op.collection.clone();
        let insert = op.apply;
        let op = WriteOp {
            apply: Box::new(move |conn: &mut dyn Conn| {
                let mut written = insert(conn)?;
                let Some(record) = written.record.as_mut() else {
                    return Err(CoreError::internal("OAuth2 create wrote no record"));
                };
                let id = text(record, "id").to_string();
                let email = text(record, "email").to_string();
                if record.get("verified").and_then(Json::as_bool) != Some(true)
                    && email == verified_email
                {
                    let changes: Map<String, Json> = [("verified".to_string(), Json::Bool(true))]
                        .into_iter()
                        .collect();
                    if let Some(statement) =
                        basalt_sql::record::update(&target, &id, &changes, conn.dialect())
                    {
                        conn.execute(&statement)?;
                    }
                    record.extend(changes.clone());
                    for change in &mut written.changes {
                        change.record.extend(changes.clone());
                    }
                }
                insert_link(conn, &c, &id, &p, &pid)?;
                Ok(written)
            }),
            ..op
        };
        let created = self.run_write(op, &create_info).await?;
        let id = str_of(&created.unwrap_or(Json::Null), "id").to_string();
        self.load(collection, &id)
            .await?
            .ok_or_else(|| CoreError::internal("created OAuth2 record not found"))
    }
}

/// The file name of a downloaded avatar: the URL's last segment, or `avatar`.
fn avatar_name(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let last = path.rsplit('/').next().unwrap_or_default();
    if last.is_empty() || !path.contains("//") || path.ends_with('/') {
        "avatar".to_string()
    } else {
        last.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_is_rfc7636_s256() {
        // RFC 7636 appendix B.
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert_ne!(nonce_for("a"), nonce_for("b"));
    }

    #[test]
    fn presets_and_unknown_names() {
        let options = json!({"enabled": true, "providers": [
            {"name": "github", "clientId": "c"},
            {"name": "oidc2", "clientId": "d", "authURL": "http://x/auth", "pkce": false},
            {"name": "myspace", "clientId": "e"},
        ]});
        let list = providers(&options);
        assert_eq!(list.len(), 2);
        assert_eq!(
            list[0].token_url,
            "https://github.com/login/oauth/access_token"
        );
        assert_eq!(list[0].kind, Kind::Github);
        assert_eq!(list[1].auth_url, "http://x/auth");
        assert!(!list[1].pkce);
        assert_eq!(id_of(&json!({"id": 42}), "id"), "42");
        assert_eq!(id_of(&json!({"id": ""}), "id"), "");
    }
}
