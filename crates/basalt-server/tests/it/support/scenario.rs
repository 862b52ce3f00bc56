//! The scenario table: one request, the expected status and the expected JSON (a subset
//! or a snapshot, both compared after redaction), checked by one [`check`] function.

use reqwest::Method;
use serde_json::Value as Json;

use super::redact::{mismatches, redact};
use super::{TestApp, Who};

/// A request body.
#[derive(Clone, Debug)]
pub enum Body {
    /// No body.
    None,
    /// `application/json`.
    Json(Json),
    /// Bytes with an explicit `Content-Type` (empty = no header).
    Raw {
        /// The `Content-Type` header.
        content_type: String,
        /// The body.
        bytes: Vec<u8>,
    },
}

/// What the response body must look like.
#[derive(Clone, Debug)]
pub enum Expect {
    /// Only the status is checked.
    Anything,
    /// Every expected key must be present and match; extra keys are fine.
    Subset(Json),
    /// Same keys and values after redaction.
    Snapshot(Json),
    /// An empty body (204).
    Empty,
}

/// One row of a scenario table.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Shown in failure messages.
    pub name: String,
    /// HTTP method.
    pub method: Method,
    /// Path and query.
    pub path: String,
    /// Caller.
    pub token: Who,
    /// Request body.
    pub body: Body,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// Expected status.
    pub status: u16,
    /// Expected body.
    pub expect: Expect,
}

impl Scenario {
    /// A guest request expecting 200 and any body.
    pub fn new(name: impl Into<String>, method: Method, path: impl Into<String>) -> Scenario {
        Scenario {
            name: name.into(),
            method,
            path: path.into(),
            token: Who::Guest,
            body: Body::None,
            headers: Vec::new(),
            status: 200,
            expect: Expect::Anything,
        }
    }

    /// Sets the caller.
    pub fn who(mut self, who: Who) -> Scenario {
        self.token = who;
        self
    }

    /// Sets a JSON body.
    pub fn json(mut self, body: Json) -> Scenario {
        self.body = Body::Json(body);
        self
    }

    /// Sets a raw body with a content type.
    pub fn raw(mut self, content_type: &str, bytes: impl Into<Vec<u8>>) -> Scenario {
        self.body = Body::Raw {
            content_type: content_type.to_string(),
            bytes: bytes.into(),
        };
        self
    }

    /// Adds a request header.
    pub fn header(mut self, name: &str, value: &str) -> Scenario {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Sets the expected status.
    pub fn status(mut self, status: u16) -> Scenario {
        self.status = status;
        self
    }

    /// Expects a subset of the body.
    pub fn subset(mut self, expected: Json) -> Scenario {
        self.expect = Expect::Subset(expected);
        self
    }

    /// Expects exactly this body after redaction.
    pub fn snapshot(mut self, expected: Json) -> Scenario {
        self.expect = Expect::Snapshot(expected);
        self
    }

    /// Expects a 204 with an empty body.
    pub fn no_content(mut self) -> Scenario {
        self.status = 204;
        self.expect = Expect::Empty;
        self
    }

    /// Expects PocketBase's error body with `data: {}` and any message.
    pub fn error_any_message(self, status: u16) -> Scenario {
        self.error(status, super::redact::ANY)
    }

    /// Expects PocketBase's error body with `data: {}`.
    pub fn error(self, status: u16, message: &str) -> Scenario {
        self.status(status).snapshot(serde_json::json!({
            "status": status,
            "message": message,
            "data": {},
        }))
    }
}

/// `GET` scenario.
pub fn get(name: &str, path: impl Into<String>) -> Scenario {
    Scenario::new(name, Method::GET, path)
}

/// `POST` scenario.
pub fn post(name: &str, path: impl Into<String>) -> Scenario {
    Scenario::new(name, Method::POST, path)
}

/// `PATCH` scenario.
pub fn patch(name: &str, path: impl Into<String>) -> Scenario {
    Scenario::new(name, Method::PATCH, path)
}

/// `DELETE` scenario.
pub fn delete(name: &str, path: impl Into<String>) -> Scenario {
    Scenario::new(name, Method::DELETE, path)
}

/// `PUT` scenario.
pub fn put(name: &str, path: impl Into<String>) -> Scenario {
    Scenario::new(name, Method::PUT, path)
}

/// Runs the scenarios in order (later rows may depend on earlier writes) and panics
/// with every failure, each naming its scenario.
pub async fn check(app: &TestApp, scenarios: Vec<Scenario>) {
    let mut failures = Vec::new();
    for scenario in &scenarios {
        if let Some(failure) = run_one(app, scenario).await {
            failures.push(failure);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} scenarios failed:\n\n{}",
        failures.len(),
        scenarios.len(),
        failures.join("\n\n")
    );
}

async fn run_one(app: &TestApp, scenario: &Scenario) -> Option<String> {
    let (status, body) = app
        .send_with_headers(
            scenario.method.clone(),
            &scenario.path,
            &scenario.token,
            &scenario.body,
            &scenario.headers,
        )
        .await;
    let mut problems = Vec::new();
    if status != scenario.status {
        problems.push(format!(
            "status: expected {}, got {status}",
            scenario.status
        ));
    }
    let redacted = redact(&body);
    match &scenario.expect {
        Expect::Anything => {}
        Expect::Empty => {
            if !body.is_null() {
                problems.push(format!("body: expected empty, got {body}"));
            }
        }
        Expect::Subset(expected) => {
            problems.extend(mismatches(&redact(expected), &redacted, false))
        }
        Expect::Snapshot(expected) => {
            problems.extend(mismatches(&redact(expected), &redacted, true))
        }
    }
    if problems.is_empty() {
        return None;
    }
    Some(format!(
        "scenario `{}` ({} {} as {:?}):\n  {}\n  actual body: {}",
        scenario.name,
        scenario.method,
        scenario.path,
        scenario.token,
        problems.join("\n  "),
        redacted
    ))
}
