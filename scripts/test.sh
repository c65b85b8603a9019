#!/usr/bin/env bash
# Runs every test: unit tests of each crate and the end-to-end tests that drive the real
# kubectl binary against `flotilla up`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked "$@"
