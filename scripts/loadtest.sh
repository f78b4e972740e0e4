#!/usr/bin/env bash
# `make loadtest`: the bounded default load scenario on this machine (≤ 5 minutes), everything on loopback.
#
#   Tansu (memory) ─ kiln-scraper (push ingest) ─ kiln-normalizer ×1..2 ─ kiln-compactor ×1..2 ─ file:// store ─ kiln-query
#
# Phases, each a `kiln loadgen` run writing run/loadtest/results/<phase>.json:
#   scale-1n-1c, scale-2n-1c, scale-2n-2c  flat out through POST /ingest, paused while a group lags by more than
#                                          KILN_LOADTEST_MAX_LAG records, so the rate is what the pipeline sustains
#   latency                                 at half the best sustained rate, with a probe profile every second
# then checks that the store holds exactly what loadgen sent (load-tests/verify_totals.py) and writes
# run/loadtest/report/report.md with PNG plots (load-tests/report.py).
#
# Knobs (environment): KILN_LOADTEST_BUILD=release|debug (default release), KILN_LOADTEST_PHASE_SECONDS (40),
# KILN_LOADTEST_MAX_LAG (6000), KILN_LOADTEST_SERVICES (50), KILN_LOADTEST_INSTANCES (20), KILN_LOADTEST_CONCURRENCY
# (64 pushes in flight: a push is answered once Kafka acknowledged it, ~20-30 ms, so 8 would cap the rate near 300/s),
# KILN_LOADTEST_LATENCY_RATE (default: half the best sustained rate), KILN_LOADTEST_MAX_BLOCK_AGE (the compactors'
# --max-block-age, 1s), KILN_LOADTEST_LISTING_TTL (kiln-query's --listing-ttl, 0.5), KILN_FIXTURES_DIR, KILN_LOADTEST_DIR,
# KILN_LOADTEST_BIN (a folder of prebuilt binaries: skips the build; say which build it is in KILN_LOADTEST_BUILD).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RUN=${KILN_LOADTEST_DIR:-$ROOT/run/loadtest}
BUILD=${KILN_LOADTEST_BUILD:-release}
PHASE_SECONDS=${KILN_LOADTEST_PHASE_SECONDS:-40}
MAX_LAG=${KILN_LOADTEST_MAX_LAG:-6000}
SERVICES=${KILN_LOADTEST_SERVICES:-50}
INSTANCES=${KILN_LOADTEST_INSTANCES:-20}
CONCURRENCY=${KILN_LOADTEST_CONCURRENCY:-64}
MAX_BLOCK_AGE=${KILN_LOADTEST_MAX_BLOCK_AGE:-1s}
LISTING_TTL=${KILN_LOADTEST_LISTING_TTL:-0.5}
FIXTURES=${KILN_FIXTURES_DIR:-$ROOT/../shared/fixtures}
PARTITIONS=4
PY=$ROOT/.venv/bin/python

[ -d "$FIXTURES/pprof" ] || { echo "loadtest: the shared pprof fixtures are not at $FIXTURES/pprof (set KILN_FIXTURES_DIR)" >&2; exit 1; }
[ -x "$PY" ] || { echo "loadtest: no project venv at .venv (run scripts/setup.sh)" >&2; exit 1; }

if [ -n "${KILN_LOADTEST_BIN:-}" ]; then
  BIN=$KILN_LOADTEST_BIN # prebuilt binaries (e.g. a release build in another scratch path)
else
  echo "loadtest: building $BUILD binaries"
  for product in kiln kiln-scraper kiln-normalizer kiln-compactor kiln-query kiln-ruler; do
    swift build -c "$BUILD" --product "$product" || exit 1
  done
  BIN=$ROOT/.build/$BUILD
fi
export LD_LIBRARY_PATH=$ROOT/.venv/kiln-lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

rm -rf "$RUN/results" "$RUN/report" "$RUN/blocks" "$RUN/logs"
mkdir -p "$RUN/results" "$RUN/report" "$RUN/blocks" "$RUN/logs"
STORE=file://$RUN/blocks
started=$SECONDS

LOGS=$RUN/logs
# shellcheck source=scripts/lib/loopback.sh
. "$ROOT/scripts/lib/loopback.sh"

wait_log() { # file pattern seconds what
  local deadline=$((SECONDS + $3))
  until grep -q "$2" "$1" 2>/dev/null; do
    if ((SECONDS > deadline)); then echo "loadtest: $4 did not happen within $3 s ($1)" >&2; return 1; fi
    sleep 0.2
  done
}

# Every process this script starts, so the EXIT trap stops exactly those.
declare -A PIDS=()
declare -A ADMIN=()
cleanup() {
  for name in "${!PIDS[@]}"; do kill -TERM "${PIDS[$name]}" 2>/dev/null || true; done
  for name in "${!PIDS[@]}"; do wait "${PIDS[$name]}" 2>/dev/null || true; done
}
trap cleanup EXIT

start() { # name admin-port command...
  local name=$1 port=$2; shift 2
  "$@" >"$RUN/logs/$name.log" 2>&1 &
  PIDS[$name]=$!
  [ "$port" = - ] || ADMIN[$name]=http://127.0.0.1:$port
}

# Broker.
KPORT=$(free_port)
start tansu - "$ROOT/.venv/bin/tansu" broker --listener-url "tcp://127.0.0.1:$KPORT" \
  --advertised-listener-url "tcp://127.0.0.1:$KPORT" --storage-engine memory://tansu/
BROKERS=127.0.0.1:$KPORT
for _ in $(seq 1 150); do "$PY" -c "import socket,sys; s=socket.socket(); s.settimeout(0.5); sys.exit(s.connect_ex(('127.0.0.1',$KPORT)))" 2>/dev/null && break; sleep 0.2; done
# Tansu joins a group in about half the session timeout: keep it short so scale-out rebalances take seconds.
KAFKA=(--kafka-brokers "$BROKERS" --kafka-option session.timeout.ms=6000 --create-topics false)
"$BIN/kiln" topics create --kafka-brokers "$BROKERS" --topic-partitions "$PARTITIONS"

# Stages.
SPORT=$(free_port)
start scraper "$SPORT" "$BIN/kiln-scraper" "${KAFKA[@]}" --listen "127.0.0.1:$SPORT" --ingest-rate-mb 0
QPORT=$(free_port)
start query "$QPORT" "$BIN/kiln-query" --store "$STORE" --listen "127.0.0.1:$QPORT" --listing-ttl "$LISTING_TTL"
# Consumers commit their stored offsets every second (librdkafka's default is 5 s): the end-to-end rate ends when
# the groups' committed offsets reach the end, and a 5 s commit interval would stretch a 40 s phase by up to 12 %.
CONSUMER=(--kafka-option auto.commit.interval.ms=1000)
start_normalizer() { local p; p=$(free_port); start "normalizer.$1" "$p" "$BIN/kiln-normalizer" "${KAFKA[@]}" "${CONSUMER[@]}" --admin-listen "127.0.0.1:$p"; }
start_compactor() { local p; p=$(free_port); start "compactor.$1" "$p" "$BIN/kiln-compactor" "${KAFKA[@]}" "${CONSUMER[@]}" --admin-listen "127.0.0.1:$p" \
  --store "$STORE" --max-block-age "$MAX_BLOCK_AGE" --compaction-interval 30s; }
start_normalizer 1
start_compactor 1
for name in scraper query normalizer.1 compactor.1; do wait_ready "${ADMIN[$name]}/ready" 60 "$name"; done
wait_log "$RUN/logs/normalizer.1.log" "partitions assigned" 30 "normalizer.1 joining its group"
wait_log "$RUN/logs/compactor.1.log" "partitions assigned" 30 "compactor.1 joining its group"
echo "loadtest: pipeline up after $((SECONDS - started)) s (broker $BROKERS, ingest ${ADMIN[scraper]}, query ${ADMIN[query]})"

watches() {
  local args=(--watch "tansu=${PIDS[tansu]}")
  for name in "${!ADMIN[@]}"; do args+=(--watch "$name=${PIDS[$name]}@${ADMIN[$name]}"); done
  printf '%s\n' "${args[@]}"
}

loadgen() { # phase extra-args...
  local phase=$1; shift
  mapfile -t W < <(watches)
  "$BIN/kiln" loadgen --phase "$phase" --out "$RUN/results" --fixtures "$FIXTURES" \
    --ingest-url "${ADMIN[scraper]}" --kafka-brokers "$BROKERS" \
    --services "$SERVICES" --instances "$INSTANCES" --kinds cpu,heap,goroutine,mutex --concurrency "$CONCURRENCY" \
    --lag kiln-normalizer=kiln.profiles.raw --lag kiln-compactor=kiln.profiles.normalized \
    "${W[@]}" "$@" 2>&1 | tee "$RUN/logs/loadgen-$phase.log"
}

scale_phase() { loadgen "$1" --duration "${PHASE_SECONDS}s" --max-lag "$MAX_LAG" --sample-interval 0.5 --drain-timeout 40s; }

scale_phase scale-1n-1c
start_normalizer 2
wait_log "$RUN/logs/normalizer.2.log" "partitions assigned" 30 "normalizer.2 joining the group"
scale_phase scale-2n-1c
start_compactor 2
wait_log "$RUN/logs/compactor.2.log" "partitions assigned" 30 "compactor.2 joining the group"
scale_phase scale-2n-2c

# Half the best sustained (end-to-end) rate of the scale phases.
RATE=${KILN_LOADTEST_LATENCY_RATE:-$("$PY" - "$RUN/results" <<'PY'
import json, pathlib, sys
best = 0.0
for f in pathlib.Path(sys.argv[1]).glob("scale-*.json"):
    r = json.loads(f.read_text())
    best = max(best, r.get("end_to_end_rate") or r.get("achieved_rate") or 0)
print(max(10, round(best / 2)))
PY
)}
echo "loadtest: latency phase at $RATE profiles/s"
loadgen latency --rate "$RATE" --duration 30s --query "${ADMIN[query]}" --probe-interval 1 --drain-timeout 30s

# Totals in the store against what loadgen sent (all phases), then the report.
if ! "$PY" "$ROOT/load-tests/verify_totals.py" --query "${ADMIN[query]}" --results "$RUN/results" --out "$RUN/results/verify.json" --timeout 30; then
  # Where the difference arose: batches the normalisers published (acknowledged by the broker) against
  # records the compactors read, and any offsets the broker skipped.
  metric_sum() { # metric process-name-prefix
    local total=0 name value
    for name in "${!ADMIN[@]}"; do
      [[ $name == "$2"* ]] || continue
      value=$(curl -fsS "${ADMIN[$name]}/metrics" | awk -v m="$1" '$1 == m { printf "%d", $2 }')
      total=$((total + ${value:-0}))
    done
    echo "$total"
  }
  echo "loadtest: normalisers published $(metric_sum kiln_normalizer_batches_total normalizer) batches;" \
    "compactors read $(metric_sum kiln_compactor_records_total compactor) records," \
    "found $(metric_sum kiln_compactor_offset_gap_records_total compactor) skipped offsets"
  grep -h "offset gap" "$RUN"/logs/compactor.*.log | head -n 5 || true
fi
echo "loadtest: stopping the pipeline after $((SECONDS - started)) s"
cleanup
PIDS=()
"$PY" "$ROOT/load-tests/report.py" --results "$RUN/results" --out "$RUN/report" --build "$BUILD"
echo "loadtest: report in $RUN/report/report.md ($((SECONDS - started)) s in all)"
