#!/usr/bin/env bash
# Makes the hostile-input corpus (fixtures/hostile/*) that
# codecs/tests/hostile.rs replays: truncated, bit-flipped and empty files,
# headers claiming absurd rates, channel counts and durations, a tiny FLAC of
# silence that decodes to hours, video and images in disguise, and the valid
# but unusual files (M4A with `moov` after `mdat`, WebM without Cues) that must
# still process.
#
# ffmpeg makes one-second base recordings from the speech fixture; every
# hostile file is derived from those bases (or written outright) by
# scripts/make_hostile.py with fixed offsets and a seeded PRNG, so re-running
# the script with the same ffmpeg rebuilds the same bytes. Files named
# `fuzz-crash-*` are inputs found by scripts/fuzz.sh and are left untouched.
# Needs ffmpeg and python3 (installed with apt-get when missing).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$ROOT/fixtures/hostile"

need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v python3 >/dev/null || need+=(python3)
if ((${#need[@]})); then
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$OUT"
find "$OUT" -maxdepth 1 -type f ! -name 'fuzz-crash-*' ! -name 'README.md' -delete

FF=(ffmpeg -hide_banner -loglevel error -y -nostdin)
BITEXACT=(-map_metadata -1 -fflags +bitexact -flags:a +bitexact -flags:v +bitexact)
SPEECH="$ROOT/fixtures/speech-mono-22k.flac"

# One-second bases, mono speech. The two valid-but-unusual recordings are
# written straight into the corpus; the others are sources for the edits.
base() { "${FF[@]}" -i "$SPEECH" -t 1.0 "${BITEXACT[@]}" "$@"; }
base -ar 16000 -c:a aac -b:a 32k -movflags +faststart "$TMP/base.m4a"
base -ar 8000 -t 0.5 -c:a flac "$TMP/base.flac"
# 100 ms Ogg pages, so a cut or a flipped bit loses a page, not the whole clip.
base -ar 48000 -c:a libopus -b:a 24k -page_duration 100000 "$TMP/base.opus"
base -ar 22050 -c:a libmp3lame -b:a 32k "$TMP/base.mp3"
base -ar 8000 -t 0.25 -c:a pcm_s16be -f caf "$TMP/base.caf"
base -ar 48000 -c:a libopus -b:a 24k -f webm "$TMP/base.webm"
# Without +faststart ffmpeg writes `moov` after `mdat` (checked by the python).
base -ar 44100 -c:a aac -b:a 32k "$OUT/valid-m4a-moov-after-mdat.m4a"
# MediaRecorder-style: live mode writes no duration and no Cues (checked).
base -ar 48000 -c:a libopus -b:a 24k -f webm -live 1 "$OUT/valid-webm-no-cues.webm"

# Video without audio, in MP4 and WebM; a PNG and a JPEG renamed to .m4a.
"${FF[@]}" -f lavfi -i "testsrc=size=64x48:rate=5:duration=1" "${BITEXACT[@]}" \
  -c:v mpeg4 -q:v 20 -an "$OUT/video-only.mp4"
"${FF[@]}" -f lavfi -i "testsrc=size=64x48:rate=5:duration=1" "${BITEXACT[@]}" \
  -c:v libvpx -b:v 50k -an -f webm "$OUT/video-only.webm"
"${FF[@]}" -f lavfi -i "testsrc=size=32x24" -frames:v 1 "${BITEXACT[@]}" -f image2 -c:v png "$OUT/image-png.m4a"
"${FF[@]}" -f lavfi -i "testsrc=size=32x24" -frames:v 1 "${BITEXACT[@]}" -f image2 -c:v mjpeg "$OUT/image-jpeg.m4a"

python3 "$ROOT/scripts/make_hostile.py" "$TMP" "$OUT"
du -sh "$OUT"
