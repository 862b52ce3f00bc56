//! Content types: sniffed from the first bytes, with a few extension overrides, and the
//! allowlist of types a browser may show inline.

/// Types served `inline`; everything else is an `attachment` (SVG and HTML never inline).
const INLINE: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/avif",
    "image/bmp",
    "image/x-icon",
    "image/vnd.microsoft.icon",
    "video/mp4",
    "video/webm",
    "video/ogg",
    "video/quicktime",
    "video/x-matroska",
    "audio/mpeg",
    "audio/ogg",
    "audio/wav",
    "audio/x-wav",
    "audio/webm",
    "audio/aac",
    "audio/flac",
    "audio/x-flac",
    "audio/mp4",
    "audio/m4a",
    "audio/x-m4a",
    "application/pdf",
];

/// How many leading bytes [`detect`] looks at.
pub const SNIFF_LEN: usize = 3072;

fn extension_override(filename: &str) -> Option<&'static str> {
    let ext = filename.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "svg" => "image/svg+xml",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "pptx" => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        _ => return None,
    })
}

fn looks_like_text(head: &[u8]) -> bool {
    if head.contains(&0) {
        return false;
    }
    match std::str::from_utf8(head) {
        Ok(_) => true,
        // A multi-byte character cut by the sniff window is still text.
        Err(error) => error.error_len().is_none() && head.len() - error.valid_up_to() < 4,
    }
}

fn text_type(head: &[u8]) -> &'static str {
    let text = String::from_utf8_lossy(&head[..head.len().min(512)]);
    let lower = text.trim_start().to_ascii_lowercase();
    const HTML: &[&str] = &[
        "<!doctype html",
        "<html",
        "<head",
        "<script",
        "<iframe",
        "<h1",
        "<div",
        "<font",
        "<table",
        "<a ",
        "<a>",
        "<style",
        "<title",
        "<b>",
        "<body",
        "<br",
        "<p>",
        "<p ",
        "<!--",
    ];
    if HTML.iter().any(|tag| lower.starts_with(tag)) {
        "text/html; charset=utf-8"
    } else if lower.starts_with("<svg") || (lower.starts_with("<?xml") && lower.contains("<svg")) {
        "image/svg+xml"
    } else if lower.starts_with("<?xml") {
        "text/xml; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    }
}

/// The content type of a file whose first bytes are `head` (see [`SNIFF_LEN`]).
pub fn detect(head: &[u8], filename: &str) -> String {
    if let Some(by_extension) = extension_override(filename) {
        return by_extension.to_string();
    }
    if let Some(kind) = infer::get(head).filter(|k| !k.mime_type().starts_with("text/")) {
        return kind.mime_type().to_string();
    }
    if head.is_empty() || looks_like_text(head) {
        return text_type(head).to_string();
    }
    "application/octet-stream".to_string()
}

/// A file extension (without the dot) for content of type `content_type`, for uploads
/// that came without one.
pub fn extension_for(head: &[u8], content_type: &str) -> Option<String> {
    if let Some(kind) = infer::get(head).filter(|k| !k.mime_type().starts_with("text/")) {
        return Some(kind.extension().to_string());
    }
    Some(
        match base_type(content_type) {
            "text/plain" => "txt",
            "text/html" => "html",
            "image/svg+xml" => "svg",
            "text/xml" => "xml",
            _ => return None,
        }
        .to_string(),
    )
}

/// The type without parameters: `text/plain; charset=utf-8` -> `text/plain`.
pub fn base_type(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or_default().trim()
}

/// Whether content of this type may be shown inline.
pub fn is_inline(content_type: &str) -> bool {
    let base = base_type(content_type).to_ascii_lowercase();
    INLINE.contains(&base.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

    #[test]
    fn detection() {
        let cases: &[(&[u8], &str, &str)] = &[
            (PNG, "x.png", "image/png"),
            (PNG, "x.txt", "image/png"),
            (b"\xff\xd8\xff\xe0\0\x10JFIF", "x", "image/jpeg"),
            (b"GIF89a", "x", "image/gif"),
            (b"%PDF-1.7", "x.pdf", "application/pdf"),
            (b"hello", "x.txt", "text/plain; charset=utf-8"),
            (b"", "x", "text/plain; charset=utf-8"),
            (b"  <HTML><body>", "x.jpg", "text/html; charset=utf-8"),
            (b"<svg xmlns=\"x\"/>", "x.png", "image/svg+xml"),
            (b"<?xml version=\"1.0\"?><svg/>", "x", "image/svg+xml"),
            (
                b"<?xml version=\"1.0\"?><a/>",
                "x",
                "text/xml; charset=utf-8",
            ),
            (b"anything", "x.SVG", "image/svg+xml"),
            (b"a=1", "x.js", "text/javascript; charset=utf-8"),
            (b"\x00\x01\x02\x03", "x", "application/octet-stream"),
            ("caf\u{e9}".as_bytes(), "x", "text/plain; charset=utf-8"),
            (&"\u{e9}".as_bytes()[..1], "x", "text/plain; charset=utf-8"),
        ];
        for (head, name, expected) in cases {
            assert_eq!(detect(head, name), *expected, "{name} {head:?}");
        }
    }

    #[test]
    fn inline_allowlist() {
        for inline in ["image/png", "IMAGE/JPEG", "application/pdf", "video/mp4"] {
            assert!(is_inline(inline), "{inline}");
        }
        for attachment in [
            "image/svg+xml",
            "text/html; charset=utf-8",
            "text/plain; charset=utf-8",
            "application/javascript",
            "application/octet-stream",
            "text/xml",
        ] {
            assert!(!is_inline(attachment), "{attachment}");
        }
    }

    #[test]
    fn fallback_extensions() {
        assert_eq!(extension_for(PNG, "image/png").as_deref(), Some("png"));
        assert_eq!(
            extension_for(b"hi", "text/plain; charset=utf-8").as_deref(),
            Some("txt")
        );
        assert_eq!(extension_for(b"\0\x01", "application/octet-stream"), None);
    }
}
