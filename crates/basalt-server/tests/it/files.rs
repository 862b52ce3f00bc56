//! Files over HTTP: multipart uploads (replace, append, remove), serving with ranges and
//! conditional requests, thumbs, protected files and file tokens, rule denials that
//! must leave storage untouched, path traversal, and cleanup of dropped files.

use std::path::PathBuf;

use reqwest::Method;
use serde_json::{Value as Json, json};

use crate::support::scenario::Body;
use crate::support::{TestApp, Who, raw_http, raw_status};

/// One multipart part: a text value or a file.
enum Part<'a> {
    Text(&'a str, &'a str),
    File(&'a str, &'a str, &'a [u8]),
}

fn multipart(parts: &[Part<'_>]) -> Body {
    let boundary = "basaltboundary7x";
    let mut bytes = Vec::new();
    for part in parts {
        bytes.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match part {
            Part::Text(name, value) => {
                bytes.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                        .as_bytes(),
                );
            }
            Part::File(name, filename, content) => {
                bytes.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n\
                         Content-Type: application/octet-stream\r\n\r\n"
                    )
                    .as_bytes(),
                );
                bytes.extend_from_slice(content);
                bytes.extend_from_slice(b"\r\n");
            }
        }
    }
    bytes.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    Body::Raw {
        content_type: format!("multipart/form-data; boundary={boundary}"),
        bytes,
    }
}

/// A `w` x `h` PNG: top half red, bottom half blue.
fn png(w: u32, h: u32) -> Vec<u8> {
    let mut image = image::RgbImage::new(w, h);
    for (_, y, pixel) in image.enumerate_pixels_mut() {
        *pixel = if y < h / 2 {
            image::Rgb([255, 0, 0])
        } else {
            image::Rgb([0, 0, 255])
        };
    }
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(image)
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert!(bytes.starts_with(b"\x89PNG"), "not a PNG");
    let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    (w, h)
}

struct Fetched {
    status: u16,
    headers: reqwest::header::HeaderMap,
    bytes: Vec<u8>,
}

impl Fetched {
    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }
}

async fn fetch(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> Fetched {
    let mut builder = app.builder(Method::GET, path, &Who::Guest);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = builder.send().await.unwrap();
    Fetched {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        bytes: response.bytes().await.unwrap().to_vec(),
    }
}

fn file_url(record: &Json, name: &str) -> String {
    format!(
        "/api/files/{}/{}/{name}",
        record["collectionId"].as_str().unwrap(),
        record["id"].as_str().unwrap()
    )
}

/// The record's storage folder on disk.
fn folder(app: &TestApp, record: &Json) -> PathBuf {
    app.data_dir()
        .join("storage")
        .join(record["collectionId"].as_str().unwrap())
        .join(record["id"].as_str().unwrap())
}

/// Every file under the storage root, relative, sorted.
fn stored_files(app: &TestApp) -> Vec<String> {
    fn walk(dir: &std::path::Path, root: &std::path::Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let root = app.data_dir().join("storage");
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    out.sort();
    out
}

fn names(value: &Json) -> Vec<String> {
    match value {
        Json::Array(items) => items
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect(),
        Json::String(s) if !s.is_empty() => vec![s.clone()],
        _ => Vec::new(),
    }
}

fn assert_stored_name(name: &str, base: &str, ext: &str) {
    let (stem, rest) = name.rsplit_once('_').unwrap_or_else(|| panic!("{name}"));
    assert_eq!(stem, base, "{name}");
    let (random, extension) = rest.split_once('.').unwrap_or((rest, ""));
    assert_eq!(random.len(), 10, "{name}");
    assert!(
        random
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
        "{name}"
    );
    assert_eq!(extension, ext, "{name}");
}

async fn docs_app() -> (TestApp, Json) {
    let app = TestApp::spawn().await;
    let collection = app
        .create_collection(json!({
            "name": "docs",
            "listRule": "", "viewRule": "", "createRule": "", "updateRule": "", "deleteRule": "",
            "fields": [
                {"name": "title", "type": "text"},
                {"name": "avatar", "type": "file", "maxSelect": 1, "maxSize": 20000,
                 "mimeTypes": ["image/png", "text/plain"],
                 "thumbs": ["50x50", "50x50t", "50x50b", "50x50f", "0x20", "20x0"]},
                {"name": "papers", "type": "file", "maxSelect": 3}
            ]
        }))
        .await;
    (app, collection)
}

async fn send(app: &TestApp, method: Method, path: &str, who: &Who, body: Body) -> (u16, Json) {
    app.send(method, path, who, &body).await
}

#[tokio::test]
async fn uploads_replace_append_and_remove_files() {
    let (app, _) = docs_app().await;
    let picture = png(40, 30);
    let (status, record) = send(
        &app,
        Method::POST,
        "/api/collections/docs/records",
        &Who::Guest,
        multipart(&[
            Part::Text("title", "first"),
            Part::File("avatar", "My Photo.PNG", &picture),
            Part::File("papers", "a.txt", b"alpha"),
            Part::File("papers", "Report 2024.txt", b"report"),
        ]),
    )
    .await;
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["title"], "first");
    let avatar = record["avatar"].as_str().unwrap().to_string();
    assert_stored_name(&avatar, "my_photo", "PNG");
    let papers = names(&record["papers"]);
    assert_eq!(papers.len(), 2);
    assert!(papers[0].starts_with('a') && papers[0].len() == 1 + 10 + 1 + 10 + 4);
    assert_stored_name(&papers[1], "report_2024", "txt");
    let dir = folder(&app, &record);
    assert_eq!(std::fs::read(dir.join(&avatar)).unwrap(), picture);
    assert_eq!(std::fs::read(dir.join(&papers[1])).unwrap(), b"report");

    // The JSON payload part and repeated text values work next to files.
    let (status, json_payload) = send(
        &app,
        Method::POST,
        "/api/collections/docs/records",
        &Who::Guest,
        multipart(&[
            Part::Text("@jsonPayload", r#"{"title":"from payload"}"#),
            Part::File("papers", "b.txt", b"beta"),
        ]),
    )
    .await;
    assert_eq!(status, 200, "{json_payload}");
    assert_eq!(json_payload["title"], "from payload");
    assert_eq!(names(&json_payload["papers"]).len(), 1);

    let url = format!(
        "/api/collections/docs/records/{}",
        record["id"].as_str().unwrap()
    );
    // A thumb is generated so replacing the file must remove it too.
    let thumb = fetch(
        &app,
        &format!("{}?thumb=50x50", file_url(&record, &avatar)),
        &[],
    )
    .await;
    assert_eq!(png_size(&thumb.bytes), (50, 50));
    assert!(dir.join(format!("thumbs_{avatar}")).is_dir());

    // Replace the single file: the old one and its thumbs are gone.
    let (status, replaced) = send(
        &app,
        Method::PATCH,
        &url,
        &Who::Guest,
        multipart(&[Part::File("avatar", "second.txt", b"second")]),
    )
    .await;
    assert_eq!(status, 200, "{replaced}");
    let second = replaced["avatar"].as_str().unwrap().to_string();
    assert_stored_name(&second, "second", "txt");
    assert!(!dir.join(&avatar).exists());
    assert!(!dir.join(format!("thumbs_{avatar}")).exists());
    assert_eq!(std::fs::read(dir.join(&second)).unwrap(), b"second");

    // Append, prepend, then over the limit (nothing changes, nothing is left behind).
    let (status, appended) = send(
        &app,
        Method::PATCH,
        &url,
        &Who::Guest,
        multipart(&[Part::File("papers+", "c.txt", b"gamma")]),
    )
    .await;
    assert_eq!(status, 200, "{appended}");
    let after_append = names(&appended["papers"]);
    assert_eq!(after_append.len(), 3);
    assert_eq!(&after_append[..2], &papers[..]);
    let before = stored_files(&app);
    let (status, too_many) = send(
        &app,
        Method::PATCH,
        &url,
        &Who::Guest,
        multipart(&[Part::File("+papers", "d.txt", b"delta")]),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        too_many["data"]["papers"]["code"],
        "validation_too_many_files"
    );
    assert_eq!(too_many["data"]["papers"]["params"]["maxSelect"], 3);
    assert_eq!(stored_files(&app), before, "a failed write leaves no file");

    // Remove by name with `field-`: the file goes from storage.
    let (status, removed) = send(
        &app,
        Method::PATCH,
        &url,
        &Who::Guest,
        multipart(&[Part::Text("papers-", &papers[0])]),
    )
    .await;
    assert_eq!(status, 200, "{removed}");
    assert_eq!(names(&removed["papers"]), &after_append[1..]);
    assert!(!dir.join(&papers[0]).exists());

    // Plain field with text names and an upload: keeps the listed names, adds the new.
    let (status, kept) = send(
        &app,
        Method::PATCH,
        &url,
        &Who::Guest,
        multipart(&[
            Part::Text("papers", &after_append[2]),
            Part::File("papers", "e.txt", b"epsilon"),
        ]),
    )
    .await;
    assert_eq!(status, 200, "{kept}");
    let kept_names = names(&kept["papers"]);
    assert_eq!(kept_names.len(), 2);
    assert_eq!(kept_names[0], after_append[2]);
    assert!(!dir.join(&papers[1]).exists(), "unlisted file removed");

    // A name that is neither stored nor uploaded.
    let (status, invalid) = app
        .request(
            Method::PATCH,
            &url,
            &Who::Guest,
            Some(json!({"papers": [kept_names[0], "nope.txt"]})),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        invalid["data"]["papers"],
        json!({"code": "validation_invalid_file", "message": "Invalid new files: [nope.txt].",
               "params": {"invalidFiles": ["nope.txt"]}})
    );

    // Clearing with JSON null empties the field and the storage.
    let (status, cleared) = app
        .request(
            Method::PATCH,
            &url,
            &Who::Guest,
            Some(json!({"papers": null, "avatar": ""})),
        )
        .await;
    assert_eq!(status, 200, "{cleared}");
    assert_eq!(cleared["papers"], json!([]));
    assert_eq!(cleared["avatar"], "");
    assert!(
        std::fs::read_dir(&dir).unwrap().next().is_none(),
        "{:?}",
        stored_files(&app)
    );

    // Deleting the record removes its folder.
    let (status, _) = send(
        &app,
        Method::PATCH,
        &url,
        &Who::Guest,
        multipart(&[Part::File("papers", "f.txt", b"zeta")]),
    )
    .await;
    assert_eq!(status, 200);
    assert!(dir.exists());
    app.expect(204, Method::DELETE, &url, &Who::Guest, None)
        .await;
    assert!(!dir.exists());
}

#[tokio::test]
async fn upload_validation_limits_at_n_and_n_plus_one() {
    let (app, _) = docs_app().await;
    let at_limit = vec![b'x'; 20000];
    let over = vec![b'x'; 20001];
    let (status, ok) = send(
        &app,
        Method::POST,
        "/api/collections/docs/records",
        &Who::Guest,
        multipart(&[Part::File("avatar", "n.txt", &at_limit)]),
    )
    .await;
    assert_eq!(status, 200, "{ok}");
    let before = stored_files(&app);
    let (status, error) = send(
        &app,
        Method::POST,
        "/api/collections/docs/records",
        &Who::Guest,
        multipart(&[Part::File("avatar", "big.txt", &over)]),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        error["data"]["avatar"],
        json!({"code": "validation_file_size_limit",
               "message": "Failed to upload big.txt - the maximum allowed file size is 20000 bytes.",
               "params": {"file": "big.txt", "maxSize": 20000}})
    );
    // HTML is not on the field's mime list (it is sniffed, whatever the name says).
    let (status, error) = send(
        &app,
        Method::POST,
        "/api/collections/docs/records",
        &Who::Guest,
        multipart(&[Part::File(
            "avatar",
            "pic.png",
            b"<html><script>x</script></html>",
        )]),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        error["data"]["avatar"]["code"],
        "validation_invalid_mime_type"
    );
    // maxSelect 3 accepts three and refuses four.
    let three = [
        Part::File("papers", "1.txt", b"1"),
        Part::File("papers", "2.txt", b"2"),
        Part::File("papers", "3.txt", b"3"),
    ];
    let (status, _) = send(
        &app,
        Method::POST,
        "/api/collections/docs/records",
        &Who::Guest,
        multipart(&three),
    )
    .await;
    assert_eq!(status, 200);
    let after_three = stored_files(&app);
    let (status, error) = send(
        &app,
        Method::POST,
        "/api/collections/docs/records",
        &Who::Guest,
        multipart(&[
            Part::File("papers", "1.txt", b"1"),
            Part::File("papers", "2.txt", b"2"),
            Part::File("papers", "3.txt", b"3"),
            Part::File("papers", "4.txt", b"4"),
        ]),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(error["data"]["papers"]["code"], "validation_too_many_files");
    assert_eq!(stored_files(&app), after_three);
    assert_eq!(before.len() + 3, after_three.len());
    // Uploads to fields that are not file fields are ignored.
    let (status, record) = send(
        &app,
        Method::POST,
        "/api/collections/docs/records",
        &Who::Guest,
        multipart(&[Part::File("title", "t.txt", b"text")]),
    )
    .await;
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["title"], "");
    assert_eq!(stored_files(&app), after_three);
}

#[tokio::test]
async fn downloads_carry_safe_headers_ranges_and_validators() {
    let (app, _) = docs_app().await;
    let picture = png(40, 30);
    let (_, record) = send(
        &app,
        Method::POST,
        "/api/collections/docs/records",
        &Who::Guest,
        multipart(&[
            Part::File("avatar", "pic.png", &picture),
            Part::File(
                "papers",
                "page.html",
                b"<html><script>alert(1)</script></html>",
            ),
            Part::File(
                "papers",
                "fake.png",
                b"<html><body>not a picture</body></html>",
            ),
            Part::File(
                "papers",
                "logo.svg",
                b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
            ),
        ]),
    )
    .await;
    let avatar = record["avatar"].as_str().unwrap();
    let papers = names(&record["papers"]);
    let url = file_url(&record, avatar);

    let full = fetch(&app, &url, &[]).await;
    assert_eq!(full.status, 200);
    assert_eq!(full.bytes, picture);
    assert_eq!(full.header("content-type"), "image/png");
    assert_eq!(
        full.header("content-disposition"),
        format!("inline; filename=\"{avatar}\"")
    );
    assert_eq!(full.header("x-content-type-options"), "nosniff");
    assert_eq!(
        full.header("content-security-policy"),
        "default-src 'none'; media-src 'self'; style-src 'unsafe-inline'; sandbox"
    );
    assert_eq!(full.header("accept-ranges"), "bytes");
    assert_eq!(full.header("x-frame-options"), "");
    assert_eq!(full.header("content-length"), picture.len().to_string());
    let etag = full.header("etag");
    let modified = full.header("last-modified");
    assert!(etag.starts_with('"') && !modified.is_empty());

    let download = fetch(&app, &format!("{url}?download=1"), &[]).await;
    assert_eq!(
        download.header("content-disposition"),
        format!("attachment; filename=\"{avatar}\"")
    );
    // Active content is never inline, whatever its name says.
    for (name, content_type) in [
        (&papers[0], "text/html; charset=utf-8"),
        (&papers[1], "text/html; charset=utf-8"),
        (&papers[2], "image/svg+xml"),
    ] {
        let served = fetch(&app, &file_url(&record, name), &[]).await;
        assert_eq!(served.status, 200);
        assert_eq!(served.header("content-type"), content_type, "{name}");
        assert!(
            served
                .header("content-disposition")
                .starts_with("attachment;"),
            "{name}"
        );
        assert_eq!(served.header("x-content-type-options"), "nosniff");
    }

    let size = picture.len();
    let ranges: Vec<(&str, u16, String, std::ops::Range<usize>)> = vec![
        ("bytes=0-9", 206, format!("bytes 0-9/{size}"), 0..10),
        (
            "bytes=-5",
            206,
            format!("bytes {}-{}/{size}", size - 5, size - 1),
            size - 5..size,
        ),
        (
            "bytes=10-",
            206,
            format!("bytes 10-{}/{size}", size - 1),
            10..size,
        ),
        (
            "bytes=5-100000",
            206,
            format!("bytes 5-{}/{size}", size - 1),
            5..size,
        ),
    ];
    for (range, status, content_range, slice) in ranges {
        let got = fetch(&app, &url, &[("range", range)]).await;
        assert_eq!(got.status, status, "{range}");
        assert_eq!(got.header("content-range"), content_range, "{range}");
        assert_eq!(got.bytes, &picture[slice], "{range}");
    }
    let last = format!("bytes={}-", size - 1);
    assert_eq!(fetch(&app, &url, &[("range", &last)]).await.bytes.len(), 1);
    let beyond = format!("bytes={size}-");
    let unsatisfiable = fetch(&app, &url, &[("range", &beyond)]).await;
    assert_eq!(unsatisfiable.status, 416);
    assert_eq!(
        unsatisfiable.header("content-range"),
        format!("bytes */{size}")
    );
    // Several ranges: the whole file.
    assert_eq!(
        fetch(&app, &url, &[("range", "bytes=0-1,4-5")])
            .await
            .status,
        200
    );

    let not_modified = fetch(&app, &url, &[("if-none-match", &etag)]).await;
    assert_eq!(not_modified.status, 304);
    assert!(not_modified.bytes.is_empty());
    assert_eq!(
        fetch(&app, &url, &[("if-none-match", "\"other\"")])
            .await
            .status,
        200
    );
    assert_eq!(
        fetch(&app, &url, &[("if-modified-since", &modified)])
            .await
            .status,
        304
    );
    assert_eq!(
        fetch(
            &app,
            &url,
            &[("if-modified-since", "Mon, 01 Jan 2001 00:00:00 GMT")]
        )
        .await
        .status,
        200
    );
    assert_eq!(
        fetch(&app, &url, &[("if-match", "\"other\"")]).await.status,
        412
    );
    let stale = fetch(
        &app,
        &url,
        &[("range", "bytes=0-1"), ("if-range", "\"old\"")],
    )
    .await;
    assert_eq!((stale.status, stale.bytes.len()), (200, size));
    let fresh = fetch(&app, &url, &[("range", "bytes=0-1"), ("if-range", &etag)]).await;
    assert_eq!((fresh.status, fresh.bytes.len()), (206, 2));

    // Unknown file, record and collection are 404s.
    for (path, message) in [
        (
            file_url(&record, "nope.png"),
            "The requested resource wasn't found.",
        ),
        (
            format!("/api/files/docs/aaaaaaaaaaaaaaa/{avatar}"),
            "The requested resource wasn't found.",
        ),
        (
            format!(
                "/api/files/nosuch/{}/{avatar}",
                record["id"].as_str().unwrap()
            ),
            "Missing or invalid collection context.",
        ),
    ] {
        let missing = fetch(&app, &path, &[]).await;
        assert_eq!(missing.status, 404, "{path}");
        let body: Json = serde_json::from_slice(&missing.bytes).unwrap();
        assert_eq!(body, json!({"status": 404, "message": message, "data": {}}));
    }
}

#[tokio::test]
async fn thumbs_in_every_form_are_made_once_and_fall_back_to_the_original() {
    let (app, _) = docs_app().await;
    let picture = png(200, 100);
    let (_, record) = send(
        &app,
        Method::POST,
        "/api/collections/docs/records",
        &Who::Guest,
        multipart(&[
            Part::File("avatar", "wide.png", &picture),
            Part::File("papers", "notes.txt", b"notes"),
            Part::File("papers", "broken.png", b"\x89PNG\r\n\x1a\nbroken"),
        ]),
    )
    .await;
    let avatar = record["avatar"].as_str().unwrap();
    let url = file_url(&record, avatar);
    let dir = folder(&app, &record);
    for (size, expected) in [
        ("50x50", (50, 50)),
        ("50x50t", (50, 50)),
        ("50x50b", (50, 50)),
        ("50x50f", (50, 25)),
        ("0x20", (40, 20)),
        ("20x0", (20, 10)),
        ("100x100", (100, 100)),
    ] {
        let thumb = fetch(&app, &format!("{url}?thumb={size}"), &[]).await;
        assert_eq!(thumb.status, 200, "{size}");
        assert_eq!(png_size(&thumb.bytes), expected, "{size}");
        assert_eq!(thumb.header("content-type"), "image/png");
        assert_eq!(
            thumb.header("content-disposition"),
            format!("inline; filename=\"{size}_{avatar}\"")
        );
        let cached = dir.join(format!("thumbs_{avatar}/{size}_{avatar}"));
        assert!(cached.is_file(), "{size} cached");
        // Served from the cache afterwards: same bytes, same validator.
        let again = fetch(&app, &format!("{url}?thumb={size}"), &[]).await;
        assert_eq!(again.bytes, thumb.bytes);
        assert_eq!(again.header("etag"), thumb.header("etag"));
    }
    // Sizes not listed, malformed, or on files that cannot have thumbs: the original.
    let papers = names(&record["papers"]);
    for path in [
        format!("{url}?thumb=30x30"),
        format!("{url}?thumb=0x0"),
        format!("{url}?thumb=abc"),
        format!("{url}?thumb=..%2F..%2F50x50"),
        format!("{}?thumb=100x100", file_url(&record, &papers[0])),
        format!("{}?thumb=100x100", file_url(&record, &papers[1])),
    ] {
        let original = fetch(&app, &path, &[]).await;
        assert_eq!(original.status, 200, "{path}");
        assert!(
            original.bytes == picture
                || original.bytes == b"notes"
                || original.bytes.starts_with(b"\x89PNG\r\n\x1a\nbroken"),
            "{path}"
        );
    }
    let thumbs: Vec<String> = stored_files(&app)
        .into_iter()
        .filter(|f| f.contains("thumbs_"))
        .collect();
    assert_eq!(thumbs.len(), 7, "{thumbs:?}");
}

#[tokio::test]
async fn protected_files_need_a_file_token_that_passes_the_view_rule() {
    let app = TestApp::spawn().await;
    let owner = app.add_user("owner", "password123").await;
    app.add_user("other", "password123").await;
    app.create_collection(json!({
        "name": "vault",
        "listRule": "", "viewRule": "owner = @request.auth.id", "createRule": "",
        "fields": [
            {"name": "owner", "type": "text"},
            {"name": "secret", "type": "file", "maxSelect": 1, "protected": true}
        ]
    }))
    .await;
    let (status, record) = send(
        &app,
        Method::POST,
        "/api/collections/vault/records",
        &Who::Guest,
        multipart(&[
            Part::Text("owner", &owner),
            Part::File("secret", "plan.txt", b"the plan"),
        ]),
    )
    .await;
    assert_eq!(status, 200, "{record}");
    let url = file_url(&record, record["secret"].as_str().unwrap());
    let file_token = |who: Who| {
        let app = &app;
        async move {
            let body = app
                .expect(200, Method::POST, "/api/files/token", &who, None)
                .await;
            body["token"].as_str().unwrap().to_string()
        }
    };
    let owner_token = file_token(Who::User("owner")).await;
    let other_token = file_token(Who::User("other")).await;
    let superuser_token = file_token(Who::Superuser).await;
    let claims = crate::support::jwt::claims(&owner_token);
    assert_eq!(claims["type"], "file");
    let auth_token = app.token(&Who::User("owner")).unwrap();

    assert_eq!(fetch(&app, &url, &[]).await.status, 404, "no token");
    let with = |token: &str| format!("{url}?token={token}");
    let served = fetch(&app, &with(&owner_token), &[]).await;
    assert_eq!(served.status, 200);
    assert_eq!(served.bytes, b"the plan");
    assert_eq!(fetch(&app, &with(&superuser_token), &[]).await.status, 200);
    assert_eq!(
        fetch(&app, &with(&other_token), &[]).await.status,
        404,
        "rule fails"
    );
    assert_eq!(
        fetch(&app, &with(&auth_token), &[]).await.status,
        404,
        "an auth token is not a file token"
    );
    assert_eq!(fetch(&app, &with("garbage"), &[]).await.status, 404);
    // The Authorization header is not used for protected files.
    let header = app
        .builder(Method::GET, &url, &Who::User("owner"))
        .send()
        .await
        .unwrap();
    assert_eq!(header.status().as_u16(), 404);
    // Guests get no file token.
    let (status, body) = app
        .request(Method::POST, "/api/files/token", &Who::Guest, None)
        .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        body["message"],
        "The request requires valid record authorization token."
    );
}

#[tokio::test]
async fn denied_and_failed_writes_leave_storage_unchanged() {
    let app = TestApp::spawn().await;
    app.add_user("alice", "password123").await;
    app.create_collection(json!({
        "name": "guarded",
        "listRule": "", "viewRule": "",
        "createRule": "@request.body.title != 'deny'",
        "updateRule": "title = 'open'",
        "deleteRule": null,
        "fields": [
            {"name": "title", "type": "text"},
            {"name": "file", "type": "file", "maxSelect": 1}
        ]
    }))
    .await;
    let create = |title: &'static str, content: &'static [u8]| {
        multipart(&[
            Part::Text("title", title),
            Part::File("file", "f.txt", content),
        ])
    };
    let (status, closed) = send(
        &app,
        Method::POST,
        "/api/collections/guarded/records",
        &Who::Guest,
        create("closed", b"original"),
    )
    .await;
    assert_eq!(status, 200, "{closed}");
    let before = stored_files(&app);
    assert_eq!(before.len(), 1);

    // A create the rule refuses writes nothing that stays.
    let (status, _) = send(
        &app,
        Method::POST,
        "/api/collections/guarded/records",
        &Who::Guest,
        create("deny", b"denied"),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(stored_files(&app), before);

    // An update the rule refuses: 404, the stored bytes and the record unchanged.
    let url = format!(
        "/api/collections/guarded/records/{}",
        closed["id"].as_str().unwrap()
    );
    let (status, _) = send(
        &app,
        Method::PATCH,
        &url,
        &Who::User("alice"),
        multipart(&[Part::File("file", "f.txt", b"replaced")]),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(stored_files(&app), before);
    let stored = folder(&app, &closed).join(closed["file"].as_str().unwrap());
    assert_eq!(std::fs::read(&stored).unwrap(), b"original");
    let (_, reread) = app.request(Method::GET, &url, &Who::Guest, None).await;
    assert_eq!(reread["file"], closed["file"]);

    // An update of a record that does not exist (or with a traversal id) writes nothing.
    for id in ["aaaaaaaaaaaaaaa", "..", "..%2F..%2Fx"] {
        let (status, _) = send(
            &app,
            Method::PATCH,
            &format!("/api/collections/guarded/records/{id}"),
            &Who::Superuser,
            multipart(&[Part::File("file", "f.txt", b"x")]),
        )
        .await;
        assert_eq!(status, 404, "{id}");
    }
    // A delete the rule refuses keeps the file.
    let (status, _) = app.request(Method::DELETE, &url, &Who::Guest, None).await;
    assert_eq!(status, 403);
    assert_eq!(stored_files(&app), before);
    // A unique violation after the upload was stored rolls it back.
    app.request(
        Method::PATCH,
        "/api/collections/guarded",
        &Who::Superuser,
        Some(json!({"indexes": ["CREATE UNIQUE INDEX idx_title ON guarded (title)"]})),
    )
    .await;
    let (status, duplicate) = send(
        &app,
        Method::POST,
        "/api/collections/guarded/records",
        &Who::Guest,
        create("closed", b"dup"),
    )
    .await;
    assert_eq!(status, 400, "{duplicate}");
    assert_eq!(stored_files(&app), before);
}

#[tokio::test]
async fn traversal_attempts_are_404_and_never_leave_storage() {
    let (app, collection) = docs_app().await;
    // A canary next to the storage folder that no request may reach.
    std::fs::write(app.data_dir().join("canary.txt"), b"canary").unwrap();
    let (_, record) = send(
        &app,
        Method::POST,
        "/api/collections/docs/records",
        &Who::Guest,
        multipart(&[Part::File("papers", "ok.txt", b"fine")]),
    )
    .await;
    let name = names(&record["papers"])[0].clone();
    let id = record["id"].as_str().unwrap().to_string();
    let collection_id = collection["id"].as_str().unwrap().to_string();
    let attacks = [
        "../",
        "..\\",
        "%2e%2e%2f",
        "%2e%2e/",
        "..%2f",
        "%2e%2e%5c",
        "..%5c",
        "%252e%252e%252f",
        "%252e%252e%255c",
        "..%252f",
        "%c0%ae%c0%ae%c0%af",
        "....//",
        "..;/",
        "%2e%2e%2f%2e%2e%2f",
        ".%2e/",
        "%2e./",
        "..%00/",
        "%00",
        "/",
        "%2f",
        "\\",
        "%5c",
        "..",
        ".",
    ];
    let mut checked = 0;
    for attack in attacks {
        let canary = format!("{attack}{attack}canary.txt");
        let paths = [
            format!("/api/files/{attack}{collection_id}/{id}/{name}"),
            format!("/api/files/docs/{attack}{id}/{name}"),
            format!("/api/files/docs/{id}/{attack}{name}"),
            format!("/api/files/docs/{id}/{canary}"),
            format!("/api/files/{canary}/{id}/{name}"),
            format!("/api/files/docs/{canary}/{name}"),
            format!("/api/files/docs/{id}/{name}?thumb={attack}100x100"),
        ];
        for path in paths {
            let request =
                format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
            let response = raw_http(app.addr, request.as_bytes());
            assert!(!response.contains("canary"), "{path}: {response}");
            let status = raw_status(&response);
            if path.contains("?thumb=") && status != 400 {
                // The thumb is ignored: the original is served (a request line the
                // HTTP parser refuses is a 400 before routing).
                assert_eq!(status, 200, "{path}");
                assert!(response.ends_with("fine"), "{path}");
            } else if !path.contains("?thumb=") {
                assert_eq!(status, 404, "{path}: {response}");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, attacks.len() * 7);
}

#[tokio::test]
async fn files_go_with_their_field_collection_and_batch_uploads_work() {
    let (app, collection) = docs_app().await;
    app.request(
        Method::PATCH,
        "/api/settings",
        &Who::Superuser,
        Some(json!({"batch": {"enabled": true, "maxRequests": 10}})),
    )
    .await;
    // Batch multipart: files under `requests.<i>.<field>` and `requests[<i>].<field>`.
    let (status, results) = send(
        &app,
        Method::POST,
        "/api/batch",
        &Who::Guest,
        multipart(&[
            Part::Text(
                "@jsonPayload",
                r#"{"requests":[{"method":"POST","url":"/api/collections/docs/records","body":{"title":"b1"}},{"method":"POST","url":"/api/collections/docs/records","body":{"title":"b2"}}]}"#,
            ),
            Part::File("requests.0.papers", "one.txt", b"one"),
            Part::File("requests[1].avatar", "two.txt", b"two"),
        ]),
    )
    .await;
    assert_eq!(status, 200, "{results}");
    let first = &results[0]["body"];
    let second = &results[1]["body"];
    assert_eq!(names(&first["papers"]).len(), 1);
    assert_stored_name(second["avatar"].as_str().unwrap(), "two", "txt");
    let served = fetch(
        &app,
        &file_url(second, second["avatar"].as_str().unwrap()),
        &[],
    )
    .await;
    assert_eq!(served.bytes, b"two");
    // A failing batch leaves none of its uploads.
    let before = stored_files(&app);
    let (status, _) = send(
        &app,
        Method::POST,
        "/api/batch",
        &Who::Guest,
        multipart(&[
            Part::Text(
                "@jsonPayload",
                r#"{"requests":[{"method":"POST","url":"/api/collections/docs/records","body":{}},{"method":"PATCH","url":"/api/collections/docs/records/nosuchrecord123","body":{}}]}"#,
            ),
            Part::File("requests.0.papers", "three.txt", b"three"),
        ]),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(stored_files(&app), before);

    // Removing the file field removes its files; the other field's stay.
    let mut fields = collection["fields"].as_array().unwrap().clone();
    fields.retain(|f| f["name"] != "papers");
    app.expect(
        200,
        Method::PATCH,
        "/api/collections/docs",
        &Who::Superuser,
        Some(json!({"fields": fields})),
    )
    .await;
    let left = stored_files(&app);
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].ends_with(second["avatar"].as_str().unwrap()));
    // Deleting the collection removes the rest.
    app.expect(
        204,
        Method::DELETE,
        "/api/collections/docs",
        &Who::Superuser,
        None,
    )
    .await;
    assert!(stored_files(&app).is_empty());
}

#[tokio::test]
async fn orphans_older_than_an_hour_are_swept_at_start() {
    let (mut app, collection) = docs_app().await;
    let (_, record) = send(
        &app,
        Method::POST,
        "/api/collections/docs/records",
        &Who::Guest,
        multipart(&[Part::File("papers", "keep.txt", b"keep")]),
    )
    .await;
    let dir = folder(&app, &record);
    let collection_dir = app
        .data_dir()
        .join("storage")
        .join(collection["id"].as_str().unwrap());
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 3600);
    let plant = |path: PathBuf, modified: std::time::SystemTime| {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"orphan").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(modified)
            .unwrap();
        path
    };
    let orphans = [
        plant(dir.join("stray_aaaaaaaaaa.txt"), old),
        plant(dir.join("thumbs_stray_aaaaaaaaaa.txt/10x10_stray.txt"), old),
        plant(collection_dir.join("nosuchrecord123/x_aaaaaaaaaa.txt"), old),
        plant(app.data_dir().join("storage/pbc_gone/r/x.txt"), old),
        plant(dir.join(".tmp-leftover"), old),
    ];
    let young = plant(
        dir.join("young_aaaaaaaaaa.txt"),
        std::time::SystemTime::now(),
    );
    app.stop().await;
    app.start().await;
    let kept = dir.join(names(&record["papers"])[0].clone());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while orphans.iter().any(|p| p.exists()) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for orphan in &orphans {
        assert!(!orphan.exists(), "{} swept", orphan.display());
    }
    assert!(kept.exists(), "a referenced file stays");
    assert!(
        young.exists(),
        "a recent unreferenced file stays (it may be an upload in flight)"
    );
}

#[tokio::test]
async fn view_collections_serve_the_source_records_files() {
    let (app, _) = docs_app().await;
    let picture = png(60, 40);
    let (_, record) = send(
        &app,
        Method::POST,
        "/api/collections/docs/records",
        &Who::Guest,
        multipart(&[
            Part::Text("title", "shown"),
            Part::File("avatar", "pic.png", &picture),
            Part::File("papers", "p.txt", b"paper"),
        ]),
    )
    .await;
    let view = app
        .create_collection(
            json!({"name": "gallery", "type": "view", "listRule": "", "viewRule": "",
            "viewQuery": "SELECT d.id, d.title, d.avatar AS image FROM docs d"}),
        )
        .await;
    let image_field = view["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "image")
        .unwrap()
        .clone();
    assert_eq!(image_field["type"], "file");
    let (status, row) = app
        .request(
            Method::GET,
            &format!(
                "/api/collections/gallery/records/{}",
                record["id"].as_str().unwrap()
            ),
            &Who::Guest,
            None,
        )
        .await;
    assert_eq!(status, 200, "{row}");
    let name = row["image"].as_str().unwrap();
    assert_eq!(name, record["avatar"].as_str().unwrap());
    let via_view = fetch(&app, &file_url(&row, name), &[]).await;
    assert_eq!(via_view.status, 200);
    assert_eq!(via_view.bytes, picture);
    let thumb = fetch(
        &app,
        &format!("{}?thumb=100x100", file_url(&row, name)),
        &[],
    )
    .await;
    assert_eq!(png_size(&thumb.bytes), (100, 100));
    // A name the view does not show is not served through it.
    let paper = names(&record["papers"])[0].clone();
    assert_eq!(fetch(&app, &file_url(&row, &paper), &[]).await.status, 404);
    assert_eq!(
        fetch(&app, &file_url(&row, "nope.png"), &[]).await.status,
        404
    );
}
