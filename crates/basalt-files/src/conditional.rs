//! HTTP conditional and range requests (RFC 9110 §13 and §14), decided from a file's
//! metadata and the request's headers. Pure: the caller reads and sends the bytes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What is known of a stored file before its bytes are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// Size in bytes.
    pub size: u64,
    /// Last modification.
    pub modified: SystemTime,
    /// Strong entity tag, quoted.
    pub etag: String,
}

impl Meta {
    /// `Last-Modified` header value.
    pub fn last_modified(&self) -> String {
        httpdate::fmt_http_date(self.modified)
    }
}

/// The request headers that matter here, as sent.
#[derive(Debug, Clone, Default)]
pub struct Conditions<'a> {
    /// `If-Match`.
    pub if_match: Option<&'a str>,
    /// `If-Unmodified-Since`.
    pub if_unmodified_since: Option<&'a str>,
    /// `If-None-Match`.
    pub if_none_match: Option<&'a str>,
    /// `If-Modified-Since`.
    pub if_modified_since: Option<&'a str>,
    /// `Range`.
    pub range: Option<&'a str>,
    /// `If-Range`.
    pub if_range: Option<&'a str>,
}

/// How to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// 200 with the whole file.
    Full,
    /// 206 with bytes `start..=end`.
    Partial {
        /// First byte.
        start: u64,
        /// Last byte, inclusive.
        end: u64,
    },
    /// 304.
    NotModified,
    /// 412.
    PreconditionFailed,
    /// 416 with `Content-Range: bytes */size`.
    Unsatisfiable,
}

fn seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs()
}

fn parse_date(text: &str) -> Option<u64> {
    httpdate::parse_http_date(text.trim()).ok().map(seconds)
}

/// Whether an `If-Match`/`If-None-Match` list names `etag` (`weak` allows `W/` tags).
fn etag_listed(list: &str, etag: &str, weak: bool) -> bool {
    list.split(',').map(str::trim).any(|tag| {
        tag == "*" || tag == etag || (weak && tag.strip_prefix("W/").is_some_and(|t| t == etag))
    })
}

/// Parses a single `bytes=` range against `size`. `None` means the header is ignored
/// (bad syntax, other units, several ranges); `Some(None)` that it cannot be satisfied.
fn parse_range(header: &str, size: u64) -> Option<Option<(u64, u64)>> {
    let spec = header.trim().strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    let number = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    if first.is_empty() {
        let suffix = number(last)?;
        if suffix == 0 || size == 0 {
            return Some(None);
        }
        return Some(Some((size.saturating_sub(suffix), size - 1)));
    }
    let start = number(first)?;
    let end = if last.is_empty() {
        u64::MAX
    } else {
        number(last)?
    };
    if end < start {
        return None;
    }
    if start >= size {
        return Some(None);
    }
    Some(Some((start, end.min(size - 1))))
}

/// Decides the answer to a GET of a file described by `meta`.
pub fn decide(meta: &Meta, request: &Conditions<'_>) -> Decision {
    let modified = seconds(meta.modified);
    if let Some(list) = request.if_match {
        if !etag_listed(list, &meta.etag, false) {
            return Decision::PreconditionFailed;
        }
    } else if let Some(since) = request.if_unmodified_since.and_then(parse_date)
        && modified > since
    {
        return Decision::PreconditionFailed;
    }
    if let Some(list) = request.if_none_match {
        if etag_listed(list, &meta.etag, true) {
            return Decision::NotModified;
        }
    } else if let Some(since) = request.if_modified_since.and_then(parse_date)
        && modified <= since
    {
        return Decision::NotModified;
    }
    let Some(range) = request.range else {
        return Decision::Full;
    };
    if let Some(validator) = request.if_range.map(str::trim) {
        let fresh = if validator.starts_with('"') {
            validator == meta.etag
        } else {
            parse_date(validator) == Some(modified)
        };
        if !fresh {
            return Decision::Full;
        }
    }
    match parse_range(range, meta.size) {
        None => Decision::Full,
        Some(None) => Decision::Unsatisfiable,
        Some(Some((start, end))) => Decision::Partial { start, end },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Meta {
        Meta {
            size: 100,
            modified: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            etag: "\"abc\"".into(),
        }
    }

    const BEFORE: &str = "Tue, 14 Nov 2023 22:13:19 GMT";
    const AT: &str = "Tue, 14 Nov 2023 22:13:20 GMT";

    fn check(request: Conditions<'_>, expected: Decision) {
        assert_eq!(decide(&meta(), &request), expected, "{request:?}");
    }

    fn range(text: &str) -> Conditions<'_> {
        Conditions {
            range: Some(text),
            ..Default::default()
        }
    }

    #[test]
    fn ranges() {
        use Decision::*;
        check(Conditions::default(), Full);
        check(range("bytes=0-9"), Partial { start: 0, end: 9 });
        check(range("bytes=90-"), Partial { start: 90, end: 99 });
        check(range("bytes=90-500"), Partial { start: 90, end: 99 });
        check(range("bytes=-10"), Partial { start: 90, end: 99 });
        check(range("bytes=-500"), Partial { start: 0, end: 99 });
        check(range("bytes=99-99"), Partial { start: 99, end: 99 });
        check(range("bytes=100-"), Unsatisfiable);
        check(range("bytes=-0"), Unsatisfiable);
        check(range("bytes=5-1"), Full);
        check(range("bytes=0-1,5-6"), Full);
        check(range("items=0-1"), Full);
        check(range("bytes=a-b"), Full);
        check(range("bytes=+1-2"), Full);
    }

    #[test]
    fn conditionals() {
        use Decision::*;
        let c = |f: fn(&mut Conditions<'static>)| {
            let mut request = Conditions::default();
            f(&mut request);
            request
        };
        check(c(|r| r.if_none_match = Some("\"abc\"")), NotModified);
        check(c(|r| r.if_none_match = Some("W/\"abc\"")), NotModified);
        check(c(|r| r.if_none_match = Some("\"x\", \"abc\"")), NotModified);
        check(c(|r| r.if_none_match = Some("*")), NotModified);
        check(c(|r| r.if_none_match = Some("\"x\"")), Full);
        check(c(|r| r.if_modified_since = Some(AT)), NotModified);
        check(c(|r| r.if_modified_since = Some(BEFORE)), Full);
        check(c(|r| r.if_modified_since = Some("garbage")), Full);
        // If-None-Match wins over If-Modified-Since.
        check(
            c(|r| {
                r.if_none_match = Some("\"x\"");
                r.if_modified_since = Some(AT);
            }),
            Full,
        );
        check(c(|r| r.if_match = Some("\"abc\"")), Full);
        check(c(|r| r.if_match = Some("W/\"abc\"")), PreconditionFailed);
        check(c(|r| r.if_match = Some("\"x\"")), PreconditionFailed);
        check(
            c(|r| r.if_unmodified_since = Some(BEFORE)),
            PreconditionFailed,
        );
        check(c(|r| r.if_unmodified_since = Some(AT)), Full);
        // If-Range: a stale validator gives the whole file.
        check(
            c(|r| {
                r.range = Some("bytes=0-1");
                r.if_range = Some("\"abc\"");
            }),
            Partial { start: 0, end: 1 },
        );
        check(
            c(|r| {
                r.range = Some("bytes=0-1");
                r.if_range = Some("\"old\"");
            }),
            Full,
        );
        check(
            c(|r| {
                r.range = Some("bytes=0-1");
                r.if_range = Some(AT);
            }),
            Partial { start: 0, end: 1 },
        );
        check(
            c(|r| {
                r.range = Some("bytes=0-1");
                r.if_range = Some(BEFORE);
            }),
            Full,
        );
    }

    #[test]
    fn empty_file() {
        let empty = Meta { size: 0, ..meta() };
        assert_eq!(decide(&empty, &range("bytes=0-")), Decision::Unsatisfiable);
        assert_eq!(decide(&empty, &range("bytes=-5")), Decision::Unsatisfiable);
    }
}
