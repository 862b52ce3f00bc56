//! The generic `?fields=` response picker, applied to 2xx JSON bodies.

use basalt_filter::{FieldPick, parse_fields};
use serde_json::{Map, Value as Json};

use crate::error::ApiError;

/// Parsed `fields` parameter.
pub(crate) struct Picker(Vec<FieldPick>);

impl Picker {
    /// Parses the parameter; `None` when absent or empty.
    pub(crate) fn parse(text: Option<&String>) -> Result<Option<Picker>, ApiError> {
        match text.map(|t| t.trim()).filter(|t| !t.is_empty()) {
            None => Ok(None),
            Some(text) => parse_fields(text)
                .map(|picks| Some(Picker(picks)))
                .map_err(|_| ApiError::bad_request("Invalid fields parameter.")),
        }
    }

    /// Applies the picker to one object (or each element of an array).
    pub(crate) fn apply(&self, value: Json) -> Json {
        let paths: Vec<(&[String], Option<&basalt_filter::Excerpt>)> = self
            .0
            .iter()
            .map(|p| (p.path.as_slice(), p.excerpt.as_ref()))
            .collect();
        pick(value, &paths)
    }
}

fn pick(value: Json, paths: &[(&[String], Option<&basalt_filter::Excerpt>)]) -> Json {
    match value {
        Json::Array(items) => {
            Json::Array(items.into_iter().map(|item| pick(item, paths)).collect())
        }
        Json::Object(object) => {
            let mut out = Map::new();
            for (key, child) in object {
                let matching: Vec<(&[String], Option<&basalt_filter::Excerpt>)> = paths
                    .iter()
                    .filter(|(path, _)| {
                        path.first().is_some_and(|head| head == "*" || head == &key)
                    })
                    .map(|(path, excerpt)| (&path[1..], *excerpt))
                    .collect();
                if matching.is_empty() {
                    continue;
                }
                if matching.iter().any(|(rest, _)| rest.is_empty()) {
                    let excerpt = matching
                        .iter()
                        .find(|(rest, e)| rest.is_empty() && e.is_some())
                        .and_then(|(_, e)| *e);
                    out.insert(
                        key,
                        match (excerpt, child) {
                            (Some(excerpt), Json::String(text)) => {
                                Json::String(cut(&text, excerpt.max, excerpt.ellipsis))
                            }
                            (_, child) => child,
                        },
                    );
                } else {
                    out.insert(key, pick(child, &matching));
                }
            }
            Json::Object(out)
        }
        other => other,
    }
}

/// Strips HTML tags and cuts to `max` characters.
fn cut(text: &str, max: usize, ellipsis: bool) -> String {
    let mut plain = String::new();
    let mut in_tag = false;
    for ch in text.chars() {
        match ch {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                plain.push(' ');
            }
            _ if !in_tag => plain.push(ch),
            _ => {}
        }
    }
    let plain = plain.split_whitespace().collect::<Vec<_>>().join(" ");
    if plain.chars().count() <= max {
        return plain;
    }
    let mut out: String = plain
        .chars()
        .take(max)
        .collect::<String>()
        .trim_end()
        .to_string();
    if ellipsis {
        out.push_str("...");
    }
    out
}
