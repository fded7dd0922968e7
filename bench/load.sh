#!/usr/bin/env bash
# keygate's load benchmark: one run, one machine (BENCHMARKS.md explains every number).
#
#   bench/load.sh                      # everything, ≈ 15 min on 2 cores
#   QUICK=1 bench/load.sh              # 3 s runs, 1 round, 10k keys only: a smoke test
#
# Measures, with wrk at 50 connections and 2 threads on the same machine as the servers:
#   (1) GET /healthz of keygate            — the ceiling of its HTTP stack
#   (2) POST /v1/keys/verify, a valid key  — target ≥ 0.8 × (1) req/s, p99 ≤ 1.5 × (1)
#   (3) the gateway, valid key, in front of a fast upstream
#   (4) the same upstream behind nginx as a plain reverse proxy — target for (3): ≥ 0.8 × (4)
#   (5) the same upstream behind `bareproxy`: hyper's server and pooled client, nothing else —
#       what keygate's HTTP stack costs as a proxy, so (3)/(5) is what keygate itself adds
# then verify at 10/50/200 connections, verify over 10k/100k/1M stored and cached keys with
# the process's memory, and the exactness checks (usage counts, a rate limit, a revocation).
#
# Settings (environment): DURATION (s, default 10), ROUNDS (default 3: scenarios 1–5 run
# interleaved this many times; medians and per-round ratios reported, see summarize.sh),
# KEY_TIERS (default "10000 100000 1000000"; "none" skips the key tiers),
# OUT (results folder; default target/bench-load/<time>), PROFILE=1 (also record perf
# profiles of verify and gateway, in a separate pass), UPDATE_DOCS=1 (copy the plot to
# docs/bench-load.svg), KG_PORT/UP_PORT/NGINX_PORT/BARE_PORT (18080/19100/19200/19300).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
export BENCH_WRK="$HERE/wrk"
QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
  DURATION=${DURATION:-3}; ROUNDS=${ROUNDS:-1}; KEY_TIERS=${KEY_TIERS:-"10000"}
fi
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
KEY_TIERS=${KEY_TIERS:-"10000 100000 1000000"}
CONNS=50
THREADS=2
KG_PORT=${KG_PORT:-18080}
UP_PORT=${UP_PORT:-19100}
NGINX_PORT=${NGINX_PORT:-19200}
BARE_PORT=${BARE_PORT:-19300}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=${OUT:-$ROOT/target/bench-load/$(date +%Y%m%d-%H%M%S)}
KG="http://127.0.0.1:$KG_PORT"
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
RESULTS="$OUT/results.tsv"
: > "$RESULTS"
UP_PID="" NGINX_PID="" KG_PID="" BARE_PID=""

log() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'load.sh: %s\n' "$*" >&2; exit 1; }
cleanup() { # only the processes this script started, by their ids
  for p in "$KG_PID" "$NGINX_PID" "$BARE_PID" "$UP_PID"; do [[ -n $p ]] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

# ---------------------------------------------------------------- tools and binaries
if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null; then
  log "installing wrk and nginx from Debian's packages"
  apt-get install -y wrk nginx >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk nginx >/dev/null; }
fi
command -v python3 >/dev/null || die "python3 is needed to read JSON answers"
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

log "building release binaries (keygate, keygate-bench)"
(cd "$ROOT" && cargo build --release -q -p keygate -p keygate-bench)
BIN="$TARGET_DIR/release"
for b in keygate upstream bareproxy seed drive plot; do [[ -x $BIN/$b ]] || die "missing $BIN/$b"; done

# ---------------------------------------------------------------- the machine, as it is now
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  lscpu | grep -E '^(Model name|CPU\(s\)|Thread|Core|Socket|CPU max MHz|Hypervisor)' || true
  grep MemTotal /proc/meminfo
  uname -r
  wrk --version 2>&1 | head -1 || true
  "$NGINX" -v 2>&1
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "other compilers running at start: $(pgrep -c -x rustc || true)"
} > "$OUT/machine.txt"
cat "$OUT/machine.txt" >&2

busy_note() { # what else was running, recorded beside every measurement
  printf '%s\t%s\n' "$(cut -d' ' -f1 /proc/loadavg)" "$(pgrep -c -x rustc || true)"
}

# ---------------------------------------------------------------- servers
"$BIN/upstream" "127.0.0.1:$UP_PORT" 1 2>"$OUT/upstream.log" &
UP_PID=$!

write_keygate_config "$OUT/keygate.toml" "$KG_PORT" "$UP_PORT" "$OUT/keygate.db" "" '
[cache]
max_entries = 2000000
ttl_seconds = 3600

[usage]
flush_interval_ms = 500'

start_keygate() { # extra environment as arguments: KEY=VALUE …
  env "$@" "$BIN/keygate" serve -c "$OUT/keygate.toml" >>"$OUT/keygate.log" 2>&1 &
  KG_PID=$!
  wait_for_keygate 10 || die "keygate did not start (see $OUT/keygate.log)"
}
stop_keygate() { # SIGTERM: drains and flushes usage counters
  kill -TERM "$KG_PID" 2>/dev/null || true
  wait "$KG_PID" 2>/dev/null || true
  KG_PID=""
}
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

mkdir -p "$OUT/nginx/logs"
cat > "$OUT/nginx/nginx.conf" <<EOF
# A plain reverse proxy as a user would deploy it: no authentication, keep-alive to the
# upstream, the usual forwarding headers (keygate's gateway sends the same four, plus its
# identity headers), no access log (keygate writes none per request either).
daemon off;
worker_processes auto;
pid $OUT/nginx/nginx.pid;
error_log $OUT/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $OUT/nginx/body;
  proxy_temp_path $OUT/nginx/proxy;
  fastcgi_temp_path $OUT/nginx/fastcgi;
  uwsgi_temp_path $OUT/nginx/uwsgi;
  scgi_temp_path $OUT/nginx/scgi;
  upstream bench_upstream {
    server 127.0.0.1:$UP_PORT;
    keepalive 256;
  }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      proxy_pass http://bench_upstream;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto \$scheme;
      proxy_set_header X-Forwarded-Host \$host;
      proxy_set_header X-Request-Id \$request_id;
    }
  }
}
EOF
"$NGINX" -p "$OUT/nginx/" -c "$OUT/nginx/nginx.conf" 2>>"$OUT/nginx/error.log" &
NGINX_PID=$!
"$BIN/bareproxy" "127.0.0.1:$BARE_PORT" "127.0.0.1:$UP_PORT" 2>"$OUT/bareproxy.log" &
BARE_PID=$!

start_keygate

# ---------------------------------------------------------------- a user and keys, over HTTP
register_bench_user "bench@bench-$RANDOM$RANDOM.example"
MAIN=$(mint load)
KEY=$(json "['key']" <<<"$MAIN"); KEY_ID=$(json "['id']" <<<"$MAIN")
LIMITED=$(mint limited '"rate_limit":{"limit":1000,"window_seconds":86400}')
LKEY=$(json "['key']" <<<"$LIMITED"); LKEY_ID=$(json "['id']" <<<"$LIMITED")
DOOMED=$(mint revoke-under-load)
DKEY=$(json "['key']" <<<"$DOOMED"); DKEY_ID=$(json "['id']" <<<"$DOOMED")
request_count() { curl -fsS "$KG/v1/keys/$1?account_id=$ACCOUNT" -H "authorization: Bearer $TOKEN" | json "['request_count']"; }
export KEY

# Sanity before measuring: each scenario answers what it should.
[[ $(curl -s -o /dev/null -w '%{http_code}' "$KG/v1/bench/x" -H "x-api-key: $KEY") == 200 ]] || die "gateway does not answer 200"
[[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$NGINX_PORT/v1/bench/x") == 200 ]] || die "nginx does not answer 200"
[[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$BARE_PORT/v1/bench/x") == 200 ]] || die "bareproxy does not answer 200"
TOKEN="" post /v1/keys/verify "{\"key\":\"$KEY\"}" | grep -q '"code":"VALID"' || die "verify does not answer VALID"
SANITY=2 # the gateway and verify requests above count as uses of KEY

# ---------------------------------------------------------------- wrk
WRK_KEY_REQUESTS=0 # completed wrk requests that carried KEY (verify + gateway)
# run_wrk NAME CONNECTIONS SCRIPT URL → appends "NAME conns requests rps p50 p99 non2xx errors load rustc"
run_wrk() {
  local name=$1 conns=$2 script=$3 url=$4 note line
  note=$(busy_note)
  line=$(wrk -t"$THREADS" -c"$conns" -d"${DURATION}s" --timeout 10s -s "$BENCH_WRK/$script" "$url" | tee -a "$OUT/wrk.log" | grep '^RESULT' | tail -1)
  [[ -n $line ]] || die "wrk printed no RESULT for $name"
  local requests rps p50 p99 non2xx errors
  IFS=$'\t' read -r _ requests _ rps p50 p99 non2xx errors <<<"$line"
  printf 'run\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$conns" "$requests" "$rps" "$p50" "$p99" "$non2xx" "$errors" "$note" >>"$RESULTS"
  printf '  %-10s c=%-4s %10s req/s  p50 %6s µs  p99 %7s µs  non-2xx %s  errors %s  (load %s)\n' "$name" "$conns" "$rps" "$p50" "$p99" "$non2xx" "$errors" "${note%%$'\t'*}" >&2
  if [[ $name == verify || $name == verify-conns || $name == gateway ]]; then WRK_KEY_REQUESTS=$((WRK_KEY_REQUESTS + requests - non2xx)); fi
}

log "scenarios 1–5 at $CONNS connections, ${DURATION}s each, $ROUNDS round(s), interleaved"
for r in $(seq 1 "$ROUNDS"); do
  run_wrk healthz $CONNS plain.lua "$KG/healthz"
  run_wrk verify $CONNS verify.lua "$KG/v1/keys/verify"
  run_wrk gateway $CONNS gateway.lua "$KG/v1/bench/x"
  run_wrk nginx $CONNS plain.lua "http://127.0.0.1:$NGINX_PORT/v1/bench/x"
  run_wrk bareproxy $CONNS plain.lua "http://127.0.0.1:$BARE_PORT/v1/bench/x"
done

log "verify at 10, 50, 200 connections"
# Named apart from the rounds: a phase of its own, which never enters the scenarios' medians.
for c in 10 50 200; do run_wrk verify-conns $c verify.lua "$KG/v1/keys/verify"; done

# ---------------------------------------------------------------- exactness
log "exactness: usage counts, a rate limit, a revocation"
sleep 1.5 # > flush_interval_ms: every use so far has reached storage
C0=$(request_count "$KEY_ID")
UP0=$(curl -fsS "http://127.0.0.1:$UP_PORT/__count")
# wrk stops on a clock with up to one request per connection in flight: keygate answered
# (and counted) those, wrk never saw them. So the wrk count is a lower bound, off by at most
# the connections of the runs; the exact comparison is driven with a fixed number below.
WRK_RUNS=$((ROUNDS * 2 + 3)); INFLIGHT_MAX=$((ROUNDS * 2 * CONNS + 10 + 50 + 200))
printf 'count\twrk\t%s\t%s\t%s\n' "$((C0 - SANITY))" "$WRK_KEY_REQUESTS" "$INFLIGHT_MAX" >>"$RESULTS"
N_EXACT=${N_EXACT:-50000}
V=$("$BIN/drive" verify "$KG" "$KEY" "$N_EXACT" 50)
G=$("$BIN/drive" gateway "$KG/v1/bench/x" "$KEY" "$N_EXACT" 50)
sleep 1.5
C1=$(request_count "$KEY_ID")
UP1=$(curl -fsS "http://127.0.0.1:$UP_PORT/__count")
VALID=$(sed -E 's/.*valid=([0-9]+).*/\1/' <<<"$V"); OK=$(sed -E 's/.*ok=([0-9]+).*/\1/' <<<"$G")
printf 'count\texact\t%s\t%s\t%s\t%s\n' "$((C1 - C0))" "$((VALID + OK))" "$((UP1 - UP0))" "$OK" >>"$RESULTS"
L=$("$BIN/drive" verify "$KG" "$LKEY" 5000 50)
sleep 1.5
LC=$(request_count "$LKEY_ID")
printf 'count\tlimit\t%s\t%s\t%s\n' "$L" "$LC" 1000 >>"$RESULTS"
RV=$("$BIN/drive" revoke "$KG" "$DKEY" "$TOKEN" "$DKEY_ID?account_id=$ACCOUNT" 50)
printf 'count\trevoke\t%s\n' "$RV" >>"$RESULTS"
echo "  wrk: request_count $((C0 - SANITY)) vs wrk's completed $WRK_KEY_REQUESTS (in flight at wrk's stops: ≤ $INFLIGHT_MAX)" >&2
echo "  exact: request_count +$((C1 - C0)) vs $VALID VALID verifies + $OK gateway 200s (upstream saw +$((UP1 - UP0)))" >&2
echo "  rate limit 1000/day: $L; request_count $LC" >&2
echo "  revocation under load: $RV" >&2

if [[ ${PROFILE:-0} == 1 ]]; then
  log "perf profiles (a separate pass; not used for the numbers above)"
  for s in verify gateway; do
    url="$KG/v1/keys/verify"; [[ $s == gateway ]] && url="$KG/v1/bench/x"
    wrk -t"$THREADS" -c"$CONNS" -d"$((DURATION + 2))s" -s "$BENCH_WRK/$s.lua" "$url" >/dev/null &
    sleep 1
    perf record -q -F 999 -g -p "$KG_PID" -o "$OUT/perf-$s.data" -- sleep "$DURATION" 2>/dev/null || true
    wait $! 2>/dev/null || true
    perf report -q -i "$OUT/perf-$s.data" --no-children --percent-limit 0.7 --stdio -g none 2>/dev/null >"$OUT/perf-$s.txt" || true
  done
fi

# ---------------------------------------------------------------- keys: 10k / 100k / 1M
log "verify over N stored keys, every one cached; memory"
: > "$OUT/keys.txt"
seeded=0
for n in $KEY_TIERS; do
  [[ $n == none ]] && break # KEY_TIERS=none: scenarios, sweep and counts only
  stop_keygate
  "$BIN/seed" "$OUT/keygate.db" "$ACCOUNT" $((n - seeded)) "$OUT/keys.txt" 2>>"$OUT/seed.log"
  seeded=$n
  start_keygate
  # Baseline after the first requests have sized the runtime's buffers.
  "$BIN/drive" verify "$KG" "$KEY" 2000 50 >/dev/null
  before=$(rss_kib "$KG_PID")
  W=$("$BIN/drive" warm "$KG" "$OUT/keys.txt" 64)
  after=$(rss_kib "$KG_PID")
  echo "  $n keys: $W; RSS $before → $after KiB" >&2
  KEYS_FILE="$OUT/keys.txt" run_wrk "keys-$n" $CONNS keys.lua "$KG/v1/keys/verify"
  line=$(grep -P "^run\tkeys-$n\t" "$RESULTS" | tail -1)
  IFS=$'\t' read -r _ _ _ _ rps p50 p99 _ <<<"$line"
  printf 'keys\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$rps" "$p50" "$p99" "$after" "$before" >>"$RESULTS"
done

if [[ -n ${BOUND_ENTRIES:-100000} && $seeded -gt ${BOUND_ENTRIES:-100000} ]]; then
  log "memory bounded by configuration: cache.max_entries = ${BOUND_ENTRIES:-100000}, $seeded keys presented"
  stop_keygate
  start_keygate KEYGATE_CACHE__MAX_ENTRIES="${BOUND_ENTRIES:-100000}"
  "$BIN/drive" verify "$KG" "$KEY" 2000 50 >/dev/null
  before=$(rss_kib "$KG_PID")
  W=$("$BIN/drive" warm "$KG" "$OUT/keys.txt" 64)
  after=$(rss_kib "$KG_PID")
  echo "  bounded: $W; RSS $before → $after KiB" >&2
  printf 'bound\t%s\t%s\t%s\t%s\n' "${BOUND_ENTRIES:-100000}" "$seeded" "$after" "$before" >>"$RESULTS"
fi
stop_keygate

# ---------------------------------------------------------------- the tables and the plot
"$HERE/summarize.sh" "$OUT"
echo "results: $OUT" >&2
