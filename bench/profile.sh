#!/usr/bin/env bash
# Profile one scenario on one server:
#   bench/profile.sh SCENARIO [SECONDS] [basalt|pocketbase|ceiling] [bench.py options, e.g. --rows 100000]
# SCENARIO: view list list_skiptotal list_auth expand update create delete auth file thumb.
# Starts that server alone with the benchmark's 10k rows, warms up, then runs wrk for SECONDS
# (default 10) while `perf stat` (first half: instructions/cycles/CPU per request) and
# `perf record --call-graph dwarf` (second half) watch the server process. Writes
# bench/.work/profile-TARGET-SCENARIO.txt (summary + top symbols, self and inclusive) and .data.
# Needs perf (Debian: apt-get install linux-perf) and the binaries that bench/run.sh builds.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="$here/.work"
scen="${1:?usage: bench/profile.sh SCENARIO [SECONDS] [TARGET]}"
secs="${2:-10}"
target="${3:-basalt}"
shift $(( $# < 3 ? $# : 3 ))
command -v perf >/dev/null || { apt-get update -qq && apt-get install -y -qq linux-perf >/dev/null; }
for b in basalt pocketbase ceiling; do
  [[ -x "$work/bin/$b" ]] || { echo "missing $work/bin/$b: run bench/run.sh --quick once first" >&2; exit 1; }
done
exec python3 "$here/bench.py" --basalt "$work/bin/basalt" --pocketbase "$work/bin/pocketbase" \
  --ceiling "$work/bin/ceiling" --profile "$scen" --target "$target" --duration "$secs" --big-rows 0 "$@"
