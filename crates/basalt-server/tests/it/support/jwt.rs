//! Forged tokens: the claims of a real token, re-signed with a wrong key, another HMAC
//! algorithm, or `alg: none`.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value as Json, json};

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Unpadded base64url.
pub fn b64url(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn b64url_decode(text: &str) -> Vec<u8> {
    let mut bits = 0u32;
    let mut n_bits = 0;
    let mut out = Vec::new();
    for c in text.bytes() {
        let Some(value) = ALPHABET.iter().position(|a| *a == c) else {
            continue;
        };
        bits = (bits << 6) | value as u32;
        n_bits += 6;
        if n_bits >= 8 {
            n_bits -= 8;
            out.push((bits >> n_bits) as u8);
        }
    }
    out
}

/// The claims of a token (no verification).
pub fn claims(token: &str) -> Json {
    let payload = token.split('.').nth(1).expect("a JWT payload");
    serde_json::from_slice(&b64url_decode(payload)).expect("JSON claims")
}

/// The same claims with a fresh expiry, signed with `algorithm` and `key`.
pub fn resign(token: &str, algorithm: Algorithm, key: &[u8]) -> String {
    let mut claims = claims(token);
    claims["exp"] = json!(now() + 3600);
    jsonwebtoken::encode(
        &Header::new(algorithm),
        &claims,
        &EncodingKey::from_secret(key),
    )
    .expect("encoding a token")
}

/// The same claims, unsigned, with `alg: none`.
pub fn unsigned(token: &str) -> String {
    let header = b64url(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64url(claims(token).to_string().as_bytes());
    format!("{header}.{payload}.")
}

/// The real signing key of an auth record (its `tokenKey` plus the collection's auth
/// token secret), read from the data dir the way an attacker with the key would have it.
pub fn real_key(data_dir: &std::path::Path, collection: &str, record_id: &str) -> Vec<u8> {
    let conn = rusqlite::Connection::open_with_flags(
        data_dir.join("data.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("opening data.db");
    let options: String = conn
        .query_row(
            "SELECT options FROM _collections WHERE name = ?1",
            [collection],
            |row| row.get(0),
        )
        .expect("reading the collection options");
    let options: Json = serde_json::from_str(&options).expect("JSON options");
    let secret = options["authToken"]["secret"]
        .as_str()
        .expect("an auth token secret")
        .to_string();
    let token_key: String = conn
        .query_row(
            &format!("SELECT tokenKey FROM \"{collection}\" WHERE id = ?1"),
            [record_id],
            |row| row.get(0),
        )
        .expect("reading the tokenKey");
    format!("{token_key}{secret}").into_bytes()
}

/// Signs arbitrary claims.
pub fn sign(claims: &Json, algorithm: Algorithm, key: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(algorithm),
        claims,
        &EncodingKey::from_secret(key),
    )
    .expect("encoding a token")
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_round_trips() {
        for text in ["", "a", "ab", "abc", "abcd", "{\"alg\":\"none\"}"] {
            assert_eq!(b64url_decode(&b64url(text.as_bytes())), text.as_bytes());
        }
        assert_eq!(b64url(b"\xfb\xff"), "-_8");
    }
}
