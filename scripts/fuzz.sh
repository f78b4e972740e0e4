#!/bin/sh
# Builds the libFuzzer targets — the pprof decoder, the OTLP profiles decoder and the HTTP request decoders
# (Connect binary and JSON for every query, settings and push RPC, legacy /ingest with multipart and folded
# bodies) — and runs each for FUZZ_SECONDS (default 300). The pprof and OTLP targets are compiled as one
# module from the Kiln sources they need (their `import` lines of each other dropped); the request decoders
# need SwiftProtobuf and Hummingbird's types, so that target is a SwiftPM product that exists only with
# KILN_FUZZ=1, built with every module instrumented in its own scratch path (.build-fuzz/spm; the first
# build takes several minutes). Seed corpora are made at run time in .build-fuzz/ (gitignored, never
# committed): the shared pprof fixtures, OTLP requests built from them by Tests/python/otlp_send.py with
# PyPI's opentelemetry-proto, and one request per RPC written below (binary ones encoded by Debian's protoc).
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

mkdir -p "$OUT/corpus-pprof-decoder-fuzz" "$OUT/corpus-otlp-decoder-fuzz" "$OUT/corpus-request-decoder-fuzz" "$OUT/artifacts"
build pprof-decoder-fuzz "$ROOT"/Sources/KilnFoundation/*.swift "$ROOT"/Sources/PprofCodec/*.swift \
    "$ROOT"/Fuzz/PprofDecoderFuzz/*.swift
build otlp-decoder-fuzz "$ROOT"/Sources/KilnFoundation/*.swift "$ROOT"/Sources/ProfileModel/*.swift \
    "$ROOT"/Sources/PprofCodec/*.swift "$ROOT"/Sources/OTLPIngest/OTLPWireRequest.swift \
    "$ROOT"/Sources/OTLPIngest/PprofAssembler.swift "$ROOT"/Sources/OTLPIngest/TimeGroups.swift \
    "$ROOT"/Fuzz/OTLPDecoderFuzz/*.swift

echo "building $OUT/request-decoder-fuzz (SwiftPM, instrumented)"
KILN_FUZZ=1 swift build -c release --scratch-path "$OUT/spm" --product request-decoder-fuzz -Xswiftc -sanitize=fuzzer,address
cp "$OUT/spm/release/request-decoder-fuzz" "$OUT/request-decoder-fuzz"

# request_seed INDEX MESSAGE TEXT JSON: one request of the decoder at INDEX (its order in
# Fuzz/RequestDecoderFuzz) in protobuf (TEXT in protoc's text format, encoded by protoc) and in JSON. The first
# byte picks the decoder: INDEX * 4, plus 1 for JSON.
REQUEST_CORPUS="$OUT/corpus-request-decoder-fuzz"
request_seed() {
    { printf "\\$(printf '%03o' $(($1 * 4)))"; printf '%s' "$3" | protoc -I Sources/KilnProtos/proto --encode="$2" \
        querier/v1/querier.proto types/v1/types.proto push/v1/push.proto settings/v1/setting.proto; } > "$REQUEST_CORPUS/seed-$1-proto"
    { printf "\\$(printf '%03o' $(($1 * 4 + 1)))"; printf '%s' "$4"; } > "$REQUEST_CORPUS/seed-$1-json"
}
if command -v protoc > /dev/null; then
    SEL='label_selector: "{service_name=\"api\", env=~\"prod|staging\"}" profile_typeID: "process_cpu:cpu:nanoseconds:cpu:nanoseconds" start: 1700000000000 end: 1700003600000'
    JSEL='"labelSelector":"{service_name=\"api\", env=~\"prod|staging\"}","profileTypeID":"process_cpu:cpu:nanoseconds:cpu:nanoseconds","start":"1700000000000","end":"1700003600000"'
    request_seed 0 querier.v1.ProfileTypesRequest 'start: 1 end: 2' '{"start":"1","end":"2"}'
    request_seed 1 types.v1.LabelNamesRequest 'matchers: "{service_name=\"api\"}"' '{"matchers":["{service_name=\"api\"}"]}'
    request_seed 2 types.v1.LabelValuesRequest 'name: "env" matchers: "{}"' '{"name":"env","matchers":["{}"]}'
    request_seed 3 querier.v1.SeriesRequest 'matchers: "{a!=\"b\"}" label_names: "service_name"' '{"matchers":["{a!=\"b\"}"],"labelNames":["service_name"]}'
    request_seed 4 querier.v1.SelectMergeStacktracesRequest "$SEL max_nodes: 1024 span_selector: \"00000000000000ab\"" "{$JSEL,\"maxNodes\":\"1024\",\"spanSelector\":[\"ab\"]}"
    request_seed 5 querier.v1.SelectMergeSpanProfileRequest "$SEL span_selector: \"0123456789abcdef\"" "{$JSEL,\"spanSelector\":[\"0123456789abcdef\"]}"
    request_seed 6 querier.v1.SelectMergeProfileRequest "$SEL max_nodes: 16" "{$JSEL,\"maxNodes\":\"16\"}"
    request_seed 7 querier.v1.SelectSeriesRequest "$SEL step: 15 group_by: \"service_name\" limit: 5" "{$JSEL,\"step\":15,\"groupBy\":[\"service_name\"]}"
    request_seed 8 querier.v1.DiffRequest "left { $SEL } right { $SEL }" "{\"left\":{$JSEL},\"right\":{$JSEL}}"
    request_seed 9 types.v1.GetProfileStatsRequest '' '{}'
    request_seed 10 querier.v1.AnalyzeQueryRequest 'query: "{service_name=\"api\"}" start: 1 end: 2' '{"query":"{service_name=\"api\"}"}'
    request_seed 11 querier.v1.SelectHeatmapRequest "$SEL step: 10" "{$JSEL,\"step\":10}"
    request_seed 12 settings.v1.GetSettingsRequest '' '{}'
    request_seed 13 settings.v1.SetSettingsRequest 'setting { name: "pluginSettings" value: "{}" modifiedAt: 1 }' '{"setting":{"name":"pluginSettings","value":"{}"}}'
    request_seed 14 settings.v1.DeleteSettingsRequest 'name: "pluginSettings"' '{"name":"pluginSettings"}'
    request_seed 15 push.v1.PushRequest 'series { labels { name: "__name__" value: "process_cpu" } labels { name: "service_name" value: "api" } samples { raw_profile: "\x1f\x8b" ID: "x" } }' \
        '{"series":[{"labels":[{"name":"__name__","value":"process_cpu"},{"name":"service_name","value":"api"}],"samples":[{"rawProfile":"H4s="}]}]}'
else
    echo "protoc not found (Debian's protobuf-compiler): the request decoders start without binary seeds"
fi
# Legacy /ingest: mode byte (folded, text/plain, raw pprof, multipart forms), the name, a newline, the body.
printf '\100\000app.cpu{env=prod}\nmain;work;hash 10\nmain;idle 3\n' > "$REQUEST_CORPUS/seed-ingest-folded"
printf '\100\003app.cpu\n--kilnfuzz\r\nContent-Disposition: form-data; name="profile"; filename="profile.pprof"\r\n\r\nxyz\r\n--kilnfuzz--\r\n' \
    > "$REQUEST_CORPUS/seed-ingest-multipart"

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
run request-decoder-fuzz "$@"
