#!/usr/bin/env bash
# Runs bench/fleet_sim against a private PostgreSQL 15 (started by fleet_sim itself) and a real
# Prometheus 2.42 with the remote-write receiver and native histograms, both on free loopback
# ports in a temporary directory, removed at exit.
#
#   bench/fleet_sim.sh BUILD_DIR [fleet_sim options...]     e.g.
#   bench/fleet_sim.sh build --agents 4 --mode realtime --duration 120
#   bench/fleet_sim.sh build --agents 8 --mode compressed --windows 20
#   PLUGMON_FLEET_NO_PROMETHEUS=1 bench/fleet_sim.sh build ...   (PostgreSQL only)
#
# After the run it prints what Prometheus holds (head series, samples appended, TSDB size).
set -euo pipefail
build=${1:?usage: fleet_sim.sh BUILD_DIR [fleet_sim options]}
shift
bin=$build/bench/fleet_sim
[[ -x $bin ]] || { echo "fleet_sim.sh: $bin not built (cmake --build $build --target fleet_sim)" >&2; exit 2; }

if [[ -n ${PLUGMON_FLEET_NO_PROMETHEUS:-} ]]; then
    exec "$bin" "$@"
fi

tmp=$(mktemp -d /tmp/plugmon-fleet-prom.XXXXXX)
prom_pid=
cleanup() {
    [[ -n $prom_pid ]] && kill "$prom_pid" 2>/dev/null && wait "$prom_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$tmp/prometheus.yml" <<'YML'
global:
  scrape_interval: 1m
YML
prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/data" \
    --web.listen-address="127.0.0.1:$port" --web.enable-remote-write-receiver \
    --enable-feature=native-histograms --log.level=warn >"$tmp/prometheus.log" 2>&1 &
prom_pid=$!
for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$port/-/ready" >/dev/null 2>&1 && break
    sleep 0.2
done
curl -fs "http://127.0.0.1:$port/-/ready" >/dev/null || { cat "$tmp/prometheus.log" >&2; exit 1; }
echo "fleet_sim.sh: Prometheus 2.42 on 127.0.0.1:$port (pid $prom_pid)"

status=0
"$bin" --remote-write "http://127.0.0.1:$port/api/v1/write" --prom-pid "$prom_pid" "$@" || status=$?

metric() { curl -fs "http://127.0.0.1:$port/metrics" | awk -v m="$1" '$1 ~ "^"m"({|$)" {printf "%s%s=%.0f", (n++ ? " " : ""), $1, $2}'; }
series=$(curl -fs "http://127.0.0.1:$port/api/v1/status/tsdb" |
    /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["headStats"]["numSeries"])')
echo "prometheus: head series $series, samples appended $(metric prometheus_tsdb_head_samples_appended_total)," \
     "out-of-order samples rejected $(metric prometheus_tsdb_out_of_order_samples_total)," \
     "TSDB bytes on disk $(du -sb "$tmp/data" | cut -f1) (head in memory and WAL until the first block)," \
     "Prometheus RSS $(awk '/VmRSS/ {print $2 " kB"}' /proc/$prom_pid/status)"
exit $status
