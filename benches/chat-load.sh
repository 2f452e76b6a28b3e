#!/usr/bin/env bash
# Chat load benchmark, loopback only and bounded in time (issue 7): USERS
# users in pairs, one WebSocket each, text messages sent over REST at RATE per
# second for SECONDS; delivery latency (POST start → recipient's
# `message.new`) p50/p90/p99, messages lost, and the server's memory per
# open socket. Target: p99 under 100 ms at 1 000 messages/s with 2 000 sockets.
#
#   benches/chat-load.sh                        (SQLite, 2 000 sockets, 1 000 msg/s, 20 s)
#   BACKEND=postgres RATE=500 benches/chat-load.sh
# Settings: USERS (2000), RATE (1000), DURATION (s, 20), BACKEND (sqlite|postgres),
# PORT (18095), PG_URL (server URL without a database, default
# postgres://postgres@127.0.0.1:5432), SORI_BIN (target/release/sori).
# PROFILE (release; `dev` uses the dev build, whose dependencies are
# optimized too, without a release build).
# PostgreSQL uses a fresh database sori_chat_bench, dropped at the end.
# The client and the server share this machine's cores: on a 2-core machine
# the client's own work is part of the measured latency.
set -euo pipefail
cd "$(dirname "$0")/.."
users="${USERS:-2000}"
rate="${RATE:-1000}"
seconds="${DURATION:-20}"
backend="${BACKEND:-sqlite}"
port="${PORT:-18095}"
pg_url="${PG_URL:-postgres://postgres@127.0.0.1:5432}"
pg_db=sori_chat_bench
profile="${PROFILE:-release}"
dir=release
[ "$profile" = dev ] && dir=debug
sori="${SORI_BIN:-target/$dir/sori}"
work="$(mktemp -d)"
server_pid=""

cleanup() {
  [ -n "$server_pid" ] && { kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; }
  [ "$backend" = postgres ] && psql -q "$pg_url/postgres" -c "DROP DATABASE IF EXISTS $pg_db" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# Two sockets per user pair plus the client's HTTP pool: raise the open-file limit.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

[ -x "$sori" ] || cargo build --profile "$profile"
cargo build --profile "$profile" --example chat_load
client="target/$dir/examples/chat_load"

case "$backend" in
  sqlite) db_url="sqlite://$work/sori.db" ;;
  postgres)
    psql -q "$pg_url/postgres" -c "DROP DATABASE IF EXISTS $pg_db" >/dev/null 2>&1
    psql -q "$pg_url/postgres" -c "CREATE DATABASE $pg_db" >/dev/null
    db_url="$pg_url/$pg_db" ;;
  *) echo "BACKEND must be sqlite or postgres" >&2; exit 2 ;;
esac

SORI_DATA_DIR="$work" SORI_LISTEN="127.0.0.1:$port" DATABASE_URL="$db_url" RUST_LOG=warn \
  SORI_SIGNUPS_PER_HOUR=0 SORI_MESSAGES_PER_MINUTE=0 "$sori" api >"$work/api.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
curl -fs "http://127.0.0.1:$port/readyz" >/dev/null || { cat "$work/api.log" >&2; exit 1; }

echo "== $backend: $users sockets, $rate msg/s for $seconds s (server pid $server_pid)" >&2
ps -o pid,rss,comm -p "$server_pid" >&2
"$client" --base "http://127.0.0.1:$port" --users "$users" --rate "$rate" \
  --seconds "$seconds" --server-pid "$server_pid" | tee "$work/result.txt"
grep -q '^RESULT' "$work/result.txt"
