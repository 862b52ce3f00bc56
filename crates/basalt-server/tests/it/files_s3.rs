//! Files on S3-compatible storage, switched on through the settings: moto in server mode
//! on loopback (installed by scripts/test.sh) stands in for the bucket.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::support::scenario::Body;
use crate::support::{TestApp, Who};

/// moto's server, stopped when the test ends (its stdin closes with the test process).
struct Moto {
    port: u16,
    child: Child,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const MOTO: &str = r#"
import os, sys, threading
def watch():
    sys.stdin.buffer.read()
    os._exit(0)
threading.Thread(target=watch, daemon=True).start()
from moto.server import main
main(["-H", "127.0.0.1", "-p", sys.argv[1]])
"#;

/// One plain HTTP request to moto; returns (status, body).
fn s3_http(port: u16, method: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, response))
}

fn start_moto() -> Moto {
    let import = Command::new("python3")
        .args(["-c", "import moto.server"])
        .output()
        .expect("python3");
    assert!(
        import.status.success(),
        "moto is not importable: `python3 -m pip install 'moto[server]'` (scripts/test.sh does)"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("python3")
        .args(["-c", MOTO, &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !s3_http(port, "GET", "/").is_ok_and(|(status, _)| status == 200) {
        assert!(Instant::now() < deadline, "moto did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    Moto { port, child }
}

fn s3_settings(port: u16, bucket: &str) -> serde_json::Value {
    json!({"s3": {"enabled": true, "bucket": bucket, "region": "us-east-1",
        "endpoint": format!("http://127.0.0.1:{port}"), "accessKey": "key", "secret": "secret",
        "forcePathStyle": true}})
}

fn multipart_file(field: &str, filename: &str, content: &[u8]) -> Body {
    let boundary = "s3boundary";
    let mut bytes = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n\r\n"
    )
    .into_bytes();
    bytes.extend_from_slice(content);
    bytes.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    Body::Raw {
        content_type: format!("multipart/form-data; boundary={boundary}"),
        bytes,
    }
}

#[tokio::test]
async fn settings_switch_uploads_to_s3_and_the_test_endpoint_checks_the_bucket() {
    let moto = start_moto();
    let (status, _) = s3_http(moto.port, "PUT", "/uploads").unwrap();
    assert_eq!(status, 200);
    let app = TestApp::spawn().await;
    app.create_collection(
        json!({"name": "docs", "listRule": "", "viewRule": "", "createRule": "",
        "updateRule": "", "deleteRule": "",
        "fields": [{"name": "file", "type": "file", "maxSelect": 1}]}),
    )
    .await;

    // Enabled without what it needs: refused, nothing changes.
    let (status, body) = app
        .request(
            Method::PATCH,
            "/api/settings",
            &Who::Superuser,
            Some(json!({"s3": {"enabled": true}})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["data"]["s3"]["bucket"]["code"], "validation_required");
    let (status, body) = app
        .request(
            Method::POST,
            "/api/settings/test/s3",
            &Who::Superuser,
            Some(json!({"filesystem": "storage"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["message"], "S3 storage filesystem is not enabled.");

    // A bucket that does not exist fails the connection test.
    app.expect(
        200,
        Method::PATCH,
        "/api/settings",
        &Who::Superuser,
        Some(s3_settings(moto.port, "missing-bucket")),
    )
    .await;
    let (status, body) = app
        .request(
            Method::POST,
            "/api/settings/test/s3",
            &Who::Superuser,
            Some(json!({"filesystem": "storage"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Failed to initialize the S3 storage."),
        "{body}"
    );
    // Only superusers may test; a bad filesystem name is a validation error.
    let (status, _) = app
        .request(
            Method::POST,
            "/api/settings/test/s3",
            &Who::Guest,
            Some(json!({"filesystem": "storage"})),
        )
        .await;
    assert!(status == 401 || status == 403, "{status}");
    let (status, body) = app
        .request(
            Method::POST,
            "/api/settings/test/s3",
            &Who::Superuser,
            Some(json!({"filesystem": "other"})),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["data"]["filesystem"]["code"], "validation_in_invalid");

    // The real bucket passes, and uploads now go there instead of the data dir.
    let settings = app
        .expect(
            200,
            Method::PATCH,
            "/api/settings",
            &Who::Superuser,
            Some(s3_settings(moto.port, "uploads")),
        )
        .await;
    assert!(
        settings["s3"].get("secret").is_none(),
        "the secret is never sent back"
    );
    let (status, body) = app
        .request(
            Method::POST,
            "/api/settings/test/s3",
            &Who::Superuser,
            Some(json!({"filesystem": "storage"})),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let (status, record) = app
        .send(
            Method::POST,
            "/api/collections/docs/records",
            &Who::Guest,
            &multipart_file("file", "cloud.txt", b"in the bucket"),
        )
        .await;
    assert_eq!(status, 200, "{record}");
    let name = record["file"].as_str().unwrap().to_string();
    let key = format!(
        "{}/{}/{name}",
        record["collectionId"].as_str().unwrap(),
        record["id"].as_str().unwrap()
    );
    let (_, listing) = s3_http(moto.port, "GET", "/uploads?list-type=2").unwrap();
    assert!(listing.contains(&key), "{listing}");
    let local = app.data_dir().join("storage").join(&key);
    assert!(!local.exists(), "not written to the data dir");
    let url = format!(
        "{}/api/files/docs/{}/{name}",
        app.base,
        record["id"].as_str().unwrap()
    );
    let client = reqwest::Client::new();
    let full = client.get(&url).send().await.unwrap();
    assert_eq!(full.status().as_u16(), 200);
    assert!(full.headers().get("etag").is_some());
    assert_eq!(full.bytes().await.unwrap().as_ref(), b"in the bucket");
    let part = client
        .get(&url)
        .header("range", "bytes=3-5")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status().as_u16(), 206);
    assert_eq!(part.bytes().await.unwrap().as_ref(), b"the");

    // Deleting the record deletes the object.
    app.expect(
        204,
        Method::DELETE,
        &format!(
            "/api/collections/docs/records/{}",
            record["id"].as_str().unwrap()
        ),
        &Who::Guest,
        None,
    )
    .await;
    let (_, listing) = s3_http(moto.port, "GET", "/uploads?list-type=2").unwrap();
    assert!(!listing.contains(&key), "{listing}");

    // Switched off again: uploads are local.
    app.expect(
        200,
        Method::PATCH,
        "/api/settings",
        &Who::Superuser,
        Some(json!({"s3": {"enabled": false}})),
    )
    .await;
    let (status, record) = app
        .send(
            Method::POST,
            "/api/collections/docs/records",
            &Who::Guest,
            &multipart_file("file", "local.txt", b"here"),
        )
        .await;
    assert_eq!(status, 200);
    let local = app
        .data_dir()
        .join("storage")
        .join(record["collectionId"].as_str().unwrap())
        .join(record["id"].as_str().unwrap())
        .join(record["file"].as_str().unwrap());
    assert_eq!(std::fs::read(local).unwrap(), b"here");
}
