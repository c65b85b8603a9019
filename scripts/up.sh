#!/usr/bin/env bash
# Sets up and runs Flotilla: builds the binary and the sample, starts a local cluster in
# the background (`flotilla up -d`, which points kubectl at it: context `flotilla`), pushes
# the hello sample to the cluster's own registry, deploys it and asks it for a greeting.
# Stop the cluster with `./target/release/flotilla down` (add --purge to delete its data).
set -euo pipefail
cd "$(dirname "$0")/.."
# FLOTILLA_BIN: use this binary instead of building one (tests use the debug build);
# FLOTILLA_UP_ARGS: more flags for `flotilla up -d`; FLOTILLA_DATA_DIR: its data dir.
./scripts/build-guests.sh target/guests
if [ -z "${FLOTILLA_BIN:-}" ]; then
  cargo build --release --locked
  FLOTILLA_BIN=./target/release/flotilla
fi
flotilla=$FLOTILLA_BIN
data_dir="${FLOTILLA_DATA_DIR:-$HOME/.local/share/flotilla}"
if "$flotilla" status --data-dir "$data_dir" >/dev/null; then
  echo "flotilla is already running:"
  "$flotilla" status --data-dir "$data_dir"
else
  # shellcheck disable=SC2086 # FLOTILLA_UP_ARGS is a list of flags
  "$flotilla" up -d --data-dir "$data_dir" ${FLOTILLA_UP_ARGS:-}
fi
"$flotilla" push target/guests/hello.wasm hello:v1
"$flotilla" push target/guests/primes.wasm primes:v1
kubectl apply -f samples/hello/hello.yaml
kubectl wait --for=condition=Ready pod/hello --timeout=60s
kubectl get pods -o wide
kubectl get --raw /api/v1/namespaces/default/pods/hello:8080/proxy/
echo "flotilla runs in the background; stop it with: $flotilla down --data-dir $data_dir"
