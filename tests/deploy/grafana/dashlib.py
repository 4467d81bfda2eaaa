"""Shared by the Grafana dashboard tests: loading dashboards, walking panels and targets, and
Grafana's template interpolation and PostgreSQL macros, written from Grafana's documentation
(variables: "Variable syntax", "Advanced variable format options", "Global variables";
macros: "PostgreSQL data source: Macros")."""

import datetime
import json
import math
import pathlib
import re

PROM = "prometheus"
PG = "grafana-postgresql-datasource"


def load_dashboards(directory):
    """[(path, dashboard)] for every *.json in directory, sorted by name."""
    out = []
    for path in sorted(pathlib.Path(directory).glob("*.json")):
        with open(path, encoding="utf-8") as f:
            out.append((path, json.load(f)))
    return out


def all_panels(dashboard):
    """Every panel, rows' nested panels included, in order."""
    for panel in dashboard.get("panels", []):
        yield panel
        for child in panel.get("panels", []) or []:
            yield child


def targets(dashboard):
    """(panel, target, kind) for every query target; kind is PROM, PG or the unknown type."""
    for panel in all_panels(dashboard):
        for target in panel.get("targets", []) or []:
            ds = target.get("datasource") or panel.get("datasource") or {}
            yield panel, target, ds.get("type")


def where(dashboard, panel, target=None):
    """'dashboard "T", panel "P" refId A' for failure messages."""
    text = f'dashboard "{dashboard.get("title")}" ({dashboard.get("uid")}), panel "{panel.get("title")}"'
    if target is not None:
        text += f' refId {target.get("refId")}'
    return text


# ---- durations ------------------------------------------------------------------------------

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def parse_duration(text):
    """Seconds in a Grafana/Prometheus duration like '15s', '1m', '500ms' or '1h30m'."""
    text = text.strip().strip("'\"")
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def format_duration(seconds):
    """The shortest of '250ms', '15s', '2m', '1h', '1d' that is exact."""
    ms = round(seconds * 1000)
    for unit, size in (("d", 86400000), ("h", 3600000), ("m", 60000), ("s", 1000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


# Grafana rounds the raw interval (range / max data points) to one of these steps: the documented
# "nice" values, each chosen when the raw interval is below the midpoint to the next one.
_NICE = [0.001, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900,
         1200, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 604800, 2592000, 31536000]


def round_interval(seconds):
    for low, high in zip(_NICE, _NICE[1:]):
        if seconds < (low + high) / 2:
            return low
    return _NICE[-1]


class TimeContext:
    """The time range and the intervals Grafana derives from it for one panel."""

    def __init__(self, start, end, max_data_points, min_interval, scrape_interval):
        self.start = start  # aware datetimes, UTC
        self.end = end
        rng = (end - start).total_seconds()
        self.range_s = rng
        self.interval_s = max(round_interval(rng / max_data_points), min_interval)
        # $__rate_interval = max($__interval + scrape interval, 4 * scrape interval)
        self.rate_interval_s = max(self.interval_s + scrape_interval, 4 * scrape_interval)

    def builtins(self):
        return {
            "__interval": format_duration(self.interval_s),
            "__interval_ms": str(round(self.interval_s * 1000)),
            "__rate_interval": format_duration(self.rate_interval_s),
            "__rate_interval_ms": str(round(self.rate_interval_s * 1000)),
            "__range": format_duration(round(self.range_s)),
            "__range_s": str(round(self.range_s)),
            "__range_ms": str(round(self.range_s * 1000)),
        }


# ---- template variables ---------------------------------------------------------------------

_VAR = re.compile(r"\$\{(\w+)(?::(\w+))?\}|\[\[(\w+)(?::(\w+))?\]\]|\$(\w+)")
_REGEX_SPECIAL = re.compile(r"([\\^$*+?.()|{}\[\]/])")


def _prom_regex_escape(value):
    # a regex metacharacter gets a backslash, itself escaped for the PromQL string literal
    return _REGEX_SPECIAL.sub(r"\\\\\1", value)


def _sql_quote(value):
    return "'" + value.replace("'", "''") + "'"


def format_value(values, multi, kind, fmt=None):
    """How Grafana writes a variable's value(s) into a query of datasource kind `kind`.
    multi: the variable allows several values or All (then the datasource's multi-value format
    applies even to one value)."""
    if fmt == "raw":
        return ",".join(values)
    if fmt == "regex":
        return values[0] if len(values) == 1 else "(" + "|".join(map(_prom_regex_escape, values)) + ")"
    if fmt in ("csv",):
        return ",".join(values)
    if fmt in ("singlequote", "sqlstring"):
        return ",".join(map(_sql_quote, values))
    if fmt == "pipe":
        return "|".join(values)
    if fmt is not None:
        raise ValueError(f"format :{fmt} not handled by this test")
    if kind == PROM:
        if not multi:
            return values[0].replace("\\", "\\\\").replace("'", "\\\\'")
        escaped = [_prom_regex_escape(v) for v in values]
        return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"
    if kind == PG:
        if not multi:
            return values[0].replace("'", "''")
        return ",".join(_sql_quote(v) for v in values)
    return ",".join(values)


def interpolate(text, variables, builtins, kind):
    """Replaces $var, ${var}, ${var:format} and [[var]]; variables maps name -> (values, multi).
    Names that are neither variables nor built-ins (macros like $__timeFilter) are left alone."""

    def repl(m):
        name = m.group(1) or m.group(3) or m.group(5)
        fmt = m.group(2) or m.group(4)
        if name in builtins:
            return builtins[name]
        if name in variables:
            values, multi = variables[name]
            return format_value(values, multi, kind, fmt)
        return m.group(0)

    return _VAR.sub(repl, text)


def unresolved(text):
    """Names of $variables still in text, macros ($__name(...)) excluded."""
    names = []
    for m in _VAR.finditer(text):
        name = m.group(1) or m.group(3) or m.group(5)
        end = m.end()
        if name.startswith("__") and text[end:end + 1] == "(":
            continue
        names.append(name)
    return names


# ---- PostgreSQL macros ----------------------------------------------------------------------

def _rfc3339(t):
    return t.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _split_args(text):
    """Top-level comma-separated arguments of a macro call."""
    args, depth, cur, quote = [], 0, "", None
    for ch in text:
        if quote:
            cur += ch
            if ch == quote:
                quote = None
            continue
        if ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            args.append(cur.strip())
            cur = ""
            continue
        cur += ch
    if cur.strip():
        args.append(cur.strip())
    return args


def _macro_calls(sql):
    """(start, end, name, args) of each $__name(...) call, outermost, left to right."""
    i = 0
    while True:
        m = re.compile(r"\$__(\w+)\(").search(sql, i)
        if not m:
            return
        depth, j = 1, m.end()
        while j < len(sql) and depth:
            depth += {"(": 1, ")": -1}.get(sql[j], 0)
            j += 1
        if depth:
            raise ValueError(f"unbalanced parentheses after $__{m.group(1)}")
        yield m.start(), j, m.group(1), _split_args(sql[m.end():j - 1])
        i = j


def expand_pg_macros(sql, tc):
    """Grafana's PostgreSQL macros, as documented, for the time range of tc."""
    frm, to = _rfc3339(tc.start), _rfc3339(tc.end)
    frm_s, to_s = int(tc.start.timestamp()), int(tc.end.timestamp())

    def need(name, args, n):
        if len(args) < n:
            raise ValueError(f"macro $__{name} needs {n} argument(s), got {len(args)}")

    def group(col, interval):
        secs = parse_duration(interval)
        secs = int(secs) if secs == int(secs) else secs
        return f"floor(extract(epoch from {col})/{secs})*{secs}"

    out, last = [], 0
    for start, end, name, args in _macro_calls(sql):
        if name == "time":
            need(name, args, 1)
            rep = f'{args[0]} AS "time"'
        elif name == "timeEpoch":
            need(name, args, 1)
            rep = f'extract(epoch from {args[0]}) as "time"'
        elif name == "timeFilter":
            need(name, args, 1)
            rep = f"{args[0]} BETWEEN '{frm}' AND '{to}'"
        elif name == "timeFrom":
            rep = f"'{frm}'"
        elif name == "timeTo":
            rep = f"'{to}'"
        elif name == "timeGroup":
            need(name, args, 2)
            rep = group(args[0], args[1])
        elif name == "timeGroupAlias":
            need(name, args, 2)
            rep = group(args[0], args[1]) + ' AS "time"'
        elif name == "unixEpochFilter":
            need(name, args, 1)
            rep = f"{args[0]} >= {frm_s} AND {args[0]} <= {to_s}"
        elif name == "unixEpochFrom":
            rep = str(frm_s)
        elif name == "unixEpochTo":
            rep = str(to_s)
        elif name == "unixEpochGroup":
            need(name, args, 2)
            secs = int(parse_duration(args[1]))
            rep = f"floor({args[0]}/{secs})*{secs}"
        elif name == "unixEpochGroupAlias":
            need(name, args, 2)
            secs = int(parse_duration(args[1]))
            rep = f'floor({args[0]}/{secs})*{secs} AS "time"'
        else:
            raise ValueError(f"unknown macro $__{name}")
        out.append(sql[last:start])
        out.append(rep)
        last = end
    out.append(sql[last:])
    return "".join(out)


def isfinite_number(v):
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False
