#!/usr/bin/env bash
# Checks the guest SDK: its unit tests (the pure parts: routing, query and path decoding,
# log lines, arguments) on the host, with and without the `json` feature, then each
# template scaffolded by templates/new.sh into a temporary directory, built for
# wasm32-wasip2 with scripts/build-guests.sh, and its own unit tests run on the host.
# Uses Debian's toolchain as scripts/build-guests.sh does (run that first once: it
# installs the toolchain); builds live under target/guest-build (GUEST_BUILD_DIR).
#
#   sdk/guest/check.sh
set -euo pipefail
SDK=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$SDK/../.." && pwd)
BUILD=${GUEST_BUILD_DIR:-$ROOT/target/guest-build}
mkdir -p "$BUILD"
BUILD=$(cd "$BUILD" && pwd)
unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_TARGET RUSTC_WRAPPER RUSTC_WORKSPACE_WRAPPER
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc CARGO_TARGET_DIR=$BUILD/host-test
(cd "$SDK" && /usr/bin/cargo test -q --locked && /usr/bin/cargo test -q --locked --features json)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
for kind in http job; do
  "$SDK/templates/new.sh" "$kind" "check-$kind" >/dev/null
  GUEST_BUILD_DIR=$BUILD "$ROOT/scripts/build-guests.sh" "check-$kind/target/wasm" "check-$kind" >/dev/null
  [ -s "check-$kind/target/wasm/check-$kind.wasm" ] || { echo "check: template $kind built nothing" >&2; exit 1; }
  (cd "check-$kind" && /usr/bin/cargo test -q)
  echo "check: template $kind scaffolds, builds ($(stat -c %s "check-$kind/target/wasm/check-$kind.wasm") bytes) and passes its tests"
done
