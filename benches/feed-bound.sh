#!/usr/bin/env bash
# The ceiling of issue 22's feed target on this machine (loopback only):
# how many feed pages a second the cheapest page PostgreSQL could serve
# allows, against `/healthz` of the same `sori api`, measured in one run.
#
# The cheapest page is benches/feed-bound/schema.sql: every field a feed
# item shows copied into the viewer's own rows, so a page is one index range
# of 21 rows and a likes probe each (page.sql adds the session lookup every
# request makes; page-only.sql leaves it out). No shape of Sori's statement
# reads less. pgbench drives it on CLIENTS connections (enough to keep every
# core busy) with the server stopped, so PostgreSQL has the machine to itself.
#
# On a machine whose cores PostgreSQL, the server and the load generator
# share, a page costs at least the database's CPU for it plus a `/healthz`
# request's (the server parses, answers and wrk asks at least as much as
# for `/healthz`), so pages/s <= 1 / (1/db + 1/healthz): the "best case"
# column. pgbench's own CPU is given back to the database's rate (which
# favours the target). Where the best case is below 25 %, no statement
# meets the target with the caches off; only pages kept rendered can.
#
#   benches/feed-bound.sh
# Settings: DURATION (s, default 15), THREADS (2, for wrk and pgbench),
# CONNECTIONS (50, for wrk), CLIENTS (8, for pgbench), PORT (18092), PG_URL, SORI_BIN (default target/release/sori).
# Needs psql, pgbench (postgresql-client), curl and wrk; loading the rows
# takes about a minute. The database sori_bench_bound is dropped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${DURATION:-15}"
threads="${THREADS:-2}"
connections="${CONNECTIONS:-50}"
clients="${CLIENTS:-8}"
port="${PORT:-18092}"
pg_db=sori_bench_bound

. benches/feed-common.sh

# pages SCRIPT: "rate cpu_share" — transactions/s, and the share of the
# machine's CPU pgbench itself used (user + system over cores × wall time).
pages() {
  local out times
  pgbench -n -M prepared -c"$clients" -j"$threads" -T3 -f "benches/feed-bound/$1" \
    "$db_url" >/dev/null 2>&1
  exec 3>&1
  times="$( { TIMEFORMAT='%U %S'; time pgbench -n -M prepared -c"$clients" -j"$threads" \
    -T"$duration" -f "benches/feed-bound/$1" "$db_url" >"$work/pgbench.txt" 2>&1; } 2>&1 1>&3)"
  exec 3>&-
  out="$(awk '/^tps = / { print $3 }' "$work/pgbench.txt")"
  echo "$out $times" | awk -v d="$duration" -v c="$(nproc)" '{ printf "%.0f %.4f\n", $1, ($2 + $3) / (d * c) }'
}

ensure_tools
create_postgres

echo "== /healthz, ${duration}s" >&2
start_server "$work/data" "$db_url" uncached
wrk -t"$threads" -c"$connections" -d2s "$base/healthz" >/dev/null
healthz="$(wrk_result healthz "$(wrk -t"$threads" -c"$connections" -d"${duration}s" \
  --latency -s benches/feed.lua "$base/healthz")" | awk '{ print $2 }')"
stop_server

echo "== loading the cheapest pages (about a minute)" >&2
psql -q "$db_url" -c "CREATE SCHEMA bound" >/dev/null
psql -q "$db_url" -f benches/feed-bound/schema.sql >/dev/null

echo
echo "feed page ceiling: $(nproc) cores, pgbench -c$clients -j$threads -T${duration}s, wrk -t$threads -c$connections, $(date -u +%F)"
printf "%-34s %10s %9s %10s %10s\n" page "pages/s" "of healthz" "pgbench cpu" "best case"
printf "%-34s %10.0f\n" "/healthz (sori api)" "$healthz"
for variant in page page-only; do
  echo "== pgbench $variant.sql, ${duration}s" >&2
  read -r rate share < <(pages "$variant.sql")
  echo "$variant $rate $share $healthz" | awk '{
    db = $2 / (1 - $3)
    best = 1 / (1 / db + 1 / $4)
    name = ($1 == "page") ? "session + 21 copied rows + likes" : "21 copied rows + likes (no session)"
    printf "%-34s %10.0f %8.1f%% %10.1f%% %9.1f%%\n", name, $2, 100 * $2 / $4, 100 * $3, 100 * best / $4 }'
done
