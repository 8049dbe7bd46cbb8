#!/usr/bin/env bash
# driftwatch demo: an image binary runs quietly, a binary dropped into the container raises
# "Drift Detected (Container Image Modified Binary)".
#
#   scripts/demo.sh [--enforce] [--no-build]
#
# --enforce   run the agent with --enforce: the dropped binary must be stopped before it runs
# --no-build  reuse an existing release binary
# Env: DRIFTWATCH_BIN (agent binary), DRIFTWATCH_LISTEN (default 127.0.0.1:9376).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

ENFORCE=0
BUILD=1
for arg in "$@"; do
    case "$arg" in
    --enforce) ENFORCE=1 ;;
    --no-build) BUILD=0 ;;
    -h | --help)
        sed -n '2,10p' "$0"
        exit 0
        ;;
    *) die "unknown argument: $arg (try --help)" ;;
    esac
done

NS=default # the agent watches the default and k8s.io namespaces
IMAGE_NAME=driftwatch-demo/busybox:1
CID="driftwatch-demo-$$"
LISTEN="${DRIFTWATCH_LISTEN:-127.0.0.1:9376}"
OUT=/tmp/driftwatch-demo.jsonl
AGENT_LOG=/tmp/driftwatch-demo-agent.log
BIN="${DRIFTWATCH_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/driftwatch}"
RULE='Drift Detected (Container Image Modified Binary)'
AGENT_PID=""

cleanup() {
    local rc=$?
    if [[ -n "$AGENT_PID" ]]; then
        log "stopping the agent (SIGTERM)"
        stop_pid "$AGENT_PID" "driftwatch agent"
    fi
    if ctr -n "$NS" containers info "$CID" >/dev/null 2>&1; then
        log "removing demo container $CID"
        remove_container "$NS" "$CID"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cexec() { # cexec ARGS...: run in the demo container
    ctr -n "$NS" task exec --exec-id "demo-$RANDOM$RANDOM" "$CID" "$@"
}

log "step 1/7: dependencies"
"$ROOT/scripts/install-deps.sh"
command -v cargo >/dev/null || die "cargo is required (see the message above)"

if ((BUILD)); then
    log "step 2/7: building the release binary (cargo build --release -p driftwatch)"
    (cd "$ROOT" && cargo build --release -p driftwatch)
else
    log "step 2/7: skipping the build (--no-build)"
fi
[[ -x "$BIN" ]] || die "agent binary not found at $BIN"

log "step 3/7: building and importing the demo image $IMAGE_NAME"
IMAGE="$(cd "$ROOT" && cargo run -q -p driftwatch-testkit --example build-demo-image -- \
    --name "$IMAGE_NAME" --namespace "$NS")"
[[ "$IMAGE" == "$IMAGE_NAME" ]] || die "image import printed unexpected reference: $IMAGE"

log "step 4/7: starting the agent (alerts -> $OUT, log -> $AGENT_LOG)"
rm -f "$OUT"
agent_args=(agent --output-file "$OUT" --listen "$LISTEN")
if ((ENFORCE)); then agent_args+=(--enforce); fi
"$BIN" "${agent_args[@]}" >"$AGENT_LOG" 2>&1 &
AGENT_PID=$!
if ! wait_http_ok "http://$LISTEN/readyz" 60 "$AGENT_PID"; then
    tail -n 30 "$AGENT_LOG" >&2 || true
    die "the agent did not become ready on http://$LISTEN/readyz (log above)"
fi
log "agent ready (pid $AGENT_PID)"

log "step 5/7: starting demo container $CID"
remove_container "$NS" "$CID"
ctr -n "$NS" run -d --null-io "$IMAGE" "$CID" sleep 3600
sleep 1 # let the agent register the new container

log "step 6/7: running an image binary: ls / (no alert expected)"
cexec ls /
# busybox dispatches on its name; a name starting with "busybox" makes it take argv[1].
log "dropping a binary: cp /bin/busybox /tmp/busybox-evil; /tmp/busybox-evil echo pwned"
cexec cp /bin/busybox /tmp/busybox-evil
if cexec /tmp/busybox-evil echo pwned; then
    if ((ENFORCE)); then warn "the dropped binary ran although --enforce was given"; fi
else
    log "the dropped binary was stopped (exit $?)"
fi

log "step 7/7: waiting for the alert"
found=0
for _ in $(seq 50); do
    if grep -qF "$RULE" "$OUT" 2>/dev/null; then
        found=1
        break
    fi
    sleep 0.2
done
echo
echo "---- what the agent printed (stdout, one line per alert) ----"
grep -F 'Drift detected' "$AGENT_LOG" || echo "(none)"
echo
echo "---- the same alerts as JSON lines in $OUT (Falco's shape) ----"
if [[ -s "$OUT" ]]; then
    # Printed as written: jq would round the nanosecond integers through floating point.
    cat "$OUT"
else
    echo "(none)"
fi
echo "------------------------"
if grep -F "$RULE" "$OUT" 2>/dev/null | grep -q '"ls'; then
    warn "an alert mentions ls, an image binary: that is a false positive"
fi
if ((found)); then
    log "OK: '$RULE' was raised for the dropped binary"
else
    tail -n 30 "$AGENT_LOG" >&2 || true
    die "no '$RULE' alert within 10 s (agent log above)"
fi
