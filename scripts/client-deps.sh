#!/usr/bin/env bash
# Installs the Kubernetes clients the end-to-end client suites drive (tests/all/clients.rs)
# into DIR (default target/clients): the official Python client at an old and the newest
# version, each in its own virtualenv, and the JavaScript client (npm). Does nothing for
# what is already installed.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-target/clients}"
mkdir -p "$dir"
for v in 32.0.1 37.0.2; do
  venv="$dir/python-kubernetes-$v"
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import kubernetes" 2>/dev/null; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "kubernetes==$v"
  fi
done
# The Prometheus text parser the /metrics tests check expositions with (tests/all/metrics.rs).
prom="$dir/python-prometheus"
if [ ! -x "$prom/bin/python" ] || ! "$prom/bin/python" -c "import prometheus_client" 2>/dev/null; then
  rm -rf "$prom"
  python3 -m venv "$prom"
  "$prom/bin/pip" install --quiet --disable-pip-version-check prometheus_client
fi
# The JavaScript client, 1.x (2.x needs node >= 22).
js="$dir/js"
if [ ! -f "$js/node_modules/@kubernetes/client-node/package.json" ]; then
  mkdir -p "$js"
  npm install --prefix "$js" --silent --no-audit --no-fund "@kubernetes/client-node@1"
fi
