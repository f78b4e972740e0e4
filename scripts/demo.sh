#!/usr/bin/env bash
# `make demo`: the pipeline on this machine — a Tansu broker, the repo's Go demo program scraped
# through the article's Alloy config (../shared/fixtures/alloy/seed.alloy, placeholders filled in),
# kiln-scraper (also serving push ingest on 127.0.0.1:4040, Pyroscope's port), kiln-normalizer and
# kiln-compactor writing blocks under run/demo/blocks. Ctrl-C stops everything; a second run reuses
# the blocks. Ports: KILN_DEMO_LISTEN (default 127.0.0.1:4040).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
scripts/setup.sh
for product in kiln kiln-scraper kiln-normalizer kiln-compactor kiln-query; do swift build --product "$product"; done
scripts/build-demo.sh >/dev/null
export LD_LIBRARY_PATH=$ROOT/.venv/kiln-lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
DATA=${KILN_DEMO_DIR:-$ROOT/run/demo}
LISTEN=${KILN_DEMO_LISTEN:-127.0.0.1:4040}
SEED=${KILN_FIXTURES_DIR:-$ROOT/../shared/fixtures}/alloy/seed.alloy
mkdir -p "$DATA/blocks" "$DATA/logs"
BIN=$ROOT/.build/debug

pids=()
cleanup() {
  echo; echo "demo: stopping"
  for ((i=${#pids[@]}-1; i>=0; i--)); do kill -TERM "${pids[i]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

free_port() { "$ROOT/.venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() { # url name
  for _ in $(seq 1 600); do
    curl -fsS "$1" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "demo: $2 did not become ready (log: $DATA/logs/$2.log)" >&2; tail -n 20 "$DATA/logs/$2.log" >&2; exit 1
}

KPORT=$(free_port)
"$ROOT/.venv/bin/tansu" broker --listener-url "tcp://127.0.0.1:$KPORT" --advertised-listener-url "tcp://127.0.0.1:$KPORT" \
  --storage-engine memory://tansu/ >"$DATA/logs/tansu.log" 2>&1 &
pids+=($!)
export KILN_KAFKA_BROKERS=127.0.0.1:$KPORT
# Tansu answers a consumer-group join after about half the session timeout; keep joins quick.
export KILN_KAFKA_OPTIONS=session.timeout.ms=6000

"$ROOT/.build-demo/go-target" -addr 127.0.0.1:0 >"$DATA/logs/go-target.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do grep -q "^listening on " "$DATA/logs/go-target.log" && break; sleep 0.1; done
TARGET=$(sed -n 's/^listening on //p' "$DATA/logs/go-target.log" | head -n1)
[ -n "$TARGET" ] || { echo "demo: the Go demo program did not start" >&2; exit 1; }

[ -f "$SEED" ] || { echo "demo: the article's Alloy config is not at $SEED (set KILN_FIXTURES_DIR)" >&2; exit 1; }
sed -e "s/Apps_ip_address:Apps_Port/$TARGET/" -e "s/Your_Apps_Name/go-demo/" \
    -e "s#http://Your_Pyroscope_ip_address:Your_Pyroscope_Port#http://$LISTEN#" "$SEED" > "$DATA/demo.alloy"

"$BIN/kiln-normalizer" --admin-listen 127.0.0.1:0 >"$DATA/logs/kiln-normalizer.log" 2>&1 &
pids+=($!)
"$BIN/kiln-compactor" --store "file://$DATA/blocks" --max-block-age 30s --admin-listen 127.0.0.1:0 \
  >"$DATA/logs/kiln-compactor.log" 2>&1 &
pids+=($!)
"$BIN/kiln-scraper" --config "$DATA/demo.alloy" --listen "$LISTEN" --admin-listen 127.0.0.1:0 \
  >"$DATA/logs/kiln-scraper.log" 2>&1 &
pids+=($!)
wait_ready "http://$LISTEN/ready" kiln-scraper

cat <<MSG

Kiln demo is running.
  scraping       the Go demo program at http://$TARGET/debug/pprof/ (config: $DATA/demo.alloy)
  push ingest    http://$LISTEN/ingest and http://$LISTEN/push.v1.PusherService/Push
  scrape health  http://$LISTEN/targets     metrics: http://$LISTEN/metrics
  blocks         $DATA/blocks  (kiln blocks ls --store file://$DATA/blocks)
  logs           $DATA/logs/
The query API and web UI (kiln-query) are not built yet; blocks appear every 30 s and are listed below.
Ctrl-C stops everything.

MSG
while true; do
  sleep 30
  "$BIN/kiln" blocks ls --store "file://$DATA/blocks" 2>/dev/null | tail -n 5 || true
done
