//! Collections and their options, in PocketBase's JSON shape.

use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use crate::field::{Field, FieldKind};

/// `base`, `auth` or `view`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CollectionType {
    /// A plain table.
    #[default]
    Base,
    /// A table of accounts that can log in.
    Auth,
    /// A read-only SQL view.
    View,
}

impl CollectionType {
    /// The `type` string.
    pub fn as_str(self) -> &'static str {
        match self {
            CollectionType::Base => "base",
            CollectionType::Auth => "auth",
            CollectionType::View => "view",
        }
    }
}

/// A collection: a table (or view) with fields, indexes and API rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Collection {
    /// Stable id (`pbc_<crc32>` by default).
    #[serde(default)]
    pub id: String,
    /// Table name.
    #[serde(default)]
    pub name: String,
    /// The collection type.
    #[serde(rename = "type", default)]
    pub kind: CollectionType,
    /// System collections cannot be renamed, deleted or have their rules changed.
    #[serde(default)]
    pub system: bool,
    /// List rule (`None` = superusers only).
    #[serde(default)]
    pub list_rule: Option<String>,
    /// View rule.
    #[serde(default)]
    pub view_rule: Option<String>,
    /// Create rule.
    #[serde(default)]
    pub create_rule: Option<String>,
    /// Update rule.
    #[serde(default)]
    pub update_rule: Option<String>,
    /// Delete rule.
    #[serde(default)]
    pub delete_rule: Option<String>,
    /// The fields, in order.
    #[serde(default)]
    pub fields: Vec<Field>,
    /// Raw `CREATE [UNIQUE] INDEX` statements.
    #[serde(default)]
    pub indexes: Vec<String>,
    /// The SELECT of a view collection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view_query: Option<String>,
    /// Options of auth collections.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthOptions>,
    /// Creation time.
    #[serde(default)]
    pub created: String,
    /// Last update time.
    #[serde(default)]
    pub updated: String,
}

/// The duration and signing secret of one token type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TokenConfig {
    /// Lifetime in seconds.
    #[serde(default)]
    pub duration: u64,
    /// Signing secret (write-only on the wire).
    #[serde(default)]
    pub secret: String,
}

impl TokenConfig {
    fn new(duration: u64) -> TokenConfig {
        TokenConfig {
            duration,
            secret: crate::random_string(50),
        }
    }
}

/// Options that only auth collections have.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthOptions {
    /// Rule every login must satisfy.
    #[serde(default)]
    pub auth_rule: Option<String>,
    /// Rule giving management rights over other records.
    #[serde(default)]
    pub manage_rule: Option<String>,
    /// Login alert settings.
    #[serde(default)]
    pub auth_alert: Json,
    /// OAuth2 settings.
    #[serde(default)]
    pub oauth2: Json,
    /// Password login settings: `{enabled, identityFields}`.
    #[serde(default)]
    pub password_auth: Json,
    /// MFA settings.
    #[serde(default)]
    pub mfa: Json,
    /// OTP settings.
    #[serde(default)]
    pub otp: Json,
    /// Auth token settings.
    #[serde(default)]
    pub auth_token: TokenConfig,
    /// Password reset token settings.
    #[serde(default)]
    pub password_reset_token: TokenConfig,
    /// Email change token settings.
    #[serde(default)]
    pub email_change_token: TokenConfig,
    /// Verification token settings.
    #[serde(default)]
    pub verification_token: TokenConfig,
    /// File token settings.
    #[serde(default)]
    pub file_token: TokenConfig,
    /// Verification email template.
    #[serde(default)]
    pub verification_template: Json,
    /// Password reset email template.
    #[serde(default)]
    pub reset_password_template: Json,
    /// Email change email template.
    #[serde(default)]
    pub confirm_email_change_template: Json,
}

fn template(subject: &str, body: &str) -> Json {
    json!({ "subject": subject, "body": body })
}

impl AuthOptions {
    /// The defaults of a new auth collection.
    pub fn new_default() -> AuthOptions {
        AuthOptions {
            auth_rule: Some(String::new()),
            manage_rule: None,
            auth_alert: json!({
                "enabled": true,
                "emailTemplate": template(
                    "Sign-in from a new location",
                    "<p>Hello,</p><p>Your {APP_NAME} account was just used to sign in from a new location: {ALERT_INFO}</p><p>If that was not you, change your password now.</p>"
                )
            }),
            oauth2: json!({
                "enabled": false,
                "providers": [],
                "mappedFields": {"id": "", "name": "", "username": "", "avatarURL": ""}
            }),
            password_auth: json!({"enabled": true, "identityFields": ["email"]}),
            mfa: json!({"enabled": false, "duration": 600, "rule": ""}),
            otp: json!({
                "enabled": false,
                "duration": 180,
                "length": 8,
                "emailTemplate": template(
                    "OTP for {APP_NAME}",
                    "<p>Hello,</p><p>Your one-time password is: <strong>{OTP}</strong></p><p>It expires soon. If you did not ask for it, ignore this email.</p>"
                )
            }),
            auth_token: TokenConfig::new(432_000),
            password_reset_token: TokenConfig::new(1800),
            email_change_token: TokenConfig::new(1800),
            verification_token: TokenConfig::new(86_400),
            file_token: TokenConfig::new(180),
            verification_template: template(
                "Verify your {APP_NAME} email",
                "<p>Hello,</p><p>Confirm your email address by opening this link:</p><p><a href=\"{APP_URL}/_/#/auth/confirm-verification/{TOKEN}\">Verify</a></p>",
            ),
            reset_password_template: template(
                "Reset your {APP_NAME} password",
                "<p>Hello,</p><p>Open this link to choose a new password:</p><p><a href=\"{APP_URL}/_/#/auth/confirm-password-reset/{TOKEN}\">Reset password</a></p>",
            ),
            confirm_email_change_template: template(
                "Confirm your new {APP_NAME} email",
                "<p>Hello,</p><p>Open this link to confirm your new email address:</p><p><a href=\"{APP_URL}/_/#/auth/confirm-email-change/{TOKEN}\">Confirm</a></p>",
            ),
        }
    }

    /// The configured identity fields for password login.
    pub fn identity_fields(&self) -> Vec<String> {
        self.password_auth
            .get("identityFields")
            .and_then(Json::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether password login is enabled.
    pub fn password_enabled(&self) -> bool {
        self.password_auth
            .get("enabled")
            .and_then(Json::as_bool)
            .unwrap_or(false)
    }
}

impl Collection {
    /// A new collection of the given type with PocketBase's default id and system fields.
    pub fn new(kind: CollectionType, name: &str) -> Collection {
        let mut collection = Collection {
            id: crate::collection_id(kind.as_str(), name),
            name: name.to_string(),
            kind,
            system: false,
            list_rule: None,
            view_rule: None,
            create_rule: None,
            update_rule: None,
            delete_rule: None,
            fields: Vec::new(),
            indexes: Vec::new(),
            view_query: None,
            auth: None,
            created: String::new(),
            updated: String::new(),
        };
        collection.ensure_system_fields();
        collection
    }

    /// Finds a field by exact name.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|field| field.name == name)
    }

    /// Finds a field by name, ignoring ASCII case.
    pub fn field_ci(&self, name: &str) -> Option<&Field> {
        self.fields
            .iter()
            .find(|field| field.name.eq_ignore_ascii_case(name))
    }

    /// Whether this is an auth collection.
    pub fn is_auth(&self) -> bool {
        self.kind == CollectionType::Auth
    }

    /// Whether this is a view collection.
    pub fn is_view(&self) -> bool {
        self.kind == CollectionType::View
    }

    /// Adds the system fields (and auth options) the collection type requires, and
    /// re-flags existing ones; keeps custom fields and their order.
    pub fn ensure_system_fields(&mut self) {
        if self.kind != CollectionType::View && self.field("id").is_none() {
            let mut id = Field::new(
                "id",
                FieldKind::Text {
                    required: true,
                    min: 15,
                    max: 15,
                    pattern: "^[a-z0-9]+$".into(),
                    autogenerate_pattern: "[a-z0-9]{15}".into(),
                    primary_key: true,
                },
            );
            id.system = true;
            self.fields.insert(0, id);
        }
        if let Some(id) = self.fields.iter_mut().find(|field| field.name == "id") {
            id.system = true;
        }
        if self.kind != CollectionType::Auth {
            self.auth = None;
            return;
        }
        if self.auth.is_none() {
            self.auth = Some(AuthOptions::new_default());
        }
        let auth_fields: [(&str, FieldKind, bool); 5] = [
            (
                "password",
                FieldKind::Password {
                    required: true,
                    min: 8,
                    max: 0,
                    pattern: String::new(),
                    cost: 0,
                },
                true,
            ),
            (
                "tokenKey",
                FieldKind::Text {
                    required: true,
                    min: 30,
                    max: 60,
                    pattern: String::new(),
                    autogenerate_pattern: "[a-zA-Z0-9]{50}".into(),
                    primary_key: false,
                },
                true,
            ),
            (
                "email",
                FieldKind::Email {
                    required: true,
                    except_domains: None,
                    only_domains: None,
                },
                false,
            ),
            (
                "emailVisibility",
                FieldKind::Bool { required: false },
                false,
            ),
            ("verified", FieldKind::Bool { required: false }, false),
        ];
        let mut insert_at = 1;
        for (name, kind, hidden) in auth_fields {
            if let Some(position) = self.fields.iter().position(|field| field.name == name) {
                self.fields[position].system = true;
                self.fields[position].hidden = hidden;
                insert_at = position + 1;
            } else {
                let mut field = Field::new(name, kind);
                field.system = true;
                field.hidden = hidden;
                self.fields.insert(insert_at.min(self.fields.len()), field);
                insert_at += 1;
            }
        }
        let table = &self.name;
        let token_index = format!("idx_tokenKey_{}", self.id);
        if !self
            .indexes
            .iter()
            .any(|index| index.contains(&token_index))
        {
            self.indexes.push(format!(
                "CREATE UNIQUE INDEX `{token_index}` ON `{table}` (`tokenKey`)"
            ));
        }
        let email_index = format!("idx_email_{}", self.id);
        if !self
            .indexes
            .iter()
            .any(|index| index.contains(&email_index))
        {
            self.indexes.push(format!(
                "CREATE UNIQUE INDEX `{email_index}` ON `{table}` (`email`) WHERE `email` != ''"
            ));
        }
    }

    /// The rule used by an action.
    pub fn rule(&self, action: RuleKind) -> Option<&str> {
        match action {
            RuleKind::List => self.list_rule.as_deref(),
            RuleKind::View => self.view_rule.as_deref(),
            RuleKind::Create => self.create_rule.as_deref(),
            RuleKind::Update => self.update_rule.as_deref(),
            RuleKind::Delete => self.delete_rule.as_deref(),
        }
    }
}

/// The five record API rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleKind {
    /// listRule
    List,
    /// viewRule
    View,
    /// createRule
    Create,
    /// updateRule
    Update,
    /// deleteRule
    Delete,
}
