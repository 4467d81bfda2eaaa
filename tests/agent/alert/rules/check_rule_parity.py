#!/usr/bin/python3
"""Checks that deploy/plugmon-rules.yml (Prometheus) keeps in step with deploy/alerts.example.toml.

Every TOML rule must have, per level, a Prometheus alert with the same alertname and severity
label, the same `for` and `keep_firing_for`, and its thresholds (trigger and clear) among the
numbers of the expression. Thresholds compare in the kind's base unit, or as written before a
rate's unit ("10/m" may appear as 10 when the expression counts per minute).

usage: check_rule_parity.py ALERTS.toml RULES.yml
"""
import math
import re
import sys
import tomllib

import yaml

# Rules that cannot be expressed over /metrics, with the reason.
AGENT_ONLY = {
    "ProcessFdsNearLimit": "no fd limit metric on /metrics",
}

# Prometheus alerts about the agents themselves, with no rule in the agent's engine.
PROMETHEUS_ONLY = {"PlugmonAgentDown", "PlugmonRingNearlyFull", "PlugmonSeriesBudgetReached",
                   "PlugmonProcessMemoryLeak"}

SIZE_UNITS = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4,
              "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}
DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400}
PER = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_seconds(text):
    """'1m30s' -> 90.0."""
    total, pos = 0.0, 0
    for m in re.finditer(r"([0-9.]+)(ns|us|ms|s|m|h|d)", text):
        if m.start() != pos:
            raise ValueError(f"bad duration {text!r}")
        total += float(m.group(1)) * DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"bad duration {text!r}")
    return total


def amount(text):
    """A number, a size ('512MiB') or a duration ('250ms') in base units."""
    m = re.fullmatch(r"([0-9.]+)\s*([A-Za-z]*)", text)
    if not m:
        raise ValueError(f"bad amount {text!r}")
    number, unit = float(m.group(1)), m.group(2)
    if unit in SIZE_UNITS:
        return number * SIZE_UNITS[unit]
    if unit == "":
        return number
    return duration_seconds(text)


def accepted(value):
    """The numbers a threshold may appear as in PromQL."""
    if not isinstance(value, str):
        return {float(value)}
    if value.endswith("%"):
        return {float(value[:-1]) / 100}
    if "/" in value:
        what, per = value.rsplit("/", 1)
        n = amount(what)
        return {n / PER[per], n}
    return {amount(value)}


def numbers_in(expr):
    return [float(x) for x in re.findall(r"(?<![A-Za-z_\[])\b\d+(?:\.\d+)?(?:e[+-]?\d+)?\b", expr)]


def contains(numbers, wanted):
    return any(math.isclose(n, w, rel_tol=1e-6, abs_tol=1e-12) for n in numbers for w in wanted)


def normalised(d):
    return duration_seconds(d) if d else 0.0


def check(toml_path, yaml_path):
    with open(toml_path, "rb") as f:
        spec = tomllib.load(f)
    with open(yaml_path) as f:
        prom = yaml.safe_load(f)
    defaults = spec.get("defaults", {})
    alerts = {}
    for group in prom["groups"]:
        for r in group["rules"]:
            if "alert" in r:
                alerts.setdefault((r["alert"], r.get("labels", {}).get("severity")), []).append(r)
    problems = []
    for rule in spec.get("rule", []):
        name = rule["name"]
        if name in AGENT_ONLY:
            continue
        levels = rule.get("levels", {})
        if rule["kind"] == "watchdog":
            levels = {rule.get("severity", "info"): {}}
        for severity, level in levels.items():
            found = alerts.get((name, severity))
            if not found:
                problems.append(f"{name} severity={severity}: no Prometheus alert")
                continue
            r = found[0]
            for key in ("for", "keep_firing_for"):
                want = normalised(rule.get(key, defaults.get(key, "0s")))
                have = normalised(r.get(key, "0s"))
                if want != have:
                    problems.append(f"{name} {severity}: {key} {have}s in YAML, {want}s in TOML")
            numbers = numbers_in(r["expr"])
            for key in ("above", "below", "clear_below", "clear_above"):
                if key in level and not contains(numbers, accepted(level[key])):
                    problems.append(f"{name} {severity}: {key} = {level[key]!r} not in the expr")
    toml_names = {r["name"] for r in spec.get("rule", [])}
    for (name, severity) in alerts:
        if name not in toml_names and name not in PROMETHEUS_ONLY:
            problems.append(f"{name}: in the YAML only")
    return problems


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    problems = check(sys.argv[1], sys.argv[2])
    for p in problems:
        print("parity:", p, file=sys.stderr)
    if not problems:
        print("parity: the TOML and YAML rules agree")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
