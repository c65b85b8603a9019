#!/usr/bin/env bash
# Runs every test: builds the wasm guests the tests run (installing the guest toolchain
# if missing) and installs the client libraries the client suites drive (Python venvs,
# npm; also the python prometheus_client parser the /metrics tests use),
# then the guest SDK's checks (its unit tests, its templates scaffolded and built), the
# unit tests of each crate and the end-to-end tests that drive the real kubectl
# binary and clients against `flotilla up`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build-guests.sh target/guests
./sdk/guest/check.sh
./scripts/client-deps.sh target/clients
cargo test --workspace --locked "$@"
