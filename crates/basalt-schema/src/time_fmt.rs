//! The datetime format PocketBase uses everywhere: `YYYY-MM-DD HH:MM:SS.mmmZ`, UTC.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

/// Formats a time in PocketBase's storage format.
pub fn format_datetime(at: OffsetDateTime) -> String {
    let at = at.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

/// The current time in PocketBase's storage format.
pub fn now_datetime() -> String {
    format_datetime(OffsetDateTime::now_utc())
}

/// Parses the datetime layouts PocketBase accepts on input; `None` when none fits.
pub fn parse_datetime(text: &str) -> Option<OffsetDateTime> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(at.to_offset(UtcOffset::UTC));
    }
    let spaced = text.replacen(' ', "T", 1);
    if let Ok(at) = OffsetDateTime::parse(&spaced, &Rfc3339) {
        return Some(at.to_offset(UtcOffset::UTC));
    }
    let naive = spaced.trim_end_matches('Z');
    let layouts = [
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond]"),
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
        format_description!("[year]-[month]-[day]T[hour]:[minute]"),
    ];
    for layout in layouts {
        if let Ok(at) = PrimitiveDateTime::parse(naive, layout) {
            return Some(at.assume_utc());
        }
    }
    let date_only = format_description!("[year]-[month]-[day]");
    if let Ok(date) = time::Date::parse(naive, date_only) {
        return Some(date.midnight().assume_utc());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: Option<&str>) {
        assert_eq!(
            parse_datetime(input).map(format_datetime).as_deref(),
            expected,
            "{input}"
        );
    }

    #[test]
    fn accepted_layouts() {
        check("2024-01-02 10:00:00.000Z", Some("2024-01-02 10:00:00.000Z"));
        check("2024-01-02 10:00:00.123Z", Some("2024-01-02 10:00:00.123Z"));
        check("2024-01-02T10:00:00Z", Some("2024-01-02 10:00:00.000Z"));
        check(
            "2024-01-02T10:00:00+02:00",
            Some("2024-01-02 08:00:00.000Z"),
        );
        check("2024-01-02", Some("2024-01-02 00:00:00.000Z"));
        check("2024-01-02 10:00:00", Some("2024-01-02 10:00:00.000Z"));
        check("nonsense", None);
        check("", None);
        check("12345", None);
    }
}
