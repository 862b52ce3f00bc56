//! Record values: lenient input coercion (PocketBase's), zero values, and validation.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Value as Json, json};

use crate::field::{Field, FieldKind};

/// A validation error on one field, serialized as `{code, message, params?}`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// Machine code such as `validation_required`.
    pub code: String,
    /// Human message, sentenized.
    pub message: String,
    /// Template parameters, when the message has some.
    pub params: Option<Json>,
}

impl FieldError {
    /// An error without parameters.
    pub fn new(code: &str, message: &str) -> FieldError {
        FieldError {
            code: code.to_string(),
            message: message.to_string(),
            params: None,
        }
    }

    /// An error with parameters.
    pub fn with_params(code: &str, message: &str, params: Json) -> FieldError {
        FieldError {
            code: code.to_string(),
            message: message.to_string(),
            params: Some(params),
        }
    }

    /// `validation_required` / "Cannot be blank."
    pub fn required() -> FieldError {
        FieldError::new("validation_required", "Cannot be blank.")
    }

    /// `validation_not_unique` / "Value must be unique."
    pub fn not_unique() -> FieldError {
        FieldError::new("validation_not_unique", "Value must be unique.")
    }

    /// The JSON form used in error bodies.
    pub fn to_json(&self) -> Json {
        let mut object = json!({ "code": self.code, "message": self.message });
        if let (Some(params), Some(map)) = (&self.params, object.as_object_mut()) {
            map.insert("params".into(), params.clone());
        }
        object
    }
}

/// Errors keyed by field name.
pub type FieldErrors = BTreeMap<String, FieldError>;

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
        .expect("static email regex")
});
static URL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[A-Za-z][A-Za-z0-9+.-]*://([^\s/?#@]+@)?(?P<host>[^\s/?#:]+)(:\d+)?([/?#]\S*)?$")
        .expect("static url regex")
});

/// Compiled field patterns, shared by every validation (compiling per value was a fifth
/// of a create's CPU). Bounded: patterns come from collection schemas, so the set is
/// small; past the bound the cache starts over.
static PATTERNS: LazyLock<std::sync::Mutex<std::collections::HashMap<String, Option<Regex>>>> =
    LazyLock::new(Default::default);

fn cached_regex(pattern: &str) -> Option<Regex> {
    let mut cache = PATTERNS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(found) = cache.get(pattern) {
        return found.clone();
    }
    if cache.len() >= 1024 {
        cache.clear();
    }
    let compiled = Regex::new(pattern).ok();
    cache.insert(pattern.to_string(), compiled.clone());
    compiled
}

const DEFAULT_TEXT_MAX: u64 = 5000;
const DEFAULT_EDITOR_MAX: u64 = 5 << 20;
const DEFAULT_JSON_MAX: u64 = 1 << 20;

fn to_text(input: &Json) -> String {
    match input {
        Json::Null => String::new(),
        Json::String(s) => s.clone(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => number_text(n.as_f64().unwrap_or(0.0)),
        other => other.to_string(),
    }
}

fn number_text(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

/// A JSON number, integral when the value is.
pub fn number_json(value: f64) -> Json {
    if value.fract() == 0.0 && value.abs() < 9.0e15 {
        json!(value as i64)
    } else {
        serde_json::Number::from_f64(value)
            .map(Json::Number)
            .unwrap_or(json!(0))
    }
}

fn to_number(input: &Json) -> f64 {
    let value = match input {
        Json::Number(n) => n.as_f64().unwrap_or(0.0),
        Json::String(s) => s.trim().parse::<f64>().unwrap_or(0.0),
        Json::Bool(true) => 1.0,
        _ => 0.0,
    };
    if value.is_finite() { value } else { 0.0 }
}

fn to_bool(input: &Json) -> bool {
    match input {
        Json::Bool(b) => *b,
        Json::Number(n) => n.as_f64().is_some_and(|v| v != 0.0),
        Json::String(s) => matches!(s.trim(), "1" | "t" | "T" | "true" | "TRUE" | "True"),
        _ => false,
    }
}

/// Turns a string or array input into a de-duplicated list of non-empty strings.
pub fn to_list(input: &Json) -> Vec<String> {
    let raw: Vec<String> = match input {
        Json::Null => Vec::new(),
        Json::Array(items) => items.iter().map(to_text).collect(),
        Json::String(s) => {
            let trimmed = s.trim();
            if trimmed.starts_with('[') {
                match serde_json::from_str::<Vec<Json>>(trimmed) {
                    Ok(items) => items.iter().map(to_text).collect(),
                    Err(_) => vec![s.clone()],
                }
            } else {
                vec![s.clone()]
            }
        }
        other => vec![to_text(other)],
    };
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for item in raw {
        if !item.is_empty() && !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

fn to_json_value(input: &Json) -> Json {
    match input {
        Json::String(s) => {
            let trimmed = s.trim();
            let looks_json = trimmed
                .starts_with(|c: char| c.is_ascii_digit() || matches!(c, '-' | '"' | '[' | '{'))
                || matches!(trimmed, "null" | "true" | "false");
            if looks_json {
                serde_json::from_str(trimmed).unwrap_or_else(|_| input.clone())
            } else {
                input.clone()
            }
        }
        other => other.clone(),
    }
}

impl Field {
    /// The value a new record holds for this field.
    pub fn zero_value(&self) -> Json {
        match &self.kind {
            FieldKind::Number { .. } => json!(0),
            FieldKind::Bool { .. } => json!(false),
            FieldKind::Json { .. } => Json::Null,
            FieldKind::GeoPoint { .. } => json!({"lon": 0, "lat": 0}),
            FieldKind::Select { .. } | FieldKind::File { .. } | FieldKind::Relation { .. }
                if self.is_multiple() =>
            {
                json!([])
            }
            _ => json!(""),
        }
    }

    /// Coerces client input into this field's value, leniently like PocketBase
    /// (garbage becomes the zero value rather than a type error).
    pub fn normalize(&self, input: &Json) -> Json {
        match &self.kind {
            FieldKind::Text { .. }
            | FieldKind::Email { .. }
            | FieldKind::Url { .. }
            | FieldKind::Editor { .. }
            | FieldKind::Password { .. } => Json::String(to_text(input)),
            FieldKind::Number { .. } => number_json(to_number(input)),
            FieldKind::Bool { .. } => Json::Bool(to_bool(input)),
            FieldKind::Date { .. } | FieldKind::Autodate { .. } => match input {
                Json::String(s) => Json::String(
                    crate::parse_datetime(s)
                        .map(crate::format_datetime)
                        .unwrap_or_default(),
                ),
                _ => json!(""),
            },
            FieldKind::Select { .. } | FieldKind::File { .. } | FieldKind::Relation { .. } => {
                let list = to_list(input);
                if self.is_multiple() {
                    json!(list)
                } else {
                    Json::String(list.last().cloned().unwrap_or_default())
                }
            }
            FieldKind::Json { .. } => to_json_value(input),
            FieldKind::GeoPoint { .. } => {
                let point = match input {
                    Json::String(s) => serde_json::from_str(s).unwrap_or(Json::Null),
                    other => other.clone(),
                };
                let lon = point.get("lon").map(to_number).unwrap_or(0.0);
                let lat = point.get("lat").map(to_number).unwrap_or(0.0);
                json!({"lon": lon, "lat": lat})
            }
        }
    }

    /// Checks a normalized value against the field's options.
    pub fn validate(&self, value: &Json) -> Result<(), FieldError> {
        match &self.kind {
            FieldKind::Text {
                required,
                min,
                max,
                pattern,
                ..
            } => {
                let text = value.as_str().unwrap_or_default();
                validate_text(text, *required, *min, *max, pattern)
            }
            FieldKind::Password { .. } => Ok(()),
            FieldKind::Number {
                required,
                min,
                max,
                only_int,
            } => {
                let number = value.as_f64().unwrap_or(0.0);
                if number == 0.0 {
                    return if *required {
                        Err(FieldError::required())
                    } else {
                        Ok(())
                    };
                }
                if *only_int && number.fract() != 0.0 {
                    return Err(FieldError::new(
                        "validation_only_int_constraint",
                        "Decimal numbers are not allowed.",
                    ));
                }
                if let Some(min) = min.filter(|min| number < *min) {
                    return Err(FieldError::with_params(
                        "validation_min_number_constraint",
                        &format!("Must be greater or equal than {}.", number_text(min)),
                        json!({ "min": number_json(min) }),
                    ));
                }
                if let Some(max) = max.filter(|max| number > *max) {
                    return Err(FieldError::with_params(
                        "validation_max_number_constraint",
                        &format!("Must be less or equal than {}.", number_text(max)),
                        json!({ "max": number_json(max) }),
                    ));
                }
                Ok(())
            }
            FieldKind::Bool { required } => {
                if *required && value != &Json::Bool(true) {
                    return Err(FieldError::required());
                }
                Ok(())
            }
            FieldKind::Email {
                required,
                except_domains,
                only_domains,
            } => {
                let text = value.as_str().unwrap_or_default();
                if text.is_empty() {
                    return if *required {
                        Err(FieldError::required())
                    } else {
                        Ok(())
                    };
                }
                if !EMAIL.is_match(text) || text.len() > 255 {
                    return Err(FieldError::new(
                        "validation_is_email",
                        "Must be a valid email address.",
                    ));
                }
                let domain = text.rsplit('@').next().unwrap_or_default();
                check_domain(domain, except_domains, only_domains, "email")
            }
            FieldKind::Url {
                required,
                except_domains,
                only_domains,
            } => {
                let text = value.as_str().unwrap_or_default();
                if text.is_empty() {
                    return if *required {
                        Err(FieldError::required())
                    } else {
                        Ok(())
                    };
                }
                let Some(host) = URL.captures(text).and_then(|c| c.name("host")) else {
                    return Err(FieldError::new(
                        "validation_invalid_url",
                        "Must be a valid url.",
                    ));
                };
                check_domain(host.as_str(), except_domains, only_domains, "url")
            }
            FieldKind::Editor {
                required, max_size, ..
            } => {
                let text = value.as_str().unwrap_or_default();
                if text.is_empty() {
                    return if *required {
                        Err(FieldError::required())
                    } else {
                        Ok(())
                    };
                }
                let limit = if *max_size == 0 {
                    DEFAULT_EDITOR_MAX
                } else {
                    *max_size
                };
                if text.len() as u64 > limit {
                    return Err(max_size_error(limit));
                }
                Ok(())
            }
            FieldKind::Date { required, min, max } => {
                let text = value.as_str().unwrap_or_default();
                if text.is_empty() {
                    return if *required {
                        Err(FieldError::required())
                    } else {
                        Ok(())
                    };
                }
                validate_date_range(text, min, max)
            }
            FieldKind::Autodate { .. } => Ok(()),
            FieldKind::Select {
                required,
                values,
                max_select,
            } => {
                let items = list_items(value);
                if items.is_empty() {
                    return if *required {
                        Err(FieldError::required())
                    } else {
                        Ok(())
                    };
                }
                for item in &items {
                    if !values.iter().any(|allowed| allowed == item) {
                        return Err(FieldError::with_params(
                            "validation_invalid_value",
                            &format!("Invalid value {item}."),
                            json!({ "value": item }),
                        ));
                    }
                }
                check_max_select(items.len(), *max_select)
            }
            FieldKind::Relation {
                required,
                min_select,
                max_select,
                ..
            } => {
                let items = list_items(value);
                if items.is_empty() {
                    return if *required {
                        Err(FieldError::required())
                    } else {
                        Ok(())
                    };
                }
                if (items.len() as u64) < *min_select {
                    return Err(FieldError::with_params(
                        "validation_not_enough_values",
                        &format!("Select at least {min_select}."),
                        json!({ "minSelect": min_select }),
                    ));
                }
                check_max_select(items.len(), *max_select)
            }
            FieldKind::File {
                required,
                max_select,
                ..
            } => {
                let items = list_items(value);
                if items.is_empty() {
                    return if *required {
                        Err(FieldError::required())
                    } else {
                        Ok(())
                    };
                }
                let max = (*max_select).max(1);
                if items.len() as u64 > max {
                    return Err(FieldError::with_params(
                        "validation_too_many_files",
                        &format!("The maximum allowed files is {max}."),
                        json!({ "maxSelect": max }),
                    ));
                }
                Ok(())
            }
            FieldKind::Json { required, max_size } => {
                let empty = match value {
                    Json::Null => true,
                    Json::String(s) => s.is_empty(),
                    Json::Array(items) => items.is_empty(),
                    Json::Object(map) => map.is_empty(),
                    _ => false,
                };
                if *required && empty {
                    return Err(FieldError::required());
                }
                let limit = if *max_size == 0 {
                    DEFAULT_JSON_MAX
                } else {
                    *max_size
                };
                if value.to_string().len() as u64 > limit {
                    return Err(FieldError::with_params(
                        "validation_json_size_limit",
                        &format!("The maximum allowed JSON size is {limit} bytes."),
                        json!({ "maxSize": limit }),
                    ));
                }
                Ok(())
            }
            FieldKind::GeoPoint { required } => {
                let lon = value.get("lon").and_then(Json::as_f64).unwrap_or(0.0);
                let lat = value.get("lat").and_then(Json::as_f64).unwrap_or(0.0);
                if *required && lon == 0.0 && lat == 0.0 {
                    return Err(FieldError::required());
                }
                if !(-90.0..=90.0).contains(&lat) {
                    return Err(FieldError::new(
                        "validation_invalid_latitude",
                        "Latitude must be between -90 and 90 degrees.",
                    ));
                }
                if !(-180.0..=180.0).contains(&lon) {
                    return Err(FieldError::new(
                        "validation_invalid_longitude",
                        "Longitude must be between -180 and 180 degrees.",
                    ));
                }
                Ok(())
            }
        }
    }

    /// Validates a plain password against the password field's options.
    pub fn validate_password(&self, plain: &str) -> Result<(), FieldError> {
        let FieldKind::Password {
            required,
            min,
            max,
            pattern,
            ..
        } = &self.kind
        else {
            return Ok(());
        };
        if plain.is_empty() {
            return if *required {
                Err(FieldError::required())
            } else {
                Ok(())
            };
        }
        if plain.len() > 72 {
            return Err(FieldError::with_params(
                "validation_max_text_constraint",
                "Must be no more than 72 bytes.",
                json!({ "max": 72 }),
            ));
        }
        let max = if *max == 0 { 71 } else { (*max).min(71) };
        validate_text(plain, true, (*min).max(1), max, pattern)
    }
}

fn validate_text(
    text: &str,
    required: bool,
    min: u64,
    max: u64,
    pattern: &str,
) -> Result<(), FieldError> {
    if text.is_empty() {
        return if required {
            Err(FieldError::required())
        } else {
            Ok(())
        };
    }
    let length = text.chars().count() as u64;
    if min > 0 && length < min {
        return Err(FieldError::with_params(
            "validation_min_text_constraint",
            &format!("Must be at least {min} character(s)."),
            json!({ "min": min }),
        ));
    }
    let max = if max == 0 { DEFAULT_TEXT_MAX } else { max };
    if length > max {
        return Err(FieldError::with_params(
            "validation_max_text_constraint",
            &format!("Must be no more than {max} character(s)."),
            json!({ "max": max }),
        ));
    }
    if !pattern.is_empty() {
        let matches = cached_regex(pattern).is_some_and(|re| re.is_match(text));
        if !matches {
            return Err(FieldError::new(
                "validation_invalid_format",
                "Invalid value format.",
            ));
        }
    }
    Ok(())
}

fn validate_date_range(text: &str, min: &str, max: &str) -> Result<(), FieldError> {
    let Some(at) = crate::parse_datetime(text) else {
        return Err(FieldError::new(
            "validation_invalid_date",
            "Must be a valid date.",
        ));
    };
    if let Some(min) = crate::parse_datetime(min).filter(|min| at < *min) {
        return Err(FieldError::with_params(
            "validation_min_greater_equal_than_required",
            &format!("Must be no less than {}.", crate::format_datetime(min)),
            json!({ "threshold": crate::format_datetime(min) }),
        ));
    }
    if let Some(max) = crate::parse_datetime(max).filter(|max| at > *max) {
        return Err(FieldError::with_params(
            "validation_max_less_equal_than_required",
            &format!("Must be no greater than {}.", crate::format_datetime(max)),
            json!({ "threshold": crate::format_datetime(max) }),
        ));
    }
    Ok(())
}

fn list_items(value: &Json) -> Vec<String> {
    match value {
        Json::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        Json::String(s) if !s.is_empty() => vec![s.clone()],
        _ => Vec::new(),
    }
}

fn check_max_select(count: usize, max_select: u64) -> Result<(), FieldError> {
    let max = max_select.max(1);
    if count as u64 > max {
        return Err(FieldError::with_params(
            "validation_too_many_values",
            &format!("Select no more than {max}."),
            json!({ "maxSelect": max }),
        ));
    }
    Ok(())
}

fn max_size_error(limit: u64) -> FieldError {
    FieldError::with_params(
        "validation_max_size_constraint",
        &format!("Must be less than {limit} bytes."),
        json!({ "maxSize": limit }),
    )
}

fn check_domain(
    domain: &str,
    except: &Option<Vec<String>>,
    only: &Option<Vec<String>>,
    kind: &str,
) -> Result<(), FieldError> {
    let domain = domain.to_ascii_lowercase();
    let listed = |list: &Option<Vec<String>>| {
        list.as_ref()
            .is_some_and(|items| items.iter().any(|d| d.eq_ignore_ascii_case(&domain)))
    };
    let has_only = only.as_ref().is_some_and(|items| !items.is_empty());
    if listed(except) || (has_only && !listed(only)) {
        return Err(FieldError::new(
            &format!("validation_{kind}_domain_not_allowed"),
            "Domain is not allowed.",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(kind_json: Json) -> Field {
        let mut object = kind_json;
        object["name"] = json!("f");
        serde_json::from_value(object).expect("test field")
    }

    fn check_norm(kind: Json, input: Json, expected: Json) {
        assert_eq!(
            field(kind.clone()).normalize(&input),
            expected,
            "{kind} {input}"
        );
    }

    fn check_valid(kind: Json, value: Json, expected: Option<&str>) {
        let f = field(kind.clone());
        let got = f.validate(&f.normalize(&value)).err().map(|e| e.code);
        assert_eq!(got.as_deref(), expected, "{kind} {value}");
    }

    #[test]
    fn lenient_coercions() {
        check_norm(json!({"type":"text"}), json!(12), json!("12"));
        check_norm(json!({"type":"text"}), json!(1.5), json!("1.5"));
        check_norm(json!({"type":"text"}), json!(null), json!(""));
        check_norm(json!({"type":"number"}), json!("12.5"), json!(12.5));
        check_norm(json!({"type":"number"}), json!("garbage"), json!(0));
        check_norm(json!({"type":"bool"}), json!("true"), json!(true));
        check_norm(json!({"type":"bool"}), json!("1"), json!(true));
        check_norm(json!({"type":"bool"}), json!("nope"), json!(false));
        check_norm(
            json!({"type":"select","maxSelect":1}),
            json!(["a", "b"]),
            json!("b"),
        );
        check_norm(
            json!({"type":"select","maxSelect":3}),
            json!(["a", "b", "a", ""]),
            json!(["a", "b"]),
        );
        check_norm(
            json!({"type":"select","maxSelect":3}),
            json!("a"),
            json!(["a"]),
        );
        check_norm(json!({"type":"json"}), json!("[1,2]"), json!([1, 2]));
        check_norm(json!({"type":"json"}), json!("hello"), json!("hello"));
        check_norm(json!({"type":"json"}), json!("null"), json!(null));
        check_norm(
            json!({"type":"date"}),
            json!("2024-01-02"),
            json!("2024-01-02 00:00:00.000Z"),
        );
        check_norm(json!({"type":"date"}), json!(123), json!(""));
        check_norm(json!({"type":"date"}), json!("junk"), json!(""));
    }

    #[test]
    fn validation_codes() {
        check_valid(
            json!({"type":"text","required":true}),
            json!(""),
            Some("validation_required"),
        );
        check_valid(
            json!({"type":"text","min":3}),
            json!("ab"),
            Some("validation_min_text_constraint"),
        );
        check_valid(json!({"type":"text","min":3}), json!("abc"), None);
        check_valid(
            json!({"type":"text","max":3}),
            json!("abcd"),
            Some("validation_max_text_constraint"),
        );
        check_valid(json!({"type":"text","max":3}), json!("abc"), None);
        check_valid(
            json!({"type":"text","pattern":"^a+$"}),
            json!("ab"),
            Some("validation_invalid_format"),
        );
        check_valid(
            json!({"type":"number","min":1,"max":5}),
            json!(6),
            Some("validation_max_number_constraint"),
        );
        check_valid(json!({"type":"number","min":1,"max":5}), json!(5), None);
        check_valid(
            json!({"type":"number","min":2}),
            json!(1),
            Some("validation_min_number_constraint"),
        );
        check_valid(
            json!({"type":"number","onlyInt":true}),
            json!(1.5),
            Some("validation_only_int_constraint"),
        );
        check_valid(
            json!({"type":"number","required":true}),
            json!(0),
            Some("validation_required"),
        );
        check_valid(
            json!({"type":"bool","required":true}),
            json!(false),
            Some("validation_required"),
        );
        check_valid(
            json!({"type":"email"}),
            json!("nope"),
            Some("validation_is_email"),
        );
        check_valid(json!({"type":"email"}), json!("a@b.co"), None);
        check_valid(
            json!({"type":"email","onlyDomains":["x.io"]}),
            json!("a@b.co"),
            Some("validation_email_domain_not_allowed"),
        );
        check_valid(
            json!({"type":"url"}),
            json!("not a url"),
            Some("validation_invalid_url"),
        );
        check_valid(
            json!({"type":"url"}),
            json!("https://example.com/x?y=1"),
            None,
        );
        check_valid(
            json!({"type":"select","values":["a","b"],"maxSelect":1}),
            json!("c"),
            Some("validation_invalid_value"),
        );
        check_valid(
            json!({"type":"select","values":["a","b","c"],"maxSelect":2}),
            json!(["a", "b", "c"]),
            Some("validation_too_many_values"),
        );
        check_valid(
            json!({"type":"select","values":["a","b","c"],"maxSelect":2}),
            json!(["a", "b"]),
            None,
        );
        check_valid(
            json!({"type":"relation","minSelect":2,"maxSelect":5}),
            json!(["a"]),
            Some("validation_not_enough_values"),
        );
        check_valid(
            json!({"type":"json","required":true}),
            json!("{}"),
            Some("validation_required"),
        );
        check_valid(
            json!({"type":"json","maxSize":5}),
            json!("[1,2,3,4]"),
            Some("validation_json_size_limit"),
        );
        check_valid(
            json!({"type":"geoPoint"}),
            json!({"lon":1,"lat":91}),
            Some("validation_invalid_latitude"),
        );
        check_valid(
            json!({"type":"date","min":"2024-01-01"}),
            json!("2023-12-31"),
            Some("validation_min_greater_equal_than_required"),
        );
    }

    #[test]
    fn passwords_over_72_bytes_are_rejected_not_truncated() {
        let f = field(json!({"type":"password","min":8}));
        assert!(f.validate_password(&"a".repeat(71)).is_ok());
        assert!(f.validate_password(&"a".repeat(72)).is_err());
        assert_eq!(
            f.validate_password("short")
                .map_err(|e| e.code)
                .err()
                .as_deref(),
            Some("validation_min_text_constraint")
        );
    }
}
