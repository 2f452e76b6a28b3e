#!/usr/bin/env bash
# The whole job against (a) the bare floor — decode + resample + the same Opus
# encode — and (b) ffmpeg doing the same job as well as it can: downmix first,
# two-pass `loudnorm` in linear mode, resample, libopus 32 kbit/s voip.
# All numbers come from one run on this machine and are printed as ratios.
# Memory: peak resident set size of each command (GNU time).
#
#   benches/compare-ffmpeg.sh [INPUTS…]   (default: benches/out/inputs/*-90s-*)
# Needs a release build (cargo build --release) and benches/make-long-inputs.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
sori="${SORI_BIN:-target/release/sori}"
[ -x "$sori" ] || { echo "build first: cargo build --release" >&2; exit 1; }
inputs=("$@")
[ ${#inputs[@]} -gt 0 ] || inputs=(benches/out/inputs/*-90s-*)
runs="${RUNS:-3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# best-of-N wall seconds and the peak RSS (KB) of a command
measure() {
  local best="" rss=0
  for _ in $(seq 1 "$runs"); do
    /usr/bin/time -f "%e %M" -o "$work/time" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; return 1; }
    read -r secs kb < "$work/time"
    if [ -z "$best" ] || awk "BEGIN{exit !($secs < $best)}"; then best=$secs; fi
    [ "$kb" -gt "$rss" ] && rss=$kb
  done
  echo "$best $rss"
}

ffmpeg_job() {
  local in="$1" out="$2" stats
  stats=$(ffmpeg -nostdin -hide_banner -i "$in" -ac 1 \
    -af loudnorm=I=-16:TP=-1.5:LRA=11:print_format=json -f null - 2>&1 | sed -n '/^{/,/^}/p')
  local mi mtp mlra mth off
  mi=$(jq -r .input_i <<<"$stats"); mtp=$(jq -r .input_tp <<<"$stats")
  mlra=$(jq -r .input_lra <<<"$stats"); mth=$(jq -r .input_thresh <<<"$stats")
  off=$(jq -r .target_offset <<<"$stats")
  ffmpeg -nostdin -v error -y -i "$in" -ac 1 \
    -af "loudnorm=I=-16:TP=-1.5:LRA=11:measured_I=$mi:measured_TP=$mtp:measured_LRA=$mlra:measured_thresh=$mth:offset=$off:linear=true,aresample=48000" \
    -c:a libopus -b:a 32k -application voip -frame_duration 20 -compression_level 10 "$out"
}
export -f ffmpeg_job

loudness_of() {
  ffmpeg -nostats -hide_banner -i "$1" -af ebur128=peak=true:dualmono=true -f null - 2>&1 \
    | awk '/Summary/{s=1} s&&/I:/{i=$2} s&&/Peak:/{p=$2} END{print i, p}'
}

printf "%-34s %8s %8s %8s %9s %9s %7s %7s %7s  %s\n" input "job s" "floor s" "ffmpeg s" job/floor ffmpeg/job "job MB" "flr MB" "ff MB" "LUFS/dBTP sori | ffmpeg"
for in in "${inputs[@]}"; do
  name=$(basename "$in")
  read -r job job_kb < <(measure "$sori" process "$in" --out "$work/sori")
  read -r floor floor_kb < <(measure "$sori" bench --floor-only "$in")
  read -r ffm ffm_kb < <(measure bash -c "ffmpeg_job '$in' '$work/ff.opus'")
  printf "%-34s %8.2f %8.2f %8.2f %9.2f %9.2f %7.1f %7.1f %7.1f  %s | %s\n" "$name" "$job" "$floor" "$ffm" \
    "$(awk "BEGIN{print $job/$floor}")" "$(awk "BEGIN{print $ffm/$job}")" \
    "$(awk "BEGIN{print $job_kb/1024}")" "$(awk "BEGIN{print $floor_kb/1024}")" "$(awk "BEGIN{print $ffm_kb/1024}")" \
    "$(loudness_of "$work/sori/audio.opus")" "$(loudness_of "$work/ff.opus")"
done
