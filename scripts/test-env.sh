#!/usr/bin/env bash
# Starts (or stops) the real services Kiln's integration tests use: a Tansu Kafka broker, a moto S3
# server and Debian's Prometheus (remote-write receiver on), each on a free loopback port. `start` writes run/test-env.sh with the variables the tests
# read; `stop` ends what `start` began. Used by `make test`; handy by hand:
#   scripts/test-env.sh start && . run/test-env.sh && swift test --filter KafkaClientTests
# KILN_TEST_BROKER_STORAGE=s3 starts Tansu with its log in a bucket of the moto server (records survive a
# broker restart); the default is Tansu's memory storage. The reliability suite's durable-restart scenario
# runs a durable broker of its own on the same moto server either way.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RUN=${KILN_RUN_DIR:-$ROOT/run}
mkdir -p "$RUN"

LOGS=$RUN
# shellcheck source=scripts/lib/loopback.sh
. "$ROOT/scripts/lib/loopback.sh"

stop() {
  for name in tansu moto prometheus; do
    if [ -f "$RUN/$name.pid" ]; then
      kill "$(cat "$RUN/$name.pid")" 2>/dev/null || true
      rm -f "$RUN/$name.pid"
    fi
  done
  rm -f "$RUN/test-env.sh"
}

start() {
  stop
  local kport sport storage=memory://tansu/
  sport=$(free_port)
  "$ROOT/.venv/bin/moto_server" -H 127.0.0.1 -p "$sport" >"$RUN/moto.log" 2>&1 &
  echo $! > "$RUN/moto.pid"
  wait_port 127.0.0.1 "$sport" 60 moto
  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1
  if [ "${KILN_TEST_BROKER_STORAGE:-memory}" = s3 ]; then
    curl -fsS -X PUT "http://127.0.0.1:$sport/tansu-log" >/dev/null
    storage=s3://tansu-log/
  fi
  # Prometheus: remote write in, PromQL out, its data in the run folder (fresh each start).
  local pport
  pport=$(free_port)
  rm -rf "$RUN/prometheus-data" "$RUN/prometheus-targets"
  mkdir -p "$RUN/prometheus-targets"
  # Tests list Kiln processes to scrape as file_sd files there (kiln dev writes one: docs/dev.md).
  cat > "$RUN/prometheus.yml" <<YML
global:
  scrape_interval: 5s
scrape_configs:
  - job_name: kiln-test
    scrape_interval: 1s
    file_sd_configs:
      - files: ['$RUN/prometheus-targets/*.json']
YML
  prometheus --config.file="$RUN/prometheus.yml" --storage.tsdb.path="$RUN/prometheus-data" \
    --web.listen-address="127.0.0.1:$pport" --web.enable-remote-write-receiver --log.level=warn \
    >"$RUN/prometheus.log" 2>&1 &
  echo $! > "$RUN/prometheus.pid"
  wait_port 127.0.0.1 "$pport" 60 prometheus
  kport=$(free_port)
  AWS_ENDPOINT="http://127.0.0.1:$sport" AWS_ALLOW_HTTP=true \
    "$ROOT/.venv/bin/tansu" broker --listener-url "tcp://127.0.0.1:$kport" \
      --advertised-listener-url "tcp://127.0.0.1:$kport" --storage-engine "$storage" \
      >"$RUN/tansu.log" 2>&1 &
  echo $! > "$RUN/tansu.pid"
  wait_port 127.0.0.1 "$kport" 30 tansu
  cat > "$RUN/test-env.sh" <<ENV
export KILN_TEST_KAFKA_BROKERS=127.0.0.1:$kport
export KILN_TEST_S3_ENDPOINT=http://127.0.0.1:$sport
export KILN_TEST_PROMETHEUS_URL=http://127.0.0.1:$pport
export KILN_TEST_PROMETHEUS_TARGETS_DIR=$RUN/prometheus-targets
export KILN_REQUIRE_INTEGRATION=1
export LD_LIBRARY_PATH=$ROOT/.venv/kiln-lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1
ENV
  echo "test-env: Tansu ($storage) on 127.0.0.1:$kport, moto S3 on 127.0.0.1:$sport, Prometheus on 127.0.0.1:$pport ($RUN/test-env.sh)"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
