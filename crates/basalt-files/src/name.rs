//! Stored file names: `snake_case(base)` + `_` + 10 random `[a-z0-9]` + cleaned extension.

use rand::Rng;

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

fn random_part(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Lower snake case of the ASCII letters and digits of `text`; every other run of
/// characters, and every lower-to-upper case change, becomes one `_`.
fn snake_case(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut previous_lower = false;
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            if c.is_ascii_uppercase() && previous_lower && !out.ends_with('_') {
                out.push('_');
            }
            previous_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
            out.push(c.to_ascii_lowercase());
        } else {
            previous_lower = false;
            if !out.is_empty() && !out.ends_with('_') {
                out.push('_');
            }
        }
    }
    out.trim_matches('_').to_string()
}

/// Splits `name` into its base and extension (with the dot): the last dot-separated part,
/// or the last two when there are more than two (`archive.tar.gz`, `notes.v2.txt`).
fn split_extension(name: &str) -> (&str, &str) {
    let Some(last) = name.rfind('.') else {
        return (name, "");
    };
    match name[..last].rfind('.') {
        Some(before) => (&name[..before], &name[before..]),
        None => (&name[..last], &name[last..]),
    }
}

/// The extension kept from an original name: `.` followed by ASCII letters, digits and
/// inner dots, at most 20 characters; empty when nothing usable remains.
fn clean_extension(ext: &str) -> String {
    let kept: String = ext
        .trim_start_matches('.')
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
        .collect();
    let kept = kept.trim_matches('.');
    if kept.is_empty() {
        return String::new();
    }
    let cut: String = kept.chars().take(19).collect();
    format!(".{}", cut.trim_end_matches('.'))
}

/// A fresh stored name for an upload called `original`; `fallback_ext` (without the
/// dot) is used when the original has no extension.
pub fn stored_name(original: &str, fallback_ext: Option<&str>) -> String {
    let original = original.rsplit(['/', '\\']).next().unwrap_or_default();
    let (base, ext) = split_extension(original);
    let mut base: String = snake_case(base).chars().take(100).collect();
    if base.len() < 3 {
        base.push_str(&random_part(10));
    }
    let mut ext = clean_extension(ext);
    if ext.is_empty()
        && let Some(fallback) = fallback_ext.filter(|e| !e.is_empty())
    {
        ext = clean_extension(fallback);
    }
    format!("{base}_{}{ext}", random_part(10))
}

/// Whether `name` may be a stored file name: 1 to 255 of `[A-Za-z0-9_.-]`, not starting
/// with a dot and without `..`.
pub fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(name: &str) -> String {
        // Replaces the random parts so names can be compared.
        let (base, ext) = split_extension(name);
        let (stem, random) = base.rsplit_once('_').expect("random suffix");
        assert_eq!(random.len(), 10, "{name}");
        format!("{stem}_R{ext}")
    }

    #[test]
    fn names() {
        let cases = [
            ("My Photo.PNG", "my_photo_R.PNG"),
            ("archive.tar.gz", "archive_R.tar.gz"),
            ("report.final.v2.TXT", "report_final_R.v2.TXT"),
            ("longer.base.txt", "longer_R.base.txt"),
            ("MyPhoto.jpg", "my_photo_R.jpg"),
            ("../../etc/passwd", "passwd_R"),
            ("..\\..\\win.ini", "win_R.ini"),
            ("weird name!!.t x t", "weird_name_R.txt"),
            (
                "x.aVeryVeryVeryLongExtensionIndeed",
                "x_R.aVeryVeryVeryLongE",
            ),
            ("%2e%2e%2fx.png", "2e_2e_2fx_R.png"),
            ("résumé.pdf", "r_sum_R.pdf"),
        ];
        for (input, expected) in cases {
            let name = stored_name(input, None);
            assert!(is_safe_name(&name), "{input} -> {name}");
            if input.starts_with('x') {
                // Short bases get 10 random characters appended before the suffix.
                assert!(name.starts_with('x') && name.len() == 1 + 10 + 1 + 10 + 20);
                continue;
            }
            assert_eq!(shape(&name), expected, "{input} -> {name}");
        }
        let hidden = stored_name(".hidden", None);
        assert!(
            hidden.len() == 10 + 1 + 10 + 7 && hidden.ends_with(".hidden"),
            "{hidden}"
        );
        let short = stored_name("a.txt", None);
        assert_eq!(short.len(), 1 + 10 + 1 + 10 + 4, "{short}");
        let blob = stored_name("blob", Some("txt"));
        assert!(
            blob.starts_with("blob_") && blob.ends_with(".txt"),
            "{blob}"
        );
        let empty = stored_name("", None);
        assert!(is_safe_name(&empty) && empty.len() == 21, "{empty}");
    }

    #[test]
    fn safe_names() {
        for ok in ["a", "my_photo_7xka885bd4.PNG", "a-b.tar.gz"] {
            assert!(is_safe_name(ok), "{ok}");
        }
        let long = "a".repeat(256);
        for bad in [
            "", ".", "..", ".hidden", "a/b", "a\\b", "a..b", "a%2e", "a b", "a\0b", &long,
        ] {
            assert!(!is_safe_name(bad), "{bad:?}");
        }
        assert!(is_safe_name(&"a".repeat(255)));
    }
}
