//! Redaction of volatile values and the JSON matcher used by scenarios.
//!
//! Redaction: 15-char `[a-z0-9]` strings become `"[id]"`, PocketBase datetimes
//! (`YYYY-MM-DD HH:MM:SS.mmmZ`) become `"[date]"`, JWTs become `"[token]"`.
//! Matching: `"[any]"` matches any present value; an object key whose expected value is
//! `"[absent]"` must be missing. A subset match ignores extra object keys; a snapshot
//! match requires the same keys. Arrays match element-wise with equal lengths.

use serde_json::{Map, Value as Json};

/// Matches any present value.
pub const ANY: &str = "[any]";
/// The key must be absent.
pub const ABSENT: &str = "[absent]";

fn is_id(text: &str) -> bool {
    text.len() == 15
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fn is_date(text: &str) -> bool {
    let bytes = text.as_bytes();
    let pattern = b"dddd-dd-dd dd:dd:dd.dddZ";
    bytes.len() == pattern.len()
        && bytes.iter().zip(pattern).all(|(b, p)| match p {
            b'd' => b.is_ascii_digit(),
            other => b == other,
        })
}

fn is_jwt(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() == 3
        && text.starts_with("eyJ")
        && parts[..2].iter().all(|p| !p.is_empty())
        && parts.iter().all(|p| {
            p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Replaces ids, dates and tokens with placeholders, recursively.
pub fn redact(value: &Json) -> Json {
    match value {
        Json::String(text) if is_id(text) => Json::String("[id]".into()),
        Json::String(text) if is_date(text) => Json::String("[date]".into()),
        Json::String(text) if is_jwt(text) => Json::String("[token]".into()),
        Json::Array(items) => Json::Array(items.iter().map(redact).collect()),
        Json::Object(object) => Json::Object(
            object
                .iter()
                .map(|(k, v)| (k.clone(), redact(v)))
                .collect::<Map<_, _>>(),
        ),
        other => other.clone(),
    }
}

/// Compares `actual` against `expected` (both already redacted) and returns every
/// mismatch as `path: explanation`.
pub fn mismatches(expected: &Json, actual: &Json, exact: bool) -> Vec<String> {
    let mut out = Vec::new();
    compare(expected, actual, exact, "$", &mut out);
    out
}

fn compare(expected: &Json, actual: &Json, exact: bool, path: &str, out: &mut Vec<String>) {
    match (expected, actual) {
        (Json::String(marker), _) if marker == ANY => {}
        (Json::Object(want), Json::Object(got)) => {
            for (key, want_value) in want {
                let child = format!("{path}.{key}");
                match (want_value, got.get(key)) {
                    (Json::String(marker), None) if marker == ABSENT => {}
                    (Json::String(marker), Some(value)) if marker == ABSENT => {
                        out.push(format!("{child}: expected absent, got {value}"));
                    }
                    (_, None) => out.push(format!("{child}: missing (expected {want_value})")),
                    (_, Some(got_value)) => compare(want_value, got_value, exact, &child, out),
                }
            }
            if exact {
                for key in got.keys().filter(|k| !want.contains_key(*k)) {
                    out.push(format!("{path}.{key}: unexpected key = {}", got[key]));
                }
            }
        }
        (Json::Array(want), Json::Array(got)) => {
            if want.len() != got.len() {
                out.push(format!(
                    "{path}: expected {} items, got {}: {actual}",
                    want.len(),
                    got.len()
                ));
                return;
            }
            for (n, (w, g)) in want.iter().zip(got).enumerate() {
                compare(w, g, exact, &format!("{path}[{n}]"), out);
            }
        }
        (Json::Number(want), Json::Number(got)) => {
            if want.as_f64() != got.as_f64() {
                out.push(format!("{path}: expected {want}, got {got}"));
            }
        }
        (want, got) => {
            if want != got {
                out.push(format!("{path}: expected {want}, got {got}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redaction_replaces_ids_dates_and_tokens_only() {
        let value = json!({
            "id": "abc123def456ghi",
            "created": "2026-11-22 02:38:23.228Z",
            "token": "eyJhbGciOiJIUzI1NiJ9.eyJpZCI6IngifQ.c2ln",
            "title": "hello",
            "collectionId": "_pb_users_auth_",
        });
        assert_eq!(
            redact(&value),
            json!({"id": "[id]", "created": "[date]", "token": "[token]",
                   "title": "hello", "collectionId": "_pb_users_auth_"})
        );
    }

    #[test]
    fn subset_ignores_extra_keys_and_snapshot_does_not() {
        let actual = json!({"a": 1, "b": [1, 2], "c": "x"});
        assert!(mismatches(&json!({"a": 1.0, "b": [1, 2]}), &actual, false).is_empty());
        assert!(!mismatches(&json!({"a": 1, "b": [1, 2]}), &actual, true).is_empty());
        assert!(mismatches(&json!({"d": ABSENT, "c": ANY}), &actual, false).is_empty());
        assert!(!mismatches(&json!({"a": ABSENT}), &actual, false).is_empty());
        assert!(!mismatches(&json!({"b": [1]}), &actual, false).is_empty());
    }
}
