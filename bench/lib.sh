# shellcheck shell=bash
# shellcheck disable=SC2034 # GOALS and fail are read by the scripts that source this file
# What the overhead benchmarks share (sourced after scripts/lib.sh): statistics over
# space-separated samples, the CPU time of a process, starting the agent, and the goal table.

now_ns() { date +%s%N; }

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.4f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
maxof() { tr ' ' '\n' | grep -v '^$' | sort -g | tail -n 1; }
sumof() { tr ' ' '\n' | awk '{ s += $1 } END { print s + 0 }'; }

cpu_ticks() { # utime+stime of PID in clock ticks, robust to spaces in comm
    local stat
    stat=$(<"/proc/$1/stat")
    stat=${stat##*) }
    awk '{ print $12 + $13 }' <<<"$stat"
}

# start_agent LOG [AGENT ARGS...]: start "$BIN agent --output-file /dev/null --listen
# 127.0.0.1:$PORT ARGS..." (stdout to /dev/null, stderr to LOG), set AGENT_PID, and wait until it
# is ready and has seen the running containers.
start_agent() {
    local log=$1
    shift
    "$BIN" agent --output-file /dev/null --listen "127.0.0.1:$PORT" "$@" >/dev/null 2>"$log" &
    AGENT_PID=$!
    local rc=0
    wait_http_ok "http://127.0.0.1:$PORT/readyz" 60 "$AGENT_PID" || rc=$?
    if ((rc)); then
        tail -n 30 "$log" >&2 || true
        die "agent ($*) did not become ready on 127.0.0.1:$PORT (log above)"
    fi
    sleep 1 # let it see the running container
}

metric_sum() { # metric_sum REGEX: sum of the agent's series matching REGEX
    curl -s --max-time 5 "http://127.0.0.1:$PORT/metrics" |
        awk -v re="$1" '$0 ~ re { s += $NF } END { printf "%d\n", s }'
}

GOALS=()
fail=0
goal() { # goal MODE TEXT AWK_CONDITION: records PASS or FAIL (and sets fail=1)
    local v=PASS
    if ! awk "BEGIN { exit !($3) }"; then
        v=FAIL
        fail=1
    fi
    GOALS+=("$(printf '%-8s %-36s %s' "$1" "$2" "$v")")
}

# interleaved_rounds RUNS OUTDIR MODE...: one warm-up run of every mode, then RUNS rounds that
# each run every mode once, in turn (so that drift of the machine hits all modes alike), by
# calling the script's `run_mode MODE` (output discarded, exit status ignored), appending each
# run's wall time in seconds to OUTDIR/MODE.
interleaved_rounds() {
    local runs=$1 out=$2 i=0 m s e
    shift 2
    for m in "$@"; do run_mode "$m" >/dev/null 2>&1 || true; done
    while [ "$i" -lt "$runs" ]; do
        for m in "$@"; do
            s=$(now_ns)
            run_mode "$m" >/dev/null 2>&1 || true
            e=$(now_ns)
            echo "scale=6; ($e - $s) / 1000000000" | bc >>"$out/$m"
        done
        i=$((i + 1))
    done
}
