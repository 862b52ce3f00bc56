//! The server process: first start, graceful shutdown with a request in flight, restart
//! on the same data dir, and durability of an acknowledged write across SIGKILL.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::support::{TestApp, Who, raw_json, raw_status, run_cli, temp_dir};

async fn app_with_posts() -> TestApp {
    let app = TestApp::spawn().await;
    app.create_collection(json!({
        "name": "posts", "listRule": "", "viewRule": "",
        "fields": [{"name": "title", "type": "text"}]
    }))
    .await;
    app
}

#[tokio::test]
async fn first_start_creates_the_database_and_a_busy_port_fails() {
    let app = TestApp::spawn().await;
    assert!(app.data_dir().join("data.db").is_file());
    let dir = temp_dir();
    let out = run_cli(&[
        "serve",
        "--http",
        &app.addr.to_string(),
        "--dir",
        dir.join("data").to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "a busy port is an error");
    crate::support::remove_dir(&dir);
}

#[tokio::test]
async fn sigterm_lets_the_in_flight_request_finish() {
    let mut app = app_with_posts().await;
    let body = json!({"title": "in flight"}).to_string();
    let (first, rest) = body.split_at(body.len() / 2);
    // `Expect: 100-continue` makes the server say when the handler starts reading the body,
    // so the signal provably arrives while the request is in flight.
    let head = format!(
        "POST /api/collections/posts/records HTTP/1.1\r\nHost: localhost\r\n\
         Authorization: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Expect: 100-continue\r\nConnection: close\r\n\r\n",
        app.superuser_token(),
        body.len()
    );
    let mut stream = std::net::TcpStream::connect(app.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    let mut interim = Vec::new();
    let mut byte = [0u8; 1];
    while !interim.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).expect("reading 100 Continue");
        interim.push(byte[0]);
    }
    let interim = String::from_utf8_lossy(&interim).to_string();
    assert!(interim.starts_with("HTTP/1.1 100"), "{interim}");
    stream.write_all(first.as_bytes()).unwrap();
    stream.flush().unwrap();
    app.sigterm();
    // Shutdown has begun once new connections are refused.
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(app.addr).is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stream.write_all(rest.as_bytes()).unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    assert_eq!(raw_status(&response), 200, "{response}");
    let record = raw_json(&response);
    assert_eq!(record["title"], "in flight", "{response}");
    let status = app.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "exit status {status}:\n{}", app.log());
    app.start().await;
    let id = record["id"].as_str().unwrap();
    let stored = app
        .expect(
            200,
            Method::GET,
            &format!("/api/collections/posts/records/{id}"),
            &Who::Guest,
            None,
        )
        .await;
    assert_eq!(stored["title"], "in flight");
}

#[tokio::test]
async fn data_survives_a_restart() {
    let mut app = app_with_posts().await;
    let record = app.create_record("posts", json!({"title": "kept"})).await;
    app.expect(
        200,
        Method::PATCH,
        "/api/settings",
        &Who::Superuser,
        Some(json!({"meta": {"appName": "Restarted"}})),
    )
    .await;
    let alice = app.add_user("alice", "alice-password").await;
    app.stop().await;
    app.start().await;
    let id = record["id"].as_str().unwrap();
    let stored = app
        .expect(
            200,
            Method::GET,
            &format!("/api/collections/posts/records/{id}"),
            &Who::Guest,
            None,
        )
        .await;
    assert_eq!(stored, record);
    let settings = app
        .expect(200, Method::GET, "/api/settings", &Who::Superuser, None)
        .await;
    assert_eq!(
        settings["meta"]["appName"], "Restarted",
        "tokens survive too"
    );
    let me = app
        .expect(
            200,
            Method::GET,
            &format!("/api/collections/users/records/{alice}"),
            &Who::User("alice"),
            None,
        )
        .await;
    assert_eq!(me["email"], "alice@example.com");
    let collection = app
        .expect(
            200,
            Method::GET,
            "/api/collections/posts",
            &Who::Superuser,
            None,
        )
        .await;
    assert_eq!(collection["listRule"], "");
}

#[tokio::test]
async fn an_acknowledged_write_survives_sigkill() {
    let mut app = app_with_posts().await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let record = app
            .create_record("posts", json!({"title": format!("durable {n}")}))
            .await;
        ids.push(record["id"].as_str().unwrap().to_string());
    }
    app.expect(
        200,
        Method::PATCH,
        &format!("/api/collections/posts/records/{}", ids[0]),
        &Who::Superuser,
        Some(json!({"title": "updated"})),
    )
    .await;
    app.expect(
        204,
        Method::DELETE,
        &format!("/api/collections/posts/records/{}", ids[1]),
        &Who::Superuser,
        None,
    )
    .await;
    app.kill();
    app.start().await;
    let list = app
        .expect(
            200,
            Method::GET,
            "/api/collections/posts/records?fields=title",
            &Who::Guest,
            None,
        )
        .await;
    assert_eq!(
        list["items"],
        json!([{"title": "updated"}, {"title": "durable 2"}, {"title": "durable 3"}, {"title": "durable 4"}])
    );
}

#[tokio::test]
async fn sigint_also_shuts_down_cleanly_and_synchronous_normal_serves() {
    let mut app = TestApp::spawn_with(&["--synchronous", "normal"]).await;
    app.create_collection(json!({"name": "posts", "listRule": "",
                                 "fields": [{"name": "title", "type": "text"}]}))
        .await;
    app.create_record("posts", json!({"title": "normal"})).await;
    let status = std::process::Command::new("kill")
        .args(["-INT", &app.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = app.wait_exit(Duration::from_secs(10)).await;
    assert!(status.success(), "exit status {status}:\n{}", app.log());
    app.start().await;
    let list = app
        .expect(
            200,
            Method::GET,
            "/api/collections/posts/records",
            &Who::Guest,
            None,
        )
        .await;
    assert_eq!(list["items"][0]["title"], "normal");
}
