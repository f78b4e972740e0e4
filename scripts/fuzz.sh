#!/bin/sh
# Builds the libFuzzer targets — the pprof decoder and the OTLP profiles decoder — and runs each for
# FUZZ_SECONDS (default 300). Each target is compiled as one module from the Kiln sources it needs (their
# `import` lines of each other dropped), so no SwiftPM build is instrumented. Seed corpora are made at run
# time in .build-fuzz/ (gitignored, never committed): the shared pprof fixtures, and OTLP requests built
# from them by Tests/python/otlp_send.py with PyPI's opentelemetry-proto.
# Usage: scripts/fuzz.sh [extra libFuzzer flags]
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT="$ROOT/.build-fuzz"
FIXTURES="${KILN_FIXTURES_DIR:-$ROOT/../shared/fixtures}/pprof"
SECONDS_TO_RUN="${FUZZ_SECONDS:-300}"
KILN_MODULES='KilnFoundation\|ProfileModel\|PprofCodec'

# build NAME SOURCES...: one instrumented binary from the sources, Kiln's imports of each other removed.
build() {
    name=$1
    shift
    rm -rf "$OUT/src-$name"
    mkdir -p "$OUT/src-$name"
    for f in "$@"; do
        sed "/^import \($KILN_MODULES\)\$/d" "$f" > "$OUT/src-$name/$(basename "$(dirname "$f")")-$(basename "$f")"
    done
    echo "building $OUT/$name"
    swiftc -sanitize=fuzzer,address -parse-as-library -O -g -module-name "$(echo "$name" | tr -d -)" \
        -I "$ROOT/Sources/CShims/CZlib" -I "$ROOT/Sources/CShims/CDeflate" -I "$ROOT/Sources/CShims/CPrefetch" \
        -I "$ROOT/Sources/CShims/CVarint" \
        "$OUT/src-$name"/*.swift -o "$OUT/$name"
}

# run NAME: fuzz NAME from its corpus for SECONDS_TO_RUN.
run() {
    echo "fuzzing $1 for ${SECONDS_TO_RUN}s; corpus $OUT/corpus-$1, crashes in $OUT/artifacts"
    target=$1
    shift
    "$OUT/$target" "$OUT/corpus-$target" \
        -max_total_time="$SECONDS_TO_RUN" -max_len=2000000 -rss_limit_mb=2048 -timeout=10 \
        -artifact_prefix="$OUT/artifacts/$target-" -print_final_stats=1 "$@"
}

mkdir -p "$OUT/corpus-pprof-decoder-fuzz" "$OUT/corpus-otlp-decoder-fuzz" "$OUT/artifacts"
build pprof-decoder-fuzz "$ROOT"/Sources/KilnFoundation/*.swift "$ROOT"/Sources/PprofCodec/*.swift \
    "$ROOT"/Fuzz/PprofDecoderFuzz/*.swift
build otlp-decoder-fuzz "$ROOT"/Sources/KilnFoundation/*.swift "$ROOT"/Sources/ProfileModel/*.swift \
    "$ROOT"/Sources/PprofCodec/*.swift "$ROOT"/Sources/OTLPIngest/OTLPWireRequest.swift \
    "$ROOT"/Sources/OTLPIngest/PprofAssembler.swift "$ROOT"/Sources/OTLPIngest/TimeGroups.swift \
    "$ROOT"/Fuzz/OTLPDecoderFuzz/*.swift

if [ -d "$FIXTURES" ]; then
    for f in "$FIXTURES"/*; do
        [ -f "$f" ] || continue
        base=$(basename "$f")
        case "$base" in EXPECTED.json|SOURCES.tsv) continue ;; esac
        cp "$f" "$OUT/corpus-pprof-decoder-fuzz/seed-$base"
        # Small fixtures only: seeds the fuzzer can still mutate quickly.
        if [ "$(wc -c < "$f")" -lt 65536 ] && [ -x .venv/bin/python ]; then
            .venv/bin/python Tests/python/otlp_send.py "$f" --dry-run --link-spans 3 \
                --out "$OUT/corpus-otlp-decoder-fuzz/seed-$base.otlp" > /dev/null 2>&1 || true
        fi
    done
else
    echo "fixtures not found at $FIXTURES: starting from empty corpora"
fi

run pprof-decoder-fuzz "$@"
run otlp-decoder-fuzz "$@"
