# Shared by benches/feed-load.sh, feed-scale.sh and feed-bound.sh (sourced,
# not run): building and stopping `sori api`, seeding SQLite and PostgreSQL
# from benches/seed-feed.py's CSVs, and reading the feed cache's counters.
# The caller sets `port` and `pg_db` before sourcing it; it sets the rest of
# the globals these functions share (PG_URL and SORI_BIN read here) and
# cleans up on exit.
pg_url="${PG_URL:-postgres://postgres@127.0.0.1:5432}"
sori="${SORI_BIN:-target/release/sori}"
base="http://127.0.0.1:$port"
work="$(mktemp -d)"
server_pid=""
pg_created=""
db_url=""
trap cleanup EXIT

cleanup() {
  stop_server
  if [ -n "$pg_created" ]; then
    psql -q "$pg_url/postgres" -c "DROP DATABASE IF EXISTS $pg_db" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}

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

# A fresh database $pg_db (dropped on exit) with Sori's schema; sets db_url.
create_postgres() {
  db_url="$pg_url/$pg_db"
  psql -q "$pg_url/postgres" -c "DROP DATABASE IF EXISTS $pg_db" >/dev/null 2>&1
  psql -q "$pg_url/postgres" -c "CREATE DATABASE $pg_db" >/dev/null
  pg_created=1
  DATABASE_URL="$db_url" SORI_DATA_DIR="$work/postgres" RUST_LOG=warn "$sori" migrate
}

seed_postgres() {
  local url="$pg_url/$pg_db" table cols
  create_postgres
  for table in users auth_tokens media posts post_tags follows likes timelines; do
    [ -f "$work/seed/$table.csv" ] || continue
    cols="$(head -1 "$work/seed/$table.csv")"
    psql -q "$url" -c "\\copy $table ($cols) FROM '$work/seed/$table.csv' WITH (FORMAT csv, HEADER true)" >&2
  done
  psql -q "$url" -c "VACUUM ANALYZE" >&2
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

# The feed cache's lookups so far, from /metrics: "SERVED MISSED" (served
# from memory: fresh or stale pages).
cache_counts() {
  curl -fs "$base/metrics" | awk '
    /^sori_feed_cache_lookups_total\{result="(hit|stale)"\}/ { hit += $2 }
    /^sori_feed_cache_lookups_total\{result="miss"\}/ { miss += $2 }
    END { printf "%d %d\n", hit, miss }'
}

# wrk_result NAME OUTPUT: "NAME rps p99_ms p50_ms non2xx errors" from a RESULT line.
wrk_result() {
  echo "$2" | awk -v n="$1" '/^RESULT/ {
    for (i = 2; i <= NF; i++) { split($i, kv, "="); r[kv[1]] = kv[2] }
    printf "%s %s %s %s %s %s", n, r["rps"], r["p99_ms"], r["p50_ms"], r["non2xx"], r["socket_errors"] }'
}

# report RUN RESULTS TARGET: prints one run's lines (RESULTS: lines of
# "ROUTE rps p99 p50 non2xx errors hits", /healthz first): throughput,
# ratio to /healthz, p50, p99, errors, whether the route met TARGET (a
# ratio to /healthz, with p99 < 50 ms; none for "writes") and the share
# the feed cache served.
report() {
  echo "$2" | awk -v b="$1" -v target="$3" '
    $1 == "healthz" { base = $2 }
    { rows[NR] = $0 }
    END {
      for (i = 1; i <= NR; i++) {
        split(rows[i], f, " ")
        ratio = f[2] / base
        verdict = (f[1] == "healthz" || f[1] == "writes") ? "-" : ((ratio >= target && f[3] < 50) ? "met" : "MISSED")
        printf "%-18s %-11s %10.0f %8.1f%% %9.2f %9.2f %7d  %-7s %s\n", b, f[1], f[2], 100 * ratio, f[4], f[3], f[5] + f[6], verdict, (f[1] == "healthz") ? "" : f[7]
      }
    }'
}
