//! JSON response bodies, written straight from `serde_json::Value`s.
//!
//! Byte for byte what `serde_json::to_vec` writes (same escapes, same number forms, keys
//! in the map's order), but strings are scanned eight bytes at a time for the few bytes
//! that need an escape: records are mostly long runs of plain text, and serde_json's
//! byte-by-byte scan was the largest single cost of serializing a view by id (callgrind:
//! ~8% of the request's instructions).

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::Value as Json;

/// A JSON response with `status` and `value` as its body.
pub(crate) fn response(status: StatusCode, value: &Json) -> Response {
    let mut out = Vec::with_capacity(512);
    write_value(&mut out, value);
    body_response(status, out)
}

/// A response whose body is already-written JSON.
pub(crate) fn body_response(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Appends `value` as compact JSON.
pub(crate) fn write_value(out: &mut Vec<u8>, value: &Json) {
    match value {
        Json::Null => out.extend_from_slice(b"null"),
        Json::Bool(true) => out.extend_from_slice(b"true"),
        Json::Bool(false) => out.extend_from_slice(b"false"),
        Json::Number(number) => write_number(out, number),
        Json::String(text) => write_str(out, text),
        Json::Array(items) => {
            out.push(b'[');
            for (idx, item) in items.iter().enumerate() {
                if idx > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Json::Object(map) => {
            out.push(b'{');
            for (idx, (key, item)) in map.iter().enumerate() {
                if idx > 0 {
                    out.push(b',');
                }
                write_str(out, key);
                out.push(b':');
                write_value(out, item);
            }
            out.push(b'}');
        }
    }
}

/// Numbers go through serde_json itself (itoa/ryu), so their forms cannot drift.
fn write_number(out: &mut Vec<u8>, number: &serde_json::Number) {
    // Writing to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, number);
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether any of the eight bytes of `word` is below 0x20, a `"` or a `\`.
fn needs_escape(word: u64) -> bool {
    let below_space = word.wrapping_sub(ONES * 0x20) & !word;
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let is_quote = quote.wrapping_sub(ONES) & !quote;
    let is_backslash = backslash.wrapping_sub(ONES) & !backslash;
    (below_space | is_quote | is_backslash) & HIGHS != 0
}

/// Appends `text` as a JSON string, escaped as serde_json escapes.
pub(crate) fn write_str(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut idx = 0;
    while idx < bytes.len() {
        if let Some(chunk) = bytes.get(idx..idx + 8) {
            let word = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
            if !needs_escape(word) {
                idx += 8;
                continue;
            }
        }
        // A candidate in the next eight bytes (or the tail): byte by byte.
        let end = (idx + 8).min(bytes.len());
        while idx < end {
            let byte = bytes[idx];
            let escape: &[u8] = match byte {
                b'"' => b"\\\"",
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                0x08 => b"\\b",
                0x0c => b"\\f",
                0x00..=0x1f => {
                    out.extend_from_slice(&bytes[start..idx]);
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[usize::from(byte >> 4)]);
                    out.push(HEX[usize::from(byte & 0xf)]);
                    idx += 1;
                    start = idx;
                    continue;
                }
                _ => {
                    idx += 1;
                    continue;
                }
            };
            out.extend_from_slice(&bytes[start..idx]);
            out.extend_from_slice(escape);
            idx += 1;
            start = idx;
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn same_as_serde(value: &Json) {
        let mut ours = Vec::new();
        write_value(&mut ours, value);
        let theirs = serde_json::to_vec(value).expect("serde_json");
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs),
            "for {value:?}"
        );
    }

    #[test]
    fn every_ascii_byte_alone_and_in_every_position_of_a_word() {
        for byte in 0u8..0x80 {
            let c = char::from(byte);
            same_as_serde(&json!(c.to_string()));
            for pos in 0..20 {
                let mut text: String = "abcdefghijklmnopqrstu".chars().take(20).collect();
                text.replace_range(pos..=pos, &c.to_string());
                same_as_serde(&json!(text));
            }
        }
    }

    #[test]
    fn strings_with_unicode_escapes_and_runs_of_escapes() {
        let cases = [
            "",
            "plain",
            "exactly8",
            "sixteen bytes!!!",
            "é ü 漢字 🎉 ok",
            "\u{7f}\u{80}\u{ff}\u{2028}\u{2029}",
            "\"\"\"\"\"\"\"\"\"",
            "\\\\\\\\\\\\\\\\",
            "\u{0}\u{1}\u{1f}\n\r\t\u{8}\u{c}",
            "a long line of text with a \"quote\" at the end of a paragraph\n and more",
            "😀😀😀😀\"😀",
        ];
        for text in cases {
            same_as_serde(&json!(text));
        }
    }

    #[test]
    fn random_strings_match_serde_json() {
        // A fixed-seed generator: the same cases every run.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let alphabet: Vec<char> = "ab \"\\\n\t\u{1}\u{1f}\u{7f}é漢😀/<>&'".chars().collect();
        for _ in 0..2000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 40) as usize;
            let text: String = (0..len)
                .map(|i| {
                    let pick = (state.rotate_left(i as u32 * 5) % alphabet.len() as u64) as usize;
                    alphabet[pick]
                })
                .collect();
            same_as_serde(&json!(text));
        }
    }

    #[test]
    fn numbers_literals_arrays_and_objects() {
        let value = json!({
            "int": 0, "neg": -42, "big": i64::MAX, "small": i64::MIN, "u64": u64::MAX,
            "float": 1.5, "tiny": 1e-300, "huge": 1.7976931348623157e308, "negzero": -0.0,
            "third": 1.0 / 3.0, "whole": 10.0,
            "t": true, "f": false, "n": null,
            "empty_array": [], "empty_object": {},
            "nested": [1, [2, [3, {"k\"ey": "v\\al"}]], {"a": {"b": {"c": []}}}],
        });
        same_as_serde(&value);
    }

    #[test]
    fn a_response_is_json_with_its_status() {
        let response = response(StatusCode::CREATED, &json!({"a": 1}));
        assert_eq!(response.status(), StatusCode::CREATED);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            HeaderValue::from_static("application/json")
        );
    }
}
