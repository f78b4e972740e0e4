#!/bin/sh
# Builds the libFuzzer target over the pprof decoder and runs it for FUZZ_SECONDS (default 600).
# The seed corpus is copied at run time from the shared fixtures into .build-fuzz/ (gitignored, never
# committed). Usage: scripts/fuzz.sh [extra libFuzzer flags]
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT="$ROOT/.build-fuzz"
FIXTURES="${KILN_FIXTURES_DIR:-$ROOT/../shared/fixtures}/pprof"
SECONDS_TO_RUN="${FUZZ_SECONDS:-600}"
mkdir -p "$OUT/corpus" "$OUT/artifacts"

echo "building $OUT/pprof-decoder-fuzz"
swiftc -sanitize=fuzzer,address -parse-as-library -O -g \
    -module-name PprofDecoderFuzz \
    -I "$ROOT/Sources/CShims/CZlib" -I "$ROOT/Sources/CShims/CDeflate" -I "$ROOT/Sources/CShims/CPrefetch" -I "$ROOT/Sources/CShims/CVarint" \
    "$ROOT"/Sources/PprofCodec/*.swift "$ROOT"/Fuzz/PprofDecoderFuzz/*.swift \
    -o "$OUT/pprof-decoder-fuzz"

if [ -d "$FIXTURES" ]; then
    for f in "$FIXTURES"/*; do
        [ -f "$f" ] || continue
        case "$(basename "$f")" in EXPECTED.json|SOURCES.tsv) continue ;; esac
        cp "$f" "$OUT/corpus/seed-$(basename "$f")"
    done
else
    echo "fixtures not found at $FIXTURES: starting from an empty corpus"
fi

echo "fuzzing for ${SECONDS_TO_RUN}s; corpus $OUT/corpus, crashes in $OUT/artifacts"
exec "$OUT/pprof-decoder-fuzz" "$OUT/corpus" \
    -max_total_time="$SECONDS_TO_RUN" -max_len=2000000 -rss_limit_mb=2048 -timeout=10 \
    -artifact_prefix="$OUT/artifacts/" -print_final_stats=1 "$@"
