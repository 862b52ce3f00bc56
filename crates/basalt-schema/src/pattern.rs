//! Random values from a text field's `autogeneratePattern` (a small regex subset:
//! literals, escapes, `.`, `\d`, `\w`, character classes with ranges, and the
//! quantifiers `{n}`, `{n,m}`, `?`, `+`, `*`). Anything else (groups, alternation) is not
//! generated.

use rand::Rng;

const DIGITS: &str = "0123456789";
const WORD: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_";
const ALNUM: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// The largest repeat count (`{n}`, `{m,n}`) the generator accepts.
const MAX_REPEAT: usize = 1000;

/// Generates a random string matching `pattern`, or `None` if the pattern uses
/// constructs the generator does not support.
pub fn generate_from_pattern(pattern: &str) -> Option<String> {
    let body = pattern.strip_prefix('^').unwrap_or(pattern);
    let body = body.strip_suffix('$').unwrap_or(body);
    let mut rng = rand::rng();
    // The default id pattern, generated for every create, without parsing it (the parse
    // was ~1.5% of a create's instructions); the same choices as the general path.
    if let Some(count) = body
        .strip_prefix("[a-z0-9]{")
        .and_then(|rest| rest.strip_suffix('}'))
        .and_then(|count| count.parse::<usize>().ok())
        .filter(|count| *count <= MAX_REPEAT)
    {
        const SET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        return Some(
            (0..count)
                .map(|_| char::from(SET[rng.random_range(0..SET.len())]))
                .collect(),
        );
    }
    let chars: Vec<char> = body.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let (choices, next) = atom(&chars, i)?;
        let (min, max, after) = quantifier(&chars, next)?;
        let count = if min == max {
            min
        } else {
            rng.random_range(min..=max)
        };
        for _ in 0..count {
            out.push(choices[rng.random_range(0..choices.len())]);
        }
        i = after;
    }
    Some(out)
}

fn atom(chars: &[char], i: usize) -> Option<(Vec<char>, usize)> {
    match chars[i] {
        '(' | ')' | '|' | '{' | '}' | '?' | '+' | '*' | ']' => None,
        '.' => Some((ALNUM.chars().collect(), i + 1)),
        '\\' => {
            let escaped = *chars.get(i + 1)?;
            let set = match escaped {
                'd' => DIGITS.chars().collect(),
                'w' => WORD.chars().collect(),
                other if other.is_ascii_alphanumeric() => return None,
                other => vec![other],
            };
            Some((set, i + 2))
        }
        '[' => class(chars, i + 1),
        literal => Some((vec![literal], i + 1)),
    }
}

fn class(chars: &[char], mut i: usize) -> Option<(Vec<char>, usize)> {
    if chars.get(i) == Some(&'^') {
        return None;
    }
    let mut set = Vec::new();
    while let Some(&c) = chars.get(i) {
        if c == ']' {
            return (!set.is_empty()).then_some((set, i + 1));
        }
        let c = if c == '\\' {
            i += 1;
            match *chars.get(i)? {
                'd' => {
                    set.extend(DIGITS.chars());
                    i += 1;
                    continue;
                }
                'w' => {
                    set.extend(WORD.chars());
                    i += 1;
                    continue;
                }
                other => other,
            }
        } else {
            c
        };
        if chars.get(i + 1) == Some(&'-') && chars.get(i + 2).is_some_and(|end| *end != ']') {
            let end = chars[i + 2];
            if end < c {
                return None;
            }
            set.extend(c..=end);
            i += 3;
        } else {
            set.push(c);
            i += 1;
        }
    }
    None
}

fn quantifier(chars: &[char], i: usize) -> Option<(usize, usize, usize)> {
    match chars.get(i) {
        Some('?') => Some((0, 1, i + 1)),
        Some('+') => Some((1, 8, i + 1)),
        Some('*') => Some((0, 8, i + 1)),
        Some('{') => {
            let close = chars[i..].iter().position(|c| *c == '}')? + i;
            let inner: String = chars[i + 1..close].iter().collect();
            let (min, max) = match inner.split_once(',') {
                Some((min, max)) => (min.trim().parse().ok()?, max.trim().parse().ok()?),
                None => {
                    let n = inner.trim().parse().ok()?;
                    (n, n)
                }
            };
            (min <= max && max <= MAX_REPEAT).then_some((min, max, close + 1))
        }
        _ => Some((1, 1, i)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use regex::Regex;

    #[test]
    fn generated_values_match_their_patterns() {
        for pattern in [
            "[a-z0-9]{15}",
            "ref-[0-9]{4}",
            "^[A-Z]{2}\\d{3,5}$",
            "[a-zA-Z0-9]{50}",
            "x\\.y[_-]?z+",
        ] {
            let re = Regex::new(&format!(
                "^(?:{})$",
                pattern.trim_start_matches('^').trim_end_matches('$')
            ))
            .expect("valid regex");
            for _ in 0..50 {
                let value = generate_from_pattern(pattern).expect("supported");
                assert!(re.is_match(&value), "{pattern} produced {value}");
            }
        }
    }

    #[test]
    fn the_default_id_pattern_uses_every_character_of_its_class() {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..400 {
            let id = generate_from_pattern("^[a-z0-9]{15}$").expect("supported");
            assert_eq!(id.len(), 15);
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
                "{id}"
            );
            seen.extend(id.chars());
        }
        // 6,000 draws from 36 characters: each one missing has a chance of about 1e-72.
        assert_eq!(seen.len(), 36);
        assert_eq!(generate_from_pattern("[a-z0-9]{0}"), Some(String::new()));
        assert_eq!(
            generate_from_pattern("[a-z0-9]{1000}").map(|s| s.len()),
            Some(1000)
        );
        assert_eq!(generate_from_pattern("[a-z0-9]{1001}"), None);
    }

    #[test]
    fn unsupported_patterns_generate_nothing() {
        for pattern in ["(a|b)", "[^a]", "a{2", "[z-a]", "\\p{L}"] {
            assert_eq!(generate_from_pattern(pattern), None, "{pattern}");
        }
    }
}
