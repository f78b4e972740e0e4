#!/usr/bin/env bash
# Regenerates the committed Swift code for Kiln's .proto files (proto/**) into
# Sources/KilnProtos/*.pb.swift (the .proto files live in Sources/KilnProtos/proto/).
#
# - protoc comes from Debian's protobuf-compiler (installed when missing; needs root or sudo).
# - protoc-gen-swift is built from apple/swift-protobuf at the version Package.swift names, in its own
#   scratch path (.build-protoc) so it never touches the main .build. The first build takes ~10 minutes
#   on 2 cores; later runs reuse it.
set -euo pipefail
cd "$(dirname "$0")/.."
SWIFT_PROTOBUF_VERSION="${SWIFT_PROTOBUF_VERSION:-1.39.0}"
SCRATCH="$PWD/.build-protoc"
OUT=Sources/KilnProtos
PROTO_DIR=Sources/KilnProtos/proto

if ! command -v protoc >/dev/null; then
  echo "gen-proto: installing Debian's protobuf-compiler" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get install -y protobuf-compiler >/dev/null || {
    $SUDO apt-get update >/dev/null && $SUDO apt-get install -y protobuf-compiler >/dev/null; }
fi

PLUGIN="$SCRATCH/build/release/protoc-gen-swift"
if [ ! -x "$PLUGIN" ]; then
  if [ ! -d "$SCRATCH/src/.git" ]; then
    rm -rf "$SCRATCH/src"
    mkdir -p "$SCRATCH"
    git clone --quiet --depth 1 --branch "$SWIFT_PROTOBUF_VERSION" \
      https://github.com/apple/swift-protobuf "$SCRATCH/src"
  fi
  echo "gen-proto: building protoc-gen-swift $SWIFT_PROTOBUF_VERSION (slow the first time)" >&2
  swift build -c release --package-path "$SCRATCH/src" --scratch-path "$SCRATCH/build" \
    --product protoc-gen-swift
fi

mkdir -p "$OUT"
rm -f "$OUT"/*.pb.swift
# Public visibility: other targets (the query API) use these types. FileNaming=PathToUnderscores keeps
# file names unique across packages (types/v1/types.proto -> types_v1_types.pb.swift).
mapfile -t PROTOS < <(cd "$PROTO_DIR" && find . -name '*.proto' | sed 's|^\./||' | sort)
protoc --plugin=protoc-gen-swift="$PLUGIN" -I "$PROTO_DIR" \
  --swift_opt=Visibility=Public --swift_opt=FileNaming=PathToUnderscores \
  --swift_out="$OUT" "${PROTOS[@]}"
ls "$OUT"
