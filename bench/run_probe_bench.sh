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

status=0
"$bin" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
    --benchmark_out="$out" --benchmark_out_format=json "$@" >&2 || status=$?

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
# on-cpu: CPU time over wall time of the timed loops, i.e. how many of the benchmark's threads were
# on a core at once (2.0 at 2 threads = truly parallel; lower = preempted, or blocked in a lock).
print(f"{'benchmark':34} {'threads':>7} {'median ns/event':>16} {'x floor':>8} {'cv':>6}"
      f" {'on-cpu':>7} {'dropped_ratio':>14}")
for (name, threads), ns, dropped, busy in rows:
    ratio = f"{ns / floor[threads]:.2f}" if threads in floor else "-"
    c = f"{100 * cv[(name, threads)]:.1f}%" if (name, threads) in cv else "-"
    d = "-" if dropped is None else f"{dropped:.4f}"
    print(f"{name:34} {threads:>7} {ns:>16.1f} {ratio:>8} {c:>6} {busy:>7.2f} {d:>14}")
ctx = doc.get("context", {})
print(f"\n{ctx.get('date', '')}  {ctx.get('host_name', '')}  {ctx.get('num_cpus', '?')} CPUs"
      f"  load {ctx.get('load_avg', '')}  library {ctx.get('library_build_type', '')}")
EOF
exit $status
