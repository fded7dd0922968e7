#!/usr/bin/env bash
# Instructions per request in keygate's process, by scenario, under callgrind: a count that does
# not depend on the machine's load or speed, so a change to the hot path can be measured on a
# busy 2-core VM where throughput moves by ±15 % between runs.
#
#   bench/callgrind.sh          # ≈ 1 min: healthz, verify, gateway; one worker; prints per-request counts
#
# Each scenario: wrk warms it for 3 s, the counters are zeroed, wrk runs DURATION seconds (4 by
# default) at 4 connections, the counters are dumped and divided by wrk's completed requests.
# The dumps stay in OUT (default target/bench-callgrind) for `callgrind_annotate`. Under
# valgrind SHA-256 runs in software (≈ 3.5k instructions per digest that SHA-NI does in ≈ 0.3k).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
OUT=${OUT:-$ROOT/target/bench-callgrind}
DURATION=${DURATION:-4}
KG_PORT=${KG_PORT:-18180}
UP_PORT=${UP_PORT:-19190}
KG="http://127.0.0.1:$KG_PORT"
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"
export BENCH_WRK="$HERE/wrk"

for tool in valgrind callgrind_control callgrind_annotate wrk python3; do
  command -v "$tool" >/dev/null || { echo "callgrind.sh: $tool is needed (valgrind and wrk are Debian packages)" >&2; exit 2; }
done
(cd "$ROOT" && cargo build --release -q -p keygate -p keygate-bench)
rm -rf "$OUT" && mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)

"$BIN/upstream" "127.0.0.1:$UP_PORT" 1 2>"$OUT/upstream.log" &
UP_PID=$!
write_keygate_config "$OUT/keygate.toml" "$KG_PORT" "$UP_PORT" "$OUT/keygate.db" "workers = 1"
valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.%p" "$BIN/keygate" serve -c "$OUT/keygate.toml" >"$OUT/keygate.log" 2>&1 &
KG_PID=$!
trap 'kill $KG_PID $UP_PID 2>/dev/null; wait 2>/dev/null' EXIT
wait_for_keygate 60 || { echo "callgrind.sh: keygate did not start (see $OUT/keygate.log)" >&2; exit 1; }

register_bench_user cg@callgrind.example
KEY=$(mint callgrind | json "['key']")
export KEY

measure() { # NAME wrk-arguments…
  local name=$1; shift
  wrk -t1 -c4 -d3s "$@" >/dev/null 2>&1 || true
  callgrind_control -z "$KG_PID" >/dev/null 2>&1
  local requests
  requests=$(wrk -t1 -c4 -d"${DURATION}s" "$@" 2>&1 | awk '/requests in/ {print $1}')
  callgrind_control -d "$name" "$KG_PID" >/dev/null 2>&1
  local dump total
  dump=$(ls -t "$OUT"/callgrind.* | head -1)
  total=$(callgrind_annotate "$dump" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
  printf '%-8s %7d requests  %12d instructions  %6d per request  (%s)\n' "$name" "$requests" "$total" "$((total / requests))" "$dump"
}
measure healthz "$KG/healthz"
measure verify -s "$BENCH_WRK/verify.lua" "$KG/v1/keys/verify"
measure gateway -s "$BENCH_WRK/gateway.lua" "$KG/v1/bench/x"
