#!/usr/bin/env bash
# driftwatch audit benchmark: 1,000 generated manifests (goal: audit ≤ 1 s).
# Usage: bench/audit/run.sh [WORKDIR]   (builds the release binary)
# Env: RUNS (rounds, default 9), N (manifests, default 1000), BIN (binary to time: skips the
# build), BASE (a second binary, e.g. an older build, timed in the same rounds as "base-*").
# Every round runs every mode once, in turn (interleaved), after one warm-up round; each mode's
# result is the median of its rounds. `cat` (reading the same files) is the floor.
set -eu
cd "$(dirname "$0")/../.."
DIR=${1:-/tmp/driftwatch-bench-audit}
TARGET=${CARGO_TARGET_DIR:-target}
RUNS=${RUNS:-9}
N=${N:-1000}
python3 bench/audit/gen.py "$DIR" "$N"
if [ -z "${BIN:-}" ]; then
  cargo build --release -q -p driftwatch
  BIN=$TARGET/release/driftwatch
fi
echo "manifests: $(find "$DIR/manifests" -type f | wc -l) files, $(wc -c <"$DIR/all.yaml") bytes in one stream"
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

modes="cat dir-table dir-json dir-sarif stdin-table"
[ -n "${BASE:-}" ] && modes="$modes base-dir-table base-stdin-table"
run_mode() { # $1 = mode; audit exits 1 (findings): that is expected
  case $1 in
    cat) cat "$DIR"/manifests/* ;;
    dir-table) "$BIN" audit -f "$DIR/manifests" ;;
    dir-json) "$BIN" audit --json -f "$DIR/manifests" ;;
    dir-sarif) "$BIN" audit --sarif -f "$DIR/manifests" ;;
    stdin-table) "$BIN" audit -f - <"$DIR/all.yaml" ;;
    base-dir-table) "$BASE" audit -f "$DIR/manifests" ;;
    base-stdin-table) "$BASE" audit -f - <"$DIR/all.yaml" ;;
  esac
}
# A run that is neither 0 nor 1 is an error, not a measurement (this is also the warm-up).
for m in $modes; do
  rc=0; run_mode "$m" >/dev/null 2>"$OUT/err" || rc=$?
  if [ "$rc" -gt 1 ]; then echo "$m failed (exit $rc):" >&2; cat "$OUT/err" >&2; exit 2; fi
done
# shellcheck source=bench/lib.sh
. bench/lib.sh
# shellcheck disable=SC2086 # $modes is a list of words
interleaved_rounds "$RUNS" "$OUT" $modes
printf '%-18s %9s %9s\n' mode median_s max_s
fail=0
for m in $modes; do
  t=$(median <"$OUT/$m")
  mx=$(sort -n "$OUT/$m" | tail -n 1)
  printf '%-18s %9.3f %9.3f\n' "$m" "$t" "$mx"
  case $m in
    dir-*|stdin-*) if [ "$(echo "$t > 1.0" | bc)" = 1 ]; then fail=1; fi ;;
  esac
done
if [ "$fail" = 1 ]; then echo "goal audit of $N manifests <= 1 s: FAIL"; exit 1; fi
echo "goal audit of $N manifests <= 1 s: PASS"
