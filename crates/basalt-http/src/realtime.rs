//! `/api/realtime`: PocketBase's server-sent events.
//!
//! `GET` opens the stream: `PB_CONNECT` first, then one message per event, each framed
//! exactly like PocketBase's (`id:<clientId>\nevent:<name>\ndata:<json>\n\n`, no space
//! after the colons). The frames are written as a plain streaming body rather than
//! through axum's `Sse` (which writes `id: ` with a space and builds every event per
//! client): the `event`/`data` part is encoded once by the broker and shared by every
//! client, only the `id:` line is per client, and the messages queued for a client are
//! written in one chunk. `POST` sets a client's subscriptions.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use basalt_core::{ConnectError, Connection, Message};
use futures_util::Stream;
use serde_json::{Value as Json, json};

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{Caller, parse_body};

/// Routes of this resource.
pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/api/realtime", get(connect).post(subscribe))
}

/// The client's address: as the rate limiter decided it (trusted proxy headers
/// applied), else the TCP peer.
type Peer = (
    Option<Extension<crate::ratelimit::ClientIp>>,
    Option<Extension<ConnectInfo<SocketAddr>>>,
);

fn peer_ip(peer: &Peer) -> Option<IpAddr> {
    match peer {
        (Some(Extension(crate::ratelimit::ClientIp(Some(ip)))), _) => Some(*ip),
        (_, connect) => connect
            .as_ref()
            .map(|Extension(ConnectInfo(addr))| addr.ip()),
    }
}

fn refused(status: StatusCode, message: &str) -> Response {
    let body = json!({"data": {}, "message": message, "status": status.as_u16()});
    (status, axum::Json(body)).into_response()
}

async fn connect(State(state): State<AppState>, peer: Peer) -> Response {
    let connection = match state.app.realtime().connect(peer_ip(&peer)) {
        Ok(connection) => connection,
        Err(ConnectError::TooManyForAddress) => {
            return refused(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests.");
        }
        Err(ConnectError::Full) => {
            return refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "Too many realtime connections, try again later.",
            );
        }
    };
    let id_line = format!("id:{}\n", connection.client_id()).into_boxed_str();
    let frames = Frames {
        connection,
        id_line,
        batch: Vec::new(),
    };
    let mut response = Body::from_stream(frames).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// Most messages written in one chunk.
const BATCH: usize = 64;

/// A client's stream body: whatever is queued when it is polled goes out as one chunk,
/// the client's `id:` line before each shared `event:`/`data:` frame.
struct Frames {
    connection: Connection,
    id_line: Box<str>,
    batch: Vec<Message>,
}

impl Stream for Frames {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        match this.connection.poll_recv_many(cx, &mut this.batch, BATCH) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(false) => Poll::Ready(None),
            Poll::Ready(true) => {
                let id_line = this.id_line.as_bytes();
                let size: usize = this
                    .batch
                    .iter()
                    .map(|m| id_line.len() + m.bytes().len())
                    .sum();
                let mut chunk = Vec::with_capacity(size);
                for message in this.batch.drain(..) {
                    chunk.extend_from_slice(id_line);
                    chunk.extend_from_slice(message.bytes());
                }
                Poll::Ready(Some(Ok(Bytes::from(chunk))))
            }
        }
    }
}

const INVALID: &str = "Something went wrong while processing your request.";

/// A form field's value as text (form values arrive type-inferred).
fn form_text(value: &Json) -> Option<String> {
    match value {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        Json::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

async fn subscribe(
    State(state): State<AppState>,
    Caller(info): Caller,
    peer: Peer,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let input = parse_body(&headers, &body, INVALID).await?;
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| {
            let t = t.to_ascii_lowercase();
            t.starts_with("application/x-www-form-urlencoded")
                || t.starts_with("multipart/form-data")
        });
    let client_id = match input.get("clientId") {
        None | Some(Json::Null) => String::new(),
        Some(Json::String(id)) => id.clone(),
        Some(other) if form => form_text(other).ok_or_else(|| ApiError::bad_request(INVALID))?,
        Some(_) => return Err(ApiError::bad_request(INVALID)),
    };
    let subscriptions: Vec<String> = match input.get("subscriptions") {
        None | Some(Json::Null) => Vec::new(),
        Some(Json::Array(items)) => items
            .iter()
            .map(|item| match item {
                Json::String(s) => Some(s.clone()),
                other if form => form_text(other),
                _ => None,
            })
            .collect::<Option<Vec<String>>>()
            .ok_or_else(|| ApiError::bad_request(INVALID))?,
        Some(other) if form => {
            vec![form_text(other).ok_or_else(|| ApiError::bad_request(INVALID))?]
        }
        Some(_) => return Err(ApiError::bad_request(INVALID)),
    };
    state
        .app
        .realtime_subscribe(&client_id, peer_ip(&peer), info.auth, &subscriptions)
        .await?;
    Ok(crate::no_content())
}
