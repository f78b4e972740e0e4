#!/usr/bin/env bash
# Builds the Go demo profiling target (demo/go-target) into .build-demo/go-target.
# Standard library only, so it builds offline with Debian's Go 1.19. Idempotent:
# rebuilds only when a source file is newer than the binary.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=.build-demo/go-target
command -v go >/dev/null || { echo "build-demo: 'go' not found (install Debian's golang-go)" >&2; exit 1; }
mkdir -p .build-demo
if [ -x "$OUT" ] && [ -z "$(find demo/go-target -newer "$OUT" -type f)" ]; then
  echo "$OUT"
  exit 0
fi
# A private cache under .build-demo keeps builds independent of $HOME; GOFLAGS=-mod=mod needs the network.
export GOCACHE="${GOCACHE:-$PWD/.build-demo/gocache}" GOFLAGS=-mod=readonly GOPROXY=off
(cd demo/go-target && go build -o "../../$OUT.tmp" .)
mv "$OUT.tmp" "$OUT"
echo "$OUT"
