#!/usr/bin/env bash
# The whole job against (a) the bare floor — decode + resample + the same Opus
# encode, nothing else — and (b) ffmpeg doing the same job as well as it can:
# downmix first, two-pass `loudnorm` in linear mode, resample, libopus
# 32 kbit/s voip. All numbers come from one run on this machine, printed as
# ratios: wall time (best of RUNS, default 3) and CPU time (user + system,
# threads summed; steadier on a shared machine). Memory: peak RSS (GNU time).
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

# prints "best_wall best_cpu peak_rss_kb" of a command run $runs times
measure() {
  local wall="" cpu="" rss=0
  for _ in $(seq 1 "$runs"); do
    /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$@" >/dev/null 2>"$work/err" \
      || { cat "$work/err" >&2; return 1; }
    read -r e u s kb < "$work/time"
    local c; c=$(awk "BEGIN{print $u + $s}")
    if [ -z "$wall" ] || awk "BEGIN{exit !($e < $wall)}"; then wall=$e; fi
    if [ -z "$cpu" ] || awk "BEGIN{exit !($c < $cpu)}"; then cpu=$c; fi
    [ "$kb" -gt "$rss" ] && rss=$kb
  done
  echo "$wall $cpu $rss"
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
    | awk '/Summary/{s=1} s&&/I:/{i=$2} s&&/Peak:/{p=$2} END{printf "%s LUFS %s dBTP", i, p}'
}
ratio() { awk "BEGIN{printf \"%.2f\", $1/$2}"; }
mb() { awk "BEGIN{printf \"%.1f\", $1/1024}"; }

printf "%-28s | %-21s | %-21s | %-17s | %s\n" "" "job / floor" "ffmpeg / job" "peak RSS MB" "output (ffmpeg ebur128)"
printf "%-28s | %10s %10s | %10s %10s | %5s %5s %5s | %s\n" input wall cpu wall cpu job floor ffm "sori ; ffmpeg"
for in in "${inputs[@]}"; do
  read -r jw jc jk < <(measure "$sori" process "$in" --out "$work/sori")
  read -r fw fc fk < <(measure "$sori" bench --floor-only "$in")
  read -r mw mc mk < <(measure bash -c "ffmpeg_job '$in' '$work/ff.opus'")
  printf "%-28s | %10s %10s | %10s %10s | %5s %5s %5s | %s ; %s\n" "$(basename "$in")" \
    "$(ratio "$jw" "$fw")" "$(ratio "$jc" "$fc")" "$(ratio "$mw" "$jw")" "$(ratio "$mc" "$jc")" \
    "$(mb "$jk")" "$(mb "$fk")" "$(mb "$mk")" \
    "$(loudness_of "$work/sori/audio.opus")" "$(loudness_of "$work/ff.opus")"
done
