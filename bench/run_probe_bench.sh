#!/usr/bin/env bash
# Runs probe_bench (5 repetitions, medians) and prints each benchmark's median CPU ns per event
# and its ratio to BM_floor at the same thread count, from the same run.
# Usage: bench/run_probe_bench.sh [BUILD_DIR] [extra probe_bench flags...]
#   The JSON goes to BUILD_DIR/bench/probe_bench.json (override with PROBE_BENCH_OUT=FILE).
set -euo pipefail
build=${1:-build}
shift || true
bin="$build/bench/probe_bench"
out=${PROBE_BENCH_OUT:-$build/bench/probe_bench.json}
[ -x "$bin" ] || { echo "run_probe_bench: $bin not found (build it first)" >&2; exit 2; }

# The LTTng-UST peer needs a live session: a private session daemon (no kernel tracer), a
# userspace channel in discard mode writing to memory, the bench's one event enabled. Its
# discarded-event count is reported with the figures. PROBE_BENCH_LTTNG=0 skips it.
lttng_home=""
stop_lttng() {
    [ -n "$lttng_home" ] || return 0
    LTTNG_HOME=$lttng_home lttng destroy plugmon-bench >/dev/null 2>&1 || true
    [ -f "$lttng_home/sessiond.pid" ] && kill "$(cat "$lttng_home/sessiond.pid")" 2>/dev/null || true
    rm -rf "$lttng_home"
    lttng_home=""
}
trap stop_lttng EXIT
if [ "${PROBE_BENCH_LTTNG:-1}" != 0 ] && command -v lttng-sessiond >/dev/null && command -v lttng >/dev/null; then
    lttng_home=$(mktemp -d "${TMPDIR_LTTNG:-/dev/shm}/plugmon-lttng.XXXXXX")
    export LTTNG_HOME=$lttng_home
    lttng-sessiond --daemonize --no-kernel --pidfile "$lttng_home/sessiond.pid" >&2
    lttng create plugmon-bench --output="$lttng_home/trace" >&2
    lttng enable-channel --userspace --subbuf-size=8M --num-subbuf=4 bench >&2
    lttng enable-event --userspace --channel=bench 'plugmon_bench:query' >&2
    lttng start >&2
    export LTTNG_UST_REGISTER_TIMEOUT=-1  # the bench waits until the session daemon has it
else
    echo "run_probe_bench: no LTTng session (lttng-tools not installed or PROBE_BENCH_LTTNG=0)" >&2
fi

status=0
log=$(mktemp)
"$bin" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
    --benchmark_out="$out" --benchmark_out_format=json "$@" 2> >(tee "$log" >&2) >&2 || status=$?
hits=$(sed -n 's/^probe_bench: lttng tracepoints hit: //p' "$log" | tail -1)
rm -f "$log"

lttng_report=""
if [ -n "$lttng_home" ]; then
    lttng stop plugmon-bench >&2
    discarded=$(lttng list plugmon-bench | awk '/Discarded events:/ {s += $3} END {print s + 0}')
    size=$(du -sh "$lttng_home/trace" | cut -f1)
    lttng_report="LTTng session: discard mode, 4 x 8 MiB sub-buffers per CPU, trace $size; tracepoints hit ${hits:-?}, discarded $discarded"
    if [ -n "$hits" ] && [ "$hits" -gt 0 ]; then
        lttng_report+=" ($(awk -v d="$discarded" -v h="$hits" 'BEGIN {printf "%.2f", 100 * d / h}') %)"
    fi
    stop_lttng
fi

python3 - "$out" <<'EOF'
import json, sys

with open(sys.argv[1]) as f:
    doc = json.load(f)
scale = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}
rows, cv = [], {}
for b in doc["benchmarks"]:
    if b.get("error_occurred"):
        print(f"ERROR {b['name']}: {b.get('error_message', '')}")
    if b.get("run_type") != "aggregate":
        continue
    name = b["run_name"].split("/")[0]
    key = (name, int(b["threads"]))
    ns = b["cpu_time"] * scale[b.get("time_unit", "ns")]
    if b["aggregate_name"] == "median":
        wall = b["real_time"] * scale[b.get("time_unit", "ns")]
        rows.append((key, ns, b.get("dropped_ratio"), ns / wall if wall else 0.0))
    elif b["aggregate_name"] == "cv":
        cv[key] = b["cpu_time"]  # coefficient of variation of the CPU time, a fraction
floor = {k[1]: ns for k, ns, _, _ in rows if k[0] == "BM_floor"}
# the same query() call without a statement: the baseline of the statement benchmarks
bare = {k[1]: ns for k, ns, _, _ in rows if k[0] == "BM_probe_query_scope_strings"}
one_thread = {k[0]: ns for k, ns, _, _ in rows if k[1] == 1}
# on-cpu: CPU time over wall time of the timed loops, i.e. how many of the benchmark's threads were
# on a core at once (2.0 at 2 threads = truly parallel; lower = preempted, or blocked in a lock).
# x query(): statement benchmarks over the bare query() at the same thread count; x 1 thread: a
# thread's CPU per event at 2 threads over the same benchmark's at 1 thread.
print(f"{'benchmark':34} {'threads':>7} {'median ns/event':>16} {'x floor':>8} {'x query()':>9}"
      f" {'x 1 thread':>10} {'cv':>6} {'on-cpu':>7} {'dropped_ratio':>14}")
for (name, threads), ns, dropped, busy in rows:
    ratio = f"{ns / floor[threads]:.2f}" if threads in floor else "-"
    to_bare = f"{ns / bare[threads]:.2f}" if "statement" in name and threads in bare else "-"
    scaling = f"{ns / one_thread[name]:.2f}" if threads > 1 and name in one_thread else "-"
    c = f"{100 * cv[(name, threads)]:.1f}%" if (name, threads) in cv else "-"
    d = "-" if dropped is None else f"{dropped:.4f}"
    print(f"{name:34} {threads:>7} {ns:>16.1f} {ratio:>8} {to_bare:>9} {scaling:>10} {c:>6}"
          f" {busy:>7.2f} {d:>14}")
ctx = doc.get("context", {})
print(f"\n{ctx.get('date', '')}  {ctx.get('host_name', '')}  {ctx.get('num_cpus', '?')} CPUs"
      f"  load {ctx.get('load_avg', '')}  library {ctx.get('library_build_type', '')}")
EOF
[ -z "$lttng_report" ] || echo "$lttng_report"
exit $status
