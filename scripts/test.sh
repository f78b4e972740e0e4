#!/usr/bin/env bash
# `make test`: set up, build, start a real Tansu broker, moto S3 server and Prometheus, run every test, stop them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build-demo.sh
swift build --build-tests
echo "test: set up and built in ${SECONDS} s"
export KILN_RUN_DIR=$PWD/run/test
trap 'scripts/test-env.sh stop' EXIT
scripts/test-env.sh start
# shellcheck disable=SC1091
. "$KILN_RUN_DIR/test-env.sh"
# The reliability suite (Tests/ReliabilityTests) writes its summary table here; it is printed at the end.
rm -f "$KILN_RUN_DIR/reliability-summary.txt"
# One test at a time: the suite shares 2 cores with real brokers, S3 servers and Go programs, and
# CPU-heavy tests running beside time-bounded ones would starve them.
status=0
# The web UI's pure modules (and the page in headless Chromium) under Node's test runner.
scripts/ui-test.sh || status=$?
# The alert rules (promtool check and unit tests), the dashboards and the Prometheus configuration of docker/.
scripts/check-dashboards.sh || status=$?
swift test --skip-build --no-parallel "$@" || status=$?
echo "test: set up, built and tested in ${SECONDS} s"
if [ -f "$KILN_RUN_DIR/reliability-summary.txt" ]; then
  echo
  cat "$KILN_RUN_DIR/reliability-summary.txt"
fi
exit "$status"
