#!/usr/bin/env bash
# Checks the monitoring files of docker/ without Docker: the alert rules (promtool check rules), their unit
# tests (promtool test rules: every alert fires in one case and stays silent in another), the Prometheus
# configuration, the dashboards (JSON that parses, PromQL that parses, Pyroscope queries that are JSON) and
# the recording rules file. Exits non-zero on the first failure.
#   scripts/check-dashboards.sh
# Needs promtool (Debian: apt-get install prometheus) and python3; PyYAML for the alerts' queries (the
# project's .venv has it).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v promtool >/dev/null; then
  echo "check-dashboards: promtool not found (Debian/Ubuntu: apt-get install prometheus)" >&2
  exit 1
fi
python=python3
if [ -x .venv/bin/python ]; then python=.venv/bin/python; fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

promtool check rules docker/prometheus/alerts.yml
promtool test rules docker/prometheus/alerts_test.yml

# prometheus.yml names the rule file where compose mounts it; check it against the one here.
sed "s#/etc/prometheus/alerts.yml#$PWD/docker/prometheus/alerts.yml#" docker/prometheus/prometheus.yml >"$work/prometheus.yml"
promtool check config "$work/prometheus.yml"

for file in docker/grafana/dashboards/*.json docker/recording-rules.json; do
  python3 -m json.tool "$file" >/dev/null || { echo "check-dashboards: $file is not valid JSON" >&2; exit 1; }
  echo "  JSON ok: $file"
done

# Every query, variables substituted: PromQL goes into a rule file as recording rules, so promtool parses
# it; Pyroscope queries must be JSON with a profile type and a selector.
"$python" scripts/dashboard-queries.py >"$work/queries.tsv"
"$python" - "$work/queries.tsv" "$work/queries.rules.yml" <<'EOF'
import json, sys
rules, failures = [], 0
for n, line in enumerate(open(sys.argv[1], encoding="utf-8")):
    where, kind, query = line.rstrip("\n").split("\t")
    if kind == "promql":
        rules.append(f"      - record: kiln_dashboard_query_{n}\n        expr: {json.dumps(query)}\n")
    else:
        q = json.loads(query)
        if not q.get("profileTypeId") or not q.get("labelSelector", "").startswith("{"):
            print(f"check-dashboards: {where}: incomplete Pyroscope query {query}", file=sys.stderr)
            failures += 1
with open(sys.argv[2], "w", encoding="utf-8") as out:
    out.write("groups:\n  - name: dashboard-queries\n    rules:\n" + "".join(rules))
print(f"  {len(rules)} PromQL queries of the dashboards and alerts to parse")
sys.exit(1 if failures else 0)
EOF
promtool check rules "$work/queries.rules.yml"
echo "check-dashboards: all good"
