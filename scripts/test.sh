#!/usr/bin/env bash
# Runs every test: builds the wasm guests the tests run (installing the guest toolchain
# if missing), then the unit tests of each crate and the end-to-end tests that drive the
# real kubectl binary against `flotilla up` (installing the python prometheus_client
# parser they check /metrics with, if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build-guests.sh target/guests
# the python prometheus_client text parser checks the /metrics expositions (tests/all/metrics.rs)
if ! python3 -c 'import prometheus_client' >/dev/null 2>&1; then
  python3 -m pip install --quiet prometheus_client 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages prometheus_client 2>/dev/null \
    || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-prometheus-client; }
fi
cargo test --workspace --locked "$@"
