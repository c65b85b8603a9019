#!/usr/bin/env bash
# Builds Flotilla, starts a local cluster (`flotilla up`) in the background, points
# kubectl at it (context `flotilla`) and deploys the hello sample.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked
data_dir="${FLOTILLA_DATA_DIR:-$HOME/.local/share/flotilla}"
log="${TMPDIR:-/tmp}/flotilla-up.log"
./target/release/flotilla up --data-dir "$data_dir" >"$log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  grep -q ready "$log" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || { cat "$log"; exit 1; }
  sleep 0.1
done
cat "$log"
kubectl apply -f samples/hello/
kubectl get all
echo "flotilla is running as pid $pid (log: $log); stop it with: kill $pid"
