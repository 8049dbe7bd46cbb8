#!/usr/bin/env bash
# Builds every fuzz target with libFuzzer's coverage instrumentation (stable Rust: the same
# -C flags cargo-fuzz passes, no nightly sanitizers) and runs each for a bounded time.
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 10; 0 = build only)
# A crash stops the script with the input saved under target/fuzz/artifacts/<target>/; turn it
# into a regression test before fixing it.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

seconds=${1:-10}
triple=x86_64-unknown-linux-gnu
flags=(--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table
    -Cllvm-args=-sanitizer-coverage-trace-compares)
# Each fuzz workspace: its manifest and its targets.
workspaces=(crates/driftwatch-rule-lang/fuzz/Cargo.toml crates/driftwatch-audit/fuzz/Cargo.toml)

for manifest in "${workspaces[@]}"; do
    log "building fuzz targets of $manifest"
    RUSTFLAGS="${flags[*]}" cargo build --locked --release --target "$triple" \
        --manifest-path "$manifest" --target-dir target/fuzz
    targets=$(cargo metadata --format-version 1 --no-deps --manifest-path "$manifest" |
        python3 -c 'import json,sys; print(" ".join(t["name"] for p in json.load(sys.stdin)["packages"] for t in p["targets"] if "bin" in t["kind"]))')
    for t in $targets; do
        [[ $seconds -gt 0 ]] || continue
        corpus="target/fuzz/corpus/$t"
        artifacts="target/fuzz/artifacts/$t/"
        mkdir -p "$corpus" "$artifacts"
        log "fuzzing $t for ${seconds}s"
        "target/fuzz/$triple/release/$t" "$corpus" -max_total_time="$seconds" \
            -artifact_prefix="$artifacts" -print_final_stats=1 2>&1 | grep -E '^(stat::number_of_executed_units|#[0-9]+ +DONE)|panicked|SUMMARY' || true
        if compgen -G "$artifacts/crash-*" >/dev/null; then
            die "fuzz target $t crashed: see $artifacts"
        fi
    done
done
