# shellcheck shell=bash
# Helpers shared by scripts/ and bench/ (sourced, not executed).

DRIFTWATCH_CONTAINERD_SOCK="${DRIFTWATCH_CONTAINERD_SOCK:-/run/containerd/containerd.sock}"
DRIFTWATCH_CONTAINERD_LOG="${DRIFTWATCH_CONTAINERD_LOG:-/tmp/driftwatch-containerd.log}"

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# ctr_answers: true when containerd answers on the socket.
ctr_answers() {
    ctr --address "$DRIFTWATCH_CONTAINERD_SOCK" --connect-timeout 2s version >/dev/null 2>&1
}

# ensure_containerd: start containerd in the background unless it already answers; wait
# up to 20 s for it. Prints what it did.
ensure_containerd() {
    command -v ctr >/dev/null || die "ctr not found: run scripts/install-deps.sh"
    if ctr_answers; then
        log "containerd already answers on $DRIFTWATCH_CONTAINERD_SOCK"
        return 0
    fi
    if grep -qsx containerd /proc/[0-9]*/comm; then
        log "a containerd process exists but does not answer yet; waiting for it"
    else
        command -v containerd >/dev/null || die "containerd not found: run scripts/install-deps.sh"
        log "starting containerd in the background (log: $DRIFTWATCH_CONTAINERD_LOG)"
        setsid containerd --address "$DRIFTWATCH_CONTAINERD_SOCK" \
            >>"$DRIFTWATCH_CONTAINERD_LOG" 2>&1 </dev/null &
    fi
    local i
    for ((i = 0; i < 100; i++)); do
        if ctr_answers; then
            log "containerd is ready"
            return 0
        fi
        sleep 0.2
    done
    tail -n 20 "$DRIFTWATCH_CONTAINERD_LOG" >&2 || true
    die "containerd did not answer within 20 s (log above: $DRIFTWATCH_CONTAINERD_LOG)"
}

# wait_http_ok URL TIMEOUT_S [PID]: poll URL until it returns 200; fail early when PID dies.
wait_http_ok() {
    local url=$1 timeout=$2 pid=${3:-} i
    for ((i = 0; i < timeout * 5; i++)); do
        if [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" 2>/dev/null)" == 200 ]]; then
            return 0
        fi
        if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
            return 2
        fi
        sleep 0.2
    done
    return 1
}

# stop_pid PID [NAME]: SIGTERM, wait up to 10 s, then SIGKILL.
stop_pid() {
    local pid=$1 name=${2:-process} i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || {
            wait "$pid" 2>/dev/null || true
            return 0
        }
        sleep 0.2
    done
    warn "$name (pid $pid) ignored SIGTERM for 10 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# remove_container NS ID: kill and remove a container, ignoring errors.
remove_container() {
    ctr -n "$1" task rm -f "$2" >/dev/null 2>&1 || true
    ctr -n "$1" containers rm "$2" >/dev/null 2>&1 || true
}
