//! `GET /api/health`.

use serde_json::json;

use crate::support::scenario::{Scenario, get};
use crate::support::{TestApp, Who};

#[tokio::test]
async fn health_answers_guests_users_and_superusers() {
    let app = TestApp::spawn().await;
    app.add_user("alice", "alice-password").await;
    app.check(vec![
        get("guest health", "/api/health").snapshot(json!({
            "code": 200, "message": "API is healthy.", "data": {}
        })),
        get("user health has no details", "/api/health")
            .who(Who::User("alice"))
            .snapshot(json!({"code": 200, "message": "API is healthy.", "data": {}})),
        get("superuser health has details", "/api/health")
            .who(Who::Superuser)
            .subset(json!({
                "code": 200,
                "message": "API is healthy.",
                "data": {"realIP": "127.0.0.1", "possibleProxyHeader": "", "canBackup": "[any]"}
            })),
        get("an invalid token is a guest", "/api/health")
            .who(Who::Token("not-a-token".into()))
            .snapshot(json!({"code": 200, "message": "API is healthy.", "data": {}})),
        Scenario::new("HEAD health", reqwest::Method::HEAD, "/api/health").status(200),
    ])
    .await;
}
