#!/usr/bin/env bash
# Makes the small audio fixtures the decode tests run against (fixtures/*).
# Idempotent and as deterministic as the tools allow: a fixed sentence, bitexact
# muxing, no metadata. Needs espeak-ng, sox, ffmpeg (libmp3lame, libopus,
# libvorbis, libx264 or mpeg4) and python3 (to patch the HE-AAC signalling).
set -euo pipefail

cd "$(dirname "$0")/../fixtures"
SENTENCE="Sori is a voice social network. This is a test recording."
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

FF=(ffmpeg -hide_banner -loglevel error -y -nostdin)
BITEXACT=(-map_metadata -1 -fflags +bitexact -flags:a +bitexact)

# The source: espeak-ng speech, 48 kHz mono, peak -3 dBFS, about 4 s.
espeak-ng -v en-us -s 150 -w "$TMP/voice.wav" "$SENTENCE"
sox -R -D "$TMP/voice.wav" -b 16 "$TMP/src-mono.wav" rate -v 48000 norm -3
# A stereo source whose channels differ (right delayed 5 ms and at 0.7), so a
# decoder swapping or dropping a channel is visible.
sox -R -D "$TMP/src-mono.wav" "$TMP/right.wav" pad 0.005 vol 0.7 trim 0 "$(soxi -D "$TMP/src-mono.wav")"
sox -R -D -M "$TMP/src-mono.wav" "$TMP/right.wav" "$TMP/src-stereo.wav"

mono()   { "${FF[@]}" -i "$TMP/src-mono.wav"   "${BITEXACT[@]}" "$@"; }
stereo() { "${FF[@]}" -i "$TMP/src-stereo.wav" "${BITEXACT[@]}" "$@"; }

# Good inputs: one per format a phone or browser records.
mono   -ar 16000 -c:a aac -b:a 48k -movflags +faststart speech-mono-16k.m4a
# Without +faststart ffmpeg writes `moov` after `mdat` (checked at the end).
mono   -ar 44100 -c:a aac -b:a 64k speech-mono-44k-moov-after-mdat.m4a
stereo -ar 44100 -c:a libmp3lame -b:a 64k speech-stereo-44k.mp3
mono   -ar 48000 -c:a libopus -b:a 32k speech-mono-48k.opus
# MediaRecorder-style WebM: live mode writes no duration and no Cues (checked).
mono   -ar 48000 -c:a libopus -b:a 32k -f webm -live 1 -cluster_time_limit 1000 speech-mono-48k-mediarecorder.webm
stereo -ar 44100 -c:a libvorbis -q:a 2 speech-stereo-44k.ogg
mono   -ar 22050 -c:a flac speech-mono-22k.flac
mono   -ar 8000 -c:a pcm_u8 speech-mono-8k-u8.wav
# Uncompressed high-rate files are cut to a second or two (folder size).
stereo -ar 48000 -c:a pcm_s24le -t 1.0 speech-stereo-48k-s24.wav
mono   -ar 96000 -c:a pcm_f32le -t 1.0 speech-mono-96k-f32.wav
# 5.1 (WAVE order L R C LFE Ls Rs): speech on C at 1.0, on L/R at 0.5, on the
# surrounds at 0.25, a 60 Hz tone (lavfi default amplitude 1/8, ×0.3) on the LFE (which the downmix must drop).
"${FF[@]}" -i "$TMP/src-mono.wav" -f lavfi -i "sine=frequency=60:sample_rate=48000" "${BITEXACT[@]}" \
  -filter_complex "[0:a]asplit=5[l][r][c][ls][rs];[l]volume=0.5[l2];[r]volume=0.5[r2];[ls]volume=0.25[ls2];[rs]volume=0.25[rs2];[1:a]volume=0.3[lfe];[l2][r2][c][lfe][ls2][rs2]join=inputs=6:channel_layout=5.1(side):map=0.0-FL|1.0-FR|2.0-FC|3.0-LFE|4.0-SL|5.0-SR[out]" \
  -map "[out]" -t 0.8 -c:a pcm_s16le speech-5.1-48k.wav
mono   -ar 44100 -c:a pcm_s16be -t 2.0 -f caf speech-mono-44k.caf
mono   -ar 44100 -c:a pcm_s16be -t 2.0 speech-mono-44k.aiff
mono   -ar 44100 -c:a alac -movflags +faststart speech-mono-44k-alac.m4a

# HE-AAC: ffmpeg's native AAC encoder has no SBR, so make AAC-LC at 22.05 kHz
# (moov after mdat, so growing moov moves no sample offsets) and replace its
# 2-byte AudioSpecificConfig (AOT 2, 22.05 kHz, mono) by the 3-byte explicit
# HE-AAC v1 one: AOT 5 (SBR), core 22.05 kHz, mono, output 44.1 kHz, core AOT 2.
# The esds descriptor lengths and every enclosing atom size are fixed up. The
# AAC frames are unchanged: a decoder must refuse this on the signalling alone.
mono -ar 22050 -c:a aac -b:a 32k "$TMP/lc-22k.m4a"
python3 - "$TMP/lc-22k.m4a" speech-mono-22k-he-aac.m4a <<'PATCH'
import struct, sys
d = bytearray(open(sys.argv[1], "rb").read())
OLD, NEW = bytes([0x13, 0x88]), bytes([0x2B, 0x8A, 0x08])
CONTAINERS = {b"moov": 8, b"trak": 8, b"mdia": 8, b"minf": 8, b"stbl": 8, b"stsd": 16, b"mp4a": 36}
def find_path(start, end, path):
    i = start
    while i + 8 <= end:
        size, typ = struct.unpack(">I4s", d[i:i + 8])
        if typ == b"esds":
            return path + [i]
        if typ in CONTAINERS:
            hit = find_path(i + CONTAINERS[typ], i + size, path + [i])
            if hit:
                return hit
        if size < 8:
            return None
        i += size
    return None
path = find_path(0, len(d), [])
assert path, "no esds atom"
delta = len(NEW) - len(OLD)
for atom in path:
    struct.pack_into(">I", d, atom, struct.unpack(">I", d[atom:atom + 4])[0] + delta)
i = path[-1] + 12  # esds is a full box: size, type, version+flags
for tag, fixed in ((3, 3), (4, 13), (5, 0)):  # ES > DecoderConfig > DecoderSpecificInfo
    assert d[i] == tag, f"descriptor {tag} expected, got {d[i]}"
    j = i + 1
    while d[j] & 0x80:
        j += 1
    assert (d[j] & 0x7F) + delta < 0x80, "length byte overflow"
    d[j] += delta
    i = j + 1 + fixed
assert d[i:i + 2] == OLD, "unexpected AudioSpecificConfig"
d[i:i + 2] = NEW
open(sys.argv[2], "wb").write(d)
PATCH

# A video file with an audio track (the audio is the second track).
video_codec=(-c:v libx264 -preset ultrafast -pix_fmt yuv420p)
ffmpeg -hide_banner -encoders 2>/dev/null | grep -q libx264 || video_codec=(-c:v mpeg4)
"${FF[@]}" -f lavfi -i "testsrc=size=64x48:rate=10" -i "$TMP/src-mono.wav" -map 0:v -map 1:a \
  "${BITEXACT[@]}" -shortest "${video_codec[@]}" -c:a aac -b:a 48k -ar 44100 -movflags +faststart video-with-audio.mp4
# AMR-NB in 3GP, only when this ffmpeg has an AMR encoder.
if ffmpeg -hide_banner -encoders 2>/dev/null | grep -q libopencore_amrnb; then
  mono -ar 8000 -c:a libopencore_amrnb -b:a 12.2k amr-nb.3gp
else
  echo "note: no AMR-NB encoder in this ffmpeg; amr-nb.3gp not made" >&2
fi

# Known-bad inputs.
python3 -c "import random,sys; random.seed(7); sys.stdout.buffer.write(bytes(random.randrange(256) for _ in range(4096)))" > bad-garbage.m4a
: > bad-empty.wav
half() { head -c "$(( $(stat -c %s "$1") / 2 ))" "$1" > "$2"; }
half speech-stereo-44k.mp3 bad-truncated.mp3
# A faststart file cut in half keeps its moov and loses half of its audio.
half speech-mono-16k.m4a bad-truncated.m4a
"${FF[@]}" -f lavfi -i "testsrc=size=16x16" -frames:v 1 "${BITEXACT[@]}" bad-image.png
mv bad-image.png bad-image.m4a
"${FF[@]}" -f lavfi -i "testsrc=size=64x48:rate=10" -t 1 "${BITEXACT[@]}" "${video_codec[@]}" \
  -movflags +faststart bad-no-audio.mp4

# Checks of the properties the tests rely on.
order="$(python3 - speech-mono-44k-moov-after-mdat.m4a <<'ATOMS'
import struct, sys
d = open(sys.argv[1], "rb").read(); i = 0; out = []
while i + 8 <= len(d):
    size, typ = struct.unpack(">I4s", d[i:i + 8])
    if size == 1:
        size = struct.unpack(">Q", d[i + 8:i + 16])[0]
    out.append(typ.decode("latin1"))
    if size < 8:
        break
    i += size
print(" ".join(out))
ATOMS
)"
case "$order" in *mdat*moov*) ;; *) echo "moov is not after mdat: $order" >&2; exit 1 ;; esac
dur="$(ffprobe -v error -show_entries format=duration -of csv=p=0 speech-mono-48k-mediarecorder.webm)"
[ "$dur" = "N/A" ] || { echo "the WebM has a duration: $dur" >&2; exit 1; }
if grep -qa $'\x1c\x53\xbb\x6b' speech-mono-48k-mediarecorder.webm; then echo "the WebM has Cues" >&2; exit 1; fi
echo "fixtures: $(du -sh . | cut -f1)"
