#!/usr/bin/env bash
# Runs plugmon end to end on this machine: installs the dependencies, builds the agent and the
# load generator, starts the agent on a private runtime directory, drives a demo workload of
# simulated plugin processes through it, and shows the metrics the agent exports.
#
#   bash deploy/quickstart.sh          # 30 s demo, then stop everything
#   bash deploy/quickstart.sh --keep   # leave the agent running afterwards, until Ctrl-C
#
# Environment: PORT (HTTP listener, default 9464), DURATION (workload, default 30s),
# PLUGMON_BUILD_JOBS (default 2), PLUGMON_SKIP_DEPS=1 (do not check Debian packages).
set -euo pipefail
script=$(realpath "${BASH_SOURCE[0]}")
cd "$(dirname "$script")/.."

keep=0
for arg in "$@"; do
    case $arg in
        --keep) keep=1 ;;
        -h | --help) sed -n '2,10s/^# \{0,1\}//p' "$script"; exit 0 ;;
        *) echo "quickstart: unknown argument: $arg (try --help)" >&2; exit 2 ;;
    esac
done
port=${PORT:-9464}
duration=${DURATION:-30s}
url="http://127.0.0.1:$port"

say() { printf '\n== %s\n' "$*"; }
# Prints the metric lines matching an extended regex (at most $2 of them); never fails.
sample() {
    local body
    body=$(curl -s --max-time 5 "$url/metrics" || true)
    grep -E "$1" <<<"$body" | head -n "${2:-15}" || true
}

# shellcheck source-path=SCRIPTDIR/..
source .ci/deps.sh

say "build (preset default: plugmon-agent, plugmon-loadgen, plugmonctl)"
cmake --preset default >/dev/null
cmake --build --preset default -j "${PLUGMON_BUILD_JOBS:-2}" \
    --target plugmon-agent plugmon-loadgen plugmonctl

if curl -s --max-time 2 -o /dev/null "$url/healthz"; then
    echo "quickstart: something already answers on $url; stop it or choose another PORT=" >&2
    exit 1
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/plugmon-quickstart.XXXXXX")
chmod 755 "$dir"
agent_pid=
loadgen_pid=
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n $loadgen_pid ]] && kill -0 "$loadgen_pid" 2>/dev/null; then
        kill -TERM "$loadgen_pid" 2>/dev/null || true
        wait "$loadgen_pid" 2>/dev/null || true
    fi
    if [[ -n $agent_pid ]] && kill -0 "$agent_pid" 2>/dev/null; then
        kill -TERM "$agent_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$agent_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$agent_pid" 2>/dev/null || true
        wait "$agent_pid" 2>/dev/null || true
        echo "agent stopped"
    fi
    if ((rc == 0)); then
        rm -rf "$dir"
    else
        echo "quickstart: failed (status $rc); logs kept in $dir" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "start the agent (runtime dir $dir, HTTP $url)"
# 2 s windows and a 50 ms slow-query threshold, so the short demo shows percentiles and slow queries
build/agent/plugmon-agent --runtime-dir "$dir" --listen "127.0.0.1:$port" --flush-interval 2s \
    --slow-query-threshold 50ms >"$dir/agent.log" 2>&1 &
agent_pid=$!
ready=0
for _ in $(seq 100); do
    if curl -sf --max-time 1 -o /dev/null "$url/readyz"; then
        ready=1
        break
    fi
    kill -0 "$agent_pid" 2>/dev/null || break
    sleep 0.1
done
if ((!ready)); then
    if kill -0 "$agent_pid" 2>/dev/null; then
        echo "quickstart: the agent did not become ready on $url/readyz within 10 s" >&2
    else
        wait "$agent_pid" && st=0 || st=$?
        agent_pid=
        echo "quickstart: the agent exited (status $st) before it was ready" >&2
    fi
    echo "--- last lines of $dir/agent.log:" >&2
    tail -n 20 "$dir/agent.log" >&2 || true
    exit 1
fi
echo "agent ready (pid $agent_pid): $(curl -s --max-time 2 "$url/readyz")"

say "start the demo workload for $duration: 2 processes x 2 threads, 2000 queries/s per thread"
PLUGMON_RUNTIME_DIR=$dir build/bench/plugmon-loadgen --processes 2 --threads 2 --rate 2000 \
    --duration "$duration" --plugins 3 --tables 4 --tenants 3 --error-ratio 0.02 \
    --mix mixed --statements 3 --slow-every 500 --slow-duration 120ms --alloc-bytes 4096 \
    --wait-attached 5s >"$dir/loadgen.log" 2>&1 &
loadgen_pid=$!

# Show a first sample as soon as the agent exports query counters (at most ~10 s).
for _ in $(seq 50); do
    [[ -n $(sample '^plugmon_queries_total' 1) ]] && break
    kill -0 "$loadgen_pid" 2>/dev/null || break
    sleep 0.2
done
say "metrics: $url/metrics   (health: $url/healthz, ready: $url/readyz, API: $url/api/v1/plugins)"
echo "\$ curl -s $url/metrics | grep -E '^plugmon_queries_total' | head -15"
sample '^plugmon_queries_total' 15

sleep 3  # a closed window or two, for per-window percentiles
say "live view: plugmonctl top (one frame; interactive in a terminal)"
build/agent/plugmonctl --agent "127.0.0.1:$port" top --iterations 1 || true
say "slow queries, grouped by normalised statement: $url/api/v1/slow-queries"
curl -s --max-time 5 "$url/api/v1/slow-queries?limit=2" | head -40 || true

say "waiting for the workload to finish ($duration)"
loadgen_status=0
wait "$loadgen_pid" || loadgen_status=$?
loadgen_pid=
echo "--- loadgen summary (exit status $loadgen_status):"
cat "$dir/loadgen.log"

# Let the agent drain what the last processes handed over at exit.
sleep 1
say "final sample"
sample '^plugmon_queries_total' 15
echo
sample '^plugmon_(agent_events_drained_total|ring_events_dropped_total|producers)' 20
echo
build/agent/plugmonctl --agent "127.0.0.1:$port" status || true

if ((loadgen_status != 0)); then
    echo "quickstart: the workload failed (status $loadgen_status)" >&2
    exit 1
fi
drained=$(sample '^plugmon_agent_events_drained_total ' 1)
drained=${drained##* }
if [[ -z $drained || $drained == 0 ]]; then
    echo "quickstart: the agent drained no events (plugmon_agent_events_drained_total=${drained:-missing})" >&2
    echo "--- last lines of $dir/agent.log:" >&2
    tail -n 20 "$dir/agent.log" >&2 || true
    exit 1
fi

if ((keep)); then
    say "the agent keeps running on $url (runtime dir $dir); Ctrl-C stops it"
    echo "plugins can report to it with: PLUGMON_RUNTIME_DIR=$dir <your program>"
    trap 'exit 0' INT
    wait "$agent_pid" || true
    agent_pid=
else
    say "done; run with --keep to leave the agent running"
fi
