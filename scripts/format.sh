#!/usr/bin/env bash
# swift format (bundled with the toolchain, configured by .swift-format) over every Swift file the repo
# tracks, except the generated protobuf code. `scripts/format.sh` rewrites the files; `scripts/format.sh
# lint` only checks them, strictly (warnings fail), as .ci/run does before the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files --cached --others --exclude-standard '*.swift' | grep -v '^Sources/KilnProtos/.*\.pb\.swift$')
if [ "${1:-format}" = lint ]; then
  swift format lint --strict --parallel "${files[@]}"
  echo "format: ${#files[@]} Swift files pass swift format lint --strict"
else
  swift format format --in-place --parallel "${files[@]}"
fi
