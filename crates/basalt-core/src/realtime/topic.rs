//! Subscription strings: `<collection>/*`, `<collection>`, `<collection>/<recordId>`, each
//! with an optional `?options=<urlencoded JSON {"query":{...},"headers":{...}}>`.
//!
//! The string exactly as the client sent it is the SSE `event:` name of its messages.
//! Options that do not parse are ignored (the subscription stays, without options), as
//! PocketBase does; the first `options` parameter wins.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, OnceLock};

use serde_json::Value as Json;

/// The options of one subscription: `@request.query.*` and `@request.headers.*` of its
/// rule checks; `filter`, `expand` and `fields` shape its messages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SubOptions {
    /// Query parameters (string values; numbers and booleans are printed).
    pub(crate) query: BTreeMap<String, String>,
    /// Headers, keys in lower snake case.
    pub(crate) headers: BTreeMap<String, String>,
    /// A hash of the two maps, computed once, so grouping subscribers hashes a number.
    fingerprint: u64,
}

impl Hash for SubOptions {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.fingerprint.hash(state);
    }
}

impl SubOptions {
    fn param(&self, key: &str) -> Option<&str> {
        self.query
            .get(key)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// The `filter` query option.
    pub(crate) fn filter(&self) -> Option<&str> {
        self.param("filter")
    }

    /// The `expand` query option.
    pub(crate) fn expand(&self) -> Option<&str> {
        self.param("expand")
    }

    /// The `fields` query option.
    pub(crate) fn fields(&self) -> Option<&str> {
        self.param("fields")
    }
}

/// The options of every subscription that has none.
static NO_OPTIONS: OnceLock<Arc<SubOptions>> = OnceLock::new();

/// One parsed subscription.
#[derive(Debug)]
pub(crate) struct Subscription {
    /// The string as sent: the event name of its messages.
    pub(crate) raw: Arc<str>,
    /// The collection name or id as written (matched exactly).
    pub(crate) collection: String,
    /// `None` for `<collection>/*` and bare `<collection>`, else the record id.
    pub(crate) record: Option<String>,
    /// The parsed options.
    pub(crate) options: Arc<SubOptions>,
}

impl Subscription {
    /// Parses a subscription string; `None` for an empty one.
    pub(crate) fn parse(raw: &str) -> Option<Subscription> {
        if raw.is_empty() {
            return None;
        }
        let (path, query) = raw.split_once('?').unwrap_or((raw, ""));
        let (collection, record) = match path.split_once('/') {
            Some((collection, "*")) => (collection, None),
            Some((collection, id)) => (collection, Some(id.to_string())),
            None => (path, None),
        };
        let options = match query_param(query, "options").and_then(|text| parse_options(&text)) {
            Some(options) => Arc::new(options),
            // Shared by every subscription without options: grouping compares one pointer
            // and fanning out reads one allocation instead of one per client.
            None => NO_OPTIONS
                .get_or_init(|| Arc::new(SubOptions::default()))
                .clone(),
        };
        Some(Subscription {
            raw: Arc::from(raw),
            collection: collection.to_string(),
            record,
            options,
        })
    }
}

/// The JSON options object; `None` when it is not a JSON object.
fn parse_options(text: &str) -> Option<SubOptions> {
    let Ok(Json::Object(object)) = serde_json::from_str::<Json>(text) else {
        return None;
    };
    let strings = |value: Option<&Json>| -> BTreeMap<String, String> {
        let Some(Json::Object(map)) = value else {
            return BTreeMap::new();
        };
        map.iter()
            .filter_map(|(key, value)| {
                let text = match value {
                    Json::String(s) => s.clone(),
                    Json::Number(n) => n.to_string(),
                    Json::Bool(b) => b.to_string(),
                    _ => return None,
                };
                Some((key.clone(), text))
            })
            .collect()
    };
    let headers = strings(object.get("headers"))
        .into_iter()
        .map(|(key, value)| (key.to_ascii_lowercase().replace('-', "_"), value))
        .collect();
    let query = strings(object.get("query"));
    let mut hasher = DefaultHasher::new();
    (&query, &headers).hash(&mut hasher);
    Some(SubOptions {
        query,
        headers,
        fingerprint: hasher.finish(),
    })
}

/// The first value of `name` in an `a=b&c=d` query string, percent- and plus-decoded.
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(key) == name).then(|| percent_decode(value))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_forms() {
        let all = Subscription::parse("posts/*").expect("parsed");
        assert_eq!(
            (all.collection.as_str(), all.record.as_deref()),
            ("posts", None)
        );
        let bare = Subscription::parse("posts").expect("parsed");
        assert_eq!(
            (bare.collection.as_str(), bare.record.as_deref()),
            ("posts", None)
        );
        let one = Subscription::parse("posts/abc?x=1").expect("parsed");
        assert_eq!(
            (one.collection.as_str(), one.record.as_deref()),
            ("posts", Some("abc"))
        );
        assert_eq!(&*one.raw, "posts/abc?x=1");
        assert!(Subscription::parse("").is_none());
    }

    #[test]
    fn options_are_decoded_and_normalized() {
        let raw = "posts/*?foo=1&options=%7B%22query%22%3A%7B%22filter%22%3A%22a+%3D+1%22%2C%22n%22%3A5%7D%2C%22headers%22%3A%7B%22X-Token%22%3A%22t%22%7D%7D&options=zzz";
        let sub = Subscription::parse(raw).expect("parsed");
        assert_eq!(sub.options.filter(), Some("a = 1"));
        assert_eq!(sub.options.query.get("n").map(String::as_str), Some("5"));
        assert_eq!(
            sub.options.headers.get("x_token").map(String::as_str),
            Some("t")
        );
    }

    #[test]
    fn bad_options_are_ignored() {
        for raw in [
            "posts/*?options=notjson",
            "posts/*?options=%zz",
            "posts/*?options=[1]",
            "posts/*?options=",
            "posts/*?options=%",
            "posts/*?options=%4",
        ] {
            let sub = Subscription::parse(raw).expect("parsed");
            assert_eq!(*sub.options, SubOptions::default(), "{raw}");
        }
        let raw_json =
            Subscription::parse(r#"posts/*?options={"query":{"expand":"a"}}"#).expect("parsed");
        assert_eq!(raw_json.options.expand(), Some("a"));
    }
}
