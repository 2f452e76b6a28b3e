#!/usr/bin/env bash
# Feed load benchmark, loopback only and bounded in time: 10 000 users,
# 100 000 posts with ready media and a power-law follow graph (seeded by
# benches/seed-feed.py), served by `sori api` on SQLite and on PostgreSQL.
# For each backend, wrk measures in the same run:
#   /healthz                     the baseline: the same server doing no work,
#   GET /v1/feed                 page 1, tokens of 500 users in rotation,
#   GET /v1/feed?cursor=…        page 2 (the next_cursor each user's page 1 gave),
# and prints requests/s and p99 latency, feed throughput as a ratio to /healthz.
# Target (issue 5): feed throughput >= 25 % of /healthz, p99 < 50 ms.
#
#   benches/feed-load.sh                      (both backends, 20 s per run)
#   DURATION=5 BACKENDS=sqlite benches/feed-load.sh
# Each backend runs twice: with the server's default caches ("cached": the
# session and feed-page caches of SORI_SESSION_CACHE_MS/SORI_FEED_CACHE_MS,
# whose hit ratio over each measured run is read from /metrics and printed)
# and with both turned off ("uncached": every request reads the database).
# Each feed route gets a 3 s warm-up right before it is measured: the
# figures are a running service's steady state, where viewers have asked
# before; what a first read costs is what the uncached runs measure.
# Settings: DURATION (s, default 20), THREADS (2), CONNECTIONS (50),
# BACKENDS ("sqlite postgres"), MODES ("cached uncached"), PORT (18090), PG_URL (server URL without a
# database, default postgres://postgres@127.0.0.1:5432), SORI_BIN.
# PostgreSQL uses a fresh database sori_bench, dropped at the end.
# Needs python3, psql, curl and wrk (installed with apt-get when missing).
# On a shared machine the numbers are noisy: run it twice and compare.
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${DURATION:-20}"
threads="${THREADS:-2}"
connections="${CONNECTIONS:-50}"
backends="${BACKENDS:-sqlite postgres}"
modes="${MODES:-cached uncached}"
port="${PORT:-18090}"
pg_db=sori_bench

. benches/feed-common.sh

# run_wrk NAME PATH [TOKENS_FILE]: prints "NAME rps p99_ms p50_ms non2xx errors".
run_wrk() {
  local name="$1" path="$2" tokens="${3:-}" out
  out="$(FEED_TOKENS="$tokens" wrk -t"$threads" -c"$connections" -d"${duration}s" \
    --latency -s benches/feed.lua "$base$path")"
  echo "$out" >"$work/wrk-$name.txt"
  wrk_result "$name" "$out"
}

# measure NAME [TOKENS_FILE]: for a feed route, a warm-up run right before
# (steady state: every viewer has asked recently, as in a running service; a
# page's first read is what the "uncached" runs measure), then run_wrk, with
# the share of the measured requests the feed cache served ("-" when off).
measure() {
  local name="$1" tokens="${2:-}" before after
  if [ -z "$tokens" ]; then
    echo "$(run_wrk "$name" /healthz) -"
    return
  fi
  FEED_TOKENS="$tokens" wrk -t"$threads" -c"$connections" -d3s \
    -s benches/feed.lua "$base/v1/feed" >/dev/null
  before="$(cache_counts)"
  local line
  line="$(run_wrk "$name" /v1/feed "$tokens")"
  after="$(cache_counts)"
  echo "$line $(echo "$before $after" | awk '{
    hit = $3 - $1; miss = $4 - $2
    if (hit + miss > 0) printf "%.1f%%", 100 * hit / (hit + miss); else print "-" }')"
}

bench_backend() {
  local backend="$1" mode results
  echo "== $backend: seeding" >&2
  "seed_$backend"
  for mode in $modes; do
    start_server "$work/data-$backend-$mode" "$db_url" "$mode"
    [ -s "$work/seed/page2.txt" ] || python3 benches/seed-feed.py cursors "$work/seed" "$base"
    # Warm connections before measuring.
    wrk -t"$threads" -c"$connections" -d2s "$base/healthz" >/dev/null
    echo "== $backend $mode: wrk ${duration}s × 3, $threads threads, $connections connections" >&2
    results="$(measure healthz
      measure feed "$work/seed/tokens.txt"
      measure feed-page2 "$work/seed/page2.txt")"
    report "$backend $mode" "$results" 0.25 >>"$work/report.txt"
    stop_server
  done
  rm -f "$work/seed/page2.txt"
}

ensure_tools
echo "== generating 10 000 users, 100 000 posts" >&2
python3 benches/seed-feed.py generate "$work/seed"
for backend in $backends; do
  bench_backend "$backend"
done
echo
echo "feed load: $(nproc) cores, wrk -t$threads -c$connections -d${duration}s per route, $(date -u +%F)"
printf "%-18s %-11s %10s %9s %9s %9s %7s  %-7s %s\n" run route req/s ratio "p50 ms" "p99 ms" non2xx target "cache hits" 
cat "$work/report.txt"
