#!/usr/bin/env bash
# Makes the long inputs the benchmarks use (not committed: they are large).
# Speech from espeak-ng, several voices and sentences, concatenated to
# 90 s clips in the formats phones record, plus a 60-minute one for memory.
#
#   benches/make-long-inputs.sh [OUT_DIR]   (default: benches/out/inputs)
set -euo pipefail
out="${1:-$(dirname "$0")/out/inputs}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

sentences=(
  "Good morning. This is a voice note about the weekend plans, and I hope you can hear me well."
  "The quick brown fox jumps over the lazy dog, while the radio plays something from the eighties."
  "I recorded this on the train, so there might be a little noise in the background. Sorry about that."
  "Let me tell you what happened at the market today; it was honestly the strangest thing I have seen."
  "Numbers for the record: one, two, three, four, five, six, seven, eight, nine, ten."
  "Thanks for listening. Leave a comment if you want the recipe, and I will post it tomorrow."
)
voices=(en en-us en-gb+f3 en+m3 en-us+f2 en+m7)

# About 90 s of speech: every sentence in every voice, with short pauses.
parts=()
i=0
for v in "${voices[@]}"; do
  for s in "${sentences[@]}"; do
    f="$tmp/part-$i.wav"
    espeak-ng -v "$v" -s 165 -w "$f" "$s"
    sox -G "$f" -r 48000 -c 1 "$tmp/p-$i.wav" pad 0 0.4
    parts+=("$tmp/p-$i.wav")
    i=$((i + 1))
  done
done
sox -G "${parts[@]}" "$tmp/speech.wav"
sox "$tmp/speech.wav" "$tmp/speech90.wav" trim 0 90
# Make it less synthetic: a little room, a high-pass like a phone mic.
sox -G "$tmp/speech90.wav" "$tmp/room.wav" highpass 80 reverb 20 50 30 gain -n -3

ff() { ffmpeg -nostdin -v error -y "$@"; }
ff -i "$tmp/room.wav" -ac 1 -ar 44100 -c:a aac -b:a 64k "$out/speech-90s-mono-44k.m4a"
ff -i "$tmp/room.wav" -ac 2 -ar 44100 -c:a libmp3lame -b:a 128k "$out/speech-90s-stereo-44k.mp3"
ff -i "$tmp/room.wav" -ac 1 -ar 48000 -c:a libopus -b:a 48k -f webm "$out/speech-90s-mono-48k.webm"
ff -i "$tmp/room.wav" -ac 1 -ar 16000 -c:a pcm_s16le "$out/speech-90s-mono-16k.wav"

# 60 minutes for the memory bound: 40 copies of the 90 s clip, AAC stream-copied.
if [ ! -f "$out/speech-60min-mono-44k.m4a" ]; then
  for _ in $(seq 1 40); do echo "file '$out/speech-90s-mono-44k.m4a'"; done > "$tmp/list.txt"
  ff -f concat -safe 0 -i "$tmp/list.txt" -c copy "$out/speech-60min-mono-44k.m4a"
fi
ls -la "$out"
