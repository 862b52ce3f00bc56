//! The datetime format PocketBase uses everywhere: `YYYY-MM-DD HH:MM:SS.mmmZ`, UTC.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};

/// Formats a time in PocketBase's storage format.
pub fn format_datetime(at: OffsetDateTime) -> String {
    let at = at.to_offset(UtcOffset::UTC);
    // Digits written directly, padded like `{:04}`/`{:02}`/`{:03}`: this runs for every
    // write (`format!` with seven padded arguments was ~1.5% of a create's instructions).
    let year = at.year();
    let mut out = String::with_capacity(24);
    if year < 0 {
        out.push('-');
    }
    let mut digits = |value: u32, width: u32, then: char| {
        let mut places = width;
        while u64::from(value) >= 10u64.pow(places) {
            places += 1;
        }
        for place in (0..places).rev() {
            let digit = (u64::from(value) / 10u64.pow(place)) % 10;
            out.push(char::from(b'0' + digit as u8));
        }
        out.push(then);
    };
    // `{:04}` counts the sign in the width: -1 is `-001`.
    digits(year.unsigned_abs(), if year < 0 { 3 } else { 4 }, '-');
    digits(u32::from(u8::from(at.month())), 2, '-');
    digits(u32::from(at.day()), 2, ' ');
    digits(u32::from(at.hour()), 2, ':');
    digits(u32::from(at.minute()), 2, ':');
    digits(u32::from(at.second()), 2, '.');
    digits(u32::from(at.millisecond()), 3, 'Z');
    out
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

    #[test]
    fn formatting_matches_padded_format_at_the_edges() {
        let reference = |at: OffsetDateTime| {
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
        };
        let mut times: Vec<OffsetDateTime> = [
            0_i128,
            1_000_000_000_123_000_000,
            1_733_340_000_999_999_999,
            253_402_300_799_999_000_000, // 9999-12-31 23:59:59.999
            -62_167_219_200_000_000_000, // 0000-01-01 00:00:00.000
        ]
        .into_iter()
        .map(|ns| OffsetDateTime::from_unix_timestamp_nanos(ns).expect("in range"))
        .collect();
        times.push(OffsetDateTime::now_utc());
        // Before year 0 (the sign counts in the padded width): years -1, -12, -123, -1234.
        for year in [-1, -12, -123, -1234] {
            times.push(
                time::Date::from_calendar_date(year, time::Month::March, 7)
                    .expect("a valid date")
                    .with_hms_milli(8, 9, 10, 11)
                    .expect("a valid time")
                    .assume_utc(),
            );
        }
        times.push(OffsetDateTime::from_unix_timestamp(-62_200_000_000).expect("in range"));
        for at in times {
            assert_eq!(format_datetime(at), reference(at));
        }
        assert_eq!(
            format_datetime(
                OffsetDateTime::from_unix_timestamp(253_402_300_799).expect("in range")
            ),
            "9999-12-31 23:59:59.000Z"
        );
    }

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
