#!/usr/bin/env bash
# `make soak`: two of every stage under random faults for SOAK_MINUTES (default 10), then drain and audit.
# Everything on loopback; bounded (each wait has a deadline) and stops everything it started.
#
#   kiln loadgen ─▶ kiln-scraper push ─┐
#   Go demo ×2 ◀─── kiln-scraper pull ─┴─▶ Tansu (its log on a moto S3 of its own) ─▶ kiln-normalizer ×2 ─▶ kiln-compactor ×2
#                                                                     kiln-query ×2 ─┘└─▶ S3 fault proxy ─▶ moto
#
# After each SOAK_FAULT_SECONDS (default 10) of calm, one fault chosen at random (SOAK_SEED), so faults come
# every 10-20 s:
#   kill    SIGKILL of any Kiln process, started again a second later
#   pause   SIGSTOP of any Kiln process for 8 s (past the 6 s consumer session and the 5 s compaction lease), SIGCONT
#   broker  SIGKILL of the broker, started again on the same S3 log
#   s3-503  every second object-store request of the compactors and queries answered 503 for 10 s
#   s3-slow every request delayed 3 s (past the store clients' patience) for 10 s
# With SOAK_STORE=file the blocks live in a file:// store on a tmpfs of their own (root mounts it) instead,
# and the store's fault is
#   disk-full the tmpfs filled to its last 16 KiB for 10 s, then freed
# Then: faults off, consumer lag back to 0, `kiln blocks audit` (every raw record of the loadgen tenant in
# exactly one live block, totals exact), both query replicas answer the same totals, and every Kiln process's
# peak RSS (VmHWM) under SOAK_RSS_LIMIT_MB. Report with plots: run/soak/report/report.md (load-tests/soak_report.py).
#
# Knobs (environment): SOAK_MINUTES (10), SOAK_FAULT_SECONDS (10), SOAK_SEED (random), SOAK_RATE (profiles/s
# pushed; default half the best sustained rate of the last `make loadtest`, else 20), SOAK_RSS_LIMIT_MB (1024),
# KILN_SOAK_BUILD=release|debug (release), KILN_SOAK_BIN (prebuilt binaries: skips the build), KILN_FIXTURES_DIR,
# KILN_SOAK_DIR (run/soak), SOAK_KEEP_ON_FAILURE=1 (a failed drain leaves the stack up for inspection),
# SOAK_STORE=s3|file (s3: moto behind the fault proxy; file: a 512 MiB tmpfs, needs root), SOAK_PARTITIONS (4:
# partitions per topic; Tansu's S3 log lists a partition's every record object on each fetch that finds data,
# so the broker's work per record grows with the records per partition), SOAK_BROKER=s3|memory (s3: Tansu's
# log on a moto of its own, killed and restarted among the faults; memory: Tansu in memory, for rates and
# lengths the S3 log cannot carry here (docs/operations.md), and then no broker faults, since a restarted
# in-memory broker forgets everything).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
RUN=${KILN_SOAK_DIR:-$ROOT/run/soak}
MINUTES=${SOAK_MINUTES:-10}
FAULT_SECONDS=${SOAK_FAULT_SECONDS:-10}
SEED=${SOAK_SEED:-$((RANDOM * 32768 + RANDOM))}
RSS_LIMIT_MB=${SOAK_RSS_LIMIT_MB:-1024}
BUILD=${KILN_SOAK_BUILD:-release}
STORE_KIND=${SOAK_STORE:-s3}
BROKER_KIND=${SOAK_BROKER:-s3}
FIXTURES=${KILN_FIXTURES_DIR:-$ROOT/../shared/fixtures}
PY=$ROOT/.venv/bin/python
TENANT=soak
PARTITIONS=${SOAK_PARTITIONS:-4}
PAUSE_SECONDS=8

[ -d "$FIXTURES/pprof" ] || { echo "soak: the shared pprof fixtures are not at $FIXTURES/pprof (set KILN_FIXTURES_DIR)" >&2; exit 1; }
[ -x "$PY" ] || { echo "soak: no project venv at .venv (run scripts/setup.sh)" >&2; exit 1; }
case $STORE_KIND in
  s3) ;;
  file) [ "$(id -u)" = 0 ] || { echo "soak: SOAK_STORE=file mounts a tmpfs for the blocks and needs root" >&2; exit 1; } ;;
  *) echo "soak: SOAK_STORE must be s3 or file, not $STORE_KIND" >&2; exit 1 ;;
esac
case $BROKER_KIND in
  s3 | memory) ;;
  *) echo "soak: SOAK_BROKER must be s3 or memory, not $BROKER_KIND" >&2; exit 1 ;;
esac
if [ -n "${KILN_SOAK_BIN:-}" ]; then
  BIN=$KILN_SOAK_BIN
else
  echo "soak: building $BUILD binaries"
  for product in kiln kiln-scraper kiln-normalizer kiln-compactor kiln-query; do swift build -c "$BUILD" --product "$product"; done
  BIN=$ROOT/.build/$BUILD
fi
GO_DEMO=$ROOT/$(scripts/build-demo.sh)
export LD_LIBRARY_PATH=$ROOT/.venv/kiln-lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1

rm -rf "$RUN"
mkdir -p "$RUN/logs" "$RUN/pids" "$RUN/results" "$RUN/report"
RANDOM=$SEED
started=$SECONDS

LOGS=$RUN/logs
# shellcheck source=scripts/lib/loopback.sh
. "$ROOT/scripts/lib/loopback.sh"

# Every process this script starts, by name, so the EXIT trap stops exactly those: Kiln's first (woken if
# paused), then the broker, the store and the rest; whatever has not exited 30 s after SIGTERM is killed.
declare -A PIDS=()
stop_all() { # name...
  local name deadline=$((SECONDS + 30))
  for name in "$@"; do kill -CONT "${PIDS[$name]}" 2>/dev/null || true; kill -TERM "${PIDS[$name]}" 2>/dev/null || true; done
  for name in "$@"; do
    while kill -0 "${PIDS[$name]}" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    kill -KILL "${PIDS[$name]}" 2>/dev/null || true
    wait "${PIDS[$name]}" 2>/dev/null || true
    unset "PIDS[$name]"
  done
}
cleanup() {
  local first=() rest=() name
  for name in "${!PIDS[@]}"; do
    case $name in scraper.* | normalizer.* | compactor.* | query.* | loadgen | rss-sampler) first+=("$name") ;; *) rest+=("$name") ;; esac
  done
  ((${#first[@]} == 0)) || stop_all "${first[@]}"
  ((${#rest[@]} == 0)) || stop_all "${rest[@]}"
  if [ -n "${DISK:-}" ] && mountpoint -q "$DISK"; then umount "$DISK" || echo "soak: could not unmount $DISK" >&2; fi
}
trap cleanup EXIT

launch() { # name command...: appends to the name's log, so a restarted process's log follows its predecessor's
  local name=$1; shift
  # A session of its own: were this script's process group orphaned (its caller gone) while a process of it
  # is paused, the kernel would send the whole group SIGHUP, and stages die of it.
  setsid "$@" >>"$RUN/logs/$name.log" 2>&1 &
  PIDS[$name]=$!
  echo "${PIDS[$name]}" >"$RUN/pids/$name"
}

fault_log() { printf '%s\t%s\t%s\n' "$(date +%s.%N)" "$1" "$2" >>"$RUN/faults.tsv"; }

# Object store: moto, its buckets, and the fault proxy the compactors and queries go through.
MOTO_PORT=$(free_port)
launch moto "$ROOT/.venv/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT"
wait_port 127.0.0.1 "$MOTO_PORT" 60 moto
MOTO=http://127.0.0.1:$MOTO_PORT
curl -fsS -X PUT "$MOTO/kiln-blocks" >/dev/null
PLAN=$RUN/s3-plan
echo pass >"$PLAN"
launch s3-proxy "$PY" "$ROOT/scripts/s3-fault-proxy.py" --upstream "127.0.0.1:$MOTO_PORT" --port-file "$RUN/s3-proxy.port" \
  --plan-file "$PLAN" --slow-seconds 3 --hang-seconds 5 --max-lifetime $((MINUTES * 60 + 1800))
for _ in $(seq 1 75); do [ -s "$RUN/s3-proxy.port" ] && break; sleep 0.2; done
[ -s "$RUN/s3-proxy.port" ] || { echo "soak: the S3 fault proxy did not start (log: $RUN/logs/s3-proxy.log)" >&2; exit 1; }
STORE="s3://kiln-blocks/blocks?endpoint=http://127.0.0.1:$(cat "$RUN/s3-proxy.port")&region=us-east-1"
DIRECT_STORE="s3://kiln-blocks/blocks?endpoint=$MOTO&region=us-east-1"
set_plan() { echo "$1" >"$PLAN.tmp" && mv "$PLAN.tmp" "$PLAN"; }
STORE_FAULTS=(s3-503 s3-slow)
if [ "$STORE_KIND" = file ]; then
  # The blocks on a disk of their own, small enough to fill in a moment.
  DISK=$RUN/disk
  mkdir -p "$DISK"
  mount -t tmpfs -o size=512m tmpfs "$DISK"
  STORE=file://$DISK/blocks
  DIRECT_STORE=$STORE
  STORE_FAULTS=(disk-full disk-full)  # as often as the two S3 faults together
fi

# Broker: Tansu with its log in S3, so a restart keeps every acknowledged record. A moto of its own, as a
# fleet's broker storage is not its block store: each moto answers on one core, and the broker's listings
# would otherwise queue behind the compactors' and queries' requests (and the other way round).
BROKER_FAULTS=()
LOG_STORAGE=memory://tansu/
LOG_MOTO=
if [ "$BROKER_KIND" = s3 ]; then
  LOG_MOTO_PORT=$(free_port)
  launch moto.log "$ROOT/.venv/bin/moto_server" -H 127.0.0.1 -p "$LOG_MOTO_PORT"
  wait_port 127.0.0.1 "$LOG_MOTO_PORT" 60 moto.log
  LOG_MOTO=http://127.0.0.1:$LOG_MOTO_PORT
  curl -fsS -X PUT "$LOG_MOTO/tansu-log" >/dev/null
  LOG_STORAGE=s3://tansu-log/
  BROKER_FAULTS=(broker)
fi
KPORT=$(free_port)
BROKERS=127.0.0.1:$KPORT
start_broker() {
  AWS_ENDPOINT=$LOG_MOTO AWS_ALLOW_HTTP=true launch tansu "$ROOT/.venv/bin/tansu" broker --listener-url "tcp://$BROKERS" \
    --advertised-listener-url "tcp://$BROKERS" --storage-engine "$LOG_STORAGE"
  wait_port 127.0.0.1 "$KPORT" 30 tansu
}
start_broker
"$BIN/kiln" topics create --kafka-brokers "$BROKERS" --topic-partitions "$PARTITIONS"
KAFKA=(--kafka-brokers "$BROKERS" --create-topics false)
CONSUMER=(--kafka-option session.timeout.ms=6000 --kafka-option heartbeat.interval.ms=1000)

# The Go demo fleet the pull scraper scrapes.
DEMO_TARGETS=""
for i in 1 2; do
  port=$(free_port)
  launch "go-demo.$i" "$GO_DEMO" -addr "127.0.0.1:$port"
  DEMO_TARGETS+="{\"__address__\" = \"127.0.0.1:$port\", \"service_name\" = \"go-demo-$i\"}, "
done
cat >"$RUN/pull.alloy" <<ALLOY
pyroscope.scrape "fleet" {
  targets         = [${DEMO_TARGETS%, }]
  forward_to      = [pyroscope.write.raw.receiver]
  scrape_interval = "10s"
}
pyroscope.write "raw" {
  kafka { brokers = "$BROKERS" }
}
ALLOY

# Kiln's processes: fixed admin ports, so a restarted one is where it was.
declare -A PORT=()
KILN=(scraper.push scraper.pull normalizer.1 normalizer.2 compactor.1 compactor.2 query.1 query.2)
for name in "${KILN[@]}"; do PORT[$name]=$(free_port); done
start_kiln() { # name
  local name=$1 port=${PORT[$1]}
  case $name in
    scraper.push) launch "$name" "$BIN/kiln-scraper" "${KAFKA[@]}" --listen "127.0.0.1:$port" --ingest-rate-mb 0 ;;
    scraper.pull) launch "$name" "$BIN/kiln-scraper" "${KAFKA[@]}" --listen "127.0.0.1:$port" --config "$RUN/pull.alloy" ;;
    normalizer.*) launch "$name" "$BIN/kiln-normalizer" "${KAFKA[@]}" "${CONSUMER[@]}" --admin-listen "127.0.0.1:$port" ;;
    compactor.*) launch "$name" "$BIN/kiln-compactor" "${KAFKA[@]}" "${CONSUMER[@]}" --admin-listen "127.0.0.1:$port" \
      --store "$STORE" --max-block-age 2s --compaction on --compaction-interval 15s --compaction-lease 5s ;;
    query.*) launch "$name" "$BIN/kiln-query" --store "$STORE" --listen "127.0.0.1:$port" --listing-ttl 1 ;;
  esac
}
for name in "${KILN[@]}"; do start_kiln "$name"; done
for name in "${KILN[@]}"; do wait_ready "http://127.0.0.1:${PORT[$name]}/ready" 90 "$name"; done

if [ -z "${SOAK_RATE:-}" ]; then
  SOAK_RATE=$("$PY" - "$ROOT/run/loadtest/results" <<'PY'
import json, pathlib, sys
best = 0.0
for f in pathlib.Path(sys.argv[1]).glob("scale-*.json"):
    r = json.loads(f.read_text())
    best = max(best, r.get("end_to_end_rate") or r.get("achieved_rate") or 0)
print(max(10, round(best / 2)) if best else 20)
PY
)
fi
echo "soak: pipeline up after $((SECONDS - started)) s; $MINUTES min at $SOAK_RATE profiles/s, a fault every $FAULT_SECONDS s (seed $SEED)"

# RSS and peak RSS (VmHWM, kB) of every process, once a second, by name (pids change on restarts).
(
  while :; do
    now=$(date +%s.%N)
    for f in "$RUN"/pids/*; do
      pid=$(cat "$f" 2>/dev/null) || continue
      mem=$(awk '/^VmRSS/ { r = $2 } /^VmHWM/ { h = $2 } END { if (r) print r "\t" h }' "/proc/$pid/status" 2>/dev/null) || continue
      [ -n "$mem" ] && printf '%s\t%s\t%s\n' "$now" "$(basename "$f")" "$mem"
    done
    sleep 1
  done
) >"$RUN/rss.tsv" 2>/dev/null &
PIDS[rss-sampler]=$!

"$BIN/kiln" loadgen --phase soak --out "$RUN/results" --fixtures "$FIXTURES" --tenant "$TENANT" \
  --ingest-url "http://127.0.0.1:${PORT[scraper.push]}" --kafka-brokers "$BROKERS" \
  --services 20 --instances 5 --kinds cpu,heap,goroutine,mutex --concurrency 16 --rate "$SOAK_RATE" \
  --duration "${MINUTES}m" --sample-interval 1 --drain-timeout 5s \
  --lag kiln-normalizer=kiln.profiles.raw --lag kiln-compactor=kiln.profiles.normalized \
  >"$RUN/logs/loadgen.log" 2>&1 &
LOADGEN=$!
PIDS[loadgen]=$LOADGEN

# Faults until loadgen is done sending. `pick` sets PICKED in this shell, so SOAK_SEED replays the same faults.
pick() { local a=("$@"); PICKED=${a[RANDOM % ${#a[@]}]}; }
: >"$RUN/faults.tsv"
while kill -0 "$LOADGEN" 2>/dev/null; do
  sleep "$FAULT_SECONDS"
  kill -0 "$LOADGEN" 2>/dev/null || break
  pick kill kill pause pause "${BROKER_FAULTS[@]}" "${STORE_FAULTS[@]}"
  kind=$PICKED
  pick "${KILN[@]}"
  name=$PICKED
  case $kind in
    kill)
      fault_log kill "$name"
      kill -KILL "${PIDS[$name]}" 2>/dev/null || true
      wait "${PIDS[$name]}" 2>/dev/null || true
      sleep 1
      start_kiln "$name" ;;
    pause)
      fault_log pause "$name"
      kill -STOP "${PIDS[$name]}" 2>/dev/null || true
      sleep "$PAUSE_SECONDS"
      kill -CONT "${PIDS[$name]}" 2>/dev/null || true ;;
    broker)
      fault_log broker tansu
      kill -KILL "${PIDS[tansu]}" 2>/dev/null || true
      wait "${PIDS[tansu]}" 2>/dev/null || true
      sleep 1
      start_broker ;;
    s3-503)
      fault_log s3-503 store
      set_plan "--every 2:503"
      sleep 10
      set_plan pass ;;
    s3-slow)
      fault_log s3-slow store
      set_plan "--always slow"
      sleep 10
      set_plan pass ;;
    disk-full)
      fault_log disk-full store
      # fallocate takes all it asks for or nothing: a block written between `df` and it makes it fail, so
      # it tries again with what is left then.
      for _ in 1 2 3 4 5; do
        avail=$(df --output=avail -B1 "$DISK" | tail -n 1)
        fallocate -l $((avail > 16384 ? avail - 16384 : 1)) "$DISK/filler" 2>/dev/null && break
      done
      df -B1 --output=avail "$DISK" | tail -n 1 | sed "s/^ */$(date +%s.%N)\tfree bytes after filling: /" >>"$LOGS/disk.log"
      sleep 10
      rm -f "$DISK/filler" ;;
  esac
done
wait "$LOADGEN" || { echo "soak: loadgen failed (log: $RUN/logs/loadgen.log)" >&2; tail -n 20 "$RUN/logs/loadgen.log" >&2; exit 1; }
unset "PIDS[loadgen]"
set_plan pass
rm -f "${DISK:-/nonexistent}/filler"
echo "soak: sending done after $((SECONDS - started)) s, $(wc -l <"$RUN/faults.tsv") faults; draining"

# Every process must still be up (a stage that died on its own is a finding, not something to restart).
status=0
for name in "${KILN[@]}"; do
  if ! kill -0 "${PIDS[$name]}" 2>/dev/null; then echo "soak: $name is not running (log: $RUN/logs/$name.log)" >&2; status=1; fi
done

# Drain and check: lag 0, the audit, the two query replicas, memory; then the report. The pull scraper stops
# first: while it scrapes, new records keep the lag above 0 at most moments.
stop_all scraper.pull
"$PY" "$ROOT/load-tests/soak_report.py" check --brokers "$BROKERS" --groups kiln-normalizer=kiln.profiles.raw,kiln-compactor=kiln.profiles.normalized \
  --queries "http://127.0.0.1:${PORT[query.1]},http://127.0.0.1:${PORT[query.2]}" --tenant "$TENANT" --timeout 300 \
  --out "$RUN/results/drain.json" || status=1
if ((status != 0)) && [ "${SOAK_KEEP_ON_FAILURE:-0}" = 1 ]; then
  # A stalled drain is best looked at live: the broker, the stages and their admin ports stay up until killed.
  echo "soak: drain failed; keeping the stack up for inspection (broker $BROKERS, ports: $(for n in "${KILN[@]}"; do printf '%s=%s ' "$n" "${PORT[$n]}"; done)); kill $$ to end"
  while :; do sleep 5; done
fi
# Tansu's S3 engine can acknowledge a record and lose it when killed mid-produce (docs/operations.md); a
# compactor sees such a loss in kiln.profiles.normalized as an offset gap. The KilnBrokerLostRecords
# runbook's remedy: replay the raw topic into the normalized one; the compactors add only what no block holds.
GAPS=$({ grep -h "offset gap" "$RUN"/logs/compactor.*.log 2>/dev/null || true; } | sed -n 's/.* records=\([0-9]*\).*/\1/p' | awk '{ s += $1 } END { print s + 0 }')
echo "$GAPS" >"$RUN/results/offset-gaps.txt"
if ((GAPS > 0)); then
  echo "soak: the compactors found $GAPS normalized records the broker acknowledged and lost; replaying the raw topic"
  "$BIN/kiln" replay --kafka-brokers "$BROKERS" --tenant "$TENANT" --to-topic kiln.profiles.normalized --name soak-recovery \
    --checkpoint-store "file://$RUN/replay" >"$RUN/logs/replay.log" 2>&1 || { echo "soak: the replay failed (log: $RUN/logs/replay.log)" >&2; status=1; }
fi
"$BIN/kiln" blocks audit --store "$DIRECT_STORE" --kafka-brokers "$BROKERS" --tenant "$TENANT" --wait 120 \
  --json "$RUN/results/audit.json" | tee "$RUN/logs/audit.log" || status=1
cleanup
"$PY" "$ROOT/load-tests/soak_report.py" report --run "$RUN" --rss-limit-mb "$RSS_LIMIT_MB" --build "$BUILD" --seed "$SEED" \
  --store "$([ "$STORE_KIND" = file ] && echo "a file store on a 512 MiB tmpfs" || echo "S3 (moto, behind the fault proxy)")" \
  --broker "$([ "$BROKER_KIND" = s3 ] && echo "in S3 (a moto of its own)" || echo "in memory (no broker faults)")" || status=1
echo "soak: report in $RUN/report/report.md ($((SECONDS - started)) s in all)"
exit "$status"
