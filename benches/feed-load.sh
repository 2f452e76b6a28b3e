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
pg_url="${PG_URL:-postgres://postgres@127.0.0.1:5432}"
pg_db=sori_bench
sori="${SORI_BIN:-target/release/sori}"
base="http://127.0.0.1:$port"
work="$(mktemp -d)"
server_pid=""
pg_created=""

cleanup() {
  stop_server
  if [ -n "$pg_created" ]; then
    psql -q "$pg_url/postgres" -c "DROP DATABASE IF EXISTS $pg_db" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

stop_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
  fi
}

# Cargo waits for the shared target dir's lock if someone else is building.
ensure_tools() {
  if [ ! -x "$sori" ]; then
    echo "building $sori (cargo build --release)…" >&2
    cargo build --release
  fi
  if ! command -v wrk >/dev/null; then
    echo "installing wrk…" >&2
    if [ "$(id -u)" = 0 ]; then apt-get install -y wrk >/dev/null; else sudo apt-get install -y wrk >/dev/null; fi
  fi
}

# Schema by `sori migrate`, then the CSVs bulk-inserted; sets db_url.
seed_sqlite() {
  local db="$work/sqlite/sori.db"
  mkdir -p "$work/sqlite"
  DATABASE_URL="sqlite://$db" SORI_DATA_DIR="$work/sqlite" RUST_LOG=warn "$sori" migrate
  python3 benches/seed-feed.py load-sqlite "$work/seed" "$db"
  db_url="sqlite://$db"
}

seed_postgres() {
  local url="$pg_url/$pg_db" table cols
  psql -q "$pg_url/postgres" -c "DROP DATABASE IF EXISTS $pg_db" >/dev/null 2>&1
  psql -q "$pg_url/postgres" -c "CREATE DATABASE $pg_db" >/dev/null
  pg_created=1
  DATABASE_URL="$url" SORI_DATA_DIR="$work/postgres" RUST_LOG=warn "$sori" migrate
  for table in users auth_tokens media posts post_tags follows likes; do
    cols="$(head -1 "$work/seed/$table.csv")"
    psql -q "$url" -c "\\copy $table ($cols) FROM '$work/seed/$table.csv' WITH (FORMAT csv, HEADER true)" >&2
  done
  psql -q "$url" -c "VACUUM ANALYZE" >&2
  db_url="$url"
}

# Starts `sori api` on DATABASE_URL $2 with data dir $1, caches per mode $3;
# waits for /readyz.
start_server() {
  local cache_env=()
  if [ "$3" = uncached ]; then cache_env=(SORI_SESSION_CACHE_MS=0 SORI_FEED_CACHE_MS=0); fi
  mkdir -p "$1"
  env "${cache_env[@]}" SORI_DATA_DIR="$1" SORI_LISTEN="127.0.0.1:$port" DATABASE_URL="$2" \
    RUST_LOG=warn "$sori" api >"$1/api.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 100); do
    curl -fs "$base/readyz" >/dev/null && return 0
    sleep 0.1
  done
  cat "$1/api.log" >&2
  echo "sori api did not become ready" >&2
  return 1
}

# run_wrk NAME PATH [TOKENS_FILE]: prints "NAME rps p99_ms p50_ms non2xx errors".
run_wrk() {
  local name="$1" path="$2" tokens="${3:-}" out
  out="$(FEED_TOKENS="$tokens" wrk -t"$threads" -c"$connections" -d"${duration}s" \
    --latency -s benches/feed.lua "$base$path")"
  echo "$out" >"$work/wrk-$name.txt"
  echo "$out" | awk -v n="$name" '/^RESULT/ {
    for (i = 2; i <= NF; i++) { split($i, kv, "="); r[kv[1]] = kv[2] }
    printf "%s %s %s %s %s %s", n, r["rps"], r["p99_ms"], r["p50_ms"], r["non2xx"], r["socket_errors"] }'
}

# The feed cache's lookups so far, from /metrics: "SERVED MISSED" (served
# from memory: fresh or stale pages).
cache_counts() {
  curl -fs "$base/metrics" | awk '
    /^sori_feed_cache_lookups_total\{result="(hit|stale)"\}/ { hit += $2 }
    /^sori_feed_cache_lookups_total\{result="miss"\}/ { miss += $2 }
    END { printf "%d %d\n", hit, miss }'
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
    report "$backend $mode" "$results" >>"$work/report.txt"
    stop_server
  done
  rm -f "$work/seed/page2.txt"
}

# Prints one run's lines: throughput, ratio to /healthz, p99, target check,
# and the share of the measured feed requests served from the feed cache.
report() {
  echo "$2" | awk -v b="$1" '
    $1 == "healthz" { base = $2 }
    { rows[NR] = $0 }
    END {
      for (i = 1; i <= NR; i++) {
        split(rows[i], f, " ")
        ratio = f[2] / base
        verdict = (f[1] == "healthz") ? "-" : ((ratio >= 0.25 && f[3] < 50) ? "met" : "MISSED")
        printf "%-18s %-11s %10.0f %8.1f%% %9.2f %9.2f %7d  %-7s %s\n", b, f[1], f[2], 100 * ratio, f[4], f[3], f[5] + f[6], verdict, (f[1] == "healthz") ? "" : f[7]
      }
    }'
}

ensure_tools
echo "== generating 10 000 users, 100 000 posts" >&2
python3 benches/seed-feed.py generate "$work/seed"
db_url=""
for backend in $backends; do
  bench_backend "$backend"
done
echo
echo "feed load: $(nproc) cores, wrk -t$threads -c$connections -d${duration}s per route, $(date -u +%F)"
printf "%-18s %-11s %10s %9s %9s %9s %7s  %-7s %s\n" run route req/s ratio "p50 ms" "p99 ms" non2xx target "cache hits" 
cat "$work/report.txt"
