#!/usr/bin/env bash
# The tables (summary.md) and the plot (bench-load.svg) of one bench/load.sh run, read from its
# results.tsv. load.sh ends with it; run it alone to re-read a run:
#
#   bench/summarize.sh target/bench-load/<run>      # UPDATE_DOCS=1 also copies the plot to docs/
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
[[ $# == 1 && -f $1/results.tsv ]] || { echo "usage: bench/summarize.sh <run folder with results.tsv>" >&2; exit 2; }
OUT=$(cd "$1" && pwd)
RESULTS="$OUT/results.tsv"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"

# ---------------------------------------------------------------- the plot
# Verify by connections (its own phase, after the rounds) and by stored keys.
if grep -qP '^keys\t' "$RESULTS"; then
  "$BIN/plot" <(awk -F'\t' '
    $1=="run" && $2=="verify-conns" { print "conn\t" $3 "\t" $5 "\t" $6 "\t" $7 }
    $1=="keys" { print }' "$RESULTS") "$OUT/bench-load.svg" >/dev/null || echo "plot failed" >&2
fi
if [[ ${UPDATE_DOCS:-0} == 1 && -f $OUT/bench-load.svg ]]; then cp "$OUT/bench-load.svg" "$ROOT/docs/bench-load.svg"; fi

python3 - "$RESULTS" <<'PY' | tee "$OUT/summary.md"
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
runs = [r for r in rows if r[0] == "run"]
def med(name, conns="50"):
    rs = [r for r in runs if r[1] == name and r[2] == conns]
    if not rs:
        return None
    return {k: statistics.median(float(r[i]) for r in rs) for k, i in (("rps", 4), ("p50", 5), ("p99", 6), ("non2xx", 7), ("err", 8))} | {"n": len(rs)}
# Scenarios 1–5 come from the interleaved rounds only (rows named by scenario); the verify runs
# by connections are a later phase of their own (`verify-conns`) and never enter these medians.
print("| scenario (50 connections, median of the interleaved rounds) | req/s | p50 | p99 | non-2xx | errors |")
print("|---|---:|---:|---:|---:|---:|")
names = {"healthz": "(1) GET /healthz — ceiling", "verify": "(2) POST /v1/keys/verify", "gateway": "(3) gateway → upstream", "nginx": "(4) nginx → upstream", "bareproxy": "(5) bare hyper proxy → upstream"}
m = {k: med(k) for k in names}
for k, label in names.items():
    r = m[k]
    if r:
        print(f"| {label} | {r['rps']:,.0f} | {r['p50']/1000:.2f} ms | {r['p99']/1000:.2f} ms | {r['non2xx']:.0f} | {r['err']:.0f} |")
print()
def per_round(name):
    return [r for r in runs if r[1] == name and r[2] == "50"]
def verdict(a, b, label, target=True):
    """Two estimates of a's throughput relative to b's. Headline: the median of the per-round
    ratios — each round runs a and b minutes apart, so a shared VM's drift in speed over the run
    cancels out of each ratio. Beside it, the ratio of the two medians."""
    if not (m[a] and m[b]):
        return
    pairs = list(zip(per_round(a), per_round(b)))
    rounds = [float(x[4]) / float(y[4]) for x, y in pairs]
    rr = statistics.median(rounds)
    of_medians = m[a]["rps"] / m[b]["rps"]
    pr = statistics.median(float(x[6]) / float(y[6]) for x, y in pairs)
    each = ", ".join(f"{x:.2f}" for x in rounds)
    detail = f"(rounds: {each}; ratio of the medians {of_medians:.2f}×)"
    if not target:
        print(f"- {label}: throughput {rr:.2f}× {detail}, p99 {pr:.2f}× (context, no target)")
        return
    ok1 = "met" if rr >= 0.8 else "NOT met"; ok2 = "met" if pr <= 1.5 else "NOT met"
    print(f"- {label}: throughput {rr:.2f}× {detail} (target ≥ 0.80: {ok1}), p99 {pr:.2f}× (median of rounds; target ≤ 1.50: {ok2})")
verdict("verify", "healthz", "(2)/(1) verify vs ceiling")
verdict("gateway", "nginx", "(3)/(4) gateway vs nginx")
verdict("gateway", "bareproxy", "(3)/(5) gateway vs the bare hyper proxy: what keygate adds", target=False)
verdict("bareproxy", "nginx", "(5)/(4) the bare hyper proxy vs nginx: what the stack costs", target=False)
print()
print("| verify at N connections | req/s | p50 | p99 |")
print("|---:|---:|---:|---:|")
for c in ("10", "50", "200"):
    rs = [r for r in runs if r[1] == "verify-conns" and r[2] == c]
    if rs:
        r = rs[-1]
        print(f"| {c} | {float(r[4]):,.0f} | {float(r[5])/1000:.2f} ms | {float(r[6])/1000:.2f} ms |")
print()
print("| stored keys (all cached) | verify req/s | p50 | p99 | RSS after warm-up | RSS before | bytes per cached key |")
print("|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    if r[0] == "keys":
        n, rps, p50, p99, after, before = int(r[1]), float(r[2]), float(r[3]), float(r[4]), int(r[5]), int(r[6])
        print(f"| {n:,} | {rps:,.0f} | {p50/1000:.2f} ms | {p99/1000:.2f} ms | {after/1024:,.0f} MiB | {before/1024:,.0f} MiB | {(after-before)*1024/n:,.0f} |")
for r in rows:
    if r[0] == "bound":
        print(f"\nWith `cache.max_entries = {int(r[1]):,}` and {int(r[2]):,} keys presented: RSS {int(r[4])/1024:,.0f} → {int(r[3])/1024:,.0f} MiB.")
print()
for r in rows:
    if r[0] == "count":
        if r[1] == "wrk":
            print(f"- usage vs wrk: request_count {r[2]} ≥ wrk's completed {r[3]}; difference {int(r[2])-int(r[3])} (requests in flight when wrk stopped, ≤ {r[4]})")
        elif r[1] == "exact":
            ok = "EXACT" if r[2] == r[3] else "MISMATCH"
            print(f"- usage, fixed-count drive: request_count +{r[2]} vs {r[3]} successful verifies + gateway requests ({ok}); the upstream received +{r[4]} gateway requests for {r[5]} 200s")
        elif r[1] == "limit":
            print(f"- rate limit 1000/day, 5000 verifies: {r[2]}; request_count {r[3]} (expected {r[4]})")
        elif r[1] == "revoke":
            print(f"- revocation under load: {r[2]}")
PY
