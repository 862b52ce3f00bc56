//! The command line: `--version`, `--help`, and the `superuser` commands (run against the
//! data dir of a running server, like PocketBase allows).

use reqwest::Method;
use serde_json::json;

use crate::support::{TestApp, Who, run_cli, temp_dir};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn version_and_help_succeed() {
    let out = run_cli(&["--version"]);
    assert!(out.status.success());
    assert!(stdout(&out).starts_with("basalt "), "{}", stdout(&out));
    let out = run_cli(&["--help"]);
    assert!(out.status.success());
    for word in ["serve", "superuser"] {
        assert!(stdout(&out).contains(word), "{word} in {}", stdout(&out));
    }
    let out = run_cli(&["serve", "--help"]);
    assert!(out.status.success());
    for flag in [
        "--http",
        "--dir",
        "--origins",
        "--max-body",
        "--synchronous",
    ] {
        assert!(stdout(&out).contains(flag), "{flag} in {}", stdout(&out));
    }
    let out = run_cli(&["superuser", "--help"]);
    assert!(out.status.success());
    for word in ["upsert", "create", "update", "delete"] {
        assert!(stdout(&out).contains(word), "{word} in {}", stdout(&out));
    }
}

#[test]
fn bad_arguments_fail() {
    assert!(!run_cli(&["frobnicate"]).status.success());
    assert!(
        !run_cli(&["serve", "--synchronous", "sometimes"])
            .status
            .success()
    );
    let dir = temp_dir();
    let data = dir.join("data");
    let data = data.to_str().unwrap();
    let out = run_cli(&["serve", "--http", "not-an-address", "--dir", data]);
    assert!(!out.status.success(), "an invalid --http address fails");
    let out = run_cli(&[
        "superuser",
        "upsert",
        "not-an-email",
        "long-enough-1",
        "--dir",
        data,
    ]);
    assert!(!out.status.success(), "an invalid email fails");
    let out = run_cli(&[
        "superuser",
        "upsert",
        "x@example.com",
        "short",
        "--dir",
        data,
    ]);
    assert!(!out.status.success(), "a short password fails");
    crate::support::remove_dir(&dir);
}

#[tokio::test]
async fn superuser_commands_manage_superusers() {
    let app = TestApp::spawn().await;
    let data = app.data_dir();
    let data = data.to_str().unwrap();
    let email = "ops@example.com";
    let login = |password: &'static str| {
        let app = &app;
        async move {
            app.request(
                Method::POST,
                "/api/collections/_superusers/auth-with-password",
                &Who::Guest,
                Some(json!({"identity": email, "password": password})),
            )
            .await
            .0
        }
    };
    let out = run_cli(&[
        "superuser",
        "upsert",
        email,
        "first-password",
        "--dir",
        data,
    ]);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout(&out).contains(email));
    assert_eq!(login("first-password").await, 200);

    let out = run_cli(&[
        "superuser",
        "upsert",
        email,
        "second-password",
        "--dir",
        data,
    ]);
    assert!(out.status.success(), "upsert twice updates: {out:?}");
    assert_eq!(login("second-password").await, 200);
    assert_eq!(login("first-password").await, 400);

    let out = run_cli(&[
        "superuser",
        "create",
        email,
        "third-password",
        "--dir",
        data,
    ]);
    assert!(!out.status.success(), "create of an existing email fails");
    assert_eq!(login("second-password").await, 200, "and changes nothing");

    let out = run_cli(&[
        "superuser",
        "update",
        email,
        "fourth-password",
        "--dir",
        data,
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(login("fourth-password").await, 200);

    let out = run_cli(&[
        "superuser",
        "update",
        "nobody@example.com",
        "x-password",
        "--dir",
        data,
    ]);
    assert!(!out.status.success(), "update of a missing superuser fails");

    let out = run_cli(&[
        "superuser",
        "create",
        "new@example.com",
        "new-password",
        "--dir",
        data,
    ]);
    assert!(out.status.success(), "{out:?}");

    let out = run_cli(&["superuser", "delete", email, "--dir", data]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(login("fourth-password").await, 400, "deleted");

    let (status, list) = app
        .request(
            Method::GET,
            "/api/collections/_superusers/records?fields=email&sort=email",
            &Who::Superuser,
            None,
        )
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(
        list["items"],
        json!([{"email": "new@example.com"}, {"email": "root@example.com"}])
    );
}
