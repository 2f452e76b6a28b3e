#!/usr/bin/env bash
# Throughput of the whole service on this machine, embedded mode, loopback only:
# N clips of 30 s (default 200) uploaded through the API of `sori serve`
# (sign up, POST /v1/media, PUT, /complete), for each worker count in WORKERS
# (default "1 2", i.e. SORI_WORKERS). The clock runs from the first /complete
# to the last media seen `ready`. The same clips then go through
# `sori process` with the same parallelism; the difference is the service's
# overhead (queue, store, database, HTTP), printed per job and in percent.
#
#   benches/pipeline-throughput.sh            (N=50 for a quick run)
# Needs a release build (cargo build --release), ffmpeg, python3, curl.
# On a shared machine the numbers are noisy: run it twice and compare.
set -euo pipefail
cd "$(dirname "$0")/.."
sori="${SORI_BIN:-target/release/sori}"
[ -x "$sori" ] || { echo "build first: cargo build --release" >&2; exit 1; }
sori="$(cd "$(dirname "$sori")" && pwd)/$(basename "$sori")"
n="${N:-200}"
workers="${WORKERS:-1 2}"
port="${PORT:-18080}"
clip_secs=30
source_file=benches/out/inputs/speech-60min-mono-44k.m4a
clips_dir=benches/out/clips-30s
work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

[ -f "$source_file" ] || benches/make-long-inputs.sh
mkdir -p "$clips_dir"
# Clip i starts at 31·i s (wrapping inside the hour); AAC stream-copied, so fast.
clips=()
for i in $(seq 0 $((n - 1))); do
  f="$clips_dir/clip-$(printf %03d "$i").m4a"
  if [ ! -s "$f" ]; then
    ffmpeg -nostdin -v error -y -ss $(((i * 31) % 3560)) -t "$clip_secs" \
      -i "$source_file" -c copy "$f"
  fi
  clips+=("$f")
done

# Starts `sori serve` with W workers on a fresh data dir; waits for /readyz.
start_server() {
  local w="$1" data="$work/data-$1"
  mkdir -p "$data"
  SORI_SIGNUPS_PER_HOUR=0 SORI_MEDIA_PER_HOUR=0 SORI_DATA_DIR="$data" SORI_LISTEN="127.0.0.1:$port" SORI_WORKERS="$w" \
    DATABASE_URL="sqlite://$data/sori.db" RUST_LOG="${RUST_LOG:-warn}" \
    "$sori" serve > "$work/serve-$w.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && return 0
    sleep 0.1
  done
  cat "$work/serve-$w.log" >&2
  echo "sori serve did not become ready" >&2
  return 1
}

stop_server() {
  kill "$server_pid"
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

results=()
for w in $workers; do
  echo "== $n clips, $w worker(s): service" >&2
  start_server "$w"
  svc=$(python3 benches/pipeline_client.py service "http://127.0.0.1:$port" "${clips[@]}")
  stop_server
  echo "== $n clips, $w worker(s): sori process" >&2
  proc=$(python3 benches/pipeline_client.py process "$sori" "$w" "${clips[@]}")
  echo "   service: $svc" >&2
  echo "   process: $proc" >&2
  results+=("$w"$'\t'"$svc"$'\t'"$proc")
done

printf '\n%s clips of %s s, %s cores (%s)\n' "$n" "$clip_secs" "$(nproc)" "$(date -u +%F)"
printf '%-8s %6s %6s %10s %9s %12s %12s %11s %9s\n' \
  workers ready failed service_s jobs/min process_s proc_jobs/min overhead/job overhead
for r in "${results[@]}"; do
  IFS=$'\t' read -r w svc proc <<< "$r"
  python3 - "$w" "$svc" "$proc" <<'PY'
import json, sys
w, svc, proc = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
n, s, p = svc["jobs"], svc["service_s"], proc["wall_s"]
per_job_ms = (s - p) / n * 1000
print(f"{w:<8} {svc['ready']:>6} {svc['failed']:>6} {s:>10.1f} {n / s * 60:>9.1f} "
      f"{p:>12.1f} {n / p * 60:>12.1f} {per_job_ms:>9.0f} ms {(s / p - 1) * 100:>8.1f}%")
PY
done
