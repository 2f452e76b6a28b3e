#!/usr/bin/env bash
# Chaos run of the production mode on loopback, bounded in time (issue 8):
# `sori api` + two `sori worker`s on PostgreSQL (a fresh database
# sori_chaos, dropped at the end), S3 (s3s-fs, objects on disk) and SQS (moto
# behind a TCP proxy). A load generator signs up users, uploads fixtures
# through presigned PUT + /complete, posts them and sends chat messages, while
# a fault every 3–8 s SIGKILLs a worker (restarted at once), SIGKILLs and
# restarts the API, kills and restarts S3, cuts SQS for 1–5 s, or crashes
# PostgreSQL (immediate stop, 1–3 s down, at most CHAOS_PG_RESTARTS times).
# Then it lets the system settle (bounded) and checks that every acknowledged
# upload is ready or failed with a reason, every acknowledged post and message
# exists exactly once and no job is stuck; prints the counts and exits 1 if
# anything is lost, duplicated or stuck. Why SQS is behind a proxy:
# scripts/sori_stack.py and docs/RELIABILITY.md.
#
#   scripts/chaos.sh [SECONDS]        (default 240 s of faults, then settling)
# Settings: CHAOS_SEED (replay a run's choices), CHAOS_SETTLE_SECS (240),
# CHAOS_PG_RESTARTS (3; 0 leaves PostgreSQL alone), PG_URL (server URL
# without a database, default postgres://postgres@127.0.0.1:5432), PROFILE
# (release; `dev` for the dev build), SORI_BIN.
# PostgreSQL must be the local cluster on port 5432 (pg_ctlcluster) to be
# restarted; it is always started again when the script ends.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-240}"
profile="${PROFILE:-release}"
dir=release
[ "$profile" = dev ] && dir=debug
sori="${SORI_BIN:-target/$dir/sori}"
work="$(mktemp -d)"

pg_version() { pg_lsclusters -h 2>/dev/null | awk '$2 == "main" && $3 == 5432 { print $1; exit }'; }
cleanup() {
  # Processes the Python side started, if it died before stopping them.
  for f in "$work"/pids/*; do [ -f "$f" ] && { kill -9 "$(cat "$f")" 2>/dev/null || true; }; done
  # Never leave the shared PostgreSQL down, whatever stopped this script.
  if ! pg_isready -q -h 127.0.0.1 -p 5432 && [ -n "$(pg_version)" ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(pg_version)" main start || true
  fi
  if [ "${KEEP_WORK:-}" = 1 ]; then echo "logs kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

scripts/setup.sh test >&2
[ -x "$sori" ] || cargo build --profile "$profile"
sori="$(cd "$(dirname "$sori")" && pwd)/$(basename "$sori")"
python3 scripts/chaos.py "$sori" "$work" "$seconds"
