#!/usr/bin/env bash
# The web UI's JavaScript tests (Tests/ui/*.test.mjs) under Node's built-in test runner: the pure
# modules of Sources/QueryAPI/UI/, and, when Chromium is installed, the page itself at 1280 px.
# Exits non-zero when a test fails. Needs Node 20.10 or later; no npm packages.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null 2>&1; then
  echo "ui-test: node is not installed (apt-get install nodejs; Node 20.10 or later)" >&2
  exit 1
fi
major=$(node -p 'process.versions.node.split(".")[0]')
minor=$(node -p 'process.versions.node.split(".")[1]')
if [ "$major" -lt 20 ] || { [ "$major" -eq 20 ] && [ "$minor" -lt 10 ]; }; then
  echo "ui-test: Node $(node --version) is too old; the tests need Node 20.10 or later" >&2
  exit 1
fi
# The UI's modules are plain .js files with no package.json to mark them as ES modules; Node finds
# that out by itself from 20.19 and 22.7, and earlier releases need the flag.
flags=()
if { [ "$major" -eq 20 ] && [ "$minor" -lt 19 ]; } || { [ "$major" -eq 22 ] && [ "$minor" -lt 7 ]; } || [ "$major" -eq 21 ]; then
  flags+=(--experimental-detect-module)
fi

exec node ${flags[@]+"${flags[@]}"} --test Tests/ui/
