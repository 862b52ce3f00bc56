//! Rate limiting from the settings' `rateLimits` (PocketBase's shape): rules
//! `{label, audience, duration, maxRequests}` matched by collection tag (`users:auth`,
//! `*:create`), `METHOD /path`, exact `/path` or prefix `/path/`; the first matching
//! rule wins, collection tags before `*:` tags before paths (exact, then the longest
//! prefix). Exceeded: 429 "Too Many Requests.".
//!
//! The key is the rule and the client address. The path is normalized first (percent
//! decoding, repeated and trailing slashes, case), so spelling variants share a bucket;
//! nothing from the body is used. Proxy headers (`trustedProxy.headers`) are honored
//! only from peers listed in `trustedProxy.ips` (a Basalt addition; by default no peer
//! is trusted). Superusers and `excludedIPs` are not limited. Counters live in each
//! node's memory: with N nodes behind a balancer, a client can make up to N times the
//! limit.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request};
use axum::http::{Method, header};
use axum::response::{IntoResponse, Response};
use basalt_core::{Auth, CoreError};
use parking_lot::Mutex;
use serde_json::Value as Json;

use crate::AppState;
use crate::error::ApiError;

/// The client's address as decided here (trusted proxy headers applied), for the
/// realtime per-address cap.
#[derive(Clone, Copy)]
pub(crate) struct ClientIp(pub(crate) Option<IpAddr>);

/// The caller resolved by the rate limiter, reused by the `Caller` extractor.
#[derive(Clone)]
pub(crate) struct ResolvedAuth(pub(crate) Option<Auth>);

/// Fixed-window counters per (rule, client).
#[derive(Default)]
pub(crate) struct Limiter {
    windows: Mutex<HashMap<(String, String), (Instant, u64)>>,
}

impl Limiter {
    /// Counts one request; false when the window is already full.
    fn admit(&self, key: (String, String), max: u64, window: Duration) -> bool {
        let now = Instant::now();
        let mut windows = self.windows.lock();
        if windows.len() > 50_000 {
            windows.retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(3600));
        }
        let entry = windows.entry(key).or_insert((now, 0));
        if now.duration_since(entry.0) >= window {
            *entry = (now, 0);
        }
        if entry.1 >= max {
            return false;
        }
        entry.1 += 1;
        true
    }
}

/// The path as rules see it: percent-decoded, lower case, no repeated or trailing `/`.
pub(crate) fn normalize_path(raw: &str) -> String {
    let decoded = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
    let mut out = String::with_capacity(decoded.len());
    for c in decoded.chars() {
        let c = if c == '\\' {
            '/'
        } else {
            c.to_ascii_lowercase()
        };
        if c == '/' && out.ends_with('/') {
            continue;
        }
        out.push(c);
    }
    while out.len() > 1 && out.ends_with('/') {
        out.pop();
    }
    if !out.starts_with('/') {
        out.insert(0, '/');
    }
    out
}

/// The collection and tags of a request (`auth` also for every login endpoint).
fn tags(method: &Method, path: &str) -> Option<(String, Vec<&'static str>)> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["api", "files", collection, ..] => Some((collection.to_string(), vec!["file"])),
        ["api", "collections", collection, rest @ ..] => {
            let tags = match (method.as_str(), rest) {
                ("GET", ["records"]) => vec!["list"],
                ("GET", ["records", _]) => vec!["view"],
                ("POST", ["records"]) => vec!["create"],
                ("PATCH", ["records", _]) => vec!["update"],
                ("DELETE", ["records", _]) => vec!["delete"],
                (_, ["auth-methods"]) => vec!["listAuthMethods"],
                (_, ["auth-refresh"]) => vec!["authRefresh"],
                (_, ["auth-with-password"]) => vec!["authWithPassword", "auth"],
                (_, ["auth-with-oauth2"]) => vec!["authWithOAuth2", "auth"],
                (_, ["auth-with-otp"]) => vec!["authWithOTP", "auth"],
                (_, ["request-otp"]) => vec!["requestOTP"],
                (_, ["request-password-reset"]) => vec!["requestPasswordReset"],
                (_, ["confirm-password-reset"]) => vec!["confirmPasswordReset"],
                (_, ["request-verification"]) => vec!["requestVerification"],
                (_, ["confirm-verification"]) => vec!["confirmVerification"],
                (_, ["request-email-change"]) => vec!["requestEmailChange"],
                (_, ["confirm-email-change"]) => vec!["confirmEmailChange"],
                _ => return None,
            };
            Some((collection.to_string(), tags))
        }
        _ => None,
    }
}

/// A rule of the settings.
struct Rule {
    label: String,
    audience: String,
    duration: u64,
    max: u64,
}

fn rules(settings: &Json) -> Vec<Rule> {
    settings["rateLimits"]["rules"]
        .as_array()
        .map(|rules| {
            rules
                .iter()
                .map(|r| Rule {
                    label: r["label"].as_str().unwrap_or_default().to_string(),
                    audience: r["audience"].as_str().unwrap_or_default().to_string(),
                    duration: r["duration"].as_u64().unwrap_or(0),
                    max: r["maxRequests"].as_u64().unwrap_or(0),
                })
                .filter(|r| !r.label.is_empty() && r.duration > 0)
                .collect()
        })
        .unwrap_or_default()
}

/// The rule for a request: collection tags, `*:` tags, `METHOD /path`, `/path`, then the
/// longest matching prefix; each only when its audience fits.
fn pick<'a>(
    rules: &'a [Rule],
    method: &Method,
    path: &str,
    collection_names: &[String],
    authenticated: bool,
) -> Option<&'a Rule> {
    let fits = |rule: &&Rule| match rule.audience.as_str() {
        "@guest" => !authenticated,
        "@auth" => authenticated,
        _ => true,
    };
    let found =
        |matches: &dyn Fn(&str) -> bool| rules.iter().filter(fits).find(|r| matches(&r.label));
    if let Some((_, tags)) = tags(method, path) {
        for tag in &tags {
            if let Some(rule) = found(&|label: &str| {
                label.split_once(':').is_some_and(|(c, t)| {
                    t == *tag && collection_names.iter().any(|n| n.eq_ignore_ascii_case(c))
                })
            }) {
                return Some(rule);
            }
        }
        for tag in &tags {
            if let Some(rule) = found(&|label: &str| label == format!("*:{tag}")) {
                return Some(rule);
            }
        }
    }
    let with_method = format!("{} {path}", method.as_str());
    if let Some(rule) = found(&|label: &str| label.eq_ignore_ascii_case(&with_method)) {
        return Some(rule);
    }
    if let Some(rule) = found(&|label: &str| normalize_path(label) == path && !label.ends_with('/'))
    {
        return Some(rule);
    }
    rules
        .iter()
        .filter(fits)
        .filter(|r| r.label.starts_with('/') && r.label.ends_with('/'))
        .filter(|r| {
            let prefix = normalize_path(&r.label);
            path == prefix || path.starts_with(&format!("{}/", prefix.trim_end_matches('/')))
        })
        .max_by_key(|r| r.label.len())
}

fn ip_list(value: &Json) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(|s| s.trim().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// The client address: the peer, or a proxy header's address when the peer is a
/// trusted proxy.
pub(crate) fn client_ip(settings: &Json, req: &Request) -> String {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let Some(peer) = peer else {
        return "unknown".into();
    };
    let proxy = &settings["trustedProxy"];
    let trusted = ip_list(&proxy["ips"])
        .iter()
        .any(|ip| ip.parse::<IpAddr>().is_ok_and(|ip| ip == peer));
    if trusted {
        let leftmost = proxy["useLeftmostIP"].as_bool().unwrap_or(false);
        for name in ip_list(&proxy["headers"]) {
            let Some(value) = req
                .headers()
                .get(name.as_str())
                .and_then(|v| v.to_str().ok())
            else {
                continue;
            };
            let mut addresses = value.split(',').map(str::trim).filter(|s| !s.is_empty());
            let chosen = if leftmost {
                addresses.next()
            } else {
                addresses.next_back()
            };
            if let Some(ip) = chosen.and_then(|a| a.parse::<IpAddr>().ok()) {
                return ip.to_string();
            }
        }
    }
    peer.to_string()
}

/// Checks a request against the rate limits (and notes the client address where it is
/// needed); `Some` is the refusal to send instead of running the request.
pub(crate) async fn admit(state: &AppState, req: &mut Request) -> Option<Response> {
    let settings = state.app.settings();
    let limits = &settings["rateLimits"];
    let limited = limits["enabled"].as_bool() == Some(true) && req.method() != Method::OPTIONS;
    // The client address is worked out only where it is used: here, and for the
    // realtime per-address cap (most requests need neither).
    if !limited && req.uri().path() != "/api/realtime" {
        return None;
    }
    let ip = client_ip(&settings, req);
    req.extensions_mut().insert(ClientIp(ip.parse().ok()));
    if !limited {
        return None;
    }
    if ip_list(&limits["excludedIPs"]).contains(&ip) {
        return None;
    }
    let auth = match req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        Some(token) if !token.trim().is_empty() => match state.app.try_authenticate(token).await {
            Ok(auth) => auth,
            Err(error) => return Some(ApiError(error).into_response()),
        },
        _ => None,
    };
    req.extensions_mut().insert(ResolvedAuth(auth.clone()));
    if auth.as_ref().is_some_and(Auth::is_superuser) {
        return None;
    }
    let path = normalize_path(req.uri().path());
    let mut names = Vec::new();
    if let Some((collection, _)) = tags(req.method(), &path)
        && let Some(found) = state.app.collection(&collection)
    {
        names = vec![found.name.clone(), found.id.clone()];
    }
    let rules = rules(&settings);
    let rule = pick(&rules, req.method(), &path, &names, auth.is_some())?;
    let key = (format!("{}|{}", rule.label, rule.audience), ip);
    if !state
        .limiter
        .admit(key, rule.max, Duration::from_secs(rule.duration))
    {
        return Some(
            ApiError(CoreError::TooManyRequests("Too Many Requests.".into())).into_response(),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_normalize() {
        for (raw, expected) in [
            (
                "/api/collections/users/auth-with-password",
                "/api/collections/users/auth-with-password",
            ),
            (
                "/API/Collections/Users/Auth-With-Password/",
                "/api/collections/users/auth-with-password",
            ),
            (
                "//api//collections/users/auth-with-password",
                "/api/collections/users/auth-with-password",
            ),
            (
                "/api/collections/users%2Fauth-with-password",
                "/api/collections/users/auth-with-password",
            ),
            (
                "/api%2fcollections%2Fusers/auth-with-password///",
                "/api/collections/users/auth-with-password",
            ),
            ("/", "/"),
        ] {
            assert_eq!(normalize_path(raw), expected, "{raw}");
        }
    }

    fn rule(label: &str, audience: &str) -> Rule {
        Rule {
            label: label.into(),
            audience: audience.into(),
            duration: 1,
            max: 1,
        }
    }

    #[test]
    fn rules_are_picked_in_order() {
        let rules = vec![
            rule("/api/", ""),
            rule("/api/batch", ""),
            rule("*:auth", ""),
            rule("users:auth", "@guest"),
            rule("POST /api/settings", ""),
            rule("/api/collections/", ""),
            rule("*:create", "@auth"),
        ];
        let names = vec!["users".to_string(), "_pb_users_auth_".to_string()];
        let check = |method: Method, path: &str, authed: bool, expected: &str| {
            let picked = pick(&rules, &method, path, &names, authed).map(|r| r.label.as_str());
            assert_eq!(picked, Some(expected), "{method} {path} {authed}");
        };
        check(
            Method::POST,
            "/api/collections/users/auth-with-password",
            false,
            "users:auth",
        );
        check(
            Method::POST,
            "/api/collections/users/auth-with-password",
            true,
            "*:auth",
        );
        check(
            Method::POST,
            "/api/collections/users/auth-with-otp",
            false,
            "users:auth",
        );
        check(Method::POST, "/api/batch", false, "/api/batch");
        check(Method::POST, "/api/settings", true, "POST /api/settings");
        check(Method::GET, "/api/settings", true, "/api/");
        check(
            Method::POST,
            "/api/collections/users/records",
            true,
            "*:create",
        );
        check(
            Method::POST,
            "/api/collections/users/records",
            false,
            "/api/collections/",
        );
        check(Method::GET, "/api/health", false, "/api/");
        assert!(pick(&rules, &Method::GET, "/other", &names, false).is_none());
    }

    #[test]
    fn windows_admit_n_then_refuse() {
        let limiter = Limiter::default();
        let key = || ("r".to_string(), "1.2.3.4".to_string());
        for _ in 0..3 {
            assert!(limiter.admit(key(), 3, Duration::from_secs(60)));
        }
        assert!(!limiter.admit(key(), 3, Duration::from_secs(60)));
        assert!(limiter.admit(("r".into(), "5.6.7.8".into()), 3, Duration::from_secs(60)));
        assert!(
            limiter.admit(key(), 3, Duration::ZERO),
            "a new window starts"
        );
    }
}
