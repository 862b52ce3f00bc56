//! The auth flows around a password login: email verification, password reset, email
//! change (each a `request-*` that mails a typed token and a `confirm-*` that spends
//! it), impersonation, the manage rule, and the settings' test email.
//!
//! - `request-verification` and `request-password-reset` answer the same for known and
//!   unknown emails, in body and in time (no enumeration): the input is validated in
//!   the request, the lookup happens in a background job (at most
//!   [`MAX_BACKGROUND_JOBS`] at once; more requests wait for a slot, whatever their
//!   email) and the mail is sent after it. One mail per record and kind goes out per [`RESEND_WINDOW`].
//! - A `confirm-*` verifies its token (type, signature, expiry, collection) and writes
//!   inside a transaction that re-reads the record and refuses the write if its
//!   `tokenKey` changed since, so a token is spent at most once.
//! - Password and email changes rotate `tokenKey`, which kills every older token.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Weak};
use std::time::{Duration, Instant};

use basalt_schema::{
    Collection, Field, FieldError, FieldErrors, FieldKind, SUPERUSERS_ID, now_datetime,
    random_string,
};
use basalt_sql::{Value, record};
use basalt_store::Conn;
use parking_lot::Mutex;
use serde_json::{Map, Value as Json, json};
use tokio::sync::Semaphore;

use crate::app::{App, Inner};
use crate::auth::{
    Auth, AuthResult, TokenType, issue_email_change_token, issue_token, new_token_key, peek,
};
use crate::error::CoreError;
use crate::mail::{self, Mail, MailError, MailMeta, Placeholders};
use crate::realtime::{Action, Change};
use crate::records::RequestInfo;

/// How long a verification, password reset or email change request blocks a repeat.
pub const RESEND_WINDOW: Duration = Duration::from_secs(120);

const VALIDATION_FAILED: &str = "An error occurred while validating the submitted data.";
const LOAD_FAILED: &str = "An error occurred while loading the submitted data.";

/// How many background request jobs (lookup + mail) may run at once per app.
pub(crate) const MAX_BACKGROUND_JOBS: usize = 32;

/// The flows' in-memory state of one app.
struct FlowState {
    /// Resend keys (`collectionId/recordId/kind`) → blocked until.
    resend: HashMap<String, Instant>,
    /// Slots for background request jobs.
    jobs: Arc<Semaphore>,
}

/// Flow state per app, kept outside `App` and keyed by a weak reference to it (so an
/// app dropped in tests frees its entry, and a live app's address is never reused).
static FLOWS: LazyLock<Mutex<Vec<AppFlows>>> = LazyLock::new(|| Mutex::new(Vec::new()));

/// One app (by weak reference) and its flow state.
type AppFlows = (Weak<Inner>, FlowState);

impl App {
    fn with_flow_state<T>(&self, f: impl FnOnce(&mut FlowState) -> T) -> T {
        let mut apps = FLOWS.lock();
        apps.retain(|(app, _)| app.strong_count() > 0);
        let this = Arc::as_ptr(&self.inner);
        let index = match apps.iter().position(|(app, _)| app.as_ptr() == this) {
            Some(index) => index,
            None => {
                let state = FlowState {
                    resend: HashMap::new(),
                    jobs: Arc::new(Semaphore::new(MAX_BACKGROUND_JOBS)),
                };
                apps.push((Arc::downgrade(&self.inner), state));
                apps.len() - 1
            }
        };
        f(&mut apps[index].1)
    }

    /// Claims a resend key: false if the same request was made within the window.
    fn claim_resend(&self, key: &str) -> bool {
        let now = Instant::now();
        self.with_flow_state(|state| {
            state.resend.retain(|_, until| *until > now);
            if state.resend.contains_key(key) {
                return false;
            }
            state.resend.insert(key.to_string(), now + RESEND_WINDOW);
            true
        })
    }

    /// Frees a resend key (after a failed send, or once the flow completed).
    fn release_resend(&self, key: &str) {
        self.with_flow_state(|state| state.resend.remove(key));
    }

    /// Runs a request's lookup and mail after the response, in one of the app's job
    /// slots; waits for a slot first (a wait that does not depend on the input).
    pub(crate) async fn in_background<F>(&self, what: &'static str, job: F) -> Result<(), CoreError>
    where
        F: Future<Output = Result<(), CoreError>> + Send + 'static,
    {
        let slots = self.with_flow_state(|state| state.jobs.clone());
        let permit = slots.acquire_owned().await.map_err(CoreError::internal)?;
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(error) = job.await {
                tracing::error!(what, %error, "{what} request failed");
            }
        });
        Ok(())
    }
}

fn resend_key(collection: &Collection, record: &Map<String, Json>, kind: &str) -> String {
    format!("{}/{}/{kind}", collection.id, text(record, "id"))
}

pub(crate) fn text<'a>(record: &'a Map<String, Json>, key: &str) -> &'a str {
    record.get(key).and_then(Json::as_str).unwrap_or_default()
}

fn email_of(record: &Map<String, Json>) -> String {
    text(record, "email").to_string()
}

fn validation(errors: FieldErrors) -> CoreError {
    CoreError::validation(VALIDATION_FAILED, errors)
}

fn invalid_token() -> FieldError {
    FieldError::new("validation_invalid_token", "Invalid or expired token.")
}

fn collection_mismatch() -> FieldError {
    FieldError::new(
        "validation_token_collection_mismatch",
        "The provided token is for different auth collection.",
    )
}

fn length_error(min: usize, max: usize) -> FieldError {
    FieldError::with_params(
        "validation_length_out_of_range",
        &format!("The length must be between {min} and {max}."),
        json!({"max": max, "min": min}),
    )
}

/// `email`-like form input: required, 1..=255 characters, an email address.
pub(crate) fn check_email_input(value: &str) -> Result<(), FieldError> {
    if value.is_empty() {
        return Err(FieldError::required());
    }
    if value.chars().count() > 255 {
        return Err(length_error(1, 255));
    }
    Field::new(
        "email",
        FieldKind::Email {
            required: true,
            except_domains: None,
            only_domains: None,
        },
    )
    .validate(&Json::String(value.to_string()))
}

fn superusers_verified() -> CoreError {
    CoreError::bad_request("All superusers are verified by default.")
}

/// The templates the test email can send.
const TEST_TEMPLATES: [&str; 5] = [
    "verification",
    "password-reset",
    "email-change",
    "otp",
    "login-alert",
];

/// The manage rule of an auth collection, when it grants anything (a null or empty rule
/// leaves managing to superusers).
pub(crate) fn manage_rule(collection: &Collection) -> Option<&str> {
    collection
        .auth
        .as_ref()
        .and_then(|a| a.manage_rule.as_deref())
        .filter(|rule| collection.is_auth() && !rule.trim().is_empty())
}

/// Integer JSON input (`duration`); floats and strings do not load, like PocketBase's
/// typed body binding.
fn integer_input(value: Option<&Json>) -> Result<i64, CoreError> {
    match value {
        None | Some(Json::Null) => Ok(0),
        Some(Json::Number(n)) => n
            .as_i64()
            .ok_or_else(|| CoreError::bad_request(LOAD_FAILED)),
        Some(_) => Err(CoreError::bad_request(LOAD_FAILED)),
    }
}

impl App {
    /// Whether the caller satisfies the collection's `manageRule` for record `id`: a
    /// manager may change the record's email, password and verified state without its
    /// old password. A null or empty rule grants nothing (only superusers manage).
    pub(crate) async fn has_manage_access(
        &self,
        collection: &Arc<Collection>,
        id: &str,
        info: &RequestInfo,
    ) -> Result<bool, CoreError> {
        if info.auth.is_none() {
            return Ok(false);
        }
        let Some(rule) = manage_rule(collection) else {
            return Ok(false);
        };
        self.record_matches_rule(collection, id, rule, info).await
    }

    /// Finds the auth record with this email (case-insensitive; an exact match wins if
    /// the case-insensitive lookup is ambiguous).
    pub(crate) async fn find_by_email(
        &self,
        collection: &Arc<Collection>,
        email: &str,
    ) -> Result<Option<Map<String, Json>>, CoreError> {
        let lookup = collection.clone();
        let email = email.to_string();
        basalt_store::read(self.store().as_ref(), move |conn: &mut dyn Conn| {
            let Some(query) = record::select_by_field(
                &lookup,
                "email",
                Value::Text(email.clone()),
                true,
                conn.dialect(),
            ) else {
                return Ok(None);
            };
            let rows: Vec<Map<String, Json>> = conn
                .query(&query)?
                .rows
                .into_iter()
                .map(|row| record::decode_row(&lookup, row))
                .collect();
            Ok::<_, CoreError>(if rows.len() == 1 {
                rows.into_iter().next()
            } else {
                rows.into_iter().find(|r| text(r, "email") == email)
            })
        })
        .await
    }

    /// Renders a template of the collection for a record.
    fn compose(
        &self,
        collection: &Collection,
        record: &Map<String, Json>,
        template: &Json,
        token: &str,
        to: &str,
    ) -> Mail {
        let meta = MailMeta::from_settings(&self.settings());
        let values = Placeholders {
            meta: &meta,
            token,
            otp: "",
            alert_info: "",
            record: Some((collection, record)),
        };
        mail::render(template, &values, to)
    }

    /// Sends a mail of a request job; a failure is logged and frees the resend key.
    async fn deliver_mail(&self, mail: Mail, what: &'static str, resend: &str) {
        match mail::send(&self.settings(), mail).await {
            Ok(()) => tracing::debug!(what, "mail sent"),
            Err(MailError::Disabled) => {
                self.release_resend(resend);
                tracing::warn!(
                    what,
                    "no {what} email was sent: SMTP is disabled in the settings"
                );
            }
            Err(error) => {
                self.release_resend(resend);
                tracing::error!(what, %error, "failed to send {what} email");
            }
        }
    }

    /// [`App::write_auth_record`] for a record the caller holds: writes `changes`
    /// (checked against the record's token key as read) and merges them into `record`.
    pub(crate) async fn update_held_auth_record(
        &self,
        collection: &Arc<Collection>,
        record: &mut Map<String, Json>,
        changes: Map<String, Json>,
    ) -> Result<(), CoreError> {
        let auth = Auth {
            collection: collection.clone(),
            record: record.clone(),
        };
        self.write_auth_record(collection.clone(), &auth, changes.clone())
            .await?;
        record.extend(changes);
        Ok(())
    }

    /// Writes `changes` to an auth record in one transaction, provided its `tokenKey`
    /// is still the one the spent token was signed with (else the token is invalid).
    pub(crate) async fn write_auth_record(
        &self,
        collection: Arc<Collection>,
        auth: &Auth,
        mut changes: Map<String, Json>,
    ) -> Result<(), CoreError> {
        let id = auth.id().to_string();
        let token_key = text(&auth.record, "tokenKey").to_string();
        let now = now_datetime();
        for field in &collection.fields {
            if let FieldKind::Autodate {
                on_update: true, ..
            } = field.kind
            {
                changes.insert(field.name.clone(), Json::String(now.clone()));
            }
        }
        let written = basalt_store::write(self.store().as_ref(), move |conn: &mut dyn Conn| {
            let dialect = conn.dialect();
            let current = conn
                .query(&record::select_by_id_for_update(&collection, &id, dialect))?
                .rows
                .into_iter()
                .next()
                .map(|row| record::decode_row(&collection, row));
            let spent = || validation([("token".to_string(), invalid_token())].into());
            let Some(current) = current else {
                return Err(spent());
            };
            if text(&current, "tokenKey") != token_key {
                return Err(spent());
            }
            if let Some(statement) = record::update(&collection, &id, &changes, dialect)
                && let Err(error) = conn.execute(&statement)
            {
                return Err(
                    crate::records::unique_error(&collection, &error, VALIDATION_FAILED)
                        .map(|_| {
                            validation(
                                [(
                                    "token".to_string(),
                                    FieldError::new(
                                        "validation_invalid_token_email",
                                        "The new email address is invalid.",
                                    ),
                                )]
                                .into(),
                            )
                        })
                        .unwrap_or_else(|| CoreError::from(error)),
                );
            }
            let mut after = current.clone();
            after.extend(changes);
            Ok(Change::saved(
                collection,
                Action::Update,
                Some(&current),
                after,
            ))
        })
        .await?;
        // Realtime: a rotated tokenKey turns the record's subscribers into guests.
        self.publish(vec![written]).await;
        Ok(())
    }

    /// The checks shared by both verification endpoints (before the body is read).
    pub fn check_verification_collection(&self, collection: &Collection) -> Result<(), CoreError> {
        if collection.id == SUPERUSERS_ID {
            return Err(superusers_verified());
        }
        Ok(())
    }

    /// `request-verification`: mails a verification link to an unverified record. Answers
    /// the same whether the email exists or not.
    pub async fn request_verification(
        &self,
        collection: Arc<Collection>,
        email: &str,
    ) -> Result<(), CoreError> {
        self.check_verification_collection(&collection)?;
        if let Err(error) = check_email_input(email) {
            return Err(validation([("email".to_string(), error)].into()));
        }
        let app = self.clone();
        let email = email.to_string();
        self.in_background("verification", async move {
            let Some(record) = app.find_by_email(&collection, &email).await? else {
                return Ok(());
            };
            if record.get("verified").and_then(Json::as_bool) == Some(true) {
                return Ok(());
            }
            let key = resend_key(&collection, &record, "verification");
            if !app.claim_resend(&key) {
                return Ok(());
            }
            let token = issue_token(&collection, &record, TokenType::Verification, None, false)?;
            let template = collection
                .auth
                .as_ref()
                .map(|a| a.verification_template.clone())
                .unwrap_or_default();
            let mail = app.compose(&collection, &record, &template, &token, &email_of(&record));
            // The send runs on its own, so the job slot is held only for the lookup.
            tokio::spawn(async move { app.deliver_mail(mail, "verification", &key).await });
            Ok(())
        })
        .await
    }

    /// `confirm-verification`: marks the token's record verified.
    pub async fn confirm_verification(
        &self,
        collection: Arc<Collection>,
        token: &str,
    ) -> Result<(), CoreError> {
        self.check_verification_collection(&collection)?;
        let token_error = |error: FieldError| validation([("token".to_string(), error)].into());
        if token.is_empty() {
            return Err(token_error(FieldError::required()));
        }
        let claimed_email = peek(token)
            .and_then(|claims| claims.email)
            .filter(|email| !email.is_empty());
        let Some(claimed_email) = claimed_email else {
            return Err(token_error(FieldError::new(
                "validation_invalid_token_claims",
                "Missing email token claim.",
            )));
        };
        let Some(auth) = self.verify_token(token, TokenType::Verification).await else {
            return Err(token_error(invalid_token()));
        };
        if auth.collection.id != collection.id {
            return Err(token_error(collection_mismatch()));
        }
        if text(&auth.record, "email") != claimed_email {
            return Err(token_error(FieldError::new(
                "validation_token_email_mismatch",
                "The record email doesn't match with the requested token claims.",
            )));
        }
        if auth.record.get("verified").and_then(Json::as_bool) == Some(true) {
            return Ok(());
        }
        let mut changes = Map::new();
        changes.insert("verified".into(), Json::Bool(true));
        self.write_auth_record(collection.clone(), &auth, changes)
            .await?;
        self.release_resend(&resend_key(&collection, &auth.record, "verification"));
        Ok(())
    }

    /// `request-password-reset`: mails a reset link. Answers the same whether the email
    /// exists or not.
    pub async fn request_password_reset(
        &self,
        collection: Arc<Collection>,
        email: &str,
    ) -> Result<(), CoreError> {
        if let Err(error) = check_email_input(email) {
            return Err(validation([("email".to_string(), error)].into()));
        }
        if !collection
            .auth
            .as_ref()
            .is_some_and(|a| a.password_enabled())
        {
            return Err(CoreError::bad_request(
                "The collection is not configured to allow password authentication.",
            ));
        }
        let app = self.clone();
        let email = email.to_string();
        self.in_background("password reset", async move {
            let Some(record) = app.find_by_email(&collection, &email).await? else {
                return Ok(());
            };
            let key = resend_key(&collection, &record, "passwordReset");
            if !app.claim_resend(&key) {
                return Ok(());
            }
            let token = issue_token(&collection, &record, TokenType::PasswordReset, None, false)?;
            let template = collection
                .auth
                .as_ref()
                .map(|a| a.reset_password_template.clone())
                .unwrap_or_default();
            let mail = app.compose(&collection, &record, &template, &token, &email_of(&record));
            // The send runs on its own, so the job slot is held only for the lookup.
            tokio::spawn(async move { app.deliver_mail(mail, "password reset", &key).await });
            Ok(())
        })
        .await
    }

    /// `confirm-password-reset`: sets a new password (rotating `tokenKey`) and marks the
    /// record verified if the token was mailed to its current email.
    pub async fn confirm_password_reset(
        &self,
        collection: Arc<Collection>,
        token: &str,
        password: &str,
        password_confirm: &str,
    ) -> Result<(), CoreError> {
        let field = collection
            .field("password")
            .cloned()
            .ok_or_else(CoreError::not_found)?;
        let min = match &field.kind {
            FieldKind::Password { min, .. } => usize::try_from(*min).unwrap_or(usize::MAX),
            _ => 0,
        };
        let mut errors = FieldErrors::new();
        let mut target = None;
        if token.is_empty() {
            errors.insert("token".into(), FieldError::required());
        } else {
            match self.verify_token(token, TokenType::PasswordReset).await {
                None => {
                    errors.insert("token".into(), invalid_token());
                }
                Some(auth) if auth.collection.id != collection.id => {
                    errors.insert("token".into(), collection_mismatch());
                }
                Some(auth) => target = Some(auth),
            }
        }
        let length = password.chars().count();
        if password.is_empty() {
            errors.insert("password".into(), FieldError::required());
        } else if length < min || length > 255 {
            errors.insert("password".into(), length_error(min, 255));
        }
        if password_confirm.is_empty() {
            errors.insert("passwordConfirm".into(), FieldError::required());
        } else if password_confirm != password {
            errors.insert(
                "passwordConfirm".into(),
                FieldError::new("validation_values_mismatch", "Values don't match."),
            );
        }
        let Some(auth) = target.filter(|_| errors.is_empty()) else {
            return Err(validation(errors));
        };
        if let Err(error) = field.validate_password(password) {
            return Err(CoreError::validation(
                "Failed to set new password.",
                [("password".to_string(), error)].into(),
            ));
        }
        let cost = match &field.kind {
            FieldKind::Password { cost, .. } => *cost,
            _ => 0,
        };
        let plain = password.to_string();
        let hash = self
            .with_hashing(move || crate::auth::hash_password(&plain, cost))
            .await??;
        let mut changes = Map::new();
        changes.insert("password".into(), Json::String(hash));
        changes.insert("tokenKey".into(), Json::String(new_token_key()));
        let claimed_email = peek(token).and_then(|c| c.email).unwrap_or_default();
        if auth.record.get("verified").and_then(Json::as_bool) != Some(true)
            && claimed_email == text(&auth.record, "email")
        {
            changes.insert("verified".into(), Json::Bool(true));
        }
        self.write_auth_record(collection.clone(), &auth, changes)
            .await?;
        self.release_resend(&resend_key(&collection, &auth.record, "passwordReset"));
        Ok(())
    }

    /// `request-email-change`: mails a confirmation link to the new address. Needs the
    /// record's own auth token (`auth`).
    pub async fn request_email_change(
        &self,
        collection: Arc<Collection>,
        auth: Option<Auth>,
        new_email: &str,
    ) -> Result<(), CoreError> {
        let Some(auth) = auth else {
            return Err(CoreError::Unauthorized(
                "The request requires valid record authorization token.".into(),
            ));
        };
        if auth.collection.id != collection.id {
            return Err(CoreError::Forbidden(format!(
                "The request requires auth record from {} collection.",
                auth.collection.name
            )));
        }
        if collection.id == SUPERUSERS_ID {
            return Err(CoreError::bad_request(
                "All superusers can change their emails directly.",
            ));
        }
        let current = text(&auth.record, "email");
        let check = match check_email_input(new_email) {
            Err(error) => Err(error),
            Ok(()) if new_email == current => Err(FieldError::new(
                "validation_not_in_invalid",
                "Must not be in list.",
            )),
            Ok(()) => match self.find_by_email(&collection, new_email).await? {
                Some(other) if text(&other, "id") != auth.id() => Err(FieldError::new(
                    "validation_invalid_new_email",
                    "Invalid new email address.",
                )),
                _ => Ok(()),
            },
        };
        if let Err(error) = check {
            return Err(validation([("newEmail".to_string(), error)].into()));
        }
        let key = resend_key(
            &collection,
            &auth.record,
            &format!("emailChange/{}", new_email.to_lowercase()),
        );
        if !self.claim_resend(&key) {
            return Ok(());
        }
        let token = issue_email_change_token(&collection, &auth.record, new_email)?;
        let template = collection
            .auth
            .as_ref()
            .map(|a| a.confirm_email_change_template.clone())
            .unwrap_or_default();
        let mail = self.compose(&collection, &auth.record, &template, &token, new_email);
        if let Err(error) = mail::send(&self.settings(), mail).await {
            self.release_resend(&key);
            return Err(CoreError::bad_request("Failed to request email change.").with_log(error));
        }
        Ok(())
    }

    /// `confirm-email-change`: with the token and the record's password, sets the new
    /// email, marks it verified and rotates `tokenKey`.
    pub async fn confirm_email_change(
        &self,
        collection: Arc<Collection>,
        token: &str,
        password: &str,
    ) -> Result<(), CoreError> {
        let mut errors = FieldErrors::new();
        let from_token = if token.is_empty() {
            None
        } else {
            self.verify_token(token, TokenType::EmailChange).await
        };
        let mut target = None;
        if token.is_empty() {
            errors.insert("token".into(), FieldError::required());
        } else {
            let new_email = peek(token)
                .and_then(|claims| claims.new_email)
                .filter(|email| !email.is_empty());
            match new_email {
                None => {
                    errors.insert(
                        "token".into(),
                        FieldError::new(
                            "validation_invalid_token_payload",
                            "Invalid token payload - newEmail must be set.",
                        ),
                    );
                }
                Some(new_email) => {
                    if self.find_by_email(&collection, &new_email).await?.is_some() {
                        errors.insert(
                            "token".into(),
                            FieldError::new(
                                "validation_invalid_token_email",
                                "The new email address is invalid.",
                            ),
                        );
                    } else {
                        match &from_token {
                            None => {
                                errors.insert("token".into(), invalid_token());
                            }
                            Some(auth) if auth.collection.id != collection.id => {
                                errors.insert("token".into(), collection_mismatch());
                            }
                            Some(auth) => target = Some((auth.clone(), new_email)),
                        }
                    }
                }
            }
        }
        let wrong_password = || {
            FieldError::new(
                "validation_invalid_password",
                "Missing or invalid auth record password.",
            )
        };
        if password.is_empty() {
            errors.insert("password".into(), FieldError::required());
        } else {
            let hash = from_token
                .as_ref()
                .map(|auth| text(&auth.record, "password").to_string());
            let matches = match hash {
                Some(hash) => {
                    let plain = password.to_string();
                    self.with_hashing(move || bcrypt::verify(plain, &hash).unwrap_or(false))
                        .await?
                }
                None => false,
            };
            if !matches {
                errors.insert("password".into(), wrong_password());
            }
        }
        let Some((auth, new_email)) = target.filter(|_| errors.is_empty()) else {
            return Err(validation(errors));
        };
        let mut changes = Map::new();
        changes.insert("email".into(), Json::String(new_email));
        changes.insert("verified".into(), Json::Bool(true));
        changes.insert("tokenKey".into(), Json::String(new_token_key()));
        self.write_auth_record(collection, &auth, changes).await
    }

    /// `impersonate/{id}` (the caller is a superuser): a non-refreshable auth token for
    /// the record, valid `duration` seconds from the body (0 or absent = the collection's
    /// auth token duration).
    pub async fn impersonate(
        &self,
        collection: Arc<Collection>,
        id: &str,
        body: &Map<String, Json>,
    ) -> Result<AuthResult, CoreError> {
        if !collection.is_auth() {
            return Err(CoreError::NotFound(
                "Missing or invalid auth collection context.".into(),
            ));
        }
        let lookup = collection.clone();
        let target = id.to_string();
        let record = basalt_store::read(self.store().as_ref(), move |conn: &mut dyn Conn| {
            crate::auth::load_record(conn, &lookup, &target)
        })
        .await?
        .ok_or_else(CoreError::not_found)?;
        let duration = integer_input(body.get("duration"))?;
        if duration < 0 {
            return Err(validation(
                [(
                    "duration".to_string(),
                    FieldError::with_params(
                        "validation_min_greater_equal_than_required",
                        "Must be no less than 0.",
                        json!({"threshold": 0}),
                    ),
                )]
                .into(),
            ));
        }
        let duration = u64::try_from(duration).unwrap_or(0);
        let token = issue_token(&collection, &record, TokenType::Auth, Some(duration), false)?;
        Ok(AuthResult {
            token,
            auth: Auth { collection, record },
        })
    }

    /// `POST /api/settings/test/email` (the caller is a superuser): sends one of the
    /// collection's templates (`collection` defaults to `_superusers`) to `email`, for a
    /// stand-in record.
    pub async fn send_test_email(&self, body: &Map<String, Json>) -> Result<(), CoreError> {
        let input = |key: &str| match body.get(key) {
            None | Some(Json::Null) => Ok(String::new()),
            Some(Json::String(text)) => Ok(text.clone()),
            Some(_) => Err(CoreError::bad_request(LOAD_FAILED)),
        };
        let (email, template_name) = (input("email")?, input("template")?);
        let collection_name = Some(input("collection")?)
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| SUPERUSERS_ID.to_string());
        let mut errors = FieldErrors::new();
        if let Err(error) = check_email_input(&email) {
            errors.insert("email".into(), error);
        }
        if template_name.is_empty() {
            errors.insert("template".into(), FieldError::required());
        } else if !TEST_TEMPLATES.contains(&template_name.as_str()) {
            errors.insert(
                "template".into(),
                FieldError::new("validation_in_invalid", "Must be a valid value."),
            );
        }
        let collection = self.collection(&collection_name).filter(|c| c.is_auth());
        if collection.is_none() {
            errors.insert(
                "collection".into(),
                FieldError::new(
                    "validation_invalid_auth_collection",
                    "Must be a valid auth collection id or name.",
                ),
            );
        }
        let (Some(collection), true) = (collection, errors.is_empty()) else {
            return Err(CoreError::validation(
                "Failed to send the test email.",
                errors,
            ));
        };
        let options = collection
            .auth
            .clone()
            .unwrap_or_else(basalt_schema::AuthOptions::new_default);
        let mut record = Map::new();
        for field in &collection.fields {
            let value = match field.zero_value() {
                Json::String(_) => Json::String(format!("__test_{}__", field.name)),
                other => other,
            };
            record.insert(field.name.clone(), value);
        }
        record.insert("id".into(), Json::String("__test_id__".into()));
        record.insert("email".into(), Json::String(email.clone()));
        record.insert("tokenKey".into(), Json::String(random_string(50)));
        let (template, kind) = match template_name.as_str() {
            "verification" => (options.verification_template, Some(TokenType::Verification)),
            "password-reset" => (
                options.reset_password_template,
                Some(TokenType::PasswordReset),
            ),
            "email-change" => (
                options.confirm_email_change_template,
                Some(TokenType::EmailChange),
            ),
            "otp" => (options.otp["emailTemplate"].clone(), None),
            _ => (options.auth_alert["emailTemplate"].clone(), None),
        };
        let token = match kind {
            Some(TokenType::EmailChange) => issue_email_change_token(&collection, &record, &email)?,
            Some(kind) => issue_token(&collection, &record, kind, None, false)?,
            None => String::new(),
        };
        let meta = MailMeta::from_settings(&self.settings());
        let values = Placeholders {
            meta: &meta,
            token: &token,
            otp: "123456",
            alert_info: "a test sign-in (this is a test email)",
            record: Some((&collection, &record)),
        };
        let mail = mail::render(&template, &values, &email);
        mail::send(&self.settings(), mail).await.map_err(|error| {
            CoreError::bad_request(&format!(
                "Failed to send the test email. Raw error: \n{error}."
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_input_limits() {
        assert!(check_email_input(&format!("{}@x.io", "a".repeat(250))).is_ok());
        let error = check_email_input(&format!("{}@x.io", "a".repeat(251))).err();
        assert_eq!(
            error.map(|e| e.to_json()["code"].clone()),
            Some(json!("validation_length_out_of_range"))
        );
        assert!(check_email_input("").is_err());
        assert!(check_email_input("not-an-email").is_err());
    }

    #[test]
    fn durations_are_integers() {
        assert_eq!(integer_input(None).ok(), Some(0));
        assert_eq!(integer_input(Some(&json!(null))).ok(), Some(0));
        assert_eq!(integer_input(Some(&json!(60))).ok(), Some(60));
        assert!(integer_input(Some(&json!(1.5))).is_err());
        assert!(integer_input(Some(&json!("10"))).is_err());
    }
}
