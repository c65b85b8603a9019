#!/usr/bin/env bash
# Builds every wasm guest under guests/ (tests and samples for the node agent) and writes
# OUT_DIR/<guest-dir-name>.wasm; a sample of several components keeps one crate per
# component in samples/SAMPLE/COMPONENT/ and gets OUT_DIR/SAMPLE-COMPONENT.wasm.
#
#   scripts/build-guests.sh [OUT_DIR]        OUT_DIR defaults to target/guests
#   scripts/build-guests.sh OUT_DIR CRATE_DIR...
#                                            builds only these guest crates (anywhere, e.g. a
#                                            project scaffolded from sdk/guest/templates) into
#                                            OUT_DIR/<crate-dir-name>.wasm
#
# rustup here has no wasm targets and none can be downloaded, so guests are built with
# Debian's second Rust toolchain (rustc-web/cargo-web, /usr/bin/{rustc,cargo}) and
# RUSTC_BOOTSTRAP=1 -Zbuild-std; the script apt-installs it when missing (needs root or
# sudo). Idempotent: a rerun with nothing changed takes seconds. Guest builds live in
# target/guest-build (override: GUEST_BUILD_DIR), never in the host build's dirs.
# Each guest's Cargo.toml says how it is built:
#   [package.metadata.flotilla-guest]
#   target = "wasm32-wasip2"    # or "wasm32-wasip1" (a core module)
#   adapter = "proxy"           # optional: wasi:http guests, proxy-world imports only
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$ROOT/target/guests}
CRATES=()
for d in "${@:2}"; do
  [ -f "$d/Cargo.toml" ] || { echo "build-guests: $d has no Cargo.toml" >&2; exit 1; }
  CRATES+=("$(cd "$d" && pwd)/Cargo.toml")
done
BUILD=${GUEST_BUILD_DIR:-$ROOT/target/guest-build}
mkdir -p "$OUT" "$BUILD"
OUT=$(cd "$OUT" && pwd)
BUILD=$(cd "$BUILD" && pwd)
T0=$SECONDS
log() { echo "build-guests: [$((SECONDS - T0))s] $*"; }

# --- 1. toolchain (only when something is missing) -------------------------------------
# rustc-web/cargo-web: rustc+cargo 1.9x in /usr/bin (bookworm-security; bookworm main has
# an older one); rust-web-src: std sources for -Zbuild-std; rust-web-llvm:
# wasm-component-ld and /usr/bin/rust-lld -> lld-N, N its LLVM (22 for 1.96), whose
# llvm-N brings llvm-mc-N; lld-N: that lld; wasi-libc: crt and libc for wasm32-wasi.
llvm_major() { # of the installed rust-web-llvm, else of the archive's
  local t; t=$(readlink /usr/bin/rust-lld 2>/dev/null || true)
  if [ -n "$t" ]; then echo "${t##*lld-}"; return; fi
  apt-cache depends rust-web-llvm 2>/dev/null | sed -n 's/^ *Depends: llvm-\([0-9][0-9]*\)$/\1/p' | head -n1
}
toolchain_ok() {
  local n; n=$(llvm_major)
  [ -x /usr/bin/rustc ] && [ -x /usr/bin/cargo ] && [ -x /usr/bin/rust-lld ] &&
    [ -d /usr/lib/rustlib/src/rust/library ] && [ -e /usr/lib/wasm32-wasi/libc.a ] &&
    command -v "llvm-mc-$n" >/dev/null &&
    compgen -G '/usr/lib/rustlib/*/bin/wasm-component-ld' >/dev/null
}
if ! toolchain_ok; then
  SUDO=(); [ "$(id -u)" -eq 0 ] || SUDO=(sudo)
  log "installing the guest toolchain with apt-get (log: $BUILD/apt.log)"
  {
    "${SUDO[@]}" apt-get update -qq &&
    N=$(llvm_major) && [ -n "$N" ] &&
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends \
      rustc-web cargo-web rust-web-src rust-web-llvm "lld-$N" "llvm-$N" wasi-libc
  } >"$BUILD/apt.log" 2>&1 || { cat "$BUILD/apt.log" >&2; echo "build-guests: apt-get failed" >&2; exit 1; }
  toolchain_ok || { echo "build-guests: toolchain still incomplete after install" >&2; exit 1; }
fi
LLVM_MC=llvm-mc-$(llvm_major)

# --- 2. crt1-command.o that runs constructors (see guests/support/crt1-command.s) -------
CRT=$BUILD/wasi-crt
mkdir -p "$CRT"
if ! [ "$CRT/crt1-command.o" -nt "$ROOT/guests/support/crt1-command.s" ]; then
  "$LLVM_MC" -triple=wasm32-wasip1 -filetype=obj \
    "$ROOT/guests/support/crt1-command.s" -o "$CRT/crt1-command.o"
fi

# --- 3. build ------------------------------------------------------------------------------
# Debian's cargo and rustc, by absolute path: rustup's proxies come first on PATH and its
# older std does not mix with Debian's std sources. RUSTFLAGS must stay the same for every
# guest (a change rebuilds std); per-guest flags go after `cargo rustc --`.
unset CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS CARGO_BUILD_TARGET RUSTC_WRAPPER \
  RUSTC_WORKSPACE_WRAPPER CARGO_BUILD_TARGET_DIR
export RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc CARGO_TARGET_DIR=$BUILD/target
export RUSTFLAGS="-L native=$CRT -L native=/usr/lib/wasm32-wasi"   # first dir wins for crt1
log "toolchain: $(/usr/bin/rustc --version)"

meta() { # meta CARGO_TOML KEY: a value from [package.metadata.flotilla-guest]
  sed -n '/^\[package\.metadata\.flotilla-guest\]/,/^\[/{s/^'"$2"' *= *"\([^"]*\)".*/\1/p}' "$1"
}
built=0
[ ${#CRATES[@]} -gt 0 ] || CRATES=("$ROOT"/guests/*/Cargo.toml "$ROOT"/samples/*/Cargo.toml "$ROOT"/samples/*/*/Cargo.toml)
for manifest in "${CRATES[@]}"; do
  dir=$(dirname "$manifest"); name=$(basename "$dir")
  case $manifest in "$ROOT"/samples/*/*/Cargo.toml) name=$(basename "$(dirname "$dir")")-$name ;; esac
  target=$(meta "$manifest" target); adapter=$(meta "$manifest" adapter)
  [ -n "$target" ] || { echo "build-guests: $manifest lacks [package.metadata.flotilla-guest] target" >&2; exit 1; }
  pkg=$(sed -n '/^\[package\]/,/^\[/{s/^name *= *"\([^"]*\)".*/\1/p}' "$manifest")
  artifact=$pkg
  grep -q '^crate-type *= *\[ *"cdylib"' "$manifest" && artifact=${pkg//-/_}
  extra=(); [ -z "$adapter" ] || extra=(-- -C "link-arg=--wasi-adapter=$adapter")
  locked=(); [ -f "$dir/Cargo.lock" ] && locked=(--locked)
  (cd "$dir" && /usr/bin/cargo rustc -q --release "${locked[@]}" --target "$target" \
     -Zbuild-std=std,panic_abort "${extra[@]}")
  src=$CARGO_TARGET_DIR/$target/release/$artifact.wasm
  if ! cmp -s "$src" "$OUT/$name.wasm"; then
    cp "$src" "$OUT/$name.wasm.tmp" && mv "$OUT/$name.wasm.tmp" "$OUT/$name.wasm"
    log "wrote $OUT/$name.wasm ($(stat -c %s "$OUT/$name.wasm") bytes, $target${adapter:+, $adapter adapter})"
  fi
  built=$((built + 1))
done
log "$built guests up to date in $OUT"
