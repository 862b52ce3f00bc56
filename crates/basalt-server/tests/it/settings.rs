//! `GET/PATCH /api/settings` (superusers only).

use reqwest::Method;
use serde_json::json;

use crate::support::scenario::{get, patch};
use crate::support::{TestApp, Who};

const NEED_AUTH: &str = "The request requires valid record authorization token.";
const NOT_ALLOWED: &str = "The authorized record is not allowed to perform this action.";

#[tokio::test]
async fn settings_are_for_superusers_and_validated() {
    let app = TestApp::spawn().await;
    app.add_user("alice", "alice-password").await;
    app.check(vec![
        get("guest get", "/api/settings").error(401, NEED_AUTH),
        get("user get", "/api/settings")
            .who(Who::User("alice"))
            .error(403, NOT_ALLOWED),
        get("superuser gets the defaults", "/api/settings")
            .who(Who::Superuser)
            .subset(json!({
                "meta": {"appName": "Acme", "appURL": "http://localhost:8090",
                         "senderName": "Support", "senderAddress": "support@example.com",
                         "hideControls": false},
                "batch": {"enabled": false, "maxRequests": 50, "timeout": 3, "maxBodySize": 0},
                "rateLimits": {"enabled": false},
                "logs": {"maxDays": 5},
                "smtp": {"enabled": false, "port": 587, "password": "[absent]"},
                "s3": {"enabled": false, "secret": "[absent]"},
                "superuserIPs": [],
                "trustedProxy": {"headers": [], "useLeftmostIP": false},
            })),
        patch("guest patch", "/api/settings")
            .json(json!({"meta": {"appName": "Nope"}}))
            .error(401, NEED_AUTH),
        patch("user patch", "/api/settings")
            .who(Who::User("alice"))
            .json(json!({"meta": {"appName": "Nope"}}))
            .error(403, NOT_ALLOWED),
        patch("blank appName is a nested validation error", "/api/settings")
            .who(Who::Superuser)
            .json(json!({"meta": {"appName": ""}}))
            .status(400)
            .snapshot(json!({
                "status": 400,
                "message": "An error occurred while saving the new settings.",
                "data": {"meta": {"appName": {"code": "validation_required", "message": "Cannot be blank."}}}
            })),
        patch("invalid appURL", "/api/settings")
            .who(Who::Superuser)
            .json(json!({"meta": {"appURL": "not a url"}}))
            .status(400)
            .subset(json!({"data": {"meta": {"appURL": {"code": "validation_is_url"}}}})),
        patch("negative batch.maxRequests", "/api/settings")
            .who(Who::Superuser)
            .json(json!({"batch": {"maxRequests": -1}}))
            .status(400)
            .subset(json!({"data": {"batch": {"maxRequests": {"code": "[any]"}}}})),
        patch("malformed JSON", "/api/settings")
            .who(Who::Superuser)
            .raw("application/json", "{\"meta\":")
            .error(400, "An error occurred while loading the submitted data."),
        get("nothing was written by the failed patches", "/api/settings")
            .who(Who::Superuser)
            .subset(json!({"meta": {"appName": "Acme"}})),
        patch("superuser patch merges", "/api/settings")
            .who(Who::Superuser)
            .json(json!({"meta": {"appName": "Basalt Test"}, "batch": {"enabled": true},
                         "smtp": {"password": "smtp-secret"}}))
            .subset(json!({
                "meta": {"appName": "Basalt Test", "senderName": "Support"},
                "batch": {"enabled": true, "maxRequests": 50},
            })),
        get("the patch persisted", "/api/settings")
            .who(Who::Superuser)
            .subset(json!({"meta": {"appName": "Basalt Test", "senderName": "Support"},
                           "batch": {"enabled": true}})),
    ])
    .await;
    let settings = app
        .expect(200, Method::GET, "/api/settings", &Who::Superuser, None)
        .await;
    let password = &settings["smtp"]["password"];
    assert!(
        password.is_null() || password == "",
        "the SMTP password is write-only: {settings}"
    );
}

/// PocketBase's code and params for a negative `batch.maxRequests`; found by this suite,
/// fixed in 1be5986.
#[tokio::test]
async fn negative_batch_max_requests_uses_pocketbases_code() {
    let app = TestApp::spawn().await;
    app.check(vec![
        patch("negative batch.maxRequests", "/api/settings")
            .who(Who::Superuser)
            .json(json!({"batch": {"maxRequests": -1}}))
            .status(400)
            .subset(json!({
                "message": "An error occurred while saving the new settings.",
                "data": {"batch": {"maxRequests": {
                    "code": "validation_min_greater_equal_than_required",
                    "params": {"threshold": 0}}}},
            })),
    ])
    .await;
}
