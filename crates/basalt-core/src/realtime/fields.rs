//! The `fields` option of a subscription: picks keys of the exported record (nested
//! through `expand.*`, `*` wildcards, `:excerpt(max, ellipsis)`), like the REST
//! responses' `?fields=` picker.

use basalt_filter::{Excerpt, FieldPick, parse_fields};
use serde_json::{Map, Value as Json};

/// A parsed `fields` option.
#[derive(Debug, Clone)]
pub(crate) struct Fields(Vec<FieldPick>);

type Paths<'a> = Vec<(&'a [String], Option<&'a Excerpt>)>;

impl Fields {
    /// Parses the option; `None` when it does not parse (the record is sent whole).
    pub(crate) fn parse(text: &str) -> Option<Fields> {
        parse_fields(text)
            .ok()
            .filter(|p| !p.is_empty())
            .map(Fields)
    }

    /// Picks from one record.
    pub(crate) fn apply(&self, value: Json) -> Json {
        let paths: Paths<'_> = self
            .0
            .iter()
            .map(|p| (p.path.as_slice(), p.excerpt.as_ref()))
            .collect();
        pick(value, &paths)
    }
}

fn pick(value: Json, paths: &Paths<'_>) -> Json {
    match value {
        Json::Array(items) => Json::Array(items.into_iter().map(|i| pick(i, paths)).collect()),
        Json::Object(object) => {
            let mut out = Map::new();
            for (key, child) in object {
                let matching: Paths<'_> = paths
                    .iter()
                    .filter(|(path, _)| path.first().is_some_and(|h| h == "*" || *h == key))
                    .map(|(path, excerpt)| (&path[1..], *excerpt))
                    .collect();
                if matching.is_empty() {
                    continue;
                }
                let whole = matching.iter().filter(|(rest, _)| rest.is_empty());
                let mut whole = whole.peekable();
                if whole.peek().is_some() {
                    let excerpt = whole.find_map(|(_, e)| *e);
                    let child = match (excerpt, child) {
                        (Some(excerpt), Json::String(text)) => {
                            Json::String(excerpt_of(&text, excerpt))
                        }
                        (_, child) => child,
                    };
                    out.insert(key, child);
                } else {
                    out.insert(key, pick(child, &matching));
                }
            }
            Json::Object(out)
        }
        other => other,
    }
}

/// Plain text of `text` (tags dropped, whitespace collapsed) cut to `max` characters.
fn excerpt_of(text: &str, excerpt: &Excerpt) -> String {
    let mut plain = String::with_capacity(text.len());
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
    let words: Vec<&str> = plain.split_whitespace().collect();
    let plain = words.join(" ");
    if plain.chars().count() <= excerpt.max {
        return plain;
    }
    let mut out: String = plain.chars().take(excerpt.max).collect();
    out.truncate(out.trim_end().len());
    if excerpt.ellipsis {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn picks_nested_and_excerpts() {
        let record = json!({"id": "a", "title": "hello world", "expand": {"owner": {"name": "n", "email": "e"}}});
        let fields = Fields::parse("id,expand.owner.name").expect("fields");
        assert_eq!(
            fields.apply(record.clone()),
            json!({"id": "a", "expand": {"owner": {"name": "n"}}})
        );
        let fields = Fields::parse("*,title:excerpt(1)").expect("fields");
        assert_eq!(fields.apply(record.clone())["title"], json!("h"));
        let fields = Fields::parse("title:excerpt(5,true)").expect("fields");
        assert_eq!(fields.apply(record), json!({"title": "hello..."}));
        assert!(Fields::parse("").is_none());
    }
}
