#!/usr/bin/python3
"""grafana.against_real_servers: every query of every dashboard, run the way Grafana would run it,
against a real PostgreSQL holding a real agent's store and a real Prometheus scraping that agent.

  live.py --source ROOT --agent PLUGMON_AGENT --loadgen PLUGMON_LOADGEN [--keep]

Starts a private PostgreSQL (deploy/pg-private.sh), the agent (store on, 1 s windows, an alert
rule that fires), Debian's Prometheus scraping it every second, and the load generator (several
plugins and tenants, errors, statements, slow queries, heap accounting). Once the store holds
rollups, executions, slow queries, resource samples and alert events, and Prometheus has enough
scrapes for $__rate_interval (and a pool sample of every plugin), it resolves each dashboard's template
variables with their own queries, then for every target:
  PromQL: $__rate_interval, $__interval, $__range... and the variables substituted as Grafana
          does; GET /api/v1/format_query must succeed, and /api/v1/query_range (or /query for
          instant targets) must return at least one series;
  SQL:    variables substituted, Grafana's PostgreSQL macros expanded, run inside BEGIN READ ONLY
          with a 5 s statement timeout; at least one row, a "time" column for time_series, and
          every column a field override names.
Exit 0 when all pass, 1 with one FAIL line per problem (dashboard, panel title, refId), 77 when
Prometheus or PostgreSQL is not installed.
"""

import argparse
import csv
import datetime
import io
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import dashlib

SCRAPE_S = 1          # Prometheus scrape_interval, and the datasource's "scrape interval" setting
MAX_DATA_POINTS = 1000  # what Grafana asks for on a panel about 1000 px wide
RANGE = datetime.timedelta(minutes=15)  # the time range the dashboards are checked over
READY_TIMEOUT_S = 90

ALERT_RULES = """
[[receiver]]
name = "hook"
type = "webhook"
url = "http://127.0.0.1:{port}/hook"

[[rule]]
name = "PluginErrorRatioHigh"
kind = "error_ratio"
select = {{ plugin = "*" }}
group_by = ["plugin"]
over = "2s"
min_samples = 20
receivers = ["hook"]
  [rule.levels.warning]
  above = 0.05
  clear_below = 0.01
  [rule.annotations]
  summary = "plugin {{{{ labels.plugin }}}} fails {{{{ value | percent }}}} of its queries"
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url, params=None, timeout=20):
    if params:
        url += "?" + urllib.parse.urlencode(params, doseq=True)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        body = e.read()
        try:
            return json.loads(body)
        except ValueError:
            return {"status": "error", "error": f"HTTP {e.code}: {body[:200]!r}"}


class Servers:
    """The real components, started in a temporary directory and stopped in reverse order."""

    def __init__(self, args):
        self.args = args
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="plugmon-grafana."))
        os.chmod(self.dir, 0o755)  # pg-private.sh runs the server as `postgres` under root
        self.procs = []
        self.pg_started = False

    def spawn(self, name, argv, env=None):
        log = open(self.dir / f"{name}.log", "w")
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.procs.append((name, p))
        return p

    def start(self):
        root = self.args.source
        self.pg_url = subprocess.run(["bash", str(root / "deploy/pg-private.sh"), "start", str(self.dir / "pg")],
                                     check=True, capture_output=True, text=True).stdout.strip()
        self.pg_started = True
        rules = self.dir / "alerts.toml"
        rules.write_text(ALERT_RULES.format(port=free_port()))
        agent = self.spawn("agent", [
            str(self.args.agent), "--runtime-dir", str(self.dir / "rt"), "--listen", "127.0.0.1:0",
            "--postgres", self.pg_url, "--flush-interval", "1s", "--slow-query-threshold", "20ms",
            "--host", "grafana-test-host", "--spool-dir", str(self.dir / "spool"),
            "--alert-rules", str(rules), "--alert-state-dir", str(self.dir / "alerts")])
        self.agent_url = self.wait_for_log("agent", agent, r"HTTP on (http://[\d.]+:\d+)/metrics")
        prom_port = free_port()
        (self.dir / "prometheus.yml").write_text(
            f"global:\n  scrape_interval: {SCRAPE_S}s\n  evaluation_interval: {SCRAPE_S}s\n"
            "scrape_configs:\n  - job_name: plugmon\n"
            f"    scrape_timeout: {SCRAPE_S}s\n"
            f"    static_configs:\n      - targets: ['{self.agent_url.split('//')[1]}']\n")
        prom = self.spawn("prometheus", [
            "/usr/bin/prometheus", f"--config.file={self.dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.dir / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}",
            "--log.level=warn"])
        self.prom_url = f"http://127.0.0.1:{prom_port}"
        self.wait_until(lambda: self.ready(self.prom_url + "/-/ready"), 30, "Prometheus ready", prom)
        env = dict(os.environ, PLUGMON_RUNTIME_DIR=str(self.dir / "rt"))
        # 2 processes x 2 threads, 3 plugins, 3 tables, 3 tenants, 10 % errors (the rule fires),
        # 3 statements, every 100th query slow (30 ms), heap accounting; stopped by us.
        self.spawn("loadgen", [
            str(self.args.loadgen), "--processes", "2", "--threads", "2", "--rate", "200",
            "--duration", "10m", "--plugins", "3", "--tables", "3", "--tenants", "3",
            "--error-ratio", "0.1", "--mix", "mixed", "--statements", "3", "--slow-every", "100",
            "--slow-duration", "30ms", "--alloc-bytes", "1024", "--quiet"], env=env)

    def ready(self, url):
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def wait_for_log(self, name, proc, pattern):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            m = re.search(pattern, (self.dir / f"{name}.log").read_text())
            if m:
                return m.group(1)
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"{name} did not start; see {self.dir / (name + '.log')}")

    def wait_until(self, check, timeout, what, proc=None):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"exited while waiting for {what}; logs in {self.dir}")
            time.sleep(0.25)
        raise RuntimeError(f"timed out after {timeout} s waiting for {what}; logs in {self.dir}")

    def psql(self, script):
        """(rc, csv rows or error text) of a psql script against the store."""
        r = subprocess.run(["psql", "-X", "-q", "--csv", "-v", "ON_ERROR_STOP=1", self.pg_url],
                           input=script, capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            return r.returncode, (r.stderr.strip() or r.stdout.strip()).splitlines()[0:3]
        return 0, list(csv.reader(io.StringIO(r.stdout)))

    def stop(self, keep_logs):
        for name, p in reversed(self.procs):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for name, p in reversed(self.procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        if self.pg_started:
            subprocess.run(["bash", str(self.args.source / "deploy/pg-private.sh"), "destroy", str(self.dir / "pg")],
                           capture_output=True)
        if keep_logs:
            print(f"logs kept in {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


STORE_READY = """
SELECT (SELECT count(*) FROM plugmon.query_rollups) > 0
   AND (SELECT count(*) FROM plugmon.execution_rollups) > 0
   AND (SELECT count(*) FROM plugmon.slow_queries WHERE statement <> '') > 0
   AND (SELECT count(*) FROM plugmon.resource_samples WHERE plugin <> '') > 0
   AND (SELECT count(*) FROM plugmon.resource_samples WHERE plugin = '') > 0
   AND (SELECT count(*) FROM plugmon.alert_events WHERE state = 'firing') > 0
   AND (SELECT count(*) FROM plugmon.alerts) > 0 AS ready
"""


def wait_for_data(srv, rate_interval_s):
    def store_ready():
        rc, rows = srv.psql(STORE_READY)
        return rc == 0 and len(rows) > 1 and rows[1][0] == "t"

    # enough scrapes that rate() over $__rate_interval has two samples wherever a query looks
    need = int(rate_interval_s / SCRAPE_S) + 2

    # pool samples come every 1000 queries of a thread: wait until every plugin has had one
    def prom_ready():
        r = http_json(srv.prom_url + "/api/v1/query", {
            "query": f"min(count_over_time(plugmon_process_resident_memory_bytes[{need + 5}s])) >= {need}"
                     " and on () count(group by (plugin) (plugmon_pool_connections)) >= 3"})
        return r.get("status") == "success" and r["data"]["result"]

    agent = dict(srv.procs)["agent"]
    srv.wait_until(store_ready, READY_TIMEOUT_S, "rows in every plugmon table (rollups, slow queries, samples, alerts)", agent)
    srv.wait_until(prom_ready, READY_TIMEOUT_S, f"{need} scrapes of the agent with plugin processes and pools in them", agent)


class Checker:
    def __init__(self, srv, tc):
        self.srv, self.tc = srv, tc
        self.failures = []
        self.counts = {"promql": 0, "promql_ok": 0, "sql": 0, "sql_ok": 0, "variables": 0}

    def fail(self, msg):
        self.failures.append(msg)

    # ---- variables ----------------------------------------------------------------------------
    def resolve_variables(self, d):
        """name -> (values, multi) as Grafana would have them on load: All where includeAll, else
        the first value the variable's own query returns."""
        values = {}
        for v in d.get("templating", {}).get("list", []):
            name, vtype = v["name"], v["type"]
            multi = bool(v.get("multi") or v.get("includeAll"))
            if vtype == "datasource":
                continue
            if vtype == "textbox":
                values[name] = ([v.get("query", "")], False)
                continue
            if vtype == "custom":
                opts = [o.strip() for o in v.get("query", "").split(",")]
            elif vtype == "query":
                kind = v["datasource"]["type"]
                query = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
                text = dashlib.interpolate(query, values, self.tc.builtins(), kind)
                opts = self.variable_options(d, name, kind, text)
                self.counts["variables"] += 1
            else:
                self.fail(f'dashboard "{d["title"]}": variable ${name} of type {vtype} is not handled by this test')
                continue
            if not opts:
                self.fail(f'dashboard "{d["title"]}": variable ${name} has no values (query {v.get("query")!r})')
                opts = ["__no_value__"]
            chosen = opts if v.get("includeAll") else opts[:1]
            values[name] = (chosen, multi)
        return values

    def variable_options(self, d, name, kind, text):
        if kind == dashlib.PROM:
            m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", text, re.S)
            m1 = re.fullmatch(r"\s*label_values\(\s*(\w+)\s*\)\s*", text)
            if m1:
                r = http_json(self.srv.prom_url + f"/api/v1/label/{m1.group(1)}/values", self.range_params())
                return sorted(r.get("data") or [])
            if not m:
                self.fail(f'dashboard "{d["title"]}": variable ${name}: query {text!r} is not label_values(...)')
                return []
            r = http_json(self.srv.prom_url + "/api/v1/series", dict(self.range_params(), **{"match[]": m.group(1)}))
            if r.get("status") != "success":
                self.fail(f'dashboard "{d["title"]}": variable ${name}: {r.get("error")}')
                return []
            return sorted({s[m.group(2)] for s in r["data"] if s.get(m.group(2))})
        if kind == dashlib.PG:
            sql = dashlib.expand_pg_macros(text, self.tc)
            rc, rows = self.srv.psql(f"BEGIN READ ONLY;\nSET LOCAL statement_timeout = '5s';\n{sql};\nROLLBACK;\n")
            if rc != 0:
                self.fail(f'dashboard "{d["title"]}": variable ${name}: {" ".join(rows)}\n    SQL: {sql}')
                return []
            return [r[0] for r in rows[1:]]
        self.fail(f'dashboard "{d["title"]}": variable ${name} on datasource {kind}')
        return []

    def range_params(self):
        return {"start": self.tc.start.timestamp(), "end": self.tc.end.timestamp()}

    # ---- targets ------------------------------------------------------------------------------
    def check_dashboard(self, d):
        variables = self.resolve_variables(d)
        for panel, target, kind in dashlib.targets(d):
            if kind == dashlib.PROM:
                self.check_promql(d, panel, target, variables)
            elif kind == dashlib.PG:
                self.check_sql(d, panel, target, variables)
            else:
                self.fail(f"{dashlib.where(d, panel, target)}: datasource type {kind} not handled")

    def check_promql(self, d, panel, target, variables):
        self.counts["promql"] += 1
        expr = dashlib.interpolate(target.get("expr", ""), variables, self.tc.builtins(), dashlib.PROM)
        at = dashlib.where(d, panel, target)
        left = [n for n in dashlib.unresolved(expr)]
        if left:
            self.fail(f"{at}: unresolved variables {left} in {expr}")
            return
        r = http_json(self.srv.prom_url + "/api/v1/format_query", {"query": expr})
        if r.get("status") != "success":
            self.fail(f"{at}: does not parse: {r.get('error')}\n    PromQL: {expr}")
            return
        if target.get("instant"):
            r = http_json(self.srv.prom_url + "/api/v1/query", {"query": expr, "time": self.tc.end.timestamp()})
        else:
            step = max(self.tc.interval_s, self.tc.range_s / 11000)
            r = http_json(self.srv.prom_url + "/api/v1/query_range",
                          dict(self.range_params(), query=expr, step=step))
        if r.get("status") != "success":
            self.fail(f"{at}: query failed: {r.get('error')}\n    PromQL: {expr}")
            return
        if not r["data"]["result"]:
            self.fail(f"{at}: no series (a misspelled metric or label?)\n    PromQL: {expr}")
            return
        self.counts["promql_ok"] += 1

    def check_sql(self, d, panel, target, variables):
        self.counts["sql"] += 1
        at = dashlib.where(d, panel, target)
        text = dashlib.interpolate(target.get("rawSql", ""), variables, self.tc.builtins(), dashlib.PG)
        try:
            sql = dashlib.expand_pg_macros(text, self.tc)
        except ValueError as e:
            self.fail(f"{at}: {e}")
            return
        left = dashlib.unresolved(sql)
        if left:
            self.fail(f"{at}: unresolved variables {left}\n    SQL: {sql}")
            return
        rc, rows = self.srv.psql(f"BEGIN READ ONLY;\nSET LOCAL statement_timeout = '5s';\n{sql};\nROLLBACK;\n")
        if rc != 0:
            self.fail(f"{at}: {' '.join(rows)}\n    SQL: {sql}")
            return
        header, data = (rows[0], rows[1:]) if rows else ([], [])
        problems = []
        if not data:
            problems.append("no rows")
        if target.get("format") == "time_series" and "time" not in header:
            problems.append(f"time_series without a column named time (columns {header})")
        for o in (panel.get("fieldConfig") or {}).get("overrides") or []:
            m = o.get("matcher") or {}
            if m.get("id") == "byName" and m.get("options") not in header and len(panel.get("targets", [])) == 1:
                problems.append(f"override for column {m.get('options')!r}, which the query does not return (columns {header})")
        if problems:
            self.fail(f"{at}: {'; '.join(problems)}\n    SQL: {sql}")
            return
        self.counts["sql_ok"] += 1


def self_check(srv, tc):
    """The checker must catch what it is for: a misspelled metric, a bad column, a bad macro."""
    d = {"title": "self-check", "uid": "self-check", "templating": {"list": []}, "panels": [{
        "title": "broken on purpose", "type": "timeseries", "targets": [
            {"refId": "A", "datasource": {"type": dashlib.PROM}, "expr": "sum(rate(plugmon_querys_total[$__rate_interval]))"},
            {"refId": "B", "datasource": {"type": dashlib.PROM}, "expr": "sum by (plugin (plugmon_queries_total)"},
            {"refId": "C", "datasource": {"type": dashlib.PG}, "format": "table", "rawSql": "SELECT plugn FROM plugmon.query_rollups_all WHERE $__timeFilter(bucket_start)"},
            {"refId": "D", "datasource": {"type": dashlib.PG}, "format": "table", "rawSql": "SELECT 1 FROM plugmon.alerts WHERE false"},
            {"refId": "E", "datasource": {"type": dashlib.PG}, "format": "time_series", "rawSql": "SELECT bucket_start, calls FROM plugmon.query_rollups_all WHERE $__timeFilter(bucket_start)"},
        ]}]}
    c = Checker(srv, tc)
    c.check_dashboard(d)
    missed = [r for r in "ABCDE" if not any(f"refId {r}:" in f for f in c.failures)]
    return [f"self-check: the broken target refId {r} was not reported" for r in missed]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", type=pathlib.Path, required=True)
    ap.add_argument("--agent", type=pathlib.Path, required=True)
    ap.add_argument("--loadgen", type=pathlib.Path, required=True)
    ap.add_argument("--keep", action="store_true", help="keep the logs and data directory")
    args = ap.parse_args()
    pg_ctl = os.path.join(os.environ.get("PG_BINDIR", "/usr/lib/postgresql/15/bin"), "pg_ctl")
    for tool in ("/usr/bin/prometheus", pg_ctl, "/usr/bin/psql"):
        if not os.path.exists(tool):
            print(f"SKIP: {tool} is not installed")
            return 77
    t0 = time.monotonic()
    srv = Servers(args)
    ok = False
    try:
        srv.start()
        now = datetime.datetime.now(datetime.timezone.utc)
        tc = dashlib.TimeContext(now - RANGE, now, MAX_DATA_POINTS, SCRAPE_S, SCRAPE_S)
        wait_for_data(srv, tc.rate_interval_s)
        t_ready = time.monotonic() - t0
        now = datetime.datetime.now(datetime.timezone.utc)
        tc = dashlib.TimeContext(now - RANGE, now, MAX_DATA_POINTS, SCRAPE_S, SCRAPE_S)
        print(f"servers up and data in after {t_ready:.1f} s; time range {RANGE}, "
              f"$__interval={tc.builtins()['__interval']} $__rate_interval={tc.builtins()['__rate_interval']} "
              f"(scrape interval {SCRAPE_S}s, {MAX_DATA_POINTS} data points)")
        checker = Checker(srv, tc)
        dashboards = dashlib.load_dashboards(args.source / "deploy/grafana/dashboards")
        for _, d in dashboards:
            before = dict(checker.counts)
            checker.check_dashboard(d)
            n_p = checker.counts["promql"] - before["promql"]
            n_s = checker.counts["sql"] - before["sql"]
            ok_p = checker.counts["promql_ok"] - before["promql_ok"]
            ok_s = checker.counts["sql_ok"] - before["sql_ok"]
            print(f"{d['uid']}: PromQL {ok_p}/{n_p} ok, SQL {ok_s}/{n_s} ok")
        failures = checker.failures + self_check(srv, tc)
        for f in failures:
            print("FAIL", f)
        c = checker.counts
        caught = not any(f.startswith("self-check") for f in failures)
        print(f"total: {len(dashboards)} dashboards, {c['variables']} variable queries, "
              f"PromQL {c['promql_ok']}/{c['promql']} ok, SQL {c['sql_ok']}/{c['sql']} ok; "
              f"self-check: broken targets {'all caught' if caught else 'NOT all caught'}")
        print(f"wall time {time.monotonic() - t0:.1f} s")
        ok = not failures and c["promql"] > 0 and c["sql"] > 0
    finally:
        srv.stop(keep_logs=args.keep or not ok)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
