#!/usr/bin/env bash
# `make overload`: `kiln dev` held at several times its capacity for minutes (64 connections of `kiln loadgen`
# pushing real profiles flat out as one tenant), then a query must answer at once and SIGTERM must stop kiln
# dev and every child within the stop timeout. The same test as `make test`'s 20-second one, held longer:
# OVERLOAD_MINUTES (3 by default). Loopback only; prints what was offered, how far the normaliser got, the
# query's wait, each process's peak RSS and the stop time.
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${OVERLOAD_MINUTES:-3}
if ! [[ "$MINUTES" =~ ^[0-9]+$ ]] || [ "$MINUTES" -lt 1 ] || [ "$MINUTES" -gt 60 ]; then
  echo "overload: OVERLOAD_MINUTES must be a whole number from 1 to 60, got '$MINUTES'" >&2
  exit 2
fi
scripts/setup.sh
swift build --build-tests
# A missing prerequisite fails the run instead of skipping the test.
KILN_REQUIRE_INTEGRATION=1 KILN_OVERLOAD_SECONDS=$((MINUTES * 60)) \
  swift test --skip-build --filter 'SupervisionTests/overloadedStackAnswersAndStopsWithinItsTimeout'
