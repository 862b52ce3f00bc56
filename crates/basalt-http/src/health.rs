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

async fn health(Caller(info): Caller, extensions: axum::http::Extensions) -> Json<Json_> {
    let ip = extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|p| p.0.ip().to_string())
        .unwrap_or_default();
    let data = if info.is_superuser() {
        json!({"canBackup": false, "realIP": ip, "possibleProxyHeader": ""})
    } else {
        json!({})
    };
    Json(json!({"message": "API is healthy.", "code": 200, "data": data}))
}
