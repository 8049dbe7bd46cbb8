#!/bin/sh
# driftwatch diff benchmark: a 100,000-entry upper dir over a 50,000-file image.
# Usage: bench/diff/run.sh [WORKDIR]   (needs root for the whiteouts; builds the release binary)
set -eu
cd "$(dirname "$0")/../.."
DIR=${1:-/tmp/driftwatch-bench-diff}
TARGET=${CARGO_TARGET_DIR:-target}
RUNS=${RUNS:-5}
python3 bench/diff/gen.py "$DIR"
cargo build --release -q -p driftwatch
BIN=$TARGET/release/driftwatch
echo "upper: $(find "$DIR/upper" | wc -l) entries; lower: $(find "$DIR/lower" -type f | wc -l) files"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
timeit() { # prints the median wall time (s) of RUNS runs after one warm-up run
  "$@" >/dev/null 2>&1 || true
  i=0
  while [ $i -lt "$RUNS" ]; do
    s=$(date +%s.%N); "$@" >/dev/null 2>&1 || true; e=$(date +%s.%N)
    echo "$e - $s" | bc
    i=$((i + 1))
  done | median
}
FIND=$(timeit find "$DIR/upper")
DEF=$(timeit "$BIN" diff --json --progress never --upper "$DIR/upper" --lower "$DIR/lower")
NONE=$(timeit "$BIN" diff --json --progress never --hash none --upper "$DIR/upper" --lower "$DIR/lower")
ALL=$(timeit "$BIN" diff --json --progress never --hash all --upper "$DIR/upper" --lower "$DIR/lower")
TABLE=$(timeit "$BIN" diff --progress never --upper "$DIR/upper" --lower "$DIR/lower")
printf '%-36s %8s s  %6s x find\n' "find (floor)" "$FIND" 1.0
for row in "diff --json (default: sha256 changed):$DEF" "diff --json --hash none:$NONE" "diff --json --hash all:$ALL" "diff (table):$TABLE"; do
  name=${row%:*}; t=${row##*:}
  printf '%-36s %8s s  %6.1f x find\n' "$name" "$t" "$(echo "$t / $FIND" | bc -l)"
done
