#!/usr/bin/python3
"""grafana.lint: structure checks on deploy/grafana/dashboards/*.json that need no server.

  lint.py DASHBOARD_DIR        lint the dashboards; exit 1 with one line per problem
  lint.py --self-test DIR      also break copies of them on purpose and require each rule to fire
"""

import copy
import re
import sys

import dashlib

ALLOWED_TYPES = {"timeseries", "stat", "table", "bargauge", "gauge", "text", "row"}
DS_VARS = {dashlib.PROM: "${prometheus}", dashlib.PG: "${postgres}"}
VAR_NAME = {"${prometheus}": "prometheus", "${postgres}": "postgres"}
# Panels about durations or sizes must say so (a number of seconds shown as "0.03" misleads).
LATENCY_OR_BYTES = re.compile(r"_duration_seconds|_bytes\b|_bytes\{|_bytes_total|_bytes\)")
EMPTY_UNITS = {None, "", "short", "none"}
RANGE = re.compile(r"\[([^\]]*)\]")


def lint_dashboard(name, d, problems):
    def bad(msg, panel=None, target=None):
        problems.append(f"{name}: " + (dashlib.where(d, panel, target) + ": " if panel else "") + msg)

    for key in ("uid", "title", "schemaVersion", "panels", "templating", "__inputs", "__requires", "links"):
        if key not in d:
            bad(f"missing top-level key {key!r}")
    uid = d.get("uid", "")
    if not isinstance(uid, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", uid):
        bad(f"uid {uid!r} must be 1..40 of [A-Za-z0-9_-]")
    if uid != name.removesuffix(".json"):
        bad(f"uid {uid!r} should match the file name (stable uids: links depend on them)")
    sv = d.get("schemaVersion")
    if not isinstance(sv, int) or not 36 <= sv <= 42:
        bad(f"schemaVersion {sv!r} outside 36..42")

    variables = {v.get("name"): v for v in d.get("templating", {}).get("list", [])}
    inputs = {i.get("name") for i in d.get("__inputs", [])}
    for v in variables.values():
        if v.get("type") == "datasource":
            cur = (v.get("current") or {}).get("value", "")
            m = re.fullmatch(r"\$\{(\w+)\}", str(cur))
            if not m or m.group(1) not in inputs:
                bad(f"datasource variable {v.get('name')!r}: default {cur!r} is not one of __inputs {sorted(inputs)}")
        elif v.get("type") == "query":
            ds = v.get("datasource") or {}
            if DS_VARS.get(ds.get("type")) != ds.get("uid") or VAR_NAME.get(ds.get("uid")) not in variables:
                bad(f"query variable {v.get('name')!r} must use a templated datasource, not {ds}")
            if not str(v.get("query") or "").strip():
                bad(f"query variable {v.get('name')!r} has an empty query")
    required = {(r.get("type"), r.get("id")) for r in d.get("__requires", [])}

    ids, rects = {}, []
    for panel in dashlib.all_panels(d):
        ptype = panel.get("type")
        if ptype not in ALLOWED_TYPES:
            bad(f"panel type {ptype!r} is not allowed (only {sorted(ALLOWED_TYPES)})", panel)
        elif ptype != "row" and ("panel", ptype) not in required:
            bad(f"panel type {ptype!r} missing from __requires", panel)
        pid = panel.get("id")
        if not isinstance(pid, int) or isinstance(pid, bool):
            bad(f"panel id {pid!r} is not an integer", panel)
        elif pid in ids:
            bad(f"panel id {pid} used twice (also by {ids[pid]!r})", panel)
        else:
            ids[pid] = panel.get("title")
        gp = panel.get("gridPos") or {}
        vals = [gp.get(k) for k in ("x", "y", "w", "h")]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
            bad(f"gridPos {gp} must have integer x, y, w, h", panel)
        else:
            x, y, w, h = vals
            if x < 0 or y < 0 or w < 1 or h < 1 or x + w > 24:
                bad(f"gridPos {gp} is outside the 24-column grid", panel)
            for other, (ox, oy, ow, oh) in rects:
                if x < ox + ow and ox < x + w and y < oy + oh and oy < y + h:
                    bad(f"gridPos {gp} overlaps panel {other!r}", panel)
            rects.append((panel.get("title"), (x, y, w, h)))
        if ptype == "text" and (panel.get("options") or {}).get("mode") != "markdown":
            bad("text panels must be in markdown mode", panel)
        if ptype in ("row", "text"):
            continue
        lint_targets(d, panel, variables, bad)
        lint_units(panel, bad)


def lint_targets(d, panel, variables, bad):
    ds = panel.get("datasource") or {}
    if DS_VARS.get(ds.get("type")) != ds.get("uid"):
        bad(f"panel datasource {ds} is not the templated one of its kind", panel)
    elif VAR_NAME[ds.get("uid")] not in variables:
        bad(f"panel uses {ds.get('uid')} but the dashboard has no such datasource variable", panel)
    tlist = panel.get("targets") or []
    if not tlist:
        bad("panel has no targets", panel)
    refids = [t.get("refId") for t in tlist]
    if len(set(refids)) != len(refids) or not all(refids):
        bad(f"refIds {refids} must be present and unique", panel)
    for t in tlist:
        tds = t.get("datasource") or ds
        if tds != ds:
            bad(f"target datasource {tds} differs from the panel's {ds}", panel, t)
        if tds.get("type") == dashlib.PROM:
            expr = (t.get("expr") or "").strip()
            if not expr:
                bad("empty expr", panel, t)
            for m in RANGE.finditer(expr):
                if m.group(1) != "$__rate_interval":
                    bad(f"range [{m.group(1)}] must be [$__rate_interval]", panel, t)
            for fn in ("rate(", "increase(", "irate("):
                if fn in expr and "[$__rate_interval]" not in expr:
                    bad(f"{fn} without [$__rate_interval]", panel, t)
        elif tds.get("type") == dashlib.PG:
            if not (t.get("rawSql") or "").strip() or t.get("rawQuery") is not True:
                bad("SQL target needs rawQuery true and a non-empty rawSql", panel, t)
            if t.get("format") not in ("table", "time_series"):
                bad(f"SQL format {t.get('format')!r} must be table or time_series", panel, t)
            if t.get("format") == "time_series" and not re.search(r'"time"|\$__time(GroupAlias|Epoch)?\(|\bAS time\b', t.get("rawSql", "")):
                bad("time_series SQL must return a column named time", panel, t)
        for name in dashlib.unresolved((t.get("expr") or "") + (t.get("rawSql") or "")):
            if name not in variables and not name.startswith("__"):
                bad(f"${name} is not a variable of this dashboard", panel, t)


def lint_units(panel, bad):
    fc = panel.get("fieldConfig") or {}
    unit = (fc.get("defaults") or {}).get("unit")
    override_units = {}
    for o in fc.get("overrides") or []:
        for p in o.get("properties") or []:
            if p.get("id") == "unit":
                override_units[(o.get("matcher") or {}).get("options")] = p.get("value")
    for t in panel.get("targets") or []:
        expr, sql = t.get("expr") or "", t.get("rawSql") or ""
        if LATENCY_OR_BYTES.search(expr) and unit in EMPTY_UNITS and not override_units:
            bad("latency/bytes query on a panel without a unit", panel, t)
        # SQL: a column made of nanoseconds (/ 1e9) or bytes needs a unit, per column in tables
        cols = re.findall(r"/\s*1e9\s+AS\s+\"?(\w+)", sql, re.I) + re.findall(r"_bytes\)?\s+AS\s+\"?(\w+)", sql, re.I)
        cols += re.findall(r"AS\s+\"?(\w*bytes\w*|heap)\b", sql, re.I)
        for col in cols:
            if override_units.get(col) in EMPTY_UNITS and unit in EMPTY_UNITS:
                bad(f"column {col!r} (seconds or bytes) has no unit", panel, t)


def lint_all(directory):
    problems = []
    dashboards = dashlib.load_dashboards(directory)
    if not dashboards:
        return [f"no dashboards in {directory}"]
    uids = {}
    for path, d in dashboards:
        lint_dashboard(path.name, d, problems)
        if d.get("uid") in uids:
            problems.append(f"{path.name}: uid {d.get('uid')!r} also used by {uids[d.get('uid')]}")
        uids[d.get("uid")] = path.name
    # data links and dashboard links point at dashboards that exist
    for path, d in dashboards:
        text = str(d)
        for uid in re.findall(r"/d/([A-Za-z0-9_-]+)", text):
            if uid not in uids:
                problems.append(f"{path.name}: link to /d/{uid}, which is none of {sorted(uids)}")
        if not any(l.get("type") == "dashboards" and "plugmon" in l.get("tags", []) for l in d.get("links", [])):
            problems.append(f"{path.name}: no link to the other plugmon dashboards")
    return problems


def self_test(directory):
    """Each rule must reject a dashboard broken for it: a lint that cannot fail is no test."""
    import json
    import pathlib
    import tempfile

    path = sorted(pathlib.Path(directory).glob("*.json"))
    good = {p.name: json.loads(p.read_text()) for p in path}
    name = "plugmon-plugin.json"

    def first(d, kind):
        return next(t for p, t, k in dashlib.targets(d) if k == kind)

    def panel_of(d, ptype):
        return next(p for p in dashlib.all_panels(d) if p.get("type") == ptype)

    cases = {
        "not allowed": lambda d: panel_of(d, "timeseries").update(type="graph"),
        "used twice": lambda d: panel_of(d, "stat").update(id=panel_of(d, "timeseries")["id"]),
        "overlaps": lambda d: panel_of(d, "stat")["gridPos"].update(x=panel_of(d, "timeseries")["gridPos"]["x"], y=panel_of(d, "timeseries")["gridPos"]["y"]),
        "outside the 24-column": lambda d: panel_of(d, "table")["gridPos"].update(x=4, w=24),
        "integer": lambda d: panel_of(d, "table")["gridPos"].update(h=8.5),
        "must be [$__rate_interval]": lambda d: first(d, dashlib.PROM).update(expr=first(d, dashlib.PROM)["expr"].replace("$__rate_interval", "5m")),
        "empty expr": lambda d: first(d, dashlib.PROM).update(expr=""),
        "non-empty rawSql": lambda d: first(d, dashlib.PG).update(rawSql=" "),
        "present and unique": lambda d: [t.update(refId="A") for t in next(p for p in dashlib.all_panels(d) if len(p.get("targets", [])) > 1)["targets"]],
        "templated one": lambda d: panel_of(d, "stat").update(datasource={"type": "prometheus", "uid": "P1809F7CD0C75ACF3"}),
        "without a unit": lambda d: next(p for p in dashlib.all_panels(d) if "_duration_seconds" in str(p.get("targets")))["fieldConfig"]["defaults"].update(unit="short"),
        "has no unit": lambda d: [o["properties"].clear() for o in next(p for p in dashlib.all_panels(d) if p["type"] == "table" and "/ 1e9" in str(p.get("targets")))["fieldConfig"]["overrides"]],
        "schemaVersion": lambda d: d.update(schemaVersion="39"),
        "markdown": lambda d: panel_of(d, "text")["options"].update(mode="html"),
        "not a variable": lambda d: first(d, dashlib.PG).update(rawSql=first(d, dashlib.PG)["rawSql"] + " AND x = '$nosuchvar'"),
        "should match the file name": lambda d: d.update(uid="plugmon-renamed"),
    }
    failures = []
    for expect, mutate in cases.items():
        with tempfile.TemporaryDirectory() as tmp:
            for n, d in good.items():
                d = copy.deepcopy(d)
                if n == name:
                    mutate(d)
                pathlib.Path(tmp, n).write_text(json.dumps(d))
            found = lint_all(tmp)
            if not any(expect in p for p in found):
                failures.append(f"self-test: breaking {name} for {expect!r} was not reported (got {found[:3]})")
    return failures, len(cases)


def main(argv):
    selftest = "--self-test" in argv
    args = [a for a in argv if a != "--self-test"]
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    problems = lint_all(args[0])
    n = len(dashlib.load_dashboards(args[0]))
    panels = sum(len(list(dashlib.all_panels(d))) for _, d in dashlib.load_dashboards(args[0]))
    tcount = sum(len(list(dashlib.targets(d))) for _, d in dashlib.load_dashboards(args[0]))
    if selftest:
        more, ncases = self_test(args[0])
        problems += more
    for p in problems:
        print("FAIL", p)
    if problems:
        return 1
    print(f"lint: {n} dashboards, {panels} panels, {tcount} targets: OK"
          + (f"; self-test: {ncases} broken copies all rejected" if selftest else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
