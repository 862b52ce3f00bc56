//! Authentication: bcrypt passwords, PocketBase-shaped JWTs, and resolving a request's
//! `Authorization` token into an [`Auth`].
//!
//! Tokens are HS256 only (an allowlist), signed with the record's `tokenKey` plus the
//! collection's per-type secret, so rotating either invalidates every older token.

use std::sync::Arc;

use basalt_schema::{Collection, SUPERUSERS_ID, random_string};
use basalt_sql::{Value, record};
use basalt_store::Conn;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::app::App;
use crate::error::CoreError;

/// An authenticated caller: the auth record and its collection.
#[derive(Debug, Clone)]
pub struct Auth {
    /// The auth collection of the record.
    pub collection: Arc<Collection>,
    /// The record's stored fields (password hash included; never exported).
    pub record: Map<String, Json>,
}

impl Auth {
    /// The record id.
    pub fn id(&self) -> &str {
        self.record
            .get("id")
            .and_then(Json::as_str)
            .unwrap_or_default()
    }

    /// Whether the caller is a superuser.
    pub fn is_superuser(&self) -> bool {
        self.collection.id == SUPERUSERS_ID
    }
}

/// The token types PocketBase issues; never interchangeable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    /// Auth (sent in `Authorization`).
    Auth,
    /// Protected file access.
    File,
    /// Email verification.
    Verification,
    /// Password reset.
    PasswordReset,
    /// Email change.
    EmailChange,
}

impl TokenType {
    fn as_str(self) -> &'static str {
        match self {
            TokenType::Auth => "auth",
            TokenType::File => "file",
            TokenType::Verification => "verification",
            TokenType::PasswordReset => "passwordReset",
            TokenType::EmailChange => "emailChange",
        }
    }

    fn secret(self, collection: &Collection) -> Option<(String, u64)> {
        let auth = collection.auth.as_ref()?;
        let config = match self {
            TokenType::Auth => &auth.auth_token,
            TokenType::File => &auth.file_token,
            TokenType::Verification => &auth.verification_token,
            TokenType::PasswordReset => &auth.password_reset_token,
            TokenType::EmailChange => &auth.email_change_token,
        };
        Some((config.secret.clone(), config.duration))
    }
}

/// PocketBase's token claims; which optional claims are present depends on the type
/// (`refreshable` for auth, `email` for verification/passwordReset/emailChange,
/// `newEmail` for emailChange).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Claims {
    pub(crate) id: String,
    #[serde(rename = "type")]
    pub(crate) kind: String,
    #[serde(rename = "collectionId")]
    pub(crate) collection_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) refreshable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) email: Option<String>,
    #[serde(default, rename = "newEmail", skip_serializing_if = "Option::is_none")]
    pub(crate) new_email: Option<String>,
    pub(crate) exp: i64,
}

fn signing_key(record: &Map<String, Json>, secret: &str) -> Vec<u8> {
    let token_key = record
        .get("tokenKey")
        .and_then(Json::as_str)
        .unwrap_or_default();
    let mut key = token_key.as_bytes().to_vec();
    key.extend_from_slice(secret.as_bytes());
    key
}

fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Issues a token of `kind` for an auth record. Verification, password reset and email
/// change tokens carry the record's current `email` claim; use [`issue_email_change_token`]
/// for the email change token's `newEmail`.
pub fn issue_token(
    collection: &Collection,
    record: &Map<String, Json>,
    kind: TokenType,
    duration_override: Option<u64>,
    refreshable: bool,
) -> Result<String, CoreError> {
    sign_token(
        collection,
        record,
        kind,
        duration_override,
        refreshable,
        None,
    )
}

/// Issues an `emailChange` token whose `newEmail` claim is `new_email`.
pub fn issue_email_change_token(
    collection: &Collection,
    record: &Map<String, Json>,
    new_email: &str,
) -> Result<String, CoreError> {
    sign_token(
        collection,
        record,
        TokenType::EmailChange,
        None,
        false,
        Some(new_email),
    )
}

fn sign_token(
    collection: &Collection,
    record: &Map<String, Json>,
    kind: TokenType,
    duration_override: Option<u64>,
    refreshable: bool,
    new_email: Option<&str>,
) -> Result<String, CoreError> {
    let (secret, duration) = kind
        .secret(collection)
        .ok_or_else(|| CoreError::internal("not an auth collection"))?;
    let duration = duration_override.filter(|d| *d > 0).unwrap_or(duration);
    let email_claim = matches!(
        kind,
        TokenType::Verification | TokenType::PasswordReset | TokenType::EmailChange
    );
    let claims = Claims {
        id: record
            .get("id")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_string(),
        kind: kind.as_str().to_string(),
        collection_id: collection.id.clone(),
        refreshable: (kind == TokenType::Auth).then_some(refreshable),
        email: email_claim.then(|| {
            record
                .get("email")
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_string()
        }),
        new_email: (kind == TokenType::EmailChange)
            .then(|| new_email.unwrap_or_default().to_string()),
        // Saturating: an impersonation duration is any non-negative number of seconds.
        exp: now_unix().saturating_add(i64::try_from(duration).unwrap_or(i64::MAX)),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(&signing_key(record, &secret)),
    )
    .map_err(CoreError::internal)
}

/// Unverified claims, used only to find the record whose key verifies the signature.
pub(crate) fn peek(token: &str) -> Option<Claims> {
    let header = jsonwebtoken::decode_header(token).ok()?;
    if header.alg != Algorithm::HS256 {
        return None;
    }
    jsonwebtoken::dangerous::insecure_decode::<Claims>(token)
        .ok()
        .map(|data| data.claims)
}

fn verify(
    token: &str,
    collection: &Collection,
    record: &Map<String, Json>,
    kind: TokenType,
) -> bool {
    let Some((secret, _)) = kind.secret(collection) else {
        return false;
    };
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_aud = false;
    validation.leeway = 0;
    validation.set_required_spec_claims(&["exp"]);
    let key = DecodingKey::from_secret(&signing_key(record, &secret));
    match jsonwebtoken::decode::<Claims>(token, &key, &validation) {
        Ok(data) => {
            data.claims.kind == kind.as_str()
                && data.claims.collection_id == collection.id
                && record.get("id").and_then(Json::as_str) == Some(data.claims.id.as_str())
        }
        Err(_) => false,
    }
}

/// Hashes a password with bcrypt.
pub(crate) fn hash_password(plain: &str, cost: u32) -> Result<String, CoreError> {
    let cost = if cost == 0 { 10 } else { cost };
    bcrypt::hash(plain, cost).map_err(CoreError::internal)
}

/// A bcrypt hash of a random password at `cost`, checked when no record matches so
/// that unknown identities cost the same time as wrong passwords (a cheaper or dearer
/// dummy than the collection's cost would tell them apart), made once per cost.
fn dummy_hash(cost: u32) -> String {
    static BY_COST: std::sync::LazyLock<
        parking_lot::Mutex<std::collections::HashMap<u32, String>>,
    > = std::sync::LazyLock::new(Default::default);
    let cost = if cost == 0 { 10 } else { cost };
    BY_COST
        .lock()
        .entry(cost)
        .or_insert_with(|| hash_password(&random_string(20), cost).unwrap_or_default())
        .clone()
}

/// An auth method's options (`otp`, `oauth2`, ...) when they say `enabled: true`;
/// otherwise PocketBase's 403 naming the method.
pub(crate) fn enabled_method(options: Option<&Json>, method: &str) -> Result<Json, CoreError> {
    match options {
        Some(options) if options.get("enabled").and_then(Json::as_bool) == Some(true) => {
            Ok(options.clone())
        }
        _ => Err(CoreError::Forbidden(format!(
            "The collection is not configured to allow {method} authentication."
        ))),
    }
}

fn password_cost(collection: &Collection) -> u32 {
    collection
        .field("password")
        .and_then(|f| match &f.kind {
            basalt_schema::FieldKind::Password { cost, .. } => Some(*cost),
            _ => None,
        })
        .unwrap_or(0)
}

/// Loads one record of `collection` by id.
pub(crate) fn load_record(
    conn: &mut dyn Conn,
    collection: &Collection,
    id: &str,
) -> Result<Option<Map<String, Json>>, CoreError> {
    let rows = conn.query(&record::select_by_id(collection, id, conn.dialect()))?;
    Ok(rows
        .rows
        .into_iter()
        .next()
        .map(|row| record::decode_row(collection, row)))
}

/// A freshly generated token key.
pub(crate) fn new_token_key() -> String {
    random_string(50)
}

/// The successful result of a login.
#[derive(Debug, Clone)]
pub struct AuthResult {
    /// The signed auth token.
    pub token: String,
    /// The authenticated caller.
    pub auth: Auth,
}

impl App {
    /// Runs a bcrypt operation off the async threads, at most N at a time.
    pub(crate) async fn with_hashing<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, CoreError> {
        let _permit = self
            .inner
            .hashing
            .acquire()
            .await
            .map_err(CoreError::internal)?;
        tokio::task::spawn_blocking(job)
            .await
            .map_err(CoreError::internal)
    }

    /// Resolves an `Authorization` header value; invalid tokens mean a guest (`None`).
    /// A token that cannot be checked because the database is unavailable also means a
    /// guest here; request handling uses [`App::try_authenticate`].
    pub async fn authenticate(&self, header: &str) -> Option<Auth> {
        self.try_authenticate(header).await.ok().flatten()
    }

    /// Resolves an `Authorization` header value: `Ok(None)` for an invalid token (a
    /// guest), `Err` (503) when the token's record cannot be read, so that a database
    /// outage never turns a signed-in caller into a guest.
    pub async fn try_authenticate(&self, header: &str) -> Result<Option<Auth>, CoreError> {
        let token = header.trim();
        let token = if token.len() > 7 && token[..7].eq_ignore_ascii_case("bearer ") {
            &token[7..]
        } else {
            token
        };
        self.try_verify_token(token, TokenType::Auth).await
    }

    /// Verifies a token of the given type and returns its record.
    pub async fn verify_token(&self, token: &str, kind: TokenType) -> Option<Auth> {
        self.try_verify_token(token, kind).await.ok().flatten()
    }

    /// [`App::verify_token`], with a storage failure as an error rather than `None`.
    pub async fn try_verify_token(
        &self,
        token: &str,
        kind: TokenType,
    ) -> Result<Option<Auth>, CoreError> {
        let Some(claims) = peek(token) else {
            return Ok(None);
        };
        if claims.kind != kind.as_str() {
            return Ok(None);
        }
        let Some(collection) = self
            .schema()
            .collections
            .iter()
            .find(|c| c.id == claims.collection_id && c.is_auth())
            .cloned()
        else {
            return Ok(None);
        };
        let lookup = collection.clone();
        let id = claims.id.clone();
        let record =
            basalt_store::read_single(self.store().as_ref(), move |conn: &mut dyn Conn| {
                load_record(conn, &lookup, &id)
            })
            .await?;
        Ok(record
            .filter(|record| verify(token, &collection, record, kind))
            .map(|record| Auth { collection, record }))
    }

    /// `auth-with-password`: checks the identity and password against an auth collection.
    pub async fn auth_with_password(
        &self,
        collection: Arc<Collection>,
        identity: &str,
        password: &str,
        identity_field: Option<&str>,
        mfa_id: Option<&str>,
    ) -> Result<AuthResult, CoreError> {
        let options = collection.auth.as_ref().ok_or_else(CoreError::not_found)?;
        if !options.password_enabled() {
            return Err(CoreError::Forbidden(
                "The collection is not configured to allow password authentication.".into(),
            ));
        }
        let mut errors = basalt_schema::FieldErrors::new();
        if identity.is_empty() {
            errors.insert("identity".into(), basalt_schema::FieldError::required());
        }
        if password.is_empty() {
            errors.insert("password".into(), basalt_schema::FieldError::required());
        }
        if !errors.is_empty() {
            return Err(CoreError::validation(
                "An error occurred while validating the submitted data.",
                errors,
            ));
        }
        let mut fields = options.identity_fields();
        if let Some(only) = identity_field {
            if !fields.iter().any(|f| f == only) {
                return Err(CoreError::bad_request("Failed to authenticate."));
            }
            fields = vec![only.to_string()];
        }
        let lookup = collection.clone();
        let identity_value = identity.to_string();
        let found = basalt_store::read(self.store().as_ref(), move |conn: &mut dyn Conn| {
            for field in fields {
                if field == "email" && !identity_value.contains('@') {
                    continue;
                }
                let nocase = lookup
                    .indexes
                    .iter()
                    .any(|i| i.to_ascii_uppercase().contains("NOCASE") && i.contains(&field));
                let Some(query) = record::select_by_field(
                    &lookup,
                    &field,
                    Value::Text(identity_value.clone()),
                    nocase,
                    conn.dialect(),
                ) else {
                    continue;
                };
                let rows = conn.query(&query)?;
                if rows.rows.len() == 1 {
                    let row = rows.rows.into_iter().next().unwrap_or_default();
                    return Ok::<_, CoreError>(Some(record::decode_row(&lookup, row)));
                }
            }
            Ok(None)
        })
        .await?;
        let hash = found
            .as_ref()
            .and_then(|r| r.get("password"))
            .and_then(Json::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| dummy_hash(password_cost(&collection)));
        let plain = password.to_string();
        let matches = self
            .with_hashing(move || bcrypt::verify(plain, &hash).unwrap_or(false))
            .await?;
        let Some(record) = found.filter(|_| matches) else {
            return Err(CoreError::bad_request("Failed to authenticate."));
        };
        self.complete_auth(collection, record, "password", mfa_id)
            .await
    }

    /// `auth-refresh`: a new token for the caller if its token is refreshable.
    pub async fn auth_refresh(
        &self,
        collection: Arc<Collection>,
        auth: Auth,
        current_token: &str,
    ) -> Result<AuthResult, CoreError> {
        if auth.collection.id != collection.id {
            return Err(CoreError::Forbidden(format!(
                "The request requires auth record from {} collection.",
                auth.collection.name
            )));
        }
        self.check_auth_rule(&auth).await?;
        let token = current_token.trim();
        let token = if token.len() > 7 && token[..7].eq_ignore_ascii_case("bearer ") {
            &token[7..]
        } else {
            token
        };
        let refreshable = peek(token).and_then(|c| c.refreshable).unwrap_or(false);
        let token = if refreshable {
            issue_token(&collection, &auth.record, TokenType::Auth, None, true)?
        } else {
            token.to_string()
        };
        Ok(AuthResult { token, auth })
    }

    pub(crate) async fn check_auth_rule(&self, auth: &Auth) -> Result<(), CoreError> {
        let rule = auth
            .collection
            .auth
            .as_ref()
            .and_then(|a| a.auth_rule.clone());
        let denied = || {
            CoreError::Forbidden(
                "The request doesn't satisfy the collection requirements to authenticate.".into(),
            )
        };
        match rule.as_deref() {
            None => Err(denied()),
            Some("") => Ok(()),
            Some(rule) => {
                let info = crate::RequestInfo {
                    auth: None,
                    ..crate::RequestInfo::default()
                };
                let allowed = self
                    .record_matches_rule(&auth.collection, auth.id(), rule, &info)
                    .await?;
                if allowed { Ok(()) } else { Err(denied()) }
            }
        }
    }

    /// Creates or updates a superuser (CLI `superuser upsert`).
    pub async fn superuser_upsert(&self, email: &str, password: &str) -> Result<(), CoreError> {
        let collection = self
            .collection(SUPERUSERS_ID)
            .ok_or_else(|| CoreError::internal("missing _superusers"))?;
        self.upsert_auth_record(collection, email, password, true, true)
            .await
            .map(|_| ())
    }

    /// Creates (`create`) or updates (`update`) the auth record with this email.
    pub async fn upsert_auth_record(
        &self,
        collection: Arc<Collection>,
        email: &str,
        password: &str,
        create: bool,
        update: bool,
    ) -> Result<String, CoreError> {
        let email_field = collection
            .field("email")
            .cloned()
            .ok_or_else(CoreError::not_found)?;
        if let Err(error) = email_field.validate(&Json::String(email.to_string())) {
            return Err(CoreError::validation(
                "Invalid email.",
                [("email".to_string(), error)].into(),
            ));
        }
        if let Some(field) = collection.field("password")
            && let Err(error) = field.validate_password(password)
        {
            return Err(CoreError::validation(
                "Invalid password.",
                [("password".to_string(), error)].into(),
            ));
        }
        let cost = password_cost(&collection);
        let plain = password.to_string();
        let hash = self
            .with_hashing(move || hash_password(&plain, cost))
            .await??;
        let email = email.to_string();
        basalt_store::write(self.store().as_ref(), move |conn: &mut dyn Conn| {
            let dialect = conn.dialect();
            let query = record::select_by_field(
                &collection,
                "email",
                Value::Text(email.clone()),
                true,
                dialect,
            )
            .ok_or_else(|| CoreError::internal("no email field"))?;
            let existing = conn
                .query(&query)?
                .rows
                .into_iter()
                .next()
                .map(|row| record::decode_row(&collection, row));
            let now = basalt_schema::now_datetime();
            match existing {
                Some(current) if update => {
                    let id = current
                        .get("id")
                        .and_then(Json::as_str)
                        .unwrap_or_default()
                        .to_string();
                    let mut changes = Map::new();
                    changes.insert("password".into(), Json::String(hash));
                    changes.insert("tokenKey".into(), Json::String(new_token_key()));
                    if collection.field("updated").is_some() {
                        changes.insert("updated".into(), Json::String(now));
                    }
                    if let Some(statement) = record::update(&collection, &id, &changes, dialect) {
                        conn.execute(&statement)?;
                    }
                    Ok(id)
                }
                Some(_) => Err(CoreError::bad_request(
                    "A record with this email already exists.",
                )),
                None if create => {
                    let id = basalt_schema::random_id();
                    let mut data = Map::new();
                    data.insert("id".into(), Json::String(id.clone()));
                    data.insert("email".into(), Json::String(email));
                    data.insert("password".into(), Json::String(hash));
                    data.insert("tokenKey".into(), Json::String(new_token_key()));
                    data.insert("verified".into(), Json::Bool(true));
                    for field in ["created", "updated"] {
                        if collection.field(field).is_some() {
                            data.insert(field.into(), Json::String(now.clone()));
                        }
                    }
                    conn.execute(&record::insert(&collection, &data, dialect))?;
                    Ok(id)
                }
                None => Err(CoreError::not_found()),
            }
        })
        .await
    }

    /// Deletes the superuser with this email (CLI `superuser delete`).
    pub async fn superuser_delete(&self, email: &str) -> Result<(), CoreError> {
        let collection = self
            .collection(SUPERUSERS_ID)
            .ok_or_else(|| CoreError::internal("missing _superusers"))?;
        let email = email.to_string();
        basalt_store::write(self.store().as_ref(), move |conn: &mut dyn Conn| {
            let dialect = conn.dialect();
            let query =
                record::select_by_field(&collection, "email", Value::Text(email), true, dialect)
                    .ok_or_else(|| CoreError::internal("no email field"))?;
            let Some(row) = conn.query(&query)?.rows.into_iter().next() else {
                return Err(CoreError::not_found());
            };
            let current = record::decode_row(&collection, row);
            let id = current.get("id").and_then(Json::as_str).unwrap_or_default();
            conn.execute(&record::delete(&collection, id, dialect))?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dummy_hash_is_a_valid_bcrypt_hash() {
        assert_eq!(bcrypt::verify("anything", &dummy_hash(0)).ok(), Some(false));
    }
}
