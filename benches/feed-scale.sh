#!/usr/bin/env bash
# Feed load at the scale of a real population (issue 22), loopback only:
# 100 000 users with Zipf-distributed activity and follow counts, 200 000
# posts, home timelines as fan-out on write leaves them (authors with more
# than SORI_FANOUT_MAX_FOLLOWERS followers read by fan-in), seeded by
# `benches/seed-feed.py population`, served by `sori api` on SQLite and on
# PostgreSQL. For each backend and cache mode, in the same run:
#   healthz    GET /healthz, the baseline: the same server doing no work;
#   feed       GET /v1/feed page 1 by viewers drawn from the whole
#              population, weighted by how often each opens the app, while
#   writes     likes, follows and posts (5 : 2 : 1 against 92 feed reads in
#              the stream) run beside them on WRITE_CONNECTIONS connections;
#   trending   GET /v1/explore?sort=trending page 1 (no cache exists for it).
# It prints requests/s, p50/p99, the ratio to /healthz, the share of feed
# reads the page cache served (the hit ratio such a population gives), and
# then what one post's fan-out costs by the author's follower count.
# Targets: feed >= 25 % of /healthz on PostgreSQL, >= 10 % on SQLite, p99 < 50 ms,
# with the caches off ("uncached").
#
#   benches/feed-scale.sh                       (both backends, 20 s per run)
#   USERS=20000 POSTS=40000 BACKENDS=sqlite DURATION=5 benches/feed-scale.sh
# Settings: USERS, POSTS, DURATION (s, default 20), THREADS (2), CONNECTIONS
# (50 for reads), WRITE_CONNECTIONS (4), BACKENDS ("postgres sqlite"), MODES
# ("uncached cached"), NO_TIMELINES (set: seed no timelines, every account's
# floor now, so every feed page is read by the merge over followed authors,
# as before timelines: the comparison), PORT (18091), PG_URL, SORI_BIN (default
# target/release/sori). Needs python3, psql, curl and wrk. Seeding 100 000
# users takes a few minutes per backend; the numbers are noisy on a shared
# machine: compare ratios within one run.
set -euo pipefail
cd "$(dirname "$0")/.."
users="${USERS:-100000}"
posts="${POSTS:-200000}"
duration="${DURATION:-20}"
threads="${THREADS:-2}"
connections="${CONNECTIONS:-50}"
write_connections="${WRITE_CONNECTIONS:-4}"
backends="${BACKENDS:-postgres sqlite}"
modes="${MODES:-uncached cached}"
port="${PORT:-18091}"
pg_db=sori_bench_scale

. benches/feed-common.sh

# mixed START: feed reads and writes side by side from line START of the
# stream; prints the feed line (with the cache's share) and the writes line.
mixed() {
  local start="$1" before after reads writes_out
  before="$(cache_counts)"
  FEED_REQUESTS="$work/seed/requests.txt" FEED_START="$start" FEED_THREADS=1 FEED_KINDS=LWP \
    wrk -t1 -c"$write_connections" -d"${duration}s" --latency -s benches/feed-mix.lua "$base/" \
    >"$work/writes.txt" &
  local writer=$!
  reads="$(FEED_REQUESTS="$work/seed/requests.txt" FEED_START="$start" FEED_THREADS="$threads" \
    FEED_KINDS=F wrk -t"$threads" -c"$connections" -d"${duration}s" --latency \
    -s benches/feed-mix.lua "$base/")"
  wait "$writer"
  after="$(cache_counts)"
  echo "$(wrk_result feed "$reads") $(echo "$before $after" | awk '{
    hit = $3 - $1; miss = $4 - $2
    if (hit + miss > 0) printf "%.1f%%", 100 * hit / (hit + miss); else print "-" }')"
  echo "$(wrk_result writes "$(cat "$work/writes.txt")") -"
}

bench_backend() {
  local backend="$1" mode results run=0 target=0.10
  [ "$backend" = postgres ] && target=0.25
  echo "== $backend: seeding" >&2
  "seed_$backend"
  for mode in $modes; do
    start_server "$work/data-$backend-$mode" "$db_url" "$mode"
    wrk -t"$threads" -c"$connections" -d2s "$base/healthz" >/dev/null
    # Feed reads from the stream's tail first: SQLite maps its file, and the
    # first reads of a new process fault its pages in.
    FEED_REQUESTS="$work/seed/requests.txt" FEED_START=590000 FEED_THREADS="$threads" FEED_KINDS=F \
      wrk -t"$threads" -c"$connections" -d5s -s benches/feed-mix.lua "$base/" >/dev/null
    echo "== $backend $mode: wrk ${duration}s per route" >&2
    results="$(echo "$(wrk_result healthz "$(wrk -t"$threads" -c"$connections" -d"${duration}s" \
        --latency -s benches/feed.lua "$base/healthz")") -"
      mixed $((run * 250000))
      echo "$(wrk_result trending "$(FEED_TOKENS="$work/seed/viewers.txt" wrk -t"$threads" \
        -c"$connections" -d"${duration}s" --latency -s benches/feed.lua \
        "$base/v1/explore?sort=trending")") -")"
    report "$backend $mode" "$results" "$target" >>"$work/report.txt"
    if [ "$run" = 0 ]; then
      echo "== $backend: fan-out cost" >&2
      python3 benches/seed-feed.py fanout "$work/seed" "$base" | sed "s/^/$backend /" >>"$work/fanout.txt"
    fi
    run=$((run + 1))
    stop_server
  done
}

ensure_tools
echo "== generating $users users, $posts posts" >&2
python3 benches/seed-feed.py population "$work/seed" --users "$users" --posts "$posts" \
  ${NO_TIMELINES:+--no-timelines} 2>&1 \
  | tee "$work/population.txt" >&2
awk '$1 == "F" && n++ < 20000 { print $2 }' "$work/seed/requests.txt" >"$work/seed/viewers.txt"
for backend in $backends; do
  bench_backend "$backend"
done
echo
echo "feed at scale: $(nproc) cores, wrk -t$threads -c$connections (+$write_connections writing) -d${duration}s, $(date -u +%F)"
cat "$work/population.txt"
printf "%-18s %-11s %10s %9s %9s %9s %7s  %-7s %s\n" run route req/s ratio "p50 ms" "p99 ms" non2xx target "cache hits"
cat "$work/report.txt"
echo
cat "$work/fanout.txt"
