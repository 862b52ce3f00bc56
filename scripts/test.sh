#!/usr/bin/env bash
# Runs every test suite: Rust tests (nextest when available), the SDK conformance suite
# against the freshly built binary, and a bounded fuzz run. Installs what a fresh machine lacks.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-nextest >/dev/null 2>&1; then
  cargo install cargo-nextest --locked
fi
# The SMTP client links OpenSSL (native-tls): headers and pkg-config at build time.
if ! pkg-config --exists openssl 2>/dev/null; then
  apt-get update && apt-get install -y libssl-dev pkg-config
fi
if ! command -v node >/dev/null 2>&1; then
  apt-get update && apt-get install -y nodejs npm
fi
# The S3 storage tests run moto's S3-compatible server on loopback.
if ! python3 -c 'import moto.server' >/dev/null 2>&1; then
  python3 -m pip install 'moto[server]'
fi
# nginx (Debian package) is the load balancer of the multi-node test; run as a non-daemon.
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  apt-get update && apt-get install -y nginx
fi
# The pg_fault test runs a private PostgreSQL cluster (initdb/pg_ctl as the postgres user).
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  apt-get update && apt-get install -y postgresql
fi
# PostgreSQL on loopback is used by the store tests; start it if it is down.
if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start || true
fi

cargo build -p basalt-server
cargo nextest run --workspace --no-fail-fast
cargo test --workspace --doc

# The SDK conformance suite against the binary, on SQLite and on PostgreSQL.
BASALT_BIN="$PWD/target/debug/basalt" conformance/run.sh basalt
pg_admin="${BASALT_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/test}"
pg_db="basalt_conformance_$$"
psql "$pg_admin" -qc "CREATE DATABASE $pg_db"
trap 'psql "$pg_admin" -qc "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
BASALT_DB="${pg_admin%/*}/$pg_db" BASALT_BIN="$PWD/target/debug/basalt" conformance/run.sh basalt

FUZZ_SECONDS="${FUZZ_SECONDS:-60}" scripts/fuzz.sh
