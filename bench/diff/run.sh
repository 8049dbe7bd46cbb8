#!/usr/bin/env bash
# driftwatch diff benchmark: a 100,000-entry upper dir over a 50,000-file image.
# Usage: bench/diff/run.sh [WORKDIR]   (needs root for the whiteouts; builds the release binary)
# Env: RUNS (rounds, default 7), BIN (binary to time: skips the build), BASE (a second binary,
# e.g. an older build, timed in the same rounds as "base").
# Every round runs every mode once, in turn (interleaved), after one warm-up round; each mode's
# result is the median of its rounds.
set -eu
cd "$(dirname "$0")/../.."
DIR=${1:-/tmp/driftwatch-bench-diff}
TARGET=${CARGO_TARGET_DIR:-target}
RUNS=${RUNS:-7}
python3 bench/diff/gen.py "$DIR"
if [ -z "${BIN:-}" ]; then
  cargo build --release -q -p driftwatch
  BIN=$TARGET/release/driftwatch
fi
echo "upper: $(find "$DIR/upper" | wc -l) entries; lower: $(find "$DIR/lower" -type f | wc -l) files"
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

ARGS=(--progress never --upper "$DIR/upper" --lower "$DIR/lower")
modes="find default hash-all hash-none table"
[ -n "${BASE:-}" ] && modes="$modes base-default base-hash-all base-hash-none"
run_mode() { # $1 = mode
  case $1 in
    find) find "$DIR/upper" ;;
    default) "$BIN" diff --json "${ARGS[@]}" ;;
    hash-all) "$BIN" diff --json --hash all "${ARGS[@]}" ;;
    hash-none) "$BIN" diff --json --hash none "${ARGS[@]}" ;;
    table) "$BIN" diff "${ARGS[@]}" ;;
    base-default) "$BASE" diff --json "${ARGS[@]}" ;;
    base-hash-all) "$BASE" diff --json --hash all "${ARGS[@]}" ;;
    base-hash-none) "$BASE" diff --json --hash none "${ARGS[@]}" ;;
  esac
}
# shellcheck source=bench/lib.sh
. bench/lib.sh
# shellcheck disable=SC2086 # $modes is a list of words
interleaved_rounds "$RUNS" "$OUT" $modes
median_of() { sort -n "$1" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
FIND=$(median_of "$OUT/find")
printf '%-16s %9s  %8s\n' mode median_s "x find"
for m in $modes; do
  t=$(median_of "$OUT/$m")
  printf '%-16s %9.3f  %8.1f\n' "$m" "$t" "$(echo "$t / $FIND" | bc -l)"
done
