#!/usr/bin/env bash
# Runs a throwaway OCI registry (Debian's docker-registry, distribution 2.8) on loopback,
# for tests and local experiments with image pulls.
#
#   scripts/registry.sh install                       apt-install docker-registry and
#                                                     apache2-utils (htpasswd) if missing
#   scripts/registry.sh [start] [--auth USER:PASS] [--port PORT] [--dir DIR]
#       starts a registry on 127.0.0.1:PORT (a free port by default), storage and config
#       in DIR (a new temp dir by default), optional htpasswd basic auth; prints two
#       lines: the address (127.0.0.1:PORT) and DIR. Returns once /v2/ answers.
#   scripts/registry.sh stop DIR                      stops that registry, removes DIR
#
# Plain HTTP only (clients treat loopback registries as insecure, like Docker does).
set -euo pipefail

log() { echo "registry.sh: $*" >&2; }

install_missing() {
  local need=()
  command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
  if [ "${1:-}" = with-htpasswd ] || [ "${1:-}" = all ]; then
    command -v htpasswd >/dev/null 2>&1 || need+=(apache2-utils)
  fi
  [ "${#need[@]}" -eq 0 ] && return 0
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  log "installing ${need[*]}"
  "${sudo[@]}" apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${need[@]}" >/dev/null
}

free_port() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
  else
    local p
    for _ in $(seq 50); do
      p=$((20000 + RANDOM % 20000))
      (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
    done
    return 1
  fi
}

cmd_stop() {
  local dir=${1:?usage: registry.sh stop DIR}
  if [ -f "$dir/pid" ]; then
    local pid
    pid=$(cat "$dir/pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  # Only remove directories this script created (they hold its config).
  if [ -f "$dir/config.yml" ]; then rm -rf "$dir"; fi
}

cmd_start() {
  local auth="" port="" dir=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --auth) auth=${2:?--auth USER:PASS}; shift 2 ;;
      --port) port=${2:?--port PORT}; shift 2 ;;
      --dir) dir=${2:?--dir DIR}; shift 2 ;;
      *) log "unknown argument: $1"; exit 2 ;;
    esac
  done
  if [ -n "$auth" ]; then install_missing with-htpasswd; else install_missing; fi
  [ -n "$port" ] || port=$(free_port)
  if [ -n "$dir" ]; then mkdir -p "$dir"; else dir=$(mktemp -d "${TMPDIR:-/tmp}/flotilla-registry.XXXXXX"); fi
  dir=$(cd "$dir" && pwd)
  mkdir -p "$dir/data"

  local auth_yaml=""
  if [ -n "$auth" ]; then
    local user=${auth%%:*} pass=${auth#*:}
    # The registry only accepts bcrypt entries.
    htpasswd -Bbn "$user" "$pass" >"$dir/htpasswd"
    auth_yaml=$(printf 'auth:\n  htpasswd:\n    realm: flotilla-test-registry\n    path: %s\n' "$dir/htpasswd")
  fi
  cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
$auth_yaml
EOF
  nohup docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 </dev/null &
  echo $! >"$dir/pid"

  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "127.0.0.1:$port"
      echo "$dir"
      return 0
    fi
    if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then break; fi
    sleep 0.1
  done
  log "registry did not start; log follows"
  cat "$dir/registry.log" >&2 || true
  cmd_stop "$dir"
  exit 1
}

case "${1:-start}" in
  install) install_missing all ;;
  stop) shift; cmd_stop "$@" ;;
  start) shift; cmd_start "$@" ;;
  --*) cmd_start "$@" ;;
  *) log "usage: registry.sh [start [--auth USER:PASS] [--port PORT] [--dir DIR] | stop DIR | install]"; exit 2 ;;
esac
