//! Outgoing email: templates with PocketBase's placeholders, rendered into an HTML and a
//! plain-text part, delivered over SMTP with `lettre` as the settings say.
//!
//! Links in mails come only from the configured `meta.appURL`, never from the request.
//! Delivery is blocking I/O and runs on the blocking pool; a send has a fixed timeout.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use basalt_schema::{Collection, FieldKind};
use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::SmtpTransport;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{Address, Message, Transport};
use serde_json::{Map, Value as Json};

/// How long one SMTP delivery may take (connect, dialogue, data).
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// A rendered mail, ready to send.
#[derive(Debug, Clone)]
pub(crate) struct Mail {
    pub(crate) to: String,
    pub(crate) subject: String,
    pub(crate) html: String,
}

/// Why a mail was not delivered.
#[derive(Debug)]
pub(crate) enum MailError {
    /// `smtp.enabled` is false: nothing is sent.
    Disabled,
    /// The settings or the addresses cannot make a message.
    Invalid(String),
    /// The SMTP server refused or could not be reached.
    Send(String),
}

impl fmt::Display for MailError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MailError::Disabled => write!(f, "SMTP is disabled in the settings"),
            MailError::Invalid(detail) => write!(f, "invalid mail: {detail}"),
            MailError::Send(detail) => write!(f, "SMTP delivery failed: {detail}"),
        }
    }
}

/// The `meta` settings a mail needs.
#[derive(Debug, Clone)]
pub(crate) struct MailMeta {
    pub(crate) app_name: String,
    /// Without a trailing slash.
    pub(crate) app_url: String,
    sender_name: String,
    sender_address: String,
}

impl MailMeta {
    pub(crate) fn from_settings(settings: &Json) -> MailMeta {
        let text = |key: &str| {
            settings["meta"][key]
                .as_str()
                .unwrap_or_default()
                .to_string()
        };
        MailMeta {
            app_name: text("appName"),
            app_url: text("appURL").trim_end_matches('/').to_string(),
            sender_name: text("senderName"),
            sender_address: text("senderAddress"),
        }
    }
}

/// The `smtp` settings.
#[derive(Debug, Clone)]
struct SmtpConfig {
    enabled: bool,
    host: String,
    port: u16,
    username: String,
    password: String,
    auth_method: String,
    tls: bool,
    local_name: String,
}

impl SmtpConfig {
    fn from_settings(settings: &Json) -> SmtpConfig {
        let smtp = &settings["smtp"];
        let text = |key: &str| smtp[key].as_str().unwrap_or_default().to_string();
        SmtpConfig {
            enabled: smtp["enabled"].as_bool().unwrap_or(false),
            host: text("host"),
            port: smtp["port"]
                .as_u64()
                .and_then(|p| u16::try_from(p).ok())
                .unwrap_or(587),
            username: text("username"),
            password: text("password"),
            auth_method: text("authMethod"),
            tls: smtp["tls"].as_bool().unwrap_or(false),
            local_name: text("localName"),
        }
    }

    fn is_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost")
            || self
                .host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    fn transport(&self) -> Result<SmtpTransport, MailError> {
        let params =
            || TlsParameters::new(self.host.clone()).map_err(|e| MailError::Invalid(e.to_string()));
        let has_credentials = !self.username.is_empty();
        // `tls: true` is implicit TLS (SMTPS). Otherwise STARTTLS is used when offered,
        // and required before credentials go to anything but a loopback relay.
        let tls = if self.tls {
            Tls::Wrapper(params()?)
        } else if has_credentials && !self.is_loopback() {
            Tls::Required(params()?)
        } else {
            Tls::Opportunistic(params()?)
        };
        let hello = if self.local_name.is_empty() {
            "localhost".to_string()
        } else {
            self.local_name.clone()
        };
        let mut builder = SmtpTransport::builder_dangerous(self.host.clone())
            .port(self.port)
            .tls(tls)
            .hello_name(ClientId::Domain(hello))
            .timeout(Some(SEND_TIMEOUT));
        if has_credentials {
            builder = builder.credentials(Credentials::new(
                self.username.clone(),
                self.password.clone(),
            ));
            match self.auth_method.to_ascii_uppercase().as_str() {
                "LOGIN" => builder = builder.authentication(vec![Mechanism::Login]),
                "PLAIN" => builder = builder.authentication(vec![Mechanism::Plain]),
                _ => {}
            }
        }
        Ok(builder.build())
    }
}

/// Builds the MIME message: `multipart/alternative` with a text and an HTML part.
fn build_message(meta: &MailMeta, mail: &Mail) -> Result<Message, MailError> {
    let sender: Address = meta
        .sender_address
        .parse()
        .map_err(|e| MailError::Invalid(format!("sender address: {e}")))?;
    let from = Mailbox::new(
        Some(meta.sender_name.clone()).filter(|n| !n.trim().is_empty()),
        sender,
    );
    let to: Address = mail
        .to
        .parse()
        .map_err(|e| MailError::Invalid(format!("recipient address: {e}")))?;
    let subject: String = mail
        .subject
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let document = format!(
        "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\n</head>\n<body>\n{}\n</body>\n</html>\n",
        mail.html
    );
    let part = |content_type: ContentType, body: String| {
        SinglePart::builder()
            .header(content_type)
            .header(ContentTransferEncoding::QuotedPrintable)
            .body(body)
    };
    // A Message-ID on the sender's domain (lettre would otherwise say "localhost").
    let message_id = format!(
        "<{}@{}>",
        basalt_schema::random_string(24),
        meta.sender_address
            .rsplit_once('@')
            .map_or("localhost", |(_, domain)| domain)
    );
    Message::builder()
        .message_id(Some(message_id))
        .from(from)
        .to(Mailbox::new(None, to))
        .subject(subject)
        .multipart(
            MultiPart::alternative()
                .singlepart(part(ContentType::TEXT_PLAIN, html_to_text(&mail.html)))
                .singlepart(part(ContentType::TEXT_HTML, document)),
        )
        .map_err(|e| MailError::Invalid(e.to_string()))
}

/// Sends one mail with the current settings; blocking I/O runs on the blocking pool.
pub(crate) async fn send(settings: &Json, mail: Mail) -> Result<(), MailError> {
    let smtp = SmtpConfig::from_settings(settings);
    if !smtp.enabled {
        return Err(MailError::Disabled);
    }
    let meta = MailMeta::from_settings(settings);
    let message = build_message(&meta, &mail)?;
    let transport = smtp.transport()?;
    tokio::task::spawn_blocking(move || transport.send(&message))
        .await
        .map_err(|e| MailError::Send(e.to_string()))?
        .map(|_| ())
        .map_err(|e| MailError::Send(e.to_string()))
}

/// Values for a template's placeholders.
pub(crate) struct Placeholders<'a> {
    pub(crate) meta: &'a MailMeta,
    pub(crate) token: &'a str,
    pub(crate) otp: &'a str,
    pub(crate) alert_info: &'a str,
    /// The record the mail is about: `{RECORD:field}` for its visible fields.
    pub(crate) record: Option<(&'a Collection, &'a Map<String, Json>)>,
}

impl Placeholders<'_> {
    fn value(&self, name: &str) -> Option<String> {
        match name {
            "APP_NAME" => Some(self.meta.app_name.clone()),
            "APP_URL" => Some(self.meta.app_url.clone()),
            "TOKEN" => Some(self.token.to_string()),
            "OTP" => Some(self.otp.to_string()),
            "ALERT_INFO" => Some(self.alert_info.to_string()),
            _ => {
                let field = name.strip_prefix("RECORD:")?;
                let (collection, record) = self.record?;
                let definition = collection.field(field)?;
                let secret = definition.hidden
                    || matches!(definition.kind, FieldKind::Password { .. })
                    || (collection.is_auth() && field == "tokenKey");
                if secret {
                    return None;
                }
                Some(match record.get(field) {
                    Some(Json::String(text)) => text.clone(),
                    Some(Json::Null) | None => String::new(),
                    Some(other) => other.to_string(),
                })
            }
        }
    }

    /// Replaces every `{NAME}` in one pass (substituted text is never scanned again);
    /// unknown placeholders stay as written. `html` escapes the values.
    fn apply(&self, text: &str, html: bool) -> String {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find('{') {
            out.push_str(&rest[..start]);
            let tail = &rest[start..];
            let replaced = tail.find('}').and_then(|end| {
                let name = &tail[1..end];
                self.value(name).map(|value| (value, end))
            });
            match replaced {
                Some((value, end)) => {
                    if html {
                        out.push_str(&escape_html(&value));
                    } else {
                        out.push_str(&value);
                    }
                    rest = &tail[end + 1..];
                }
                None => {
                    out.push('{');
                    rest = &tail[1..];
                }
            }
        }
        out.push_str(rest);
        out
    }
}

/// Renders a `{subject, body}` template into a subject and an HTML body.
pub(crate) fn render(template: &Json, values: &Placeholders<'_>, to: &str) -> Mail {
    let subject = template["subject"].as_str().unwrap_or_default();
    let body = template["body"].as_str().unwrap_or_default();
    Mail {
        to: to.to_string(),
        subject: values.apply(subject, false),
        html: values.apply(body, true),
    }
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

fn unescape_html(text: &str) -> String {
    text.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The `href` of an `<a ...>` tag's inner text (`a href="..." ...`).
fn href_of(tag: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let at = lower.find("href=")?;
    let value = &tag[at + 5..];
    let quote = value.chars().next()?;
    let url = if quote == '"' || quote == '\'' {
        let inner = &value[1..];
        &inner[..inner.find(quote)?]
    } else {
        value.split_whitespace().next()?
    };
    Some(unescape_html(url))
}

/// A readable plain-text version of an HTML body: tags dropped, block ends and `<br>`
/// become line breaks, links become `text (url)`.
pub(crate) fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut links: Vec<Option<String>> = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        out.push_str(&unescape_html(&rest[..start]));
        let Some(end) = rest[start..].find('>') else {
            rest = &rest[start..];
            break;
        };
        let tag = rest[start + 1..start + end].trim();
        rest = &rest[start + end + 1..];
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        let closing = tag.starts_with('/');
        match (name.as_str(), closing) {
            ("a", false) => links.push(href_of(tag)),
            ("a", true) => {
                if let Some(Some(url)) = links.pop() {
                    out.push_str(&format!(" ({url})"));
                }
            }
            ("br", _) => out.push('\n'),
            ("p" | "div" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6", true) => out.push_str("\n\n"),
            ("tr" | "li", true) => out.push('\n'),
            _ => {}
        }
    }
    out.push_str(&unescape_html(rest));
    let mut text = String::with_capacity(out.len());
    let mut blank = 0;
    for line in out.lines() {
        let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if line.is_empty() {
            blank += 1;
            if blank > 1 || text.is_empty() {
                continue;
            }
        } else {
            blank = 0;
        }
        text.push_str(&line);
        text.push('\n');
    }
    text.trim_end().to_string() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta() -> MailMeta {
        MailMeta::from_settings(&json!({"meta": {
            "appName": "A&B", "appURL": "https://app.example.com/",
            "senderName": "Support", "senderAddress": "support@example.com"}}))
    }

    #[test]
    fn placeholders_are_replaced_once_and_escaped_in_html() {
        let meta = meta();
        let mut collection = Collection::new(basalt_schema::CollectionType::Auth, "users");
        collection
            .fields
            .push(basalt_schema::Field::new("name", FieldKind::text()));
        let record = json!({"id": "abc", "name": "<b>{TOKEN}</b>", "password": "hash",
                            "tokenKey": "secret", "email": "a@example.com"});
        let record = record.as_object().cloned().unwrap_or_default();
        let values = Placeholders {
            meta: &meta,
            token: "tok",
            otp: "",
            alert_info: "",
            record: Some((&collection, &record)),
        };
        let mail = render(
            &json!({"subject": "Hi {RECORD:name} from {APP_NAME}",
                    "body": "<a href=\"{APP_URL}/x/{TOKEN}\">{RECORD:name}</a> {RECORD:password} {RECORD:tokenKey} {NOPE} {"}),
            &values,
            "a@example.com",
        );
        assert_eq!(mail.subject, "Hi <b>{TOKEN}</b> from A&B");
        assert_eq!(
            mail.html,
            "<a href=\"https://app.example.com/x/tok\">&lt;b&gt;{TOKEN}&lt;/b&gt;</a> {RECORD:password} {RECORD:tokenKey} {NOPE} {"
        );
    }

    #[test]
    fn html_becomes_readable_text_with_link_targets() {
        let text = html_to_text(
            "<p>Hello,</p>\n<p>Open <a class=\"btn\" href=\"https://x.test/a?b=1&amp;c=2\">this link</a>.</p><p>Thanks,<br/>Team &amp; co</p>",
        );
        assert_eq!(
            text,
            "Hello,\n\nOpen this link (https://x.test/a?b=1&c=2).\n\nThanks,\nTeam & co\n"
        );
    }

    #[test]
    fn a_message_has_a_text_and_an_html_part() {
        let mail = Mail {
            to: "to@example.com".into(),
            subject: "Subject\r\nBcc: evil@example.com".into(),
            html: "<p>Hi</p>".into(),
        };
        let message = build_message(&meta(), &mail).expect("message");
        let raw = String::from_utf8_lossy(&message.formatted()).to_string();
        assert!(raw.contains("multipart/alternative"));
        assert!(raw.contains("text/plain"));
        assert!(raw.contains("text/html"));
        assert!(!raw.contains("\r\nBcc:"), "no header injection: {raw}");
        assert!(raw.contains("From: Support <support@example.com>"));
        assert!(raw.contains("@example.com>\r\n"), "a Message-ID: {raw}");
        assert!(raw.contains("Message-ID: <"), "{raw}");
    }

    #[test]
    fn credentials_require_tls_except_on_loopback() {
        let config = |host: &str| {
            SmtpConfig::from_settings(&json!({"smtp": {"enabled": true, "host": host,
                "port": 25, "username": "u", "password": "p"}}))
        };
        assert!(config("127.0.0.1").is_loopback());
        assert!(config("localhost").is_loopback());
        assert!(config("[::1]").is_loopback());
        assert!(!config("smtp.example.com").is_loopback());
        assert!(!config("10.0.0.1").is_loopback());
    }
}
