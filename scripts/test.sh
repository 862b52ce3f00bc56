#!/usr/bin/env bash
# Runs every test suite: Rust tests (nextest when available), the SDK conformance suite
# against the freshly built binary, and a bounded fuzz run. Installs what a fresh machine lacks.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-nextest >/dev/null 2>&1; then
  cargo install cargo-nextest --locked
fi
if ! command -v node >/dev/null 2>&1; then
  apt-get update && apt-get install -y nodejs npm
fi
# PostgreSQL on loopback is used by the store tests; start it if it is down.
if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
fi

cargo build -p basalt-server
cargo nextest run --workspace --no-fail-fast
cargo test --workspace --doc

BASALT_BIN="$PWD/target/debug/basalt" conformance/run.sh basalt

FUZZ_SECONDS="${FUZZ_SECONDS:-60}" scripts/fuzz.sh
