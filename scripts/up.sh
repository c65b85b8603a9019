#!/usr/bin/env bash
# Sets up and runs Flotilla: builds the binary and the sample, starts a local cluster
# (`flotilla up`, in the background), points kubectl at it (context `flotilla`), pushes
# the hello sample to the cluster's own registry, deploys it and asks it for a greeting.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build-guests.sh target/guests
cargo build --release --locked
data_dir="${FLOTILLA_DATA_DIR:-$HOME/.local/share/flotilla}"
log="${TMPDIR:-/tmp}/flotilla-up.log"
./target/release/flotilla up --data-dir "$data_dir" >"$log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do
  grep -q ready "$log" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.1
done
cat "$log"
./target/release/flotilla push target/guests/hello.wasm hello:v1
./target/release/flotilla push target/guests/primes.wasm primes:v1
kubectl apply -f samples/hello/hello.yaml
kubectl wait --for=condition=Ready pod/hello --timeout=60s
kubectl get pods -o wide
kubectl get --raw /api/v1/namespaces/default/pods/hello:8080/proxy/
echo "flotilla is running as pid $pid (log: $log); stop it with: kill $pid"
