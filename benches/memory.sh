#!/usr/bin/env bash
# Memory must not grow with duration: peak RSS of `sori process` on a 90 s and
# a 60-minute input (duration limit raised by its flag), and of the bare floor.
#
#   benches/memory.sh   (after cargo build --release and benches/make-long-inputs.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
sori="${SORI_BIN:-target/release/sori}"
in_dir=benches/out/inputs
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
printf "%-32s %10s %10s %10s\n" input "seconds" "job MB" "floor MB"
for in in "$in_dir/speech-90s-mono-44k.m4a" "$in_dir/speech-60min-mono-44k.m4a"; do
  /usr/bin/time -f "%e %M" -o "$work/t1" "$sori" process "$in" --out "$work/o" --max-duration-secs 7200 >/dev/null
  /usr/bin/time -f "%e %M" -o "$work/t2" "$sori" bench --floor-only "$in" >/dev/null
  read -r secs kb < "$work/t1"; read -r _ fkb < "$work/t2"
  printf "%-32s %10s %10.1f %10.1f\n" "$(basename "$in")" "$secs" "$(awk "BEGIN{print $kb/1024}")" "$(awk "BEGIN{print $fkb/1024}")"
done
