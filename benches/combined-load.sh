#!/usr/bin/env bash
# Combined load, loopback only and bounded in time (issue 8): feed reads,
# uploads being posted and processed, and chat over REST with WebSocket
# receivers, all at once for SECONDS against the production mode — one
# `sori api`, two `sori worker`s (one job slot each), PostgreSQL (a fresh
# database sori_combined, dropped at the end), S3 (s3s-fs) and SQS (moto) —
# the deployment whose parts (NOTIFY fanout, outbox relay, SQS backlog) the
# embedded benches do not exercise. Prints per kind of request the count,
# errors and p50/p90/p99 latency, chat delivery latency (POST start → the
# recipient's `message.new`), upload → ready time, and the worker backlog
# (queue depth from the workers' /metrics, unfinished media from the
# database) over time. Exits 1 on any error.
#
#   benches/combined-load.sh [SECONDS]          (default 180)
# Settings: FEED_READERS (4 closed-loop readers), POST_RATE (uploads/s, 1.0),
# CHAT_PAIRS (10), CHAT_RATE (messages/s, 20), PG_URL (server URL without a
# database, default postgres://postgres@127.0.0.1:5432), PROFILE (release;
# `dev` for the dev build), SORI_BIN. The client shares the machine's cores.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-180}"
profile="${PROFILE:-release}"
dir=release
[ "$profile" = dev ] && dir=debug
sori="${SORI_BIN:-target/$dir/sori}"
work="$(mktemp -d)"
cleanup() {
  # Processes the Python side started, if it died before stopping them.
  for f in "$work"/pids/*; do [ -f "$f" ] && { kill -9 "$(cat "$f")" 2>/dev/null || true; }; done
  if [ "${KEEP_WORK:-}" = 1 ]; then echo "logs kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

scripts/setup.sh test >&2
[ -x "$sori" ] || cargo build --profile "$profile"
sori="$(cd "$(dirname "$sori")" && pwd)/$(basename "$sori")"
python3 benches/combined_load.py "$sori" "$work" "$seconds"
