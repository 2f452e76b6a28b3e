#!/usr/bin/env bash
# Property-based HTTP testing of a live `sori serve` with schemathesis
# (issue 8, "Bad input: HTTP"): every operation of /openapi.json gets
# generated valid and invalid requests with a bearer token, and every answer
# must be no 5xx, a documented status, the documented content type, headers
# and body schema. Loopback only, bounded in time.
#
#   scripts/schemathesis.sh [SECONDS]        (default 300: schemathesis' time budget)
#
# Settings: SORI_BIN (a built sori; default: cargo build, debug profile),
# PORT (18097), MAX_EXAMPLES (test cases per operation and phase, 50),
# WORKERS (2), SEED (random seed, 1). The server runs on a temporary data
# directory (SQLite, local blobs) with the creation rate limits lifted, and is
# seeded with two users, a follow each way, a ready voice post, a comment, a
# like, a chat room with a message, a playlist, a device and a pending upload;
# their ids are fed to schemathesis so half of the path and body ids are real.
# Prints operations tested, requests made and failures; exits non-zero on any
# failure. Schemathesis is installed into .venv-schemathesis/ on first use.
# Its output, event stream (events.ndjson) and the server log are kept in
# REPORT_DIR (target/schemathesis).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-300}"
port="${PORT:-18097}"
max_examples="${MAX_EXAMPLES:-50}"
workers="${WORKERS:-2}"
seed="${SEED:-1}"
report_dir="${REPORT_DIR:-target/schemathesis}"
base="http://127.0.0.1:$port"
work="$(mktemp -d)"
server_pid=""

cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

if [ -z "${SORI_BIN:-}" ]; then
  cargo build --locked --bin sori
  SORI_BIN="${CARGO_TARGET_DIR:-target}/debug/sori"
fi
[ -x "$SORI_BIN" ] || { echo "schemathesis: no sori binary at $SORI_BIN" >&2; exit 2; }

venv=.venv-schemathesis
if ! [ -x "$venv/bin/schemathesis" ]; then
  command -v python3 >/dev/null && python3 -c 'import venv' 2>/dev/null \
    || { apt-get update -qq && apt-get install -y -qq python3 python3-venv >/dev/null; }
  echo "schemathesis: installing into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'schemathesis>=4.3,<5'
fi

SORI_DATA_DIR="$work/data" SORI_LISTEN="127.0.0.1:$port" RUST_LOG=warn \
  SORI_SIGNUPS_PER_HOUR=0 SORI_MEDIA_PER_HOUR=0 SORI_WORKERS=1 \
  "$SORI_BIN" serve >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 150); do
  curl -fs "$base/readyz" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.2
done
curl -fs "$base/readyz" >/dev/null || { echo "schemathesis: server did not start" >&2; cat "$work/server.log" >&2; exit 1; }

python3 scripts/schemathesis_support.py seed "$base" fixtures/speech-mono-16k.m4a "$work"
token="$(cat "$work/token")"

# Logout would revoke the token every other request relies on: it runs with a
# token that was never issued (its 401 answer is still checked).
cat >>"$work/schemathesis.toml" <<'EOF'

[[operations]]
include-path = "/v1/auth/logout"
headers = { Authorization = "Bearer not-a-token" }
EOF

echo "== schemathesis: $base/openapi.json, ${seconds} s, $max_examples examples per operation" >&2
status=0
(cd "$work" && timeout --kill-after=30 "$((seconds + 120))" \
  "$OLDPWD/$venv/bin/schemathesis" --config-file schemathesis.toml run "$base/openapi.json" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
    --max-examples "$max_examples" --max-time "$seconds" --workers "$workers" --seed "$seed" \
    --request-timeout 10 --generation-database none --suppress-health-check filter_too_much \
    --report ndjson --report-ndjson-path "$work/events.ndjson" --no-color) \
  >"$work/schemathesis.out" 2>&1 || status=$?
mkdir -p "$report_dir"
cp "$work/schemathesis.out" "$work/server.log" "$work/schemathesis.toml" "$report_dir/"
cp "$work/events.ndjson" "$report_dir/" 2>/dev/null || true
sed -n '/SUMMARY/,$p' "$work/schemathesis.out"
grep -c ' ERROR \| panicked' "$work/server.log" >/dev/null && {
  echo "== server errors" >&2; grep ' ERROR \| panicked' "$work/server.log" | sort | uniq -c | head -20 >&2; }
echo "== summary"
python3 scripts/schemathesis_support.py summary "$work/events.ndjson" || status=1
exit "$status"
