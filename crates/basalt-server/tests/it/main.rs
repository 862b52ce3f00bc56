//! End-to-end tests of the real `basalt` binary over HTTP.
//!
//! Every test starts its own server on 127.0.0.1:0 with a throw-away data dir
//! ([`support::TestApp`]) and checks a table of [`support::Scenario`]s: request, expected
//! status, expected JSON with ids, dates and tokens redacted.
//! `regressions` holds tests for server bugs this suite found, fixed since.
//!
//! Run with `cargo nextest run -p basalt-server` (each test in its own process) or
//! `cargo test -p basalt-server`; a server starts in milliseconds, so no state is shared
//! between tests. On failure the server's log tail is printed with the scenario diff.

#![allow(clippy::unwrap_used, unreachable_pub)]

mod support;

mod auth;
mod bodies;
mod cli;
mod collections;
mod files;
mod files_s3;
mod health;
mod lifecycle;
mod migrate;
mod multinode;
mod oauth2;
mod pg_fault;
mod rate_limits;
mod realtime;
mod realtime_matrix;
mod records;
mod records_list;
mod regressions;
mod relations;
mod robustness;
mod routing;
mod rules;
mod settings;
mod tokens;
