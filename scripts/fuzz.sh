#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/fuzz_targets/ for FUZZ_SECONDS seconds each
# (default 60) and exits non-zero if any target crashes.
#
# Usage:
#   scripts/fuzz.sh                        # every target, 60 s each (CI budget)
#   scripts/fuzz.sh filter_parse           # only the named target(s)
#   FUZZ_SECONDS=300 scripts/fuzz.sh       # nightly: 5 min per target
#
# Fuzzing longer: raise FUZZ_SECONDS (FUZZ_SECONDS=0 means no time limit, stop with
# Ctrl-C), and pass extra libFuzzer flags through FUZZ_ARGS, for example
#   FUZZ_SECONDS=3600 FUZZ_ARGS="-max_len=4096 -jobs=2 -workers=2" scripts/fuzz.sh filter_parse
# Set FUZZ_KEEP_CORPUS=1 to keep the grown corpus (its path is printed) so that a later
# run can start from it; add the interesting files to fuzz/corpus/<target>/ by hand.
# FUZZ_SANITIZER=none builds without AddressSanitizer (faster; our code has no unsafe).
#
# Why RUSTC_BOOTSTRAP=1: cargo-fuzz passes nightly-only flags (-Zsanitizer=address and
# others) to rustc. The machine has only a stable toolchain, and RUSTC_BOOTSTRAP=1 lets
# stable accept them; without it the build fails with "-Z only accepted on nightly".
#
# Corpora: fuzz/corpus/<target>/ is the committed seed corpus and is only read. New
# inputs found during a run go to a scratch directory under ${TMPDIR:-/tmp}, which is
# deleted afterwards. Crashing inputs are written to fuzz/artifacts/<target>/ (ignored
# by git); replay one with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run <target> fuzz/artifacts/<target>/crash-<hash>
# `cargo test -p basalt-filter` replays the seed corpora without libFuzzer.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

seconds="${FUZZ_SECONDS:-60}"
sanitizer="${FUZZ_SANITIZER:-address}"
read -r -a extra_args <<<"${FUZZ_ARGS:-}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    targets=()
    for file in fuzz/fuzz_targets/*.rs; do
        targets+=("$(basename "$file" .rs)")
    done
fi
if [[ ${#targets[@]} -eq 0 ]]; then
    echo "fuzz.sh: no targets in fuzz/fuzz_targets/" >&2
    exit 1
fi

scratch_root="$(mktemp -d "${TMPDIR:-/tmp}/basalt-fuzz.XXXXXX")"
if [[ "${FUZZ_KEEP_CORPUS:-0}" == "1" ]]; then
    echo "fuzz.sh: grown corpora are kept in $scratch_root" >&2
else
    trap 'rm -rf "$scratch_root"' EXIT
fi

failed=()
for target in "${targets[@]}"; do
    scratch="$scratch_root/$target"
    mkdir -p "$scratch"
    corpora=("$scratch")
    if [[ -d "fuzz/corpus/$target" ]]; then
        corpora+=("fuzz/corpus/$target")
    fi
    log="$scratch_root/$target.log"
    echo "fuzz.sh: $target for ${seconds}s (sanitizer: $sanitizer)" >&2
    if RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer "$sanitizer" "$target" "${corpora[@]}" -- \
        -max_total_time="$seconds" -print_final_stats=1 "${extra_args[@]}" 2>&1 | tee "$log"; then
        summary="$(grep -E '^Done [0-9]+ runs' "$log" | tail -n 1 || true)"
        echo "fuzz.sh: $target ok: ${summary:-no summary line}" >&2
    else
        echo "fuzz.sh: $target FAILED (see fuzz/artifacts/$target/)" >&2
        failed+=("$target")
    fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzz.sh: crashes in: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz.sh: all ${#targets[@]} target(s) ran ${seconds}s without a crash" >&2
