#!/usr/bin/env bash
# Makes the broad speech corpus the accuracy tests and the speed benchmarks run
# over: ordinary voice posts as phones and browsers record them, not files
# shaped like the engine.
#
#   every format   WAV, FLAC, AAC/M4A, MP3, Ogg Vorbis, WebM/Opus (MediaRecorder-style)
#   × layout       stereo 44.1 kHz (channels differ: a second mic 0.4 ms later,
#                  −2 dB) and mono 16 kHz
#   × level        integrated −35 LUFS (quiet), −20 LUFS (typical), −8 LUFS (hot:
#                  limited by the recorder's AGC to peaks at −0.1 dBFS)
#   × background   clean (a room and a mic noise floor 50 dB under the speech)
#                  and noisy (street-like noise, 15 dB under the speech)
#   × duration     15 s and 60 s
#
# plus noise-only clips (no speech at all, −50 and −30 LUFS), which the engine
# must refuse to blow up. Speech is espeak-ng in six voices, with pauses
# between sentences, in a small room, through a phone mic's 80 Hz high-pass.
#
# Levels are set and checked with ffmpeg's ebur128 (mono measured as dual
# mono). A manifest, `corpus.tsv`, lists every file with its class. The corpus
# is rebuilt only when this script changes (its hash is stored beside it).
#
#   benches/make-corpus.sh [OUT_DIR] [--short] [--variant=b]   (default: benches/out/corpus)
#   --short: only the 15 s clips (what the test suite uses)
#   --variant=b: other voices, other sentences, café babble instead of the
#                street and a white hiss: a corpus for checking that what
#                was tuned on the first one holds on speech it never saw
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/out/corpus"
short=0
variant=a
for arg in "$@"; do
  case "$arg" in
    --short) short=1 ;;
    --variant=*) variant="${arg#--variant=}" ;;
    *) out="$arg" ;;
  esac
done
mkdir -p "$out"
out="$(cd "$out" && pwd)"
stamp="$(sha256sum "$0" | cut -c1-16)-$short-$variant"
if [ -f "$out/.stamp" ] && [ "$(cat "$out/.stamp")" = "$stamp" ] && [ -f "$out/corpus.tsv" ]; then
  echo "corpus: up to date in $out" >&2
  exit 0
fi
rm -rf "${out:?}"/* "$out/.stamp"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

ff() { ffmpeg -nostdin -hide_banner -v error -y "$@"; }
# Integrated loudness of a file as ffmpeg measures it (mono as dual mono).
lufs() {
  ff -i "$1" -af ebur128=dualmono=true -f null - -v info 2>&1 \
    | awk '/Summary/{s=1} s&&/ I:/{print $2}'
}

sentences=(
  "Good morning. This is a voice note about the weekend plans, and I hope you can hear me well."
  "The quick brown fox jumps over the lazy dog, while the radio plays something from the eighties."
  "I recorded this on the train, so there might be a little noise in the background. Sorry about that."
  "Let me tell you what happened at the market today; it was honestly the strangest thing I have seen."
  "Numbers for the record: one, two, three, four, five, six, seven, eight, nine, ten."
  "Thanks for listening. Leave a comment if you want the recipe, and I will post it tomorrow."
  "Okay, so here is the thing. Nobody told me the bridge was closed, and I walked for an hour!"
  "Happy birthday! I cannot believe it has been a whole year. Call me when you get this, okay?"
)
voices=(en-us en-gb+f3 en+m3 en-us+f2 en+m7 en-gb+f4)
if [ "$variant" = b ]; then
  sentences=(
    "Hey, it is me again. I just wanted to say that the concert last night was absolutely amazing."
    "So the plan is simple: we meet at the station at nine, grab coffee, and take the early bus."
    "Can you believe the weather? It was sunny in the morning and now it is pouring with rain."
    "Quick update on the project: the first draft is done, but the budget still needs some work."
    "My grandmother always said that patience is the secret ingredient in every good soup."
    "If anyone has found a small black cat near the park, please send me a message right away."
    "Honestly, I think we should try the new place on the corner. The reviews look really good."
    "Alright, that is all from me today. Take care, sleep well, and talk to you tomorrow."
  )
  voices=(en-us+m4 en+f2 en-gb+m1 en-us+f4 en+m5 en-gb+f1)
fi

# Speech: every sentence, voices in turn, pauses of varied length, then the
# room (the mic high-pass comes with the background, below). About 75 s at 48 kHz, mono.
parts=()
i=0
for s in "${sentences[@]}"; do
  for k in 0 1; do
    v="${voices[$(( (i + k * 3) % ${#voices[@]} ))]}"
    speed=$(( 150 + (i * 7 + k * 13) % 35 ))
    pause="0.$(( 2 + (i * 3 + k) % 7 ))"
    espeak-ng -v "$v" -s "$speed" -w "$tmp/raw-$i-$k.wav" "$s"
    sox -G "$tmp/raw-$i-$k.wav" -r 48000 -c 1 "$tmp/p-$i-$k.wav" pad 0 "$pause"
    parts+=("$tmp/p-$i-$k.wav")
  done
  i=$((i + 1))
done
sox -G "${parts[@]}" "$tmp/dry.wav"
sox -G "$tmp/dry.wav" -e floating-point -b 32 "$tmp/speech.wav" reverb 25 50 40 gain -n -20

# The two backgrounds, each as long as the speech, levelled relative to it.
len="$(soxi -D "$tmp/speech.wav")"
speech_lufs="$(lufs "$tmp/speech.wav")"
if [ "$variant" = b ]; then
  # Mic self-noise: white.
  ff -f lavfi -i "anoisesrc=color=white:seed=31:sample_rate=48000:duration=$len" -ac 1 -c:a pcm_f32le "$tmp/hiss.wav"
  # Café: three other voices talking at once, far away, over a pink murmur.
  for k in 0 1 2; do
    espeak-ng -v "${voices[$(( (k * 2 + 1) % ${#voices[@]} ))]}" -s $(( 170 + k * 15 )) \
      -w "$tmp/babble-$k.wav" "${sentences[*]}"
    sox -G "$tmp/babble-$k.wav" -r 48000 -c 1 "$tmp/babble-$k-48.wav" pad "0.$((k * 3))" 0 reverb 60 50 80
  done
  sox -G -m "$tmp"/babble-?-48.wav "$tmp/babble.wav" trim 0 "$len"
  ff -i "$tmp/babble.wav" -f lavfi -i "anoisesrc=color=pink:seed=32:sample_rate=48000:duration=$len" \
     -filter_complex "[0]apad[a];[1]volume=0.3[p];[a][p]amix=inputs=2:normalize=0:duration=shortest" \
     -ac 1 -c:a pcm_f32le "$tmp/street.wav"
else
  # Mic self-noise: pink, 50 dB under the speech.
  ff -f lavfi -i "anoisesrc=color=pink:seed=11:sample_rate=48000:duration=$len" -ac 1 -c:a pcm_f32le "$tmp/hiss.wav"
  # Street: brown rumble + pink hiss, slowly swelling, 15 dB under the speech.
  ff -f lavfi -i "anoisesrc=color=brown:seed=12:sample_rate=48000:duration=$len" \
     -f lavfi -i "anoisesrc=color=pink:seed=13:sample_rate=48000:duration=$len" \
     -filter_complex "[0]volume=0.6[b];[1]volume=0.25[p];[b][p]amix=inputs=2:normalize=0,volume='0.7+0.3*sin(2*PI*t/7)':eval=frame" \
     -ac 1 -c:a pcm_f32le "$tmp/street.wav"
fi
level_to() { # in out lufs
  local now; now="$(lufs "$1")"
  ff -i "$1" -af "volume=$(awk "BEGIN{print $3 - ($now)}")dB" -c:a pcm_f32le "$2"
}
level_to "$tmp/hiss.wav" "$tmp/hiss-l.wav" "$(awk "BEGIN{print $speech_lufs - 50}")"
level_to "$tmp/street.wav" "$tmp/street-l.wav" "$(awk "BEGIN{print $speech_lufs - 15}")"
# The phone's mic high-pass applies to everything it hears.
ff -i "$tmp/speech.wav" -i "$tmp/hiss-l.wav" -filter_complex "amix=inputs=2:normalize=0,highpass=f=80" -c:a pcm_f32le "$tmp/clean.wav"
ff -i "$tmp/speech.wav" -i "$tmp/street-l.wav" -filter_complex "amix=inputs=2:normalize=0,highpass=f=80" -c:a pcm_f32le "$tmp/noisy.wav"

# One master per class: layout and duration cut, then levelled. Stereo: the
# right channel is a second mic 0.4 ms later and 2 dB lower.
layout_cut() { # in out layout seconds offset
  local in="$1" o="$2" layout="$3" secs="$4" off="$5"
  if [ "$layout" = stereo-44k ]; then
    ff -ss "$off" -t "$secs" -i "$in" -filter_complex \
      "[0]asplit[l][r];[r]adelay=0.4,volume=-2dB[r2];[l][r2]join=inputs=2:channel_layout=stereo,aresample=44100" \
      -c:a pcm_f32le "$o"
  else
    ff -ss "$off" -t "$secs" -i "$in" -ac 1 -ar 16000 -c:a pcm_f32le "$o"
  fi
}
# Sets the integrated loudness to $3 LUFS. The hot level is reached the way a
# recorder's AGC gets there: one gain, then a limiter holding peaks at
# −0.1 dBFS; the gain is searched (from the original each time) so that the
# limited result measures $3.
level_master() { # in out lufs
  local in="$1" o="$2" target="$3" gain now
  if awk "BEGIN{exit !($target > -12)}"; then
    gain="$(awk "BEGIN{print $target - ($(lufs "$in"))}")"
    for _ in 1 2 3 4 5 6; do
      ff -i "$in" -af "volume=${gain}dB,alimiter=limit=0.989:attack=5:release=50:level=false" \
        -c:a pcm_f32le "$tmp/lv.wav"
      now="$(lufs "$tmp/lv.wav")"
      awk "BEGIN{d = $target - ($now); exit !(d < 0.1 && d > -0.1)}" && break
      # Limiting eats part of any extra gain: step a little further than the miss.
      gain="$(awk "BEGIN{print $gain + 1.5 * ($target - ($now))}")"
    done
    mv "$tmp/lv.wav" "$o"
  else
    level_to "$in" "$o" "$target"
  fi
}

# Encodes a master into one format. Lossy encoders at modest bitrates, as phones use.
encode() { # master out format layout
  local m="$1" o="$2" fmt="$3" layout="$4" br
  [ "$layout" = stereo-44k ] && br=96k || br=32k
  case "$fmt" in
    wav)  ff -i "$m" -c:a pcm_s16le "$o" ;;
    flac) ff -i "$m" -c:a flac -sample_fmt s16 "$o" ;;
    m4a)  ff -i "$m" -c:a aac -b:a "$br" -movflags +faststart "$o" ;;
    mp3)  ff -i "$m" -c:a libmp3lame -b:a "$br" "$o" ;;
    ogg)  ff -i "$m" -c:a libvorbis -q:a 3 "$o" ;;
    # MediaRecorder writes 48 kHz Opus in live WebM (no duration, no cues).
    webm) ff -i "$m" -ar 48000 -c:a libopus -b:a "$br" -f webm -live 1 -cluster_time_limit 1000 "$o" ;;
  esac
}

durations=(15)
[ "$short" = 1 ] || durations=(15 60)
manifest="$tmp/corpus.tsv"
printf "file\tformat\tlayout\tlevel_lufs\tbackground\tseconds\tkind\n" > "$manifest"
for secs in "${durations[@]}"; do
  # The 15 s clips start later in the speech than the 60 s ones, so they hear other sentences.
  off=$([ "$secs" = 15 ] && echo 31 || echo 4)
  for bg in clean noisy; do
    for layout in stereo-44k mono-16k; do
      layout_cut "$tmp/$bg.wav" "$tmp/cut.wav" "$layout" "$secs" "$off"
      for level in -35 -20 -8; do
        level_master "$tmp/cut.wav" "$tmp/master.wav" "$level"
        for fmt in wav flac m4a mp3 ogg webm; do
          name="speech-${secs}s-${layout}-${level#-}lufs-${bg}.${fmt}"
          encode "$tmp/master.wav" "$out/$name" "$fmt" "$layout"
          printf "%s\t%s\t%s\t%s\t%s\t%s\tspeech\n" "$name" "$fmt" "$layout" "$level" "$bg" "$secs" >> "$manifest"
        done
      done
    done
  done
done

# Noise only: nothing to raise to speech level.
ff -f lavfi -i "anoisesrc=color=pink:seed=21:sample_rate=48000:duration=15" -ac 1 -c:a pcm_f32le "$tmp/pink.wav"
for level in -50 -30; do
  level_to "$tmp/pink.wav" "$tmp/noise.wav" "$level"
  for fmt in wav m4a; do
    name="noise-15s-mono-48k-${level#-}lufs.${fmt}"
    encode "$tmp/noise.wav" "$out/$name" "$fmt" mono-48k
    printf "%s\t%s\tmono-48k\t%s\tnoise-only\t15\tnoise\n" "$name" "$fmt" "$level" >> "$manifest"
  done
done

mv "$manifest" "$out/corpus.tsv"
echo "$stamp" > "$out/.stamp"
echo "corpus: $(($(wc -l < "$out/corpus.tsv") - 1)) files, $(du -sh "$out" | cut -f1) in $out" >&2
