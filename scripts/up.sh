#!/usr/bin/env bash
# Sets up and runs Flotilla: builds the binary and the sample, starts a local cluster in
# the background (`flotilla up -d`, which points kubectl at it: context `flotilla`), pushes
# the hello sample to the cluster's own registry, deploys it and asks it for a greeting.
# Stop the cluster with `./target/release/flotilla down` (add --purge to delete its data).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build-guests.sh target/guests
cargo build --release --locked
data_dir="${FLOTILLA_DATA_DIR:-$HOME/.local/share/flotilla}"
if ./target/release/flotilla status --data-dir "$data_dir" >/dev/null; then
  echo "flotilla is already running:"
  ./target/release/flotilla status --data-dir "$data_dir"
else
  ./target/release/flotilla up -d --data-dir "$data_dir"
fi
./target/release/flotilla push target/guests/hello.wasm hello:v1
./target/release/flotilla push target/guests/primes.wasm primes:v1
kubectl apply -f samples/hello/hello.yaml
kubectl wait --for=condition=Ready pod/hello --timeout=60s
kubectl get pods -o wide
kubectl get --raw /api/v1/namespaces/default/pods/hello:8080/proxy/
echo "flotilla runs in the background; stop it with: ./target/release/flotilla down --data-dir $data_dir"
