#!/usr/bin/env bash
# `make bench`: release build, a local Tansu broker for the producer suite, then every suite of
# `kiln bench`, each beside its baseline in the same run. Results also land in out/bench.json.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build -c release --product kiln
export KILN_RUN_DIR=$PWD/run/bench
trap 'scripts/test-env.sh stop' EXIT
scripts/test-env.sh start
# shellcheck disable=SC1091
. "$KILN_RUN_DIR/test-env.sh"
mkdir -p out
.build/release/kiln bench --brokers "$KILN_TEST_KAFKA_BROKERS" --json out/bench.json "$@"
