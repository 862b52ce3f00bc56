//! `GET /api/health`.

use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value as Json_, json};

use crate::AppState;
use crate::extract::Caller;

/// Routes of this resource.
pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/api/health", get(health).head(health))
}

async fn health(Caller(info): Caller) -> Json<Json_> {
    let data = if info.is_superuser() {
        json!({"canBackup": false, "realIP": "", "possibleProxyHeader": ""})
    } else {
        json!({})
    };
    Json(json!({"message": "API is healthy.", "code": 200, "data": data}))
}
