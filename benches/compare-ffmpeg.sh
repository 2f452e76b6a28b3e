#!/usr/bin/env bash
# The whole job against (a) the bare floor — decode + resample + the same Opus
# encode, nothing else — and (b) ffmpeg doing the same job as well as it can:
# downmix first, two-pass `loudnorm` in linear mode, resample, libopus
# 32 kbit/s voip. All numbers come from one run on this machine, printed as
# ratios: wall time (best of RUNS, default 2) and CPU time (user + system,
# threads summed; steadier on a shared machine). Memory: peak RSS (GNU time).
# Every output is measured by ffmpeg's ebur128 (dual mono, true peak), as
# libopus decodes it (the reference decoder browsers and phones use) and, in
# brackets, as ffmpeg's own Opus decoder does.
#
# The last lines give the worst cases over all inputs: the highest job/floor
# and the lowest ffmpeg/job (the targets: ≤ 1.3 and ≥ 2 on every input of
# 60 s or more), the largest loudness error and the highest true peak.
#
#   benches/compare-ffmpeg.sh [INPUTS…]
#     default: the 60 s inputs of both corpora (benches/make-corpus.sh,
#     benches/make-corpus.sh benches/out/corpus-b --variant=b), made if missing
# Needs a release build (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."
sori="${SORI_BIN:-target/release/sori}"
[ -x "$sori" ] || { echo "build first: cargo build --release" >&2; exit 1; }
inputs=("$@")
if [ ${#inputs[@]} -eq 0 ]; then
  benches/make-corpus.sh >&2
  benches/make-corpus.sh benches/out/corpus-b --variant=b >&2
  inputs=(benches/out/corpus/speech-60s-* benches/out/corpus-b/speech-60s-*)
fi
runs="${RUNS:-2}"
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

# "LUFS dBTP" of an Opus file decoded by $2 (libopus or opus)
loudness_of() {
  ffmpeg -nostats -hide_banner -c:a "$2" -i "$1" -af ebur128=peak=true:dualmono=true -f null - 2>&1 \
    | awk '/Summary/{s=1} s&&/ I:/{i=$2} s&&/Peak:/{p=$2} END{printf "%s %s\n", i, p}'
}
ratio() { awk "BEGIN{printf \"%.2f\", $1/$2}"; }
mb() { awk "BEGIN{printf \"%.1f\", $1/1024}"; }

printf "%-42s | %-11s | %-11s | %-17s | %s\n" "" "job / floor" "ffmpeg / job" "peak RSS MB" "output, ffmpeg ebur128: sori [ffmpeg's decoder] ; ffmpeg's job"
printf "%-42s | %5s %5s | %5s %5s | %5s %5s %5s | %s\n" input wall cpu wall cpu job floor ffm "LUFS dBTP"
summary="$work/summary"
: > "$summary"
for in in "${inputs[@]}"; do
  read -r jw jc jk < <(measure "$sori" process "$in" --out "$work/sori")
  read -r fw fc fk < <(measure "$sori" bench --floor-only "$in")
  read -r mw mc mk < <(measure bash -c "ffmpeg_job '$in' '$work/ff.opus'")
  read -r si sp < <(loudness_of "$work/sori/audio.opus" libopus)
  read -r _ np < <(loudness_of "$work/sori/audio.opus" opus)
  read -r fi fp < <(loudness_of "$work/ff.opus" libopus)
  name="$(basename "$in")"
  printf "%-42s | %5s %5s | %5s %5s | %5s %5s %5s | %s %s [%s] ; %s %s\n" "$name" \
    "$(ratio "$jw" "$fw")" "$(ratio "$jc" "$fc")" "$(ratio "$mw" "$jw")" "$(ratio "$mc" "$jc")" \
    "$(mb "$jk")" "$(mb "$fk")" "$(mb "$mk")" "$si" "$sp" "$np" "$fi" "$fp"
  echo "$name $(ratio "$jw" "$fw") $(ratio "$mw" "$jw") $si $sp $np $(mb "$jk")" >> "$summary"
done
echo
awk '
  NR == 1 { hj = $2; hjn = $1; lf = $3; lfn = $1; le = 0; tp = $5; tpn = $1; ntp = $6; rss = $7 }
  { if ($2 > hj) { hj = $2; hjn = $1 }
    if ($3 < lf) { lf = $3; lfn = $1 }
    e = $4 + 16; if (e < 0) e = -e; if (e > le) { le = e; len = $1 }
    if ($5 > tp) { tp = $5; tpn = $1 }
    if ($6 > ntp) ntp = $6
    if ($7 > rss) rss = $7 }
  END {
    printf "%d inputs\n", NR
    printf "worst job/floor (wall):     %.2f  %s\n", hj, hjn
    printf "worst ffmpeg/job (wall):    %.2f  %s\n", lf, lfn
    printf "worst loudness error:       %.1f LU  %s\n", le, len
    printf "highest true peak:          %.1f dBTP (libopus)  %s; %.1f dBTP with ffmpeg'"'"'s own decoder\n", tp, tpn, ntp
    printf "highest peak RSS of a job:  %.1f MB\n", rss
  }' "$summary"
