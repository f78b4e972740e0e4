#!/usr/bin/env bash
# `make demo`: the whole pipeline on this machine through `kiln dev` — a Tansu broker, kiln-scraper,
# kiln-normalizer, kiln-compactor and kiln-query behind one address (default 127.0.0.1:4040) — scraping
# the repo's Go demo program through the article's Alloy config (../shared/fixtures/alloy/seed.alloy,
# placeholders filled in). Data lives in run/demo (KILN_DEMO_DIR); a second run reuses its blocks.
# Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
scripts/setup.sh
for product in kiln kiln-scraper kiln-normalizer kiln-compactor kiln-query kiln-ruler; do swift build --product "$product"; done
scripts/build-demo.sh >/dev/null
DATA=${KILN_DEMO_DIR:-$ROOT/run/demo}
LISTEN=${KILN_DEMO_LISTEN:-127.0.0.1:4040}
SEED=${KILN_FIXTURES_DIR:-$ROOT/../shared/fixtures}/alloy/seed.alloy
[ -f "$SEED" ] || { echo "demo: the article's Alloy config is not at $SEED (set KILN_FIXTURES_DIR)" >&2; exit 1; }
mkdir -p "$DATA/logs"

# The Go demo program is the profiled app; it stops with this script.
go_pid=
cleanup() {
  if [ -n "$go_pid" ]; then kill -TERM "$go_pid" 2>/dev/null || true; wait "$go_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT
"$ROOT/.build-demo/go-target" -addr 127.0.0.1:0 >"$DATA/logs/go-target.log" 2>&1 &
go_pid=$!
for _ in $(seq 1 100); do grep -q "^listening on " "$DATA/logs/go-target.log" && break; sleep 0.1; done
TARGET=$(sed -n 's/^listening on //p' "$DATA/logs/go-target.log" | head -n1)
[ -n "$TARGET" ] || { echo "demo: the Go demo program did not start (log: $DATA/logs/go-target.log)" >&2; exit 1; }

# The article's config with its placeholders filled in: the app is the Go demo, "Pyroscope" is kiln dev.
sed -e "s/Apps_ip_address:Apps_Port/$TARGET/" -e "s/Your_Apps_Name/go-demo/" \
    -e "s#http://Your_Pyroscope_ip_address:Your_Pyroscope_Port#http://$LISTEN#" "$SEED" > "$DATA/demo.alloy"

cat <<MSG

Kiln demo: open http://$LISTEN/ once "kiln dev: ready" is printed below (flame graphs within a minute).
  scraping       the Go demo program at http://$TARGET/debug/pprof/ (config: $DATA/demo.alloy)
  push ingest    http://$LISTEN/ingest and http://$LISTEN/push.v1.PusherService/Push
  OTLP profiles  http://$LISTEN/v1development/profiles and gRPC 127.0.0.1:4317
  Grafana        Pyroscope data source URL http://$LISTEN
  blocks         $DATA/blocks  (.build/debug/kiln blocks ls --store file://$DATA/blocks)
  logs           $DATA/logs/
Ctrl-C stops everything.

MSG
# Not exec: the Go demo is stopped once kiln dev has stopped. kiln dev runs in the background so this
# shell can pass Ctrl-C on as SIGTERM (a background job of a script ignores SIGINT itself).
"$ROOT/.build/debug/kiln" dev --data-dir "$DATA" --listen "$LISTEN" --scrape-config "$DATA/demo.alloy" &
kiln_pid=$!
trap 'kill -TERM $kiln_pid 2>/dev/null || true' INT TERM
set +e
wait "$kiln_pid"; status=$?
# A trapped signal interrupts `wait`; wait again until kiln dev has really exited.
while kill -0 "$kiln_pid" 2>/dev/null; do wait "$kiln_pid"; status=$?; done
exit "$status"
