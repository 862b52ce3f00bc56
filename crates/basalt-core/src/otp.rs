//! One-time passwords (`request-otp`, `auth-with-otp`) and multi-factor auth.
//!
//! - `request-otp` answers at once with a fresh `otpId`, whatever the email: the lookup,
//!   the stored (hashed) code and the mail happen after the response, so known and
//!   unknown emails answer the same in status, body and time.
//! - A code is `otp.length` digits (at least 7, so at least 23 bits), single use, valid
//!   `otp.duration` seconds. Every wrong code counts against all of the record's OTPs;
//!   the fifth burns them all (429), whatever address the tries came from.
//! - MFA (`mfa.enabled`, optional `mfa.rule`): the first method that succeeds answers
//!   401 `{"mfaId"}`; a second, different method with that `mfaId` completes the login.

use std::sync::Arc;

use basalt_schema::{Collection, FieldError, FieldErrors, random_id};
use basalt_sql::authflow;
use basalt_store::Conn;
use rand::Rng;
use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};

use crate::app::App;
use crate::auth::{Auth, AuthResult, TokenType, issue_token};
use crate::error::CoreError;
use crate::mail::{self, MailMeta, Placeholders};
use crate::records::RequestInfo;

/// Wrong codes allowed per record before its OTPs are burned.
pub(crate) const MAX_OTP_FAILURES: i64 = 5;
/// At most this many OTPs per record are issued within one OTP duration.
const MAX_ACTIVE_OTPS: i64 = 10;
/// The shortest code issued, whatever the settings say.
const MIN_OTP_LENGTH: u64 = 7;

fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn option_u64(options: &Json, key: &str, default: u64) -> u64 {
    options.get(key).and_then(Json::as_u64).unwrap_or(default)
}

fn invalid_otp() -> CoreError {
    CoreError::bad_request("Invalid or expired OTP.")
}

/// The stored form of a code: SHA-256 over the OTP id, the code and the collection's
/// auth token secret (the code itself is never stored).
fn hash_code(collection: &Collection, otp_id: &str, code: &str) -> String {
    let secret = collection
        .auth
        .as_ref()
        .map(|a| a.auth_token.secret.clone())
        .unwrap_or_default();
    let digest = Sha256::digest(format!("{otp_id}:{code}:{secret}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn int(value: Option<&basalt_sql::Value>) -> i64 {
    match value {
        Some(basalt_sql::Value::Int(n)) => *n,
        Some(basalt_sql::Value::Float(f)) => *f as i64,
        Some(basalt_sql::Value::Text(t)) => t.parse().unwrap_or(0),
        _ => 0,
    }
}

fn text(value: Option<&basalt_sql::Value>) -> String {
    value
        .and_then(basalt_sql::Value::as_str)
        .unwrap_or_default()
        .to_string()
}

impl App {
    fn otp_options(collection: &Collection) -> Result<Json, CoreError> {
        crate::auth::enabled_method(collection.auth.as_ref().map(|a| &a.otp), "OTP")
    }

    /// `request-otp`: returns an `otpId` at once; mails a code if the email is known.
    pub async fn request_otp(
        &self,
        collection: Arc<Collection>,
        email: &str,
    ) -> Result<String, CoreError> {
        let options = Self::otp_options(&collection)?;
        if let Err(error) = crate::auth_flows::check_email_input(email) {
            return Err(CoreError::validation(
                "An error occurred while validating the submitted data.",
                FieldErrors::from([("email".to_string(), error)]),
            ));
        }
        let otp_id = random_id();
        let app = self.clone();
        let email = email.to_string();
        let id = otp_id.clone();
        self.in_background("otp", async move {
            let Some(record) = app.find_by_email(&collection, &email).await? else {
                return Ok(());
            };
            let record_id = record
                .get("id")
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_string();
            let duration = option_u64(&options, "duration", 180).max(1) as i64;
            let length = option_u64(&options, "length", 8).clamp(MIN_OTP_LENGTH, 20);
            let code: String = {
                let mut rng = rand::rng();
                (0..length)
                    .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
                    .collect()
            };
            let hash = hash_code(&collection, &id, &code);
            let sent_to = record
                .get("email")
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_string();
            let (collection_id, to) = (collection.id.clone(), sent_to.clone());
            let (otp_id, rec) = (id.clone(), record_id.clone());
            let stored = basalt_store::write(app.store().as_ref(), move |conn: &mut dyn Conn| {
                let dialect = conn.dialect();
                let now = now_unix();
                for statement in authflow::prune(dialect, now - 86_400) {
                    conn.execute(&statement)?;
                }
                let active = conn.query(&authflow::otp_count_since(
                    dialect,
                    &collection_id,
                    &rec,
                    now - duration,
                ))?;
                if int(active.rows.first().and_then(|r| r.first())) >= MAX_ACTIVE_OTPS {
                    return Ok::<_, CoreError>(false);
                }
                conn.execute(&authflow::otp_insert(
                    dialect,
                    &otp_id,
                    &collection_id,
                    &rec,
                    &hash,
                    &to,
                    now,
                ))?;
                Ok(true)
            })
            .await?;
            if !stored {
                tracing::warn!(record = %record_id, "OTP not issued: too many active OTPs");
                return Ok(());
            }
            let template = options.get("emailTemplate").cloned().unwrap_or(Json::Null);
            let meta = MailMeta::from_settings(&app.settings());
            let values = Placeholders {
                meta: &meta,
                token: "",
                otp: &code,
                alert_info: "",
                record: Some((&collection, &record)),
            };
            let message = mail::render(&template, &values, &sent_to);
            tokio::spawn(async move {
                if let Err(error) = mail::send(&app.settings(), message).await {
                    tracing::error!(%error, "failed to send the OTP email");
                }
            });
            Ok(())
        })
        .await?;
        Ok(otp_id)
    }

    /// `auth-with-otp`: checks the code, spends it, and signs the record in (MFA aside).
    pub async fn auth_with_otp(
        &self,
        collection: Arc<Collection>,
        otp_id: &str,
        code: &str,
        mfa_id: Option<&str>,
    ) -> Result<AuthResult, CoreError> {
        let options = Self::otp_options(&collection)?;
        let mut errors = FieldErrors::new();
        if otp_id.is_empty() {
            errors.insert("otpId".into(), FieldError::required());
        }
        if code.is_empty() {
            errors.insert("password".into(), FieldError::required());
        }
        if !errors.is_empty() {
            return Err(CoreError::validation(
                "An error occurred while validating the submitted data.",
                errors,
            ));
        }
        let duration = option_u64(&options, "duration", 180).max(1) as i64;
        let (id, collection_id) = (otp_id.to_string(), collection.id.clone());
        let row = basalt_store::read(self.store().as_ref(), move |conn: &mut dyn Conn| {
            let rows = conn.query(&authflow::otp_get(conn.dialect(), &id, &collection_id))?;
            Ok::<_, CoreError>(rows.rows.into_iter().next())
        })
        .await?
        .ok_or_else(invalid_otp)?;
        let (record_id, stored, sent_to) = (text(row.first()), text(row.get(1)), text(row.get(2)));
        let (failures, created) = (int(row.get(3)), int(row.get(4)));
        if failures >= MAX_OTP_FAILURES {
            return Err(CoreError::TooManyRequests(
                "Too many failed attempts.".into(),
            ));
        }
        if created + duration < now_unix() {
            return Err(invalid_otp());
        }
        let matches = same(&hash_code(&collection, otp_id, code), &stored);
        let (id, collection_id, rec) =
            (otp_id.to_string(), collection.id.clone(), record_id.clone());
        let spent = basalt_store::write(self.store().as_ref(), move |conn: &mut dyn Conn| {
            let dialect = conn.dialect();
            if matches {
                // Single use: only the request that deletes the row may sign in.
                return Ok::<_, CoreError>(Ok(conn
                    .execute(&authflow::otp_delete(dialect, &id))?
                    == 1));
            }
            conn.execute(&authflow::otp_fail(dialect, &collection_id, &rec))?;
            let worst = conn.query(&authflow::otp_max_failures(dialect, &collection_id, &rec))?;
            let burned = int(worst.rows.first().and_then(|r| r.first())) >= MAX_OTP_FAILURES;
            if burned {
                conn.execute(&authflow::otp_delete_record(dialect, &collection_id, &rec))?;
            }
            Ok(Err(burned))
        })
        .await?;
        match spent {
            Ok(true) => {}
            Ok(false) => return Err(invalid_otp()),
            Err(true) => {
                return Err(CoreError::TooManyRequests(
                    "Too many failed attempts.".into(),
                ));
            }
            Err(false) => return Err(invalid_otp()),
        }
        let lookup = collection.clone();
        let rec = record_id.clone();
        let mut record = basalt_store::read(self.store().as_ref(), move |conn: &mut dyn Conn| {
            crate::auth::load_record(conn, &lookup, &rec)
        })
        .await?
        .ok_or_else(invalid_otp)?;
        // The code proved the mailbox: an unverified record whose email it went to
        // becomes verified, and (without MFA) loses any password set before, so an
        // account pre-registered by someone else with this email is theirs no longer.
        let email = record
            .get("email")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_string();
        let verified = record.get("verified").and_then(Json::as_bool) == Some(true);
        if !verified && !email.is_empty() && email == sent_to {
            let mut changes = Map::new();
            changes.insert("verified".into(), Json::Bool(true));
            if !self.mfa_enabled(&collection) {
                let cost = 10;
                let random = basalt_schema::random_string(30);
                let hash = self
                    .with_hashing(move || crate::auth::hash_password(&random, cost))
                    .await??;
                changes.insert("password".into(), Json::String(hash));
                changes.insert(
                    "tokenKey".into(),
                    Json::String(crate::auth::new_token_key()),
                );
            }
            self.update_held_auth_record(&collection, &mut record, changes)
                .await?;
        }
        self.complete_auth(collection, record, "otp", mfa_id).await
    }

    fn mfa_enabled(&self, collection: &Collection) -> bool {
        crate::auth::enabled_method(collection.auth.as_ref().map(|a| &a.mfa), "MFA").is_ok()
    }

    /// The end of every successful first factor: the auth rule, then MFA, then a token.
    pub(crate) async fn complete_auth(
        &self,
        collection: Arc<Collection>,
        record: Map<String, Json>,
        method: &'static str,
        mfa_id: Option<&str>,
    ) -> Result<AuthResult, CoreError> {
        let auth = Auth {
            collection: collection.clone(),
            record,
        };
        self.check_auth_rule(&auth).await?;
        if self.mfa_required(&auth).await? {
            self.second_factor(&auth, method, mfa_id).await?;
        }
        let token = issue_token(&collection, &auth.record, TokenType::Auth, None, true)?;
        Ok(AuthResult { token, auth })
    }

    async fn mfa_required(&self, auth: &Auth) -> Result<bool, CoreError> {
        if !self.mfa_enabled(&auth.collection) {
            return Ok(false);
        }
        let rule = auth
            .collection
            .auth
            .as_ref()
            .and_then(|a| a.mfa.get("rule").and_then(Json::as_str).map(str::to_string))
            .unwrap_or_default();
        if rule.trim().is_empty() {
            return Ok(true);
        }
        let info = RequestInfo {
            auth: Some(auth.clone()),
            ..RequestInfo::default()
        };
        self.record_matches_rule(&auth.collection, auth.id(), &rule, &info)
            .await
    }

    /// Without `mfa_id`: starts an MFA session and answers 401 with its id. With it:
    /// the session must be this record's, unexpired, and from another method.
    async fn second_factor(
        &self,
        auth: &Auth,
        method: &'static str,
        mfa_id: Option<&str>,
    ) -> Result<(), CoreError> {
        let duration = auth
            .collection
            .auth
            .as_ref()
            .and_then(|a| a.mfa.get("duration").and_then(Json::as_u64))
            .unwrap_or(600)
            .max(1) as i64;
        let (collection_id, record_id) = (auth.collection.id.clone(), auth.id().to_string());
        let Some(mfa_id) = mfa_id.filter(|m| !m.is_empty()) else {
            let id = random_id();
            let session = id.clone();
            basalt_store::write(self.store().as_ref(), move |conn: &mut dyn Conn| {
                let dialect = conn.dialect();
                conn.execute(&authflow::mfa_insert(
                    dialect,
                    &session,
                    &collection_id,
                    &record_id,
                    method,
                    now_unix(),
                ))?;
                Ok::<_, CoreError>(())
            })
            .await?;
            return Err(CoreError::MfaRequired(id));
        };
        let session = mfa_id.to_string();
        let outcome = basalt_store::write(self.store().as_ref(), move |conn: &mut dyn Conn| {
            let dialect = conn.dialect();
            let rows = conn.query(&authflow::mfa_get(
                dialect,
                &session,
                &collection_id,
                &record_id,
            ))?;
            let Some(row) = rows.rows.into_iter().next() else {
                return Ok::<_, CoreError>(Err("Invalid or expired MFA session."));
            };
            if int(row.get(1)) + duration < now_unix() {
                conn.execute(&authflow::mfa_delete(dialect, &session))?;
                return Ok(Err("Invalid or expired MFA session."));
            }
            if text(row.first()) == method {
                return Ok(Err("A different authentication method is required."));
            }
            if conn.execute(&authflow::mfa_delete(dialect, &session))? != 1 {
                return Ok(Err("Invalid or expired MFA session."));
            }
            Ok(Ok(()))
        })
        .await?;
        outcome.map_err(CoreError::bad_request)
    }
}
