#!/usr/bin/env bash
# End to end through real processes: a plugmon-agent and plugmon-loadgen producer processes at a
# list of rates; for each rate prints events recorded, dropped, the agent's drained count and the
# agent's CPU use. Usage: bench/e2e_rate.sh [BUILD_DIR] [SECONDS] [PROCESSES] RATE...
#   RATE is queries/s per producer process (one thread each).
set -euo pipefail
build=${1:-build}; secs=${2:-10}; procs=${3:-2}; shift 3 || true
rates=("$@"); [ ${#rates[@]} -gt 0 ] || rates=(250000 500000 1000000 2000000)
dir=$(mktemp -d); port=$((20000 + RANDOM % 20000))
trap 'kill $agent 2>/dev/null || true; rm -rf "$dir"' EXIT
"$build/agent/plugmon-agent" --runtime-dir "$dir" --listen "127.0.0.1:$port" --log-level warn &
agent=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
tick=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$agent/stat"; }
metric() { curl -s "http://127.0.0.1:$port/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
printf '%-12s %-6s %14s %12s %12s %9s %10s\n' rate/proc procs recorded dropped drained drop% agent_cpu
for rate in "${rates[@]}"; do
    d0=$(metric plugmon_agent_events_drained_total); c0=$(cpu); t0=$(date +%s.%N)
    out=$(PLUGMON_RUNTIME_DIR=$dir "$build/bench/plugmon-loadgen" --processes "$procs" --threads 1 \
        --rate "$rate" --duration "${secs}s" --plugins 2 --wait-attached 5s --json | tail -1)
    sleep 0.5
    d1=$(metric plugmon_agent_events_drained_total); c1=$(cpu); t1=$(date +%s.%N)
    rec=$(echo "$out" | sed -E 's/.*"recorded":([0-9]+).*/\1/')
    drop=$(echo "$out" | sed -E 's/.*"dropped":([0-9]+).*/\1/')
    awk -v r="$rate" -v p="$procs" -v rec="$rec" -v drop="$drop" -v d="$((d1 - d0))" \
        -v c="$(( c1 - c0 ))" -v tick="$tick" -v t0="$t0" -v t1="$t1" 'BEGIN {
        printf "%-12d %-6d %14d %12d %12d %8.3f%% %9.1f%%\n", r, p, rec, drop, d,
               rec ? 100 * drop / rec : 0, 100 * (c / tick) / (t1 - t0) }'
done
