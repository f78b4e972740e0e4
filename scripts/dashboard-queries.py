#!/usr/bin/env python3
"""Prints every query of the Grafana dashboards and every alert expression, one per line, tab-separated:

    <where it comes from> <TAB> <kind> <TAB> <query>

kind is `promql` (a PromQL expression, for /api/v1/query of the Prometheus in docker/) or `pyroscope` (a
Pyroscope-panel query as JSON: queryType, profileTypeId, labelSelector, groupBy; for kiln-query). Dashboard
variables are substituted with values any data matches: $service (any form) → `.+`, $__rate_interval → 1m,
$__rate_interval_ms → 60000, $__interval → 1m, $__range → 1h, $__range_s → 3600. A query using a variable
not listed here is an error, so a new one is not passed on unsubstituted. A dashboard query variable's
label_values(METRIC, LABEL) is printed as its series selector METRIC.

    scripts/dashboard-queries.py [--kind promql|pyroscope] [DOCKER_DIR]

Needs PyYAML for docker/prometheus/alerts.yml (the project's .venv/bin/python has it).
"""
import argparse
import json
import re
import sys
from pathlib import Path

SUBSTITUTIONS = {
    "service": ".+",
    "__rate_interval_ms": "60000",
    "__rate_interval": "1m",
    "__interval_ms": "60000",
    "__interval": "1m",
    "__range_ms": "3600000",
    "__range_s": "3600",
    "__range": "1h",
}
# $name, ${name} and ${name:format}; the longest name wins ($__range_s before $__range).
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::[A-Za-z]+)?\}|\$([A-Za-z_][A-Za-z0-9_]*)")
LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(.+?)\s*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$")


class UnknownVariable(Exception):
    pass


def substitute(text, where):
    def replace(match):
        name = match.group(1) or match.group(2)
        if name not in SUBSTITUTIONS:
            raise UnknownVariable(f"{where}: unknown variable ${name} in {text!r}")
        return SUBSTITUTIONS[name]

    return VARIABLE.sub(replace, text)


def one_line(text):
    return " ".join(text.split())


def panels(items):
    """Every panel, rows' nested panels included, in order."""
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))


def dashboard_queries(path):
    board = json.loads(path.read_text(encoding="utf-8"))
    name = path.name
    for variable in board.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, dict) else (query or "")
        where = f"{name} variable ${variable['name']}"
        match = LABEL_VALUES.match(text)
        yield where, "promql", substitute(match.group(1) if match else text, where)
    for panel in panels(board.get("panels", [])):
        for target in panel.get("targets", []):
            where = f"{name} panel {panel['id']} \"{panel.get('title', '')}\" {target.get('refId', '')}"
            if "expr" in target:
                yield where, "promql", one_line(substitute(target["expr"], where))
            elif "profileTypeId" in target:
                query = {
                    "queryType": target.get("queryType", "profile"),
                    "profileTypeId": target["profileTypeId"],
                    "labelSelector": substitute(target.get("labelSelector", "{}"), where),
                    "groupBy": target.get("groupBy", []),
                }
                if "maxNodes" in target:
                    query["maxNodes"] = target["maxNodes"]
                yield where, "pyroscope", json.dumps(query, separators=(",", ":"))
            else:
                raise ValueError(f"{where}: a target with neither expr nor profileTypeId")


def alert_queries(path):
    try:
        import yaml
    except ImportError:
        sys.exit("dashboard-queries.py: PyYAML is needed for alerts.yml; run it with .venv/bin/python")
    rules = yaml.safe_load(path.read_text(encoding="utf-8"))
    for group in rules.get("groups", []):
        for rule in group.get("rules", []):
            name = rule.get("alert") or rule.get("record")
            where = f"{path.name} {group['name']} {name}"
            yield where, "promql", one_line(substitute(rule["expr"], where))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", choices=["promql", "pyroscope"], help="print only queries of this kind")
    parser.add_argument("docker", nargs="?", default=str(Path(__file__).resolve().parent.parent / "docker"))
    args = parser.parse_args()
    docker = Path(args.docker)
    sources = [dashboard_queries(p) for p in sorted((docker / "grafana" / "dashboards").glob("*.json"))]
    sources.append(alert_queries(docker / "prometheus" / "alerts.yml"))
    try:
        for source in sources:
            for where, kind, query in source:
                if args.kind in (None, kind):
                    print(f"{where}\t{kind}\t{query}")
    except UnknownVariable as error:
        sys.exit(f"dashboard-queries.py: {error}")


if __name__ == "__main__":
    main()
