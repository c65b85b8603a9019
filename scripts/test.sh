#!/usr/bin/env bash
# Runs every test: builds the wasm guests the tests run (installing the guest toolchain
# if missing), then the unit tests of each crate and the end-to-end tests that drive the
# real kubectl binary against `flotilla up`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build-guests.sh target/guests
cargo test --workspace --locked "$@"
