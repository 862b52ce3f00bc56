//! The email auth flows (verification, password reset, email change), impersonation,
//! the manage rule, the test email and login bursts, against a real SMTP receiver on
//! loopback (a small sink in this file) whose captured mails the tests open and follow.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use basalt_core::{App, AuthResult, CoreError, RequestInfo, TokenType, issue_token};
use basalt_schema::Collection;
use parking_lot::Mutex;
use serde_json::{Map, Value as Json, json};

use crate::{Harness, body, guest, on_both_backends};

const APP_URL: &str = "https://app.example.test";
const PASSWORD: &str = "first-password";

// ---------------------------------------------------------------------------------
// A real SMTP receiver: greets 220, speaks EHLO/HELO/AUTH/MAIL/RCPT/DATA/RSET/QUIT and
// keeps every message. `reject` makes it refuse recipients (550).

/// One received message.
#[derive(Debug, Clone)]
struct Received {
    rcpt: Vec<String>,
    /// The DATA section, dot-unstuffed, with quoted-printable decoded.
    text: String,
    /// Every command line of the session (AUTH included).
    commands: Vec<String>,
}

impl Received {
    fn header(&self, name: &str) -> String {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        self.text
            .lines()
            .take_while(|line| !line.is_empty())
            .find(|line| line.to_ascii_lowercase().starts_with(&prefix))
            .map(|line| line[prefix.len()..].trim().to_string())
            .unwrap_or_default()
    }

    /// The token of the first link `<APP_URL><path><token>` in the mail.
    fn link_token(&self, path: &str) -> Option<String> {
        let start = self.text.find(&format!("{APP_URL}{path}"))? + APP_URL.len() + path.len();
        let token: String = self.text[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
            .collect();
        (!token.is_empty()).then_some(token)
    }
}

struct Sink {
    port: u16,
    mails: Arc<Mutex<Vec<Received>>>,
    reject: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

fn qp_decode(text: &str) -> String {
    let joined = text.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && let Ok(byte) = u8::from_str_radix(&joined[i + 1..i + 3], 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).to_string()
}

fn serve_session(
    stream: TcpStream,
    mails: &Mutex<Vec<Received>>,
    reject: &AtomicBool,
) -> std::io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    writer.write_all(b"220 sink.test ESMTP ready\r\n")?;
    let mut commands = Vec::new();
    let mut rcpt = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let line = line.trim_end().to_string();
        commands.push(line.clone());
        let verb = line
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-sink.test\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n",
            "HELO" => b"250 sink.test\r\n",
            "AUTH" => b"235 2.7.0 accepted\r\n",
            "MAIL" => {
                rcpt.clear();
                b"250 2.1.0 ok\r\n"
            }
            "RCPT" if reject.load(Ordering::SeqCst) => b"550 5.1.1 no such user\r\n",
            "RCPT" => {
                rcpt.push(line[8..].trim().to_string());
                b"250 2.1.5 ok\r\n"
            }
            "DATA" => {
                writer.write_all(b"354 end with <CRLF>.<CRLF>\r\n")?;
                let mut data = String::new();
                loop {
                    let mut part = String::new();
                    if reader.read_line(&mut part)? == 0 {
                        return Ok(());
                    }
                    let part = part.trim_end_matches(['\r', '\n']);
                    if part == "." {
                        break;
                    }
                    data.push_str(part.strip_prefix('.').unwrap_or(part));
                    data.push('\n');
                }
                mails.lock().push(Received {
                    rcpt: rcpt.clone(),
                    text: qp_decode(&data),
                    commands: commands.clone(),
                });
                b"250 2.0.0 queued\r\n"
            }
            "QUIT" => {
                writer.write_all(b"221 2.0.0 bye\r\n")?;
                return Ok(());
            }
            _ => b"250 2.0.0 ok\r\n",
        };
        writer.write_all(reply)?;
    }
}

impl Sink {
    fn start() -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the SMTP sink");
        let port = listener.local_addr().expect("sink address").port();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let reject = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (m, r, s) = (mails.clone(), reject.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let (m, r) = (m.clone(), r.clone());
                std::thread::spawn(move || {
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                    let _ = serve_session(stream, &m, &r);
                });
            }
        });
        Sink {
            port,
            mails,
            reject,
            stop,
        }
    }

    fn count(&self) -> usize {
        self.mails.lock().len()
    }

    /// Waits (up to 10 s) until at least `n` mails arrived; returns them all.
    async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mails = self.mails.lock().clone();
            if mails.len() >= n {
                return mails;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} mails, got {}",
                mails.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The next mail after the `before` already seen.
    async fn next(&self, before: usize) -> Received {
        self.wait_for(before + 1).await[before].clone()
    }

    /// Gives background sends time to arrive, then returns how many mails there are.
    async fn settle(&self) -> usize {
        tokio::time::sleep(Duration::from_millis(400)).await;
        self.count()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

// ---------------------------------------------------------------------------------
// Helpers.

async fn smtp_on(harness: &Harness, sink: &Sink) {
    harness
        .app
        .update_settings(json!({
            "smtp": {"enabled": true, "host": "127.0.0.1", "port": sink.port, "tls": false},
            "meta": {"appName": "Basalt Test", "appURL": APP_URL,
                     "senderName": "Test Sender", "senderAddress": "sender@example.test"}
        }))
        .await
        .expect("smtp settings");
}

async fn setup(harness: &Harness) -> Sink {
    let sink = Sink::start();
    smtp_on(harness, &sink).await;
    sink
}

fn users(harness: &Harness) -> Arc<Collection> {
    harness.app.collection("users").expect("users")
}

async fn create_user(app: &App, collection: &str, email: &str) -> String {
    let created = app
        .create_record(
            collection,
            body(json!({"email": email, "password": PASSWORD, "passwordConfirm": PASSWORD})),
            guest(),
        )
        .await
        .expect("create user");
    created["id"].as_str().expect("id").to_string()
}

async fn login(app: &App, collection: &str, email: &str, password: &str) -> AuthResult {
    app.auth_with_password(
        app.collection(collection).expect("collection"),
        email,
        password,
        None,
        None,
    )
    .await
    .expect("login")
}

async fn stored(harness: &Harness, collection: &str, id: &str) -> Json {
    harness
        .app
        .view_record(collection, id, &harness.superuser)
        .await
        .expect("view")
}

fn code(error: &CoreError, key: &str) -> String {
    error.body()["data"][key]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn message(error: &CoreError) -> String {
    error.body()["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn base64url(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

fn claims(token: &str) -> Json {
    let payload = token.split('.').nth(1).unwrap_or_default();
    serde_json::from_slice(&base64url(payload)).unwrap_or(Json::Null)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

async fn verification_token(harness: &Harness, sink: &Sink, email: &str) -> String {
    let before = sink.count();
    harness
        .app
        .request_verification(users(harness), email)
        .await
        .expect("request verification");
    sink.next(before)
        .await
        .link_token("/_/#/auth/confirm-verification/")
        .expect("verification link")
}

async fn reset_token(harness: &Harness, sink: &Sink, collection: &str, email: &str) -> String {
    let before = sink.count();
    harness
        .app
        .request_password_reset(harness.app.collection(collection).expect("c"), email)
        .await
        .expect("request reset");
    sink.next(before)
        .await
        .link_token("/_/#/auth/confirm-password-reset/")
        .expect("reset link")
}

async fn members(harness: &Harness) {
    harness
        .app
        .create_collection(json!({"name": "members", "type": "auth", "createRule": ""}))
        .await
        .expect("members");
}

// ---------------------------------------------------------------------------------
// Verification.

on_both_backends!(
    verification_mail_links_to_the_app_url_and_confirms,
    |harness: Harness| async move {
        let sink = setup(&harness).await;
        let id = create_user(&harness.app, "users", "ann@example.com").await;
        let before = sink.count();
        harness
            .app
            .request_verification(users(&harness), "ann@example.com")
            .await
            .expect("204");
        let mail = sink.next(before).await;
        assert_eq!(mail.rcpt, ["<ann@example.com>"]);
        assert_eq!(mail.header("Subject"), "Verify your Basalt Test email");
        assert_eq!(mail.header("From"), "\"Test Sender\" <sender@example.test>");
        assert!(mail.text.contains("multipart/alternative"));
        assert!(mail.text.contains("text/plain") && mail.text.contains("text/html"));
        let token = mail
            .link_token("/_/#/auth/confirm-verification/")
            .expect("a link built from the configured appURL");
        let payload = claims(&token);
        assert_eq!(payload["type"], json!("verification"));
        assert_eq!(payload["email"], json!("ann@example.com"));
        assert_eq!(payload["collectionId"], json!("_pb_users_auth_"));
        assert_eq!(payload["id"], json!(id));
        assert!(payload.get("refreshable").is_none());
        let exp = payload["exp"].as_i64().unwrap_or(0);
        assert!(
            (exp - now() - 86_400).abs() <= 5,
            "verification lasts 1 day"
        );

        harness
            .app
            .confirm_verification(users(&harness), &token)
            .await
            .expect("confirm");
        assert_eq!(
            stored(&harness, "users", &id).await["verified"],
            json!(true)
        );
        // Confirming again is a no-op; a verified record gets no more mails.
        harness
            .app
            .confirm_verification(users(&harness), &token)
            .await
            .expect("again");
        let count = sink.count();
        harness
            .app
            .request_verification(users(&harness), "ann@example.com")
            .await
            .expect("204");
        assert_eq!(sink.settle().await, count, "no mail for a verified record");
    }
);

on_both_backends!(
    request_verification_answers_alike_for_unknown_emails,
    |harness: Harness| async move {
        let sink = setup(&harness).await;
        create_user(&harness.app, "users", "known@example.com").await;
        let known = harness
            .app
            .request_verification(users(&harness), "known@example.com")
            .await;
        let unknown = harness
            .app
            .request_verification(users(&harness), "unknown@example.com")
            .await;
        assert!(known.is_ok() && unknown.is_ok());
        // The lookup ignores case, like a login by email.
        harness
            .app
            .request_verification(users(&harness), "KNOWN@example.com")
            .await
            .expect("204");
        let mails = sink.wait_for(1).await;
        assert_eq!(
            sink.settle().await,
            1,
            "one mail, to the known address only"
        );
        assert_eq!(mails[0].rcpt, ["<known@example.com>"]);
    }
);

on_both_backends!(
    a_repeated_request_within_the_window_sends_nothing,
    |harness: Harness| async move {
        let sink = setup(&harness).await;
        create_user(&harness.app, "users", "rep@example.com").await;
        create_user(&harness.app, "users", "other@example.com").await;
        for _ in 0..3 {
            harness
                .app
                .request_verification(users(&harness), "rep@example.com")
                .await
                .expect("204");
            harness
                .app
                .request_password_reset(users(&harness), "rep@example.com")
                .await
                .expect("204");
        }
        harness
            .app
            .request_verification(users(&harness), "other@example.com")
            .await
            .expect("204");
        sink.wait_for(3).await;
        assert_eq!(
            sink.settle().await,
            3,
            "one verification and one reset for rep, one for other"
        );
        assert_eq!(basalt_core::RESEND_WINDOW, Duration::from_secs(120));
    }
);

on_both_backends!(
    request_inputs_are_validated,
    |harness: Harness| async move {
        let sink = setup(&harness).await;
        let cases = [
            ("", "validation_required"),
            ("not-an-email", "validation_is_email"),
            // 256 characters: one over the limit.
            (
                &*format!("{}@x.io", "a".repeat(251)),
                "validation_length_out_of_range",
            ),
        ];
        for (email, expected) in cases {
            let error = harness
                .app
                .request_verification(users(&harness), email)
                .await
                .expect_err("invalid");
            assert_eq!(error.status(), 400);
            assert_eq!(
                message(&error),
                "An error occurred while validating the submitted data."
            );
            assert_eq!(code(&error, "email"), expected, "{email}");
            let error = harness
                .app
                .request_password_reset(users(&harness), email)
                .await
                .expect_err("invalid");
            assert_eq!(code(&error, "email"), expected, "{email}");
        }
        // 255 characters: at the limit, accepted (and unknown, so nothing is sent).
        let email = format!("{}@x.io", "a".repeat(250));
        assert_eq!(email.len(), 255);
        harness
            .app
            .request_verification(users(&harness), &email)
            .await
            .expect("255 is fine");
        assert_eq!(sink.settle().await, 0);
    }
);

on_both_backends!(
    superusers_are_verified_by_default,
    |harness: Harness| async move {
        let _sink = setup(&harness).await;
        let superusers = harness.app.collection("_superusers").expect("su");
        for error in [
            harness
                .app
                .request_verification(superusers.clone(), "root@example.com")
                .await
                .expect_err("400"),
            harness
                .app
                .confirm_verification(superusers.clone(), "x")
                .await
                .expect_err("400"),
        ] {
            assert_eq!(error.status(), 400);
            assert_eq!(message(&error), "All superusers are verified by default.");
        }
    }
);

// ---------------------------------------------------------------------------------
// Token confusion, collections, expiry.

on_both_backends!(
    token_types_are_never_interchangeable,
    |harness: Harness| async move {
        let sink = setup(&harness).await;
        let id = create_user(&harness.app, "users", "tt@example.com").await;
        let auth = login(&harness.app, "users", "tt@example.com", PASSWORD).await;
        let verification = verification_token(&harness, &sink, "tt@example.com").await;
        let reset = reset_token(&harness, &sink, "users", "tt@example.com").await;

        // A verification or reset token is no auth token: the caller is a guest.
        assert!(harness.app.authenticate(&verification).await.is_none());
        assert!(harness.app.authenticate(&reset).await.is_none());
        assert!(harness.app.authenticate(&auth.token).await.is_some());
        let as_guest = basalt_core::RequestInfo {
            auth: harness.app.authenticate(&verification).await,
            ..RequestInfo::default()
        };
        let error = harness
            .app
            .view_record("users", &id, &as_guest)
            .await
            .expect_err("guest");
        assert_eq!(error.status(), 404);

        // confirm-verification: a reset token is invalid, an auth token has no email.
        let error = harness
            .app
            .confirm_verification(users(&harness), &reset)
            .await
            .expect_err("reset token");
        assert_eq!(code(&error, "token"), "validation_invalid_token");
        let error = harness
            .app
            .confirm_verification(users(&harness), &auth.token)
            .await
            .expect_err("auth token");
        assert_eq!(code(&error, "token"), "validation_invalid_token_claims");
        let error = harness
            .app
            .confirm_verification(users(&harness), "garbage")
            .await
            .expect_err("garbage");
        assert_eq!(code(&error, "token"), "validation_invalid_token_claims");
        let error = harness
            .app
            .confirm_verification(users(&harness), "")
            .await
            .expect_err("empty");
        assert_eq!(code(&error, "token"), "validation_required");

        // confirm-password-reset: a verification token is invalid.
        let error = harness
            .app
            .confirm_password_reset(
                users(&harness),
                &verification,
                "new-password",
                "new-password",
            )
            .await
            .expect_err("verification token");
        assert_eq!(code(&error, "token"), "validation_invalid_token");

        // confirm-email-change: neither has a newEmail claim.
        for token in [&verification, &reset] {
            let error = harness
                .app
                .confirm_email_change(users(&harness), token, PASSWORD)
                .await
                .expect_err("no newEmail");
            assert_eq!(code(&error, "token"), "validation_invalid_token_payload");
            assert_eq!(code(&error, "password"), "validation_invalid_password");
        }

        // An emailChange token confirms no verification.
        let email_change = basalt_core::issue_email_change_token(
            &users(&harness),
            &auth.auth.record,
            "tt2@example.com",
        )
        .expect("token");
        let error = harness
            .app
            .confirm_verification(users(&harness), &email_change)
            .await
            .expect_err("email change token");
        assert_eq!(code(&error, "token"), "validation_invalid_token");

        // Nothing was changed by any of it.
        let record = stored(&harness, "users", &id).await;
        assert_eq!(record["verified"], json!(false));
        assert!(harness.app.authenticate(&auth.token).await.is_some());
    }
);

on_both_backends!(
    tokens_of_another_collection_are_rejected,
    |harness: Harness| async move {
        let sink = setup(&harness).await;
        members(&harness).await;
        create_user(&harness.app, "members", "mem@example.com").await;
        create_user(&harness.app, "users", "usr@example.com").await;
        let members_collection = harness.app.collection("members").expect("members");
        let before = sink.count();
        harness
            .app
            .request_verification(members_collection.clone(), "mem@example.com")
            .await
            .expect("204");
        let verification = sink
            .next(before)
            .await
            .link_token("/_/#/auth/confirm-verification/")
            .expect("link");
        let error = harness
            .app
            .confirm_verification(users(&harness), &verification)
            .await
            .expect_err("other collection");
        assert_eq!(
            code(&error, "token"),
            "validation_token_collection_mismatch"
        );

        let reset = reset_token(&harness, &sink, "members", "mem@example.com").await;
        let error = harness
            .app
            .confirm_password_reset(users(&harness), &reset, "new-password", "new-password")
            .await
            .expect_err("other collection");
        assert_eq!(
            code(&error, "token"),
            "validation_token_collection_mismatch"
        );

        // An auth token of members may not request an email change on users.
        let member = login(&harness.app, "members", "mem@example.com", PASSWORD).await;
        let error = harness
            .app
            .request_email_change(users(&harness), Some(member.auth.clone()), "x@example.com")
            .await
            .expect_err("403");
        assert_eq!(error.status(), 403);
        assert_eq!(
            message(&error),
            "The request requires auth record from members collection."
        );
        // And the member's own collection still accepts its tokens.
        harness
            .app
            .confirm_verification(members_collection, &verification)
            .await
            .expect("own collection");
    }
);

on_both_backends!(
    a_token_whose_email_is_not_the_records_is_rejected,
    |harness: Harness| async move {
        let _sink = setup(&harness).await;
        let id = create_user(&harness.app, "users", "em@example.com").await;
        let user = login(&harness.app, "users", "em@example.com", PASSWORD).await;
        // Correctly signed (same tokenKey) but for another email.
        let mut record = user.auth.record.clone();
        record.insert("email".into(), json!("someone-else@example.com"));
        let token = issue_token(
            &users(&harness),
            &record,
            TokenType::Verification,
            None,
            false,
        )
        .expect("token");
        let error = harness
            .app
            .confirm_verification(users(&harness), &token)
            .await
            .expect_err("mismatch");
        assert_eq!(code(&error, "token"), "validation_token_email_mismatch");
        assert_eq!(
            stored(&harness, "users", &id).await["verified"],
            json!(false)
        );
    }
);

on_both_backends!(expired_tokens_are_rejected, |harness: Harness| async move {
    let _sink = setup(&harness).await;
    create_user(&harness.app, "users", "exp@example.com").await;
    let user = login(&harness.app, "users", "exp@example.com", PASSWORD).await;
    let collection = users(&harness);
    let verification = issue_token(
        &collection,
        &user.auth.record,
        TokenType::Verification,
        Some(1),
        false,
    )
    .expect("token");
    let reset = issue_token(
        &collection,
        &user.auth.record,
        TokenType::PasswordReset,
        Some(1),
        false,
    )
    .expect("token");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let error = harness
        .app
        .confirm_verification(collection.clone(), &verification)
        .await
        .expect_err("expired");
    assert_eq!(code(&error, "token"), "validation_invalid_token");
    let error = harness
        .app
        .confirm_password_reset(collection, &reset, "new-password", "new-password")
        .await
        .expect_err("expired");
    assert_eq!(code(&error, "token"), "validation_invalid_token");
});

// ---------------------------------------------------------------------------------
// Password reset.

on_both_backends!(
    password_reset_sets_the_password_and_kills_old_tokens,
    |harness: Harness| async move {
        let sink = setup(&harness).await;
        let id = create_user(&harness.app, "users", "pr@example.com").await;
        let old = login(&harness.app, "users", "pr@example.com", PASSWORD).await;
        let token = reset_token(&harness, &sink, "users", "pr@example.com").await;
        let payload = claims(&token);
        assert_eq!(payload["type"], json!("passwordReset"));
        assert_eq!(payload["email"], json!("pr@example.com"));
        assert!((payload["exp"].as_i64().unwrap_or(0) - now() - 1800).abs() <= 5);
        let collection = users(&harness);

        let error = harness
            .app
            .confirm_password_reset(collection.clone(), "", "", "")
            .await
            .expect_err("empty");
        for key in ["token", "password", "passwordConfirm"] {
            assert_eq!(code(&error, key), "validation_required", "{key}");
        }
        // Length: the field's min (8) is the limit; 7 is one under.
        let error = harness
            .app
            .confirm_password_reset(collection.clone(), &token, "1234567", "1234567")
            .await
            .expect_err("short");
        assert_eq!(code(&error, "password"), "validation_length_out_of_range");
        assert_eq!(
            error.body()["data"]["password"]["params"],
            json!({"min": 8, "max": 255})
        );
        let error = harness
            .app
            .confirm_password_reset(collection.clone(), &token, "12345678", "12345679")
            .await
            .expect_err("mismatch");
        assert_eq!(
            code(&error, "passwordConfirm"),
            "validation_values_mismatch"
        );
        assert!(error.body()["data"].get("password").is_none());
        // 72 characters: over the password field's max of 71.
        let long = "p".repeat(72);
        let error = harness
            .app
            .confirm_password_reset(collection.clone(), &token, &long, &long)
            .await
            .expect_err("long");
        assert_eq!(message(&error), "Failed to set new password.");
        assert_eq!(code(&error, "password"), "validation_max_text_constraint");
        // None of the failures spent the token or changed anything.
        assert!(harness.app.authenticate(&old.token).await.is_some());

        // 71 characters: the max, accepted.
        let new_password = "n".repeat(71);
        harness
            .app
            .confirm_password_reset(collection.clone(), &token, &new_password, &new_password)
            .await
            .expect("reset");
        assert!(
            harness.app.authenticate(&old.token).await.is_none(),
            "the old auth token is dead (tokenKey rotated)"
        );
        login(&harness.app, "users", "pr@example.com", &new_password).await;
        assert!(
            harness
                .app
                .auth_with_password(collection.clone(), "pr@example.com", PASSWORD, None, None)
                .await
                .is_err()
        );
        // The mail went to the record's email, so it is now verified.
        assert_eq!(
            stored(&harness, "users", &id).await["verified"],
            json!(true)
        );
        // The token is spent.
        let error = harness
            .app
            .confirm_password_reset(collection.clone(), &token, "another-pass", "another-pass")
            .await
            .expect_err("spent");
        assert_eq!(code(&error, "token"), "validation_invalid_token");
        // A completed reset frees the resend window: a new request mails again.
        reset_token(&harness, &sink, "users", "pr@example.com").await;
    }
);

on_both_backends!(
    a_reset_token_is_spent_once_under_concurrency,
    |harness: Harness| async move {
        let sink = setup(&harness).await;
        create_user(&harness.app, "users", "race@example.com").await;
        let token = reset_token(&harness, &sink, "users", "race@example.com").await;
        let mut tasks = Vec::new();
        for i in 0..4 {
            let app = harness.app.clone();
            let collection = users(&harness);
            let token = token.clone();
            tasks.push(tokio::spawn(async move {
                let password = format!("concurrent-{i}");
                app.confirm_password_reset(collection, &token, &password, &password)
                    .await
                    .map(|()| password)
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            match task.await.expect("join") {
                Ok(password) => winners.push(password),
                Err(error) => assert_eq!(code(&error, "token"), "validation_invalid_token"),
            }
        }
        assert_eq!(winners.len(), 1, "exactly one confirm wins");
        login(&harness.app, "users", "race@example.com", &winners[0]).await;
    }
);

on_both_backends!(
    password_reset_needs_password_auth,
    |harness: Harness| async move {
        let sink = setup(&harness).await;
        create_user(&harness.app, "users", "pa@example.com").await;
        harness
            .app
            .update_collection("users", json!({"passwordAuth": {"enabled": false}}))
            .await
            .expect("disable password auth");
        for email in ["pa@example.com", "nobody@example.com"] {
            let error = harness
                .app
                .request_password_reset(users(&harness), email)
                .await
                .expect_err("disabled");
            assert_eq!(error.status(), 400);
            assert_eq!(
                message(&error),
                "The collection is not configured to allow password authentication."
            );
        }
        assert_eq!(sink.settle().await, 0);
    }
);

// ---------------------------------------------------------------------------------
// Email change.

on_both_backends!(
    email_change_mails_the_new_address_and_confirms_with_the_password,
    |harness: Harness| async move {
        let sink = setup(&harness).await;
        let id = create_user(&harness.app, "users", "old@example.com").await;
        create_user(&harness.app, "users", "taken@example.com").await;
        let user = login(&harness.app, "users", "old@example.com", PASSWORD).await;
        let collection = users(&harness);

        let error = harness
            .app
            .request_email_change(collection.clone(), None, "new@example.com")
            .await
            .expect_err("guest");
        assert_eq!(error.status(), 401);
        let superuser = harness.superuser.auth.clone();
        let error = harness
            .app
            .request_email_change(collection.clone(), superuser.clone(), "new@example.com")
            .await
            .expect_err("superuser on users");
        assert_eq!(error.status(), 403);
        let error = harness
            .app
            .request_email_change(
                harness.app.collection("_superusers").expect("su"),
                superuser,
                "new@example.com",
            )
            .await
            .expect_err("superusers");
        assert_eq!(
            message(&error),
            "All superusers can change their emails directly."
        );
        let too_long = format!("{}@x.io", "a".repeat(251));
        for (new_email, expected) in [
            ("", "validation_required"),
            ("nope", "validation_is_email"),
            (too_long.as_str(), "validation_length_out_of_range"),
            ("old@example.com", "validation_not_in_invalid"),
            ("taken@example.com", "validation_invalid_new_email"),
            ("TAKEN@example.com", "validation_invalid_new_email"),
        ] {
            let error = harness
                .app
                .request_email_change(collection.clone(), Some(user.auth.clone()), new_email)
                .await
                .expect_err("invalid");
            assert_eq!(code(&error, "newEmail"), expected, "{new_email}");
        }
        assert_eq!(sink.count(), 0);

        harness
            .app
            .request_email_change(
                collection.clone(),
                Some(user.auth.clone()),
                "new@example.com",
            )
            .await
            .expect("204");
        let mail = sink.next(0).await;
        assert_eq!(mail.rcpt, ["<new@example.com>"]);
        let token = mail
            .link_token("/_/#/auth/confirm-email-change/")
            .expect("link");
        let payload = claims(&token);
        assert_eq!(payload["type"], json!("emailChange"));
        assert_eq!(payload["email"], json!("old@example.com"));
        assert_eq!(payload["newEmail"], json!("new@example.com"));
        // The same request again within the window sends nothing more.
        harness
            .app
            .request_email_change(
                collection.clone(),
                Some(user.auth.clone()),
                "new@example.com",
            )
            .await
            .expect("204");
        assert_eq!(sink.settle().await, 1);

        let error = harness
            .app
            .confirm_email_change(collection.clone(), &token, "wrong-password")
            .await
            .expect_err("wrong password");
        assert_eq!(code(&error, "password"), "validation_invalid_password");
        assert!(error.body()["data"].get("token").is_none());
        let error = harness
            .app
            .confirm_email_change(collection.clone(), "", "")
            .await
            .expect_err("empty");
        assert_eq!(code(&error, "token"), "validation_required");
        assert_eq!(code(&error, "password"), "validation_required");

        harness
            .app
            .confirm_email_change(collection.clone(), &token, PASSWORD)
            .await
            .expect("confirm");
        let record = stored(&harness, "users", &id).await;
        assert_eq!(record["email"], json!("new@example.com"));
        assert_eq!(record["verified"], json!(true));
        assert!(harness.app.authenticate(&user.token).await.is_none());
        login(&harness.app, "users", "new@example.com", PASSWORD).await;
        let error = harness
            .app
            .confirm_email_change(collection, &token, PASSWORD)
            .await
            .expect_err("spent");
        assert_eq!(code(&error, "token"), "validation_invalid_token_email");
    }
);

on_both_backends!(
    an_email_taken_before_the_confirm_is_refused,
    |harness: Harness| async move {
        let sink = setup(&harness).await;
        create_user(&harness.app, "users", "first@example.com").await;
        let user = login(&harness.app, "users", "first@example.com", PASSWORD).await;
        harness
            .app
            .request_email_change(
                users(&harness),
                Some(user.auth.clone()),
                "wanted@example.com",
            )
            .await
            .expect("204");
        let token = sink
            .next(0)
            .await
            .link_token("/_/#/auth/confirm-email-change/")
            .expect("link");
        create_user(&harness.app, "users", "wanted@example.com").await;
        let error = harness
            .app
            .confirm_email_change(users(&harness), &token, PASSWORD)
            .await
            .expect_err("taken");
        assert_eq!(code(&error, "token"), "validation_invalid_token_email");
        assert!(harness.app.authenticate(&user.token).await.is_some());
    }
);

on_both_backends!(
    email_change_fails_when_the_mail_cannot_be_sent,
    |harness: Harness| async move {
        let sink = setup(&harness).await;
        create_user(&harness.app, "users", "fail@example.com").await;
        let user = login(&harness.app, "users", "fail@example.com", PASSWORD).await;
        sink.reject.store(true, Ordering::SeqCst);
        let error = harness
            .app
            .request_email_change(users(&harness), Some(user.auth.clone()), "n1@example.com")
            .await
            .expect_err("refused by the server");
        assert_eq!(message(&error), "Failed to request email change.");
        // A failed send does not hold the resend window: the retry goes out.
        sink.reject.store(false, Ordering::SeqCst);
        harness
            .app
            .request_email_change(users(&harness), Some(user.auth.clone()), "n1@example.com")
            .await
            .expect("retry");
        assert_eq!(sink.wait_for(1).await.len(), 1);
        // `tls: true` is implicit TLS: a plaintext server fails the handshake.
        harness
            .app
            .update_settings(json!({"smtp": {"tls": true}}))
            .await
            .expect("tls on");
        let error = harness
            .app
            .request_email_change(users(&harness), Some(user.auth.clone()), "n3@example.com")
            .await
            .expect_err("no TLS on the sink");
        assert_eq!(message(&error), "Failed to request email change.");
        assert_eq!(sink.settle().await, 1);
        // With SMTP disabled nothing can be sent: PocketBase (with no sendmail) answers 400.
        harness
            .app
            .update_settings(json!({"smtp": {"enabled": false}}))
            .await
            .expect("disable smtp");
        let error = harness
            .app
            .request_email_change(users(&harness), Some(user.auth), "n2@example.com")
            .await
            .expect_err("disabled");
        assert_eq!(message(&error), "Failed to request email change.");
    }
);

on_both_backends!(
    with_smtp_disabled_requests_answer_alike_and_send_nothing,
    |harness: Harness| async move {
        let sink = Sink::start();
        harness
            .app
            .update_settings(
                json!({"smtp": {"enabled": false, "host": "127.0.0.1", "port": sink.port}}),
            )
            .await
            .expect("settings");
        create_user(&harness.app, "users", "off@example.com").await;
        for _ in 0..2 {
            harness
                .app
                .request_verification(users(&harness), "off@example.com")
                .await
                .expect("204");
            harness
                .app
                .request_password_reset(users(&harness), "off@example.com")
                .await
                .expect("204");
        }
        assert_eq!(sink.settle().await, 0);
        // Once SMTP is on, the next request is not held back by the unsent ones.
        smtp_on(&harness, &sink).await;
        verification_token(&harness, &sink, "off@example.com").await;
    }
);

// ---------------------------------------------------------------------------------
// Templates and SMTP settings.

on_both_backends!(
    templates_fill_placeholders_and_escape_record_fields,
    |harness: Harness| async move {
        let sink = setup(&harness).await;
        harness
            .app
            .update_collection(
                "users",
                json!({"verificationTemplate": {
                    "subject": "Hi {RECORD:name} from {APP_NAME}",
                    "body": "<p>{RECORD:name} {RECORD:password} {RECORD:tokenKey} <a href=\"{APP_URL}/_/#/auth/confirm-verification/{TOKEN}\">go</a></p>"
                }}),
            )
            .await
            .expect("template");
        let created = harness
            .app
            .create_record(
                "users",
                body(json!({"email": "tpl@example.com", "password": PASSWORD,
                            "passwordConfirm": PASSWORD, "name": "<b>Bo & {TOKEN}</b>"})),
                guest(),
            )
            .await
            .expect("user");
        assert!(created["id"].is_string());
        let token = verification_token(&harness, &sink, "tpl@example.com").await;
        let mail = sink.wait_for(1).await[0].clone();
        assert_eq!(
            mail.header("Subject"),
            "Hi <b>Bo & {TOKEN}</b> from Basalt Test"
        );
        assert!(
            mail.text.contains(
                "&lt;b&gt;Bo &amp; {TOKEN}&lt;/b&gt; {RECORD:password} {RECORD:tokenKey}"
            ),
            "{}",
            mail.text
        );
        assert!(!mail.text.contains("$2"), "no password hash in the mail");
        // The text part carries the link too.
        assert!(mail.text.contains(&format!(
            "go ({APP_URL}/_/#/auth/confirm-verification/{token})"
        )));
    }
);

on_both_backends!(
    smtp_credentials_and_local_name_are_used,
    |harness: Harness| async move {
        let sink = setup(&harness).await;
        harness
            .app
            .update_settings(json!({"smtp": {"username": "mailer", "password": "s3cret",
                                              "authMethod": "PLAIN", "localName": "basalt.test"}}))
            .await
            .expect("settings");
        create_user(&harness.app, "users", "cred@example.com").await;
        verification_token(&harness, &sink, "cred@example.com").await;
        let mail = sink.wait_for(1).await[0].clone();
        assert_eq!(mail.commands[0], "EHLO basalt.test");
        // AUTH PLAIN base64("\0mailer\0s3cret")
        assert!(
            mail.commands
                .iter()
                .any(|c| c == "AUTH PLAIN AG1haWxlcgBzM2NyZXQ="),
            "{:?}",
            mail.commands
        );
        // The password never leaves through the settings API.
        assert!(
            harness.app.public_settings()["smtp"]
                .get("password")
                .is_none()
        );
    }
);

// ---------------------------------------------------------------------------------
// The test email.

on_both_backends!(
    test_email_sends_each_template,
    |harness: Harness| async move {
        let sink = setup(&harness).await;
        let input = |template: &str, collection: Option<&str>| {
            let mut map = Map::new();
            map.insert("email".into(), json!("probe@example.com"));
            map.insert("template".into(), json!(template));
            if let Some(c) = collection {
                map.insert("collection".into(), json!(c));
            }
            map
        };
        let templates = [
            ("verification", "Verify your Basalt Test email"),
            ("password-reset", "Reset your Basalt Test password"),
            ("email-change", "Confirm your new Basalt Test email"),
            ("otp", "OTP for Basalt Test"),
            ("login-alert", "Sign-in from a new location"),
        ];
        for (i, (template, subject)) in templates.iter().enumerate() {
            harness
                .app
                .send_test_email(&input(template, Some("users")))
                .await
                .expect("sent");
            let mail = sink.next(i).await;
            assert_eq!(mail.rcpt, ["<probe@example.com>"]);
            assert_eq!(mail.header("Subject"), *subject);
        }
        // The default collection is _superusers.
        harness
            .app
            .send_test_email(&input("verification", None))
            .await
            .expect("sent");
        let token = sink
            .next(templates.len())
            .await
            .link_token("/_/#/auth/confirm-verification/")
            .expect("link");
        assert_eq!(claims(&token)["collectionId"], json!("pbc_3142635823"));

        let error = harness
            .app
            .send_test_email(&Map::new())
            .await
            .expect_err("empty");
        assert_eq!(message(&error), "Failed to send the test email.");
        assert_eq!(code(&error, "email"), "validation_required");
        assert_eq!(code(&error, "template"), "validation_required");
        let error = harness
            .app
            .send_test_email(&input("bogus", Some("nope")))
            .await
            .expect_err("invalid");
        assert_eq!(code(&error, "template"), "validation_in_invalid");
        assert_eq!(
            code(&error, "collection"),
            "validation_invalid_auth_collection"
        );
        let mut typed = input("verification", None);
        typed.insert("template".into(), json!(5));
        let error = harness
            .app
            .send_test_email(&typed)
            .await
            .expect_err("not a string");
        assert_eq!(
            message(&error),
            "An error occurred while loading the submitted data."
        );

        sink.reject.store(true, Ordering::SeqCst);
        let error = harness
            .app
            .send_test_email(&input("verification", None))
            .await
            .expect_err("refused");
        assert!(
            message(&error).starts_with("Failed to send the test email. Raw error:"),
            "{}",
            message(&error)
        );
    }
);

// ---------------------------------------------------------------------------------
// Impersonation.

on_both_backends!(
    impersonation_issues_a_non_refreshable_token,
    |harness: Harness| async move {
        let id = create_user(&harness.app, "users", "imp@example.com").await;
        let collection = users(&harness);
        let duration = |value: Json| {
            let mut map = Map::new();
            map.insert("duration".into(), value);
            map
        };
        let result = harness
            .app
            .impersonate(collection.clone(), &id, &duration(json!(100)))
            .await
            .expect("impersonate");
        let payload = claims(&result.token);
        assert_eq!(payload["type"], json!("auth"));
        assert_eq!(payload["refreshable"], json!(false));
        assert_eq!(payload["id"], json!(id));
        assert!((payload["exp"].as_i64().unwrap_or(0) - now() - 100).abs() <= 2);
        let auth = harness
            .app
            .authenticate(&result.token)
            .await
            .expect("a working auth token");
        assert_eq!(auth.id(), id);
        // auth-refresh hands the same token back.
        let refreshed = harness
            .app
            .auth_refresh(collection.clone(), auth, &result.token)
            .await
            .expect("refresh");
        assert_eq!(refreshed.token, result.token);

        // 0 (or nothing) = the collection's auth token duration (5 days for users).
        for input in [duration(json!(0)), Map::new(), duration(Json::Null)] {
            let result = harness
                .app
                .impersonate(collection.clone(), &id, &input)
                .await
                .expect("default duration");
            let exp = claims(&result.token)["exp"].as_i64().unwrap_or(0);
            assert!((exp - now() - 432_000).abs() <= 2);
        }
        let error = harness
            .app
            .impersonate(collection.clone(), &id, &duration(json!(-1)))
            .await
            .expect_err("negative");
        assert_eq!(
            code(&error, "duration"),
            "validation_min_greater_equal_than_required"
        );
        for bad in [json!(1.5), json!("10"), json!(true)] {
            let error = harness
                .app
                .impersonate(collection.clone(), &id, &duration(bad))
                .await
                .expect_err("not an integer");
            assert_eq!(
                message(&error),
                "An error occurred while loading the submitted data."
            );
        }
        // Huge durations saturate instead of wrapping around.
        let result = harness
            .app
            .impersonate(collection.clone(), &id, &duration(json!(i64::MAX)))
            .await
            .expect("huge");
        assert!(claims(&result.token)["exp"].as_i64().unwrap_or(0) > now());
        let error = harness
            .app
            .impersonate(collection.clone(), "missing", &Map::new())
            .await
            .expect_err("unknown record");
        assert_eq!(error.status(), 404);
        // Impersonation does not depend on the auth rule (the superuser decides).
        harness
            .app
            .update_collection("users", json!({"authRule": null}))
            .await
            .expect("lock auth");
        harness
            .app
            .impersonate(users(&harness), &id, &Map::new())
            .await
            .expect("still allowed");
    }
);

// ---------------------------------------------------------------------------------
// The manage rule.

on_both_backends!(
    a_manager_changes_email_password_and_verified_without_old_password,
    |harness: Harness| async move {
        harness
            .app
            .update_collection(
                "users",
                json!({"manageRule": "@request.auth.name = 'admin'",
                       "updateRule": "@request.auth.id != ''",
                       "viewRule": "@request.auth.id != ''"}),
            )
            .await
            .expect("rules");
        let admin = harness
            .app
            .create_record(
                "users",
                body(json!({"email": "admin@example.com", "password": PASSWORD,
                            "passwordConfirm": PASSWORD, "name": "admin"})),
                guest(),
            )
            .await
            .expect("admin");
        assert!(admin["id"].is_string());
        let victim = create_user(&harness.app, "users", "victim@example.com").await;
        create_user(&harness.app, "users", "plain@example.com").await;
        let as_admin = crate::as_user(
            login(&harness.app, "users", "admin@example.com", PASSWORD)
                .await
                .auth,
        );
        let as_plain = crate::as_user(
            login(&harness.app, "users", "plain@example.com", PASSWORD)
                .await
                .auth,
        );
        let victim_login = login(&harness.app, "users", "victim@example.com", PASSWORD).await;

        // Not a manager: email, password (without oldPassword) and verified are refused.
        for (change, field) in [
            (json!({"email": "moved@example.com"}), "email"),
            (
                json!({"password": "changed-pass", "passwordConfirm": "changed-pass"}),
                "oldPassword",
            ),
            (json!({"verified": true}), "verified"),
        ] {
            let error = harness
                .app
                .update_record("users", &victim, body(change), as_plain.clone())
                .await
                .expect_err("not a manager");
            assert_eq!(error.status(), 400);
            assert!(!code(&error, field).is_empty(), "{}", error.body());
        }
        // The record itself is no manager of itself either.
        let error = harness
            .app
            .update_record(
                "users",
                &victim,
                body(json!({"verified": true})),
                crate::as_user(victim_login.auth.clone()),
            )
            .await
            .expect_err("self");
        assert_eq!(error.status(), 400);

        // A manager may.
        harness
            .app
            .update_record(
                "users",
                &victim,
                body(json!({"email": "moved@example.com"})),
                as_admin.clone(),
            )
            .await
            .expect("email");
        harness
            .app
            .update_record(
                "users",
                &victim,
                body(json!({"password": "changed-pass", "passwordConfirm": "changed-pass"})),
                as_admin.clone(),
            )
            .await
            .expect("password without oldPassword");
        let error = harness
            .app
            .update_record(
                "users",
                &victim,
                body(json!({"password": "changed-pass", "passwordConfirm": "other-pass"})),
                as_admin.clone(),
            )
            .await
            .expect_err("confirm still checked");
        assert_eq!(
            code(&error, "passwordConfirm"),
            "validation_values_mismatch"
        );
        harness
            .app
            .update_record("users", &victim, body(json!({"verified": true})), as_admin)
            .await
            .expect("verified");
        let record = stored(&harness, "users", &victim).await;
        assert_eq!(record["email"], json!("moved@example.com"));
        assert_eq!(record["verified"], json!(true));
        assert!(
            harness
                .app
                .authenticate(&victim_login.token)
                .await
                .is_none()
        );
        login(&harness.app, "users", "moved@example.com", "changed-pass").await;

        // A guest is never a manager (and fails the update rule).
        let error = harness
            .app
            .update_record("users", &victim, body(json!({"verified": false})), guest())
            .await
            .expect_err("guest");
        assert_eq!(error.status(), 404);
    }
);

on_both_backends!(
    a_manager_sees_the_emails_of_the_records_it_manages,
    |harness: Harness| async move {
        harness
            .app
            .update_collection(
                "users",
                json!({"manageRule": "@request.auth.name = 'admin'",
                       "updateRule": "@request.auth.id != ''",
                       "listRule": "@request.auth.id != ''",
                       "viewRule": "@request.auth.id != ''"}),
            )
            .await
            .expect("rules");
        harness
            .app
            .create_record(
                "users",
                body(json!({"email": "admin@example.com", "password": PASSWORD,
                            "passwordConfirm": PASSWORD, "name": "admin"})),
                guest(),
            )
            .await
            .expect("admin");
        let victim = create_user(&harness.app, "users", "victim@example.com").await;
        create_user(&harness.app, "users", "plain@example.com").await;
        let users_id = users(&harness).id.clone();
        harness
            .app
            .create_collection(json!({"name": "notes", "listRule": "", "viewRule": "",
                "fields": [{"name": "owner", "type": "relation", "collectionId": users_id,
                            "maxSelect": 1}]}))
            .await
            .expect("notes");
        let note = harness
            .app
            .create_record(
                "notes",
                body(json!({"owner": victim})),
                harness.superuser.clone(),
            )
            .await
            .expect("note");
        let note = note["id"].as_str().expect("note id").to_string();
        let as_admin = crate::as_user(
            login(&harness.app, "users", "admin@example.com", PASSWORD)
                .await
                .auth,
        );
        let as_plain = crate::as_user(
            login(&harness.app, "users", "plain@example.com", PASSWORD)
                .await
                .auth,
        );
        let email_in_list = |page: &basalt_core::ListResult| -> Option<Json> {
            page.items
                .iter()
                .find(|r| r["id"] == json!(victim))
                .and_then(|r| r.get("email").cloned())
        };
        // Lists and views: the manager sees the hidden email, another user does not.
        let page = harness
            .app
            .list_records("users", crate::all(), as_admin.clone())
            .await
            .expect("admin list");
        assert_eq!(email_in_list(&page), Some(json!("victim@example.com")));
        let page = harness
            .app
            .list_records("users", crate::all(), as_plain.clone())
            .await
            .expect("plain list");
        assert_eq!(page.items.len(), 3);
        assert_eq!(email_in_list(&page), None);
        let seen = harness
            .app
            .view_record("users", &victim, &as_admin)
            .await
            .expect("admin view");
        assert_eq!(seen["email"], json!("victim@example.com"));
        let seen = harness
            .app
            .view_record("users", &victim, &as_plain)
            .await
            .expect("plain view");
        assert!(seen.get("email").is_none(), "{seen}");
        // Expanded records too.
        for (info, expected) in [
            (as_admin.clone(), Some(json!("victim@example.com"))),
            (as_plain.clone(), None),
        ] {
            let mut records = vec![
                harness
                    .app
                    .view_record("notes", &note, &info)
                    .await
                    .expect("note"),
            ];
            let notes = harness.app.collection("notes").expect("notes");
            harness
                .app
                .expand_records(&notes, &mut records, "owner", &info)
                .await
                .expect("expand");
            assert_eq!(
                records[0]["expand"]["owner"].get("email").cloned(),
                expected,
                "{}",
                records[0]
            );
        }
        // The manager's update answer shows it; with emailVisibility on, everyone sees it.
        let updated = harness
            .app
            .update_record(
                "users",
                &victim,
                body(json!({"name": "renamed"})),
                as_admin.clone(),
            )
            .await
            .expect("manager update");
        assert_eq!(updated["email"], json!("victim@example.com"));
        harness
            .app
            .update_record(
                "users",
                &victim,
                body(json!({"emailVisibility": true})),
                harness.superuser.clone(),
            )
            .await
            .expect("visible");
        let seen = harness
            .app
            .view_record("users", &victim, &as_plain)
            .await
            .expect("plain view");
        assert_eq!(seen["email"], json!("victim@example.com"));
    }
);

on_both_backends!(
    the_manage_rule_sees_the_submitted_body,
    |harness: Harness| async move {
        harness
            .app
            .update_collection(
                "users",
                json!({"manageRule": "@request.auth.id != '' && @request.body.reason = 'support'",
                       "updateRule": "@request.auth.id != ''"}),
            )
            .await
            .expect("rules");
        let victim = create_user(&harness.app, "users", "victim@example.com").await;
        create_user(&harness.app, "users", "helper@example.com").await;
        let as_helper = crate::as_user(
            login(&harness.app, "users", "helper@example.com", PASSWORD)
                .await
                .auth,
        );
        // Without the body key the caller is no manager.
        let error = harness
            .app
            .update_record(
                "users",
                &victim,
                body(json!({"verified": true})),
                as_helper.clone(),
            )
            .await
            .expect_err("no reason given");
        assert_eq!(code(&error, "verified"), "validation_values_mismatch");
        let error = harness
            .app
            .update_record(
                "users",
                &victim,
                body(
                    json!({"password": "changed-pass", "passwordConfirm": "changed-pass",
                            "reason": "other"}),
                ),
                as_helper.clone(),
            )
            .await
            .expect_err("wrong reason");
        assert!(!code(&error, "oldPassword").is_empty(), "{}", error.body());
        // With it, the manager may change verified and the password without the old one.
        harness
            .app
            .update_record(
                "users",
                &victim,
                body(json!({"verified": true, "reason": "support"})),
                as_helper.clone(),
            )
            .await
            .expect("manager by body");
        harness
            .app
            .update_record(
                "users",
                &victim,
                body(
                    json!({"password": "changed-pass", "passwordConfirm": "changed-pass",
                            "reason": "support"}),
                ),
                as_helper,
            )
            .await
            .expect("password by manager");
        let record = stored(&harness, "users", &victim).await;
        assert_eq!(record["verified"], json!(true));
        login(&harness.app, "users", "victim@example.com", "changed-pass").await;
    }
);

// ---------------------------------------------------------------------------------
// Login bursts.

on_both_backends!(
    a_login_burst_does_not_block_record_reads,
    |harness: Harness| async move {
        let id = create_user(&harness.app, "users", "burst@example.com").await;
        let collection = users(&harness);
        // The time of one hash: a wrong-password login (bcrypt dominates).
        let mut one_hash = Duration::MAX;
        for _ in 0..3 {
            let started = Instant::now();
            let failed = harness
                .app
                .auth_with_password(
                    collection.clone(),
                    "burst@example.com",
                    "wrong-one",
                    None,
                    None,
                )
                .await;
            assert!(failed.is_err());
            one_hash = one_hash.min(started.elapsed());
        }
        let mut burst = Vec::new();
        for _ in 0..20 {
            let app = harness.app.clone();
            let collection = collection.clone();
            burst.push(tokio::spawn(async move {
                let started = Instant::now();
                let result = app
                    .auth_with_password(collection, "burst@example.com", "wrong-two", None, None)
                    .await;
                (result.is_err(), started.elapsed())
            }));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        let mut worst = Duration::ZERO;
        for _ in 0..5 {
            let started = Instant::now();
            harness
                .app
                .view_record("users", &id, &harness.superuser)
                .await
                .expect("read during the burst");
            worst = worst.max(started.elapsed());
        }
        let mut slowest_login = Duration::ZERO;
        for task in burst {
            let (failed, took) = task.await.expect("join");
            assert!(failed);
            slowest_login = slowest_login.max(took);
        }
        assert!(
            slowest_login > one_hash * 4,
            "the burst queues behind the hashing cap ({slowest_login:?} vs one hash {one_hash:?})"
        );
        assert!(
            worst < one_hash,
            "a read took {worst:?} during the burst; one hash takes {one_hash:?}"
        );
    }
);

// ---------------------------------------------------------------------------------
// No enumeration by timing: the request does no lookup of its own (that runs in a
// background job), so known and unknown emails cost the same.

/// The `1/n` quantile of the samples (`n = 2`: the median).
fn quantile(samples: &[Duration], n: usize) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[sorted.len() / n]
}

on_both_backends!(
    requests_for_known_and_unknown_emails_take_the_same_time,
    |harness: Harness| async move {
        let _sink = setup(&harness).await;
        create_user(&harness.app, "users", "timing@example.com").await;
        let collection = users(&harness);
        for reset in [false, true] {
            let (mut known, mut unknown) = (Vec::new(), Vec::new());
            // Rounds of 5 known and 5 unknown requests back to back (fewer than the job
            // slots, so none waits), in a random order per round; the jobs drain between
            // rounds.
            for round in 0..40 {
                let mut order = [
                    true, true, true, true, true, false, false, false, false, false,
                ];
                rand::seq::SliceRandom::shuffle(order.as_mut_slice(), &mut rand::rng());
                for (i, is_known) in order.into_iter().enumerate() {
                    let email = if is_known {
                        "timing@example.com".to_string()
                    } else {
                        format!("nobody{round}x{i}@example.com")
                    };
                    let started = Instant::now();
                    let result = if reset {
                        harness
                            .app
                            .request_password_reset(collection.clone(), &email)
                            .await
                    } else {
                        harness
                            .app
                            .request_verification(collection.clone(), &email)
                            .await
                    };
                    let took = started.elapsed();
                    assert!(result.is_ok(), "the same answer for {email}");
                    if is_known {
                        known.push(took);
                    } else {
                        unknown.push(took);
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            // 200 tries each: medians within 10% (or 3 µs: a request here takes a few
            // µs, where scheduler noise alone moves a median by about that much).
            let (known, unknown) = (quantile(&known, 2), quantile(&unknown, 2));
            let tolerance = (known.max(unknown) / 10).max(Duration::from_micros(3));
            assert!(
                known.abs_diff(unknown) <= tolerance,
                "medians: known {known:?}, unknown {unknown:?}"
            );
        }
    }
);

on_both_backends!(
    logins_and_otp_requests_for_known_and_unknown_identities_take_the_same_time,
    |harness: Harness| async move {
        let _sink = setup(&harness).await;
        let app = &harness.app;
        // A cheap bcrypt cost keeps 400 logins quick; it also catches a dummy hash made
        // at another cost than the collection's (unknown emails would answer faster).
        let users_json = serde_json::to_value(users(&harness).as_ref()).expect("json");
        let mut fields = users_json["fields"].clone();
        for field in fields.as_array_mut().expect("fields") {
            if field["name"] == "password" {
                field["cost"] = json!(8);
            }
        }
        app.update_collection("users", json!({"fields": fields, "otp": {"enabled": true}}))
            .await
            .expect("cost 8");
        create_user(app, "users", "timing@example.com").await;
        for mode in ["login", "otp"] {
            let (mut known, mut unknown) = (Vec::new(), Vec::new());
            for round in 0..40 {
                let mut order = [
                    true, true, true, true, true, false, false, false, false, false,
                ];
                rand::seq::SliceRandom::shuffle(order.as_mut_slice(), &mut rand::rng());
                for (i, is_known) in order.into_iter().enumerate() {
                    let email = if is_known {
                        "timing@example.com".to_string()
                    } else {
                        format!("nobody{round}x{i}@example.com")
                    };
                    let started = Instant::now();
                    let status = if mode == "login" {
                        app.auth_with_password(
                            users(&harness),
                            &email,
                            "wrong-password",
                            None,
                            None,
                        )
                        .await
                        .map(|_| 200)
                        .unwrap_or_else(|e| e.status())
                    } else {
                        app.request_otp(users(&harness), &email)
                            .await
                            .map(|_| 200)
                            .unwrap_or_else(|e| e.status())
                    };
                    let took = started.elapsed();
                    assert_eq!(status, if mode == "login" { 400 } else { 200 }, "{email}");
                    if is_known {
                        known.push(took);
                    } else {
                        unknown.push(took);
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let (known, unknown) = (quantile(&known, 2), quantile(&unknown, 2));
            let tolerance = (known.max(unknown) / 10).max(Duration::from_micros(3));
            assert!(
                known.abs_diff(unknown) <= tolerance,
                "{mode} medians: known {known:?}, unknown {unknown:?}"
            );
        }
    }
);

// ---------------------------------------------------------------------------------
// One-time passwords and MFA.

/// The first run of `length` digits in a mail.
fn otp_code(mail: &Received, length: usize) -> String {
    let digits: Vec<char> = mail.text.chars().collect();
    let mut run = String::new();
    for c in digits {
        if c.is_ascii_digit() {
            run.push(c);
        } else {
            if run.len() == length {
                return run;
            }
            run.clear();
        }
    }
    panic!("no {length}-digit code in: {}", mail.text);
}

async fn enable(harness: &Harness, options: Json) {
    harness
        .app
        .update_collection("users", options)
        .await
        .expect("auth options");
}

async fn request_code(harness: &Harness, sink: &Sink, email: &str) -> (String, String) {
    let before = sink.count();
    let otp_id = harness
        .app
        .request_otp(users(harness), email)
        .await
        .expect("request otp");
    let mail = sink.next(before).await;
    assert!(
        mail.rcpt.iter().any(|r| r.contains(email)),
        "{:?}",
        mail.rcpt
    );
    (otp_id, otp_code(&mail, 8))
}

on_both_backends!(
    otp_codes_are_mailed_single_use_and_prove_the_mailbox,
    |harness: Harness| async move {
        let sink = setup(&harness).await;
        let app = &harness.app;
        let id = create_user(app, "users", "otp@example.com").await;
        let disabled = app
            .request_otp(users(&harness), "otp@example.com")
            .await
            .expect_err("otp is off by default");
        assert_eq!(disabled.status(), 403);
        enable(&harness, json!({"otp": {"enabled": true, "length": 8}})).await;

        let (otp_id, code) = request_code(&harness, &sink, "otp@example.com").await;
        assert_eq!(otp_id.len(), 15);
        let wrong = app
            .auth_with_otp(users(&harness), &otp_id, "00000000x", None)
            .await
            .expect_err("wrong code");
        assert_eq!(
            (wrong.status(), message(&wrong)),
            (400, "Invalid or expired OTP.".into())
        );
        let signed_in = app
            .auth_with_otp(users(&harness), &otp_id, &code, None)
            .await
            .expect("right code");
        assert_eq!(signed_in.auth.id(), id);
        assert_eq!(claims(&signed_in.token)["type"], "auth");
        // Single use.
        let again = app
            .auth_with_otp(users(&harness), &otp_id, &code, None)
            .await
            .expect_err("spent");
        assert_eq!(again.status(), 400);
        // The mailbox is proven: verified, and the password set before no longer works.
        assert_eq!(stored(&harness, "users", &id).await["verified"], true);
        let old = app
            .auth_with_password(users(&harness), "otp@example.com", PASSWORD, None, None)
            .await
            .expect_err("old password replaced");
        assert_eq!(old.status(), 400);

        // Unknown emails get an id too, and no mail; the id leads nowhere.
        let before = sink.count();
        let ghost = app
            .request_otp(users(&harness), "nobody@example.com")
            .await
            .expect("unknown email answers the same");
        assert_eq!(ghost.len(), 15);
        assert_eq!(sink.settle().await, before);
        let nowhere = app
            .auth_with_otp(users(&harness), &ghost, "12345678", None)
            .await
            .expect_err("unknown otp");
        assert_eq!(nowhere.status(), 400);
        // Input errors.
        let blank = app
            .request_otp(users(&harness), "")
            .await
            .expect_err("blank email");
        assert_eq!(code_of(&blank, "email"), "validation_required");
        let missing = app
            .auth_with_otp(users(&harness), "", "", None)
            .await
            .expect_err("blank");
        assert_eq!(code_of(&missing, "otpId"), "validation_required");
        assert_eq!(code_of(&missing, "password"), "validation_required");
        // An expired code fails even when right.
        enable(&harness, json!({"otp": {"duration": 1}})).await;
        let (late_id, late_code) = request_code(&harness, &sink, "otp@example.com").await;
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let expired = app
            .auth_with_otp(users(&harness), &late_id, &late_code, None)
            .await
            .expect_err("expired");
        assert_eq!(message(&expired), "Invalid or expired OTP.");
    }
);

fn code_of(error: &CoreError, key: &str) -> String {
    code(error, key)
}

on_both_backends!(
    otp_codes_are_burned_after_five_wrong_tries,
    |harness: Harness| async move {
        let sink = setup(&harness).await;
        let app = &harness.app;
        create_user(app, "users", "brute@example.com").await;
        enable(&harness, json!({"otp": {"enabled": true, "length": 8}})).await;
        let (first_id, first_code) = request_code(&harness, &sink, "brute@example.com").await;
        let (second_id, second_code) = request_code(&harness, &sink, "brute@example.com").await;
        // Tries on either OTP count for the record: 4 wrong answers are 400s...
        for (n, otp) in [&first_id, &second_id, &first_id, &second_id]
            .iter()
            .enumerate()
        {
            let error = app
                .auth_with_otp(users(&harness), otp, "99999999", None)
                .await
                .expect_err("wrong");
            assert_eq!(error.status(), 400, "try {n}");
        }
        // ...the fifth burns every OTP of the record.
        let fifth = app
            .auth_with_otp(users(&harness), &first_id, "99999999", None)
            .await
            .expect_err("fifth");
        assert_eq!(fifth.status(), 429);
        for (otp, code) in [(&first_id, &first_code), (&second_id, &second_code)] {
            let error = app
                .auth_with_otp(users(&harness), otp, code, None)
                .await
                .expect_err("burned");
            assert_eq!(error.status(), 400);
        }
        // A new code works again.
        let (fresh_id, fresh_code) = request_code(&harness, &sink, "brute@example.com").await;
        app.auth_with_otp(users(&harness), &fresh_id, &fresh_code, None)
            .await
            .expect("fresh code");
    }
);

on_both_backends!(
    mfa_needs_a_second_different_method,
    |harness: Harness| async move {
        let sink = setup(&harness).await;
        let app = &harness.app;
        let id = create_user(app, "users", "mfa@example.com").await;
        enable(
            &harness,
            json!({"otp": {"enabled": true, "length": 8}, "mfa": {"enabled": true, "duration": 600}}),
        )
        .await;
        let first = app
            .auth_with_password(users(&harness), "mfa@example.com", PASSWORD, None, None)
            .await
            .expect_err("second factor needed");
        assert_eq!(first.status(), 401);
        let mfa_id = first.body()["mfaId"].as_str().expect("mfaId").to_string();
        assert_eq!(first.body(), json!({ "mfaId": mfa_id }));
        let same = app
            .auth_with_password(
                users(&harness),
                "mfa@example.com",
                PASSWORD,
                None,
                Some(&mfa_id),
            )
            .await
            .expect_err("same method");
        assert_eq!(
            message(&same),
            "A different authentication method is required."
        );
        let (otp_id, code) = request_code(&harness, &sink, "mfa@example.com").await;
        let done = app
            .auth_with_otp(users(&harness), &otp_id, &code, Some(&mfa_id))
            .await
            .expect("two factors");
        assert_eq!(done.auth.id(), id);
        // With MFA on, the OTP does not replace the password.
        let reused = app
            .auth_with_password(
                users(&harness),
                "mfa@example.com",
                PASSWORD,
                None,
                Some(&mfa_id),
            )
            .await
            .expect_err("session spent");
        assert_eq!(message(&reused), "Invalid or expired MFA session.");
        let forged = app
            .auth_with_password(
                users(&harness),
                "mfa@example.com",
                PASSWORD,
                None,
                Some("nosuchsession12"),
            )
            .await
            .expect_err("unknown session");
        assert_eq!(message(&forged), "Invalid or expired MFA session.");
        // A session of another record is not accepted.
        create_user(app, "users", "other@example.com").await;
        let other = app
            .auth_with_password(users(&harness), "other@example.com", PASSWORD, None, None)
            .await
            .expect_err("other's first factor");
        let other_session = other.body()["mfaId"].as_str().expect("mfaId").to_string();
        let (otp_id, code) = request_code(&harness, &sink, "mfa@example.com").await;
        let crossed = app
            .auth_with_otp(users(&harness), &otp_id, &code, Some(&other_session))
            .await
            .expect_err("someone else's session");
        assert_eq!(message(&crossed), "Invalid or expired MFA session.");
        // The MFA rule limits who needs it.
        enable(
            &harness,
            json!({"mfa": {"rule": "email = 'other@example.com'"}}),
        )
        .await;
        app.auth_with_password(users(&harness), "mfa@example.com", PASSWORD, None, None)
            .await
            .expect("rule does not match: one factor is enough");
        let still = app
            .auth_with_password(users(&harness), "other@example.com", PASSWORD, None, None)
            .await
            .expect_err("rule matches");
        assert_eq!(still.status(), 401);
        // Expired sessions.
        enable(&harness, json!({"mfa": {"rule": "", "duration": 1}})).await;
        let started = app
            .auth_with_password(users(&harness), "mfa@example.com", PASSWORD, None, None)
            .await
            .expect_err("first factor");
        let session = started.body()["mfaId"].as_str().expect("mfaId").to_string();
        let (otp_id, code) = request_code(&harness, &sink, "mfa@example.com").await;
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let late = app
            .auth_with_otp(users(&harness), &otp_id, &code, Some(&session))
            .await
            .expect_err("expired session");
        assert_eq!(message(&late), "Invalid or expired MFA session.");
    }
);
