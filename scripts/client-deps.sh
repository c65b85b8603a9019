#!/usr/bin/env bash
# Installs the Kubernetes clients the end-to-end client suites drive (tests/all/clients.rs)
# into DIR (default target/clients): the official Python client at an old and the newest
# version, each in its own virtualenv. Does nothing for what is already installed.
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
