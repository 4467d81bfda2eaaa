#!/usr/bin/env bash
# Runs plugmon end to end on this machine: installs the dependencies, builds the agent, the load
# generator and the demo plugins, starts a private PostgreSQL and the agent storing into it, drives
# simulated plugin processes and demo plugins running real SQL through it, and shows the metrics
# the agent exports, an alert firing and resolving (at the agent and at a real Alertmanager) when a
# plugin misbehaves for a while, and the rollups and alert history it stored in PostgreSQL.
#
#   bash deploy/quickstart.sh          # 30 s demo, then stop everything and remove the database
#   bash deploy/quickstart.sh --keep   # leave the agent and PostgreSQL running, until Ctrl-C
#
# Environment: PORT (HTTP listener, default 9464), AM_PORT (Alertmanager, default 9493),
# DURATION (workload, default 30s),
# PLUGMON_BUILD_JOBS (default 2), PLUGMON_SKIP_DEPS=1 (do not check Debian packages),
# PLUGMON_BUILD_DIR (build there instead of with preset default in build/).
set -euo pipefail
script=$(realpath "${BASH_SOURCE[0]}")
cd "$(dirname "$script")/.."

keep=0
for arg in "$@"; do
    case $arg in
        --keep) keep=1 ;;
        -h | --help) sed -n '2,12s/^# \{0,1\}//p' "$script"; exit 0 ;;
        *) echo "quickstart: unknown argument: $arg (try --help)" >&2; exit 2 ;;
    esac
done
port=${PORT:-9464}
duration=${DURATION:-30s}
url="http://127.0.0.1:$port"
am_port=${AM_PORT:-9493}
am_url="http://127.0.0.1:$am_port"

say() { printf '\n== %s\n' "$*"; }
# Prints the metric lines matching an extended regex (at most $2 of them); never fails.
sample() {
    local body
    body=$(curl -s --max-time 5 "$url/metrics" || true)
    grep -E "$1" <<<"$body" | head -n "${2:-15}" || true
}

# shellcheck source-path=SCRIPTDIR/..
source .ci/deps.sh

build=${PLUGMON_BUILD_DIR:-build}
targets=(plugmon-agent plugmon-loadgen plugmonctl plugmon-demo)
if [[ -n ${PLUGMON_BUILD_DIR:-} ]]; then
    say "build (in $build: ${targets[*]})"
    cmake -S . -B "$build" -DPLUGMON_BUILD_EXAMPLES=ON >/dev/null
    cmake --build "$build" -j "${PLUGMON_BUILD_JOBS:-2}" --target "${targets[@]}"
else
    say "build (preset default: ${targets[*]})"
    cmake --preset default -DPLUGMON_BUILD_EXAMPLES=ON >/dev/null
    cmake --build --preset default -j "${PLUGMON_BUILD_JOBS:-2}" --target "${targets[@]}"
fi

if curl -s --max-time 2 -o /dev/null "$url/healthz"; then
    echo "quickstart: something already answers on $url; stop it or choose another PORT=" >&2
    exit 1
fi

# Every parent of the PostgreSQL directory must be searchable by the server's user (as root,
# pg-private.sh runs it as `postgres`): 0755 here, and pg-private.sh makes $dir/pg 0711.
dir=$(mktemp -d "${TMPDIR:-/tmp}/plugmon-quickstart.XXXXXX")
chmod 755 "$dir"
pg=$dir/pg
pg_started=0
pg_keep=0
agent_pid=
agent_status=
loadgen_pid=
demo_pid=
am_pid=

# Stops the agent with SIGTERM (it drains the rings and flushes its last window, to PostgreSQL
# too) and sets agent_status; SIGKILL after 20 s.
stop_agent() {
    [[ -n $agent_pid ]] || return 0
    kill -TERM "$agent_pid" 2>/dev/null || true
    for _ in $(seq 200); do kill -0 "$agent_pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$agent_pid" 2>/dev/null; then
        echo "quickstart: the agent did not stop within 20 s of SIGTERM; killing it" >&2
        kill -KILL "$agent_pid" 2>/dev/null || true
    fi
    agent_status=0
    wait "$agent_pid" 2>/dev/null || agent_status=$?
    agent_pid=
    echo "agent stopped (exit status $agent_status)"
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local pid
    for pid in "$loadgen_pid" "$demo_pid" "$am_pid"; do
        if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    stop_agent
    if ((pg_keep)); then
        echo "PostgreSQL keeps running in $pg: bash deploy/pg-private.sh psql $pg" \
            "(remove it with: bash deploy/pg-private.sh destroy $pg)"
    elif ((pg_started)); then
        # keep the server's log with the others when something went wrong
        ((rc == 0)) || cp "$pg/log/server.log" "$dir/postgres.log" 2>/dev/null || true
        bash deploy/pg-private.sh destroy "$pg" || echo "quickstart: could not remove $pg" >&2
    fi
    if ((pg_keep)); then
        :  # the directory holds the running server
    elif ((rc == 0)); then
        rm -rf "$dir"
    else
        echo "quickstart: failed (status $rc); logs kept in $dir (agent.log, loadgen.log, demo.log," \
            "postgres.log)" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "start a private PostgreSQL 15 (in $pg; deploy/pg-private.sh)"
pg_started=1  # from here on, cleanup destroys it (a partial start included)
pg_url=$(bash deploy/pg-private.sh start "$pg")
masked=${pg_url%%@*}
echo "PostgreSQL ready: ${masked%:*}:***@${pg_url#*@}"

# A real Alertmanager for the agent's alerts (Debian's prometheus-alertmanager), when installed.
am_bin=$(command -v prometheus-alertmanager || true)
if [[ -n $am_bin ]]; then
    say "start Alertmanager on $am_url (it receives the agent's alerts)"
    mkdir -p "$dir/am"
    printf 'route:\n  receiver: "null"\n  group_wait: 1s\nreceivers:\n- name: "null"\n' >"$dir/am/am.yml"
    "$am_bin" --config.file="$dir/am/am.yml" --storage.path="$dir/am" \
        --web.listen-address="127.0.0.1:$am_port" --cluster.listen-address= >"$dir/alertmanager.log" 2>&1 &
    am_pid=$!
    for _ in $(seq 100); do
        curl -sf --max-time 1 -o /dev/null "$am_url/-/ready" && break
        sleep 0.1
    done
else
    echo "(prometheus-alertmanager is not installed: the alert is shown at the agent only)"
fi
# The quickstart's alert rule: a plugin failing more than 20 % of at least 50 queries over 4 s.
cat >"$dir/alerts.toml" <<EOF
[[receiver]]
name = "am"
type = "alertmanager"
url = "$am_url"

[[rule]]
name = "PluginErrorRatioHigh"
kind = "error_ratio"
select = { plugin = "flaky*" }
group_by = ["plugin"]
over = "4s"
min_samples = 50
receivers = ["am"]
  [rule.levels.warning]
  above = 0.2
  clear_below = 0.05
  [rule.annotations]
  summary = "plugin {{ labels.plugin }} fails {{ value | percent }} of its queries"
EOF

say "start the agent (runtime dir $dir, HTTP $url, storing into PostgreSQL, alert rules $dir/alerts.toml)"
# 2 s windows and a 50 ms slow-query threshold, so the short demo shows percentiles and slow
# queries; at start the agent applies its migrations to the database (schema plugmon)
"$build/agent/plugmon-agent" --runtime-dir "$dir" --listen "127.0.0.1:$port" --flush-interval 2s \
    --slow-query-threshold 50ms --postgres "$pg_url" --alert-rules "$dir/alerts.toml" \
    --alert-state-dir "$dir/alerts" >"$dir/agent.log" 2>&1 &
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
PLUGMON_RUNTIME_DIR=$dir "$build/bench/plugmon-loadgen" --processes 2 --threads 2 --rate 2000 \
    --duration "$duration" --plugins 3 --tables 4 --tenants 3 --error-ratio 0.02 \
    --mix mixed --statements 3 --slow-every 500 --slow-duration 120ms --alloc-bytes 4096 \
    --wait-attached 5s >"$dir/loadgen.log" 2>&1 &
loadgen_pid=$!

say "start the demo plugins for $duration: billing, search, reports and audit run real SQL (schema demo)"
echo "(a host process with 3 threads and 2 pooled connections per plugin, 20 executions/s each)"
PLUGMON_RUNTIME_DIR=$dir "$build/examples/plugmon-demo" --postgres "$pg_url" --duration "$duration" \
    --tenants 3 --rate 20 >"$dir/demo.log" 2>&1 &
demo_pid=$!

# Show a first sample as soon as the agent exports query counters (at most ~10 s).
for _ in $(seq 50); do
    [[ -n $(sample '^plugmon_queries_total' 1) ]] && break
    kill -0 "$loadgen_pid" 2>/dev/null || break
    sleep 0.2
done
say "dashboard: $url/ui/   (open it in a browser: live plugins, slow queries, resources, alerts)"
curl -s --max-time 5 "$url/ui/manifest.json" | grep -E '"total_(gzip_)?bytes"' || true
say "metrics: $url/metrics   (health: $url/healthz, ready: $url/readyz, API: $url/api/v1/plugins)"
echo "\$ curl -s $url/metrics | grep -E '^plugmon_queries_total' | head -15"
sample '^plugmon_queries_total' 15

sleep 3  # a closed window or two, for per-window percentiles
say "live view: plugmonctl top (one frame; interactive in a terminal)"
"$build/agent/plugmonctl" --agent "127.0.0.1:$port" top --iterations 1 || true
say "slow queries, grouped by normalised statement: $url/api/v1/slow-queries"
curl -s --max-time 5 "$url/api/v1/slow-queries?limit=2" | head -40 || true
say "the demo's slow report, real SQL normalised by the probe: $url/api/v1/slow-queries?plugin=reports"
curl -s --max-time 5 "$url/api/v1/slow-queries?plugin=reports&limit=1" | head -16 || true

say "waiting for the workload to finish ($duration)"
loadgen_status=0
wait "$loadgen_pid" || loadgen_status=$?
loadgen_pid=
echo "--- loadgen summary (exit status $loadgen_status):"
cat "$dir/loadgen.log"
demo_status=0
wait "$demo_pid" || demo_status=$?
demo_pid=
echo "--- demo plugins summary (exit status $demo_status):"
cat "$dir/demo.log"

# The alert: plugin flaky0 fails half its queries for 8 s (it fires), then none (it resolves).
alert_field() {  # alert_field FIELD: the first alert's FIELD at the agent, or "none"
    curl -s --max-time 5 "$url/api/v1/alerts" |
        /usr/bin/python3 -c 'import json,sys; a=json.load(sys.stdin)["alerts"]; print(a[0][sys.argv[1]] if a else "none")' "$1" 2>/dev/null ||
        echo none
}
wait_alert() {  # wait_alert STATE: up to 20 s
    for _ in $(seq 100); do
        [[ $(alert_field state) == "$1" ]] && return 0
        sleep 0.2
    done
    echo "quickstart: the alert did not become $1 within 20 s; see $dir/agent.log" >&2
    return 1
}
show_alerts() {
    echo "\$ curl -s $url/api/v1/alerts"
    curl -s --max-time 5 "$url/api/v1/alerts" | /usr/bin/python3 -c '
import json, sys
for a in json.load(sys.stdin)["alerts"]:
    print("  %s %s %s  value %.3f  fired_at %s  resolved_at %s\n    %s" % (a["labels"]["alertname"],
          a["labels"].get("plugin", ""), a["state"], a["value"], a["fired_at"], a["resolved_at"],
          a["annotations"].get("summary", "")))'
    if [[ -n $am_pid ]]; then
        echo "\$ curl -s $am_url/api/v2/alerts   (Alertmanager's view)"
        curl -s --max-time 5 "$am_url/api/v2/alerts" | /usr/bin/python3 -c '
import json, sys
alerts = json.load(sys.stdin)
if not alerts:
    print("  (no active alert: Alertmanager has the resolve)")
for a in alerts:
    print("  %s %s severity=%s  %s  startsAt %s  endsAt %s" % (a["labels"]["alertname"],
          a["labels"].get("plugin", ""), a["labels"].get("severity"), a["status"]["state"],
          a["startsAt"], a["endsAt"]))' || true
    fi
}
say "alerts: plugin flaky0 fails half of its queries for 8 s"
PLUGMON_RUNTIME_DIR=$dir "$build/bench/plugmon-loadgen" --processes 1 --threads 1 --plugins 1 \
    --plugin-prefix flaky --rate 200 --duration 8s --error-ratio 0.5 --quiet >>"$dir/loadgen.log" 2>&1
wait_alert firing
if [[ -n $am_pid ]]; then
    for _ in $(seq 50); do
        [[ $(curl -s --max-time 2 "$am_url/api/v2/alerts") == *PluginErrorRatioHigh* ]] && break
        sleep 0.2
    done
fi
show_alerts
say "alerts: flaky0 recovers (no errors for 6 s): the alert resolves"
PLUGMON_RUNTIME_DIR=$dir "$build/bench/plugmon-loadgen" --processes 1 --threads 1 --plugins 1 \
    --plugin-prefix flaky --rate 200 --duration 6s --error-ratio 0 --quiet >>"$dir/loadgen.log" 2>&1
wait_alert resolved
sleep 1  # Alertmanager gets the resolve with the next send
show_alerts
echo "(acknowledge a firing alert: POST $url/api/v1/alerts/FINGERPRINT/ack with a token of scope ack;"
echo " the README's Alerts section has rules, receivers, silences and escalation)"

# Let the agent drain what the last processes handed over at exit.
sleep 1
say "final sample"
sample '^plugmon_queries_total' 15
echo
sample '^plugmon_executions_total\{plugin="(billing|search|reports|audit)"' 12
echo
sample '^plugmon_(agent_events_drained_total|ring_events_dropped_total|producers)' 20
echo
"$build/agent/plugmonctl" --agent "127.0.0.1:$port" status || true

if ((loadgen_status != 0)); then
    echo "quickstart: the workload failed (status $loadgen_status)" >&2
    exit 1
fi
if ((demo_status != 0)); then
    echo "quickstart: the demo plugins failed (status $demo_status); see $dir/demo.log" >&2
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

# What the agent stored in PostgreSQL: per plugin, then per demo plugin and table, with the p99
# merged from the per-window sketches. Returns 1 when the query fails, when the table is missing
# (unless this agent says it has no store yet), or when nothing of the demo plugins is stored.
pg_psql() { bash deploy/pg-private.sh psql "$pg" -X -v ON_ERROR_STOP=1 "$@"; }
demo_plugins="'billing', 'search', 'reports', 'audit'"
per_plugin_sql="SELECT plugin, sum(calls) AS calls, sum(errors) AS errors,
       round(plugmon.sketch_quantile(plugmon.sketch_merge(sketch), 0.99) / 1e6, 2) AS p99_ms
  FROM plugmon.query_rollups GROUP BY plugin ORDER BY sum(calls) DESC"
per_table_sql="SELECT plugin, op, tbl, sum(calls) AS calls, sum(errors) AS errors,
       round(plugmon.sketch_quantile(plugmon.sketch_merge(sketch), 0.99) / 1e6, 2) AS p99_ms
  FROM plugmon.query_rollups WHERE plugin IN ($demo_plugins)
 GROUP BY plugin, op, tbl ORDER BY plugin, sum(calls) DESC"
show_rollups() {
    local exists stored
    if ! exists=$(pg_psql -Atc "SELECT to_regclass('plugmon.query_rollups') IS NOT NULL"); then
        echo "quickstart: cannot query PostgreSQL in $pg" >&2
        return 1
    fi
    if [[ $exists != t ]]; then
        if grep -q 'store is not part of this version' "$dir/agent.log"; then
            echo "(plugmon.query_rollups does not exist: this agent does not store into PostgreSQL yet;"
            echo " its log says \"the PostgreSQL store is not part of this version\")"
            return 0
        fi
        echo "quickstart: plugmon.query_rollups does not exist: the agent did not apply its migrations" >&2
        echo "--- last lines of $dir/agent.log:" >&2
        tail -n 20 "$dir/agent.log" >&2 || true
        return 1
    fi
    echo "\$ bash deploy/pg-private.sh psql $pg -c \"$per_plugin_sql\""
    pg_psql -c "$per_plugin_sql" || return 1
    echo "\$ bash deploy/pg-private.sh psql $pg -c \"$per_table_sql\""
    pg_psql -c "$per_table_sql" || return 1
    stored=$(pg_psql -Atc "SELECT count(*) FROM plugmon.query_rollups WHERE plugin IN ($demo_plugins)") ||
        return 1
    local history_sql="SELECT at, event, state, severity, round(value::numeric, 3) AS value, detail
  FROM plugmon.alert_events ORDER BY seq"
    echo "\$ bash deploy/pg-private.sh psql $pg -c \"$history_sql\"   (the alert's history)"
    pg_psql -c "$history_sql" || return 1
    if [[ $stored == 0 ]]; then
        echo "quickstart: plugmon.query_rollups holds no rows of the demo plugins" >&2
        echo "--- last lines of $dir/agent.log:" >&2
        tail -n 20 "$dir/agent.log" >&2 || true
        return 1
    fi
}

if ((keep)); then
    say "PostgreSQL: the rollups stored so far (the agent keeps running: its current window is not in yet)"
    show_rollups || exit 1
    say "the agent keeps running on $url (runtime dir $dir); Ctrl-C stops it"
    echo "dashboard: $url/ui/"
    echo "plugins can report to it with: PLUGMON_RUNTIME_DIR=$dir <your program>"
    echo "PostgreSQL keeps running, also after Ctrl-C: bash deploy/pg-private.sh psql $pg"
    echo "  (remove it with: bash deploy/pg-private.sh destroy $pg)"
    pg_keep=1
    trap 'exit 0' INT
    wait "$agent_pid" || true
    agent_pid=
else
    say "stop the agent (SIGTERM: it drains and flushes its last window, to PostgreSQL too)"
    stop_agent
    if ((agent_status != 0)); then
        echo "quickstart: the agent exited with status $agent_status on SIGTERM" >&2
        echo "--- last lines of $dir/agent.log:" >&2
        tail -n 20 "$dir/agent.log" >&2 || true
        exit 1
    fi
    say "PostgreSQL: the rollups the agent stored (schema plugmon)"
    show_rollups || exit 1
    say "done; run with --keep to leave the agent and PostgreSQL running"
fi
