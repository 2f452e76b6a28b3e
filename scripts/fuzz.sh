#!/usr/bin/env bash
# Fuzzes the audio engine with cargo-fuzz (libFuzzer) for a bounded time:
#   scripts/fuzz.sh [SECONDS_PER_TARGET]     (default 60)
#
# Targets (codecs/fuzz/fuzz_targets): `decode` (probe + demux + decode with the
# production limits, then downmix and resample) and `mux` (the Ogg, CAF and
# WebM writers, read back by symphonia). The decode corpus is seeded from
# fixtures/ and fixtures/hostile/. Any crash, timeout or out-of-memory input
# is copied to fixtures/hostile/fuzz-crash-TARGET-HASH, where
# codecs/tests/hostile.rs replays it, and the script exits non-zero.
#
# Only stable Rust is needed: RUSTC_BOOTSTRAP=1 lets it accept the -Z flags
# cargo-fuzz passes. AddressSanitizer is used when the toolchain ships its
# runtime, otherwise `--sanitizer none`. Set FUZZ_TARGETS to run a subset.
set -euo pipefail

SECONDS_PER_TARGET="${1:-60}"
[[ "$SECONDS_PER_TARGET" =~ ^[0-9]+$ ]] || { echo "usage: $0 [SECONDS_PER_TARGET]" >&2; exit 2; }
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
FUZZ="$ROOT/codecs/fuzz"
TARGETS=(${FUZZ_TARGETS:-decode mux})
export RUSTC_BOOTSTRAP=1

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

host="$(rustc -vV | sed -n 's/^host: //p')"
if compgen -G "$(rustc --print sysroot)/lib/rustlib/$host/lib/*rt.asan.a" >/dev/null; then
  SANITIZER=address
else
  SANITIZER=none
fi

cd "$FUZZ"
echo "building the fuzz targets (sanitizer: $SANITIZER)…"
for target in "${TARGETS[@]}"; do
  cargo fuzz build --sanitizer "$SANITIZER" "$target"
done

# Seeds: every fixture for the decoder (the corpus only grows; libFuzzer
# keeps the inputs that reach new code).
mkdir -p corpus/decode corpus/mux
find "$ROOT/fixtures" -type f ! -name '*.md' -size -1024k -exec cp -n {} corpus/decode/ \;

# Shrinks a crashing input (bounded) so the committed fixture stays small;
# prints the path of the smallest input that still crashes.
minimize() {
  local target="$1" input="$2" out="$FUZZ/artifacts/$1.tmin"
  rm -rf "$out" && mkdir -p "$out"
  timeout --kill-after=10 300 cargo fuzz tmin --sanitizer "$SANITIZER" "$target" "$input" -- \
    -runs=5000 -artifact_prefix="$out/" >"$out.log" 2>&1 || true
  local smallest
  smallest="$(find "$out" -type f -printf '%s %p\n' | sort -n | head -n 1 | cut -d' ' -f2-)"
  echo "${smallest:-$input}"
}

found=0
summary=()
for target in "${TARGETS[@]}"; do
  artifacts="$FUZZ/artifacts/$target"
  rm -rf "$artifacts"
  mkdir -p "$artifacts"
  log="$FUZZ/artifacts/$target.log"
  echo "fuzzing $target for ${SECONDS_PER_TARGET}s…"
  # libFuzzer stops itself at -max_total_time; `timeout` is the backstop.
  timeout --kill-after=30 $((SECONDS_PER_TARGET + 120)) \
    cargo fuzz run --sanitizer "$SANITIZER" "$target" "corpus/$target" -- \
      -max_total_time="$SECONDS_PER_TARGET" -timeout=60 -rss_limit_mb=2048 \
      -artifact_prefix="$artifacts/" -print_final_stats=1 >"$log" 2>&1 || true
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
  rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)"
  units="$(find "corpus/$target" -type f | wc -l)"
  crashes=0
  slow=$(find "$artifacts" -name 'slow-unit-*' | wc -l)
  for input in "$artifacts"/*; do
    [[ -f "$input" ]] || continue
    kind="$(basename "$input" | cut -d- -f1)"
    # A slow unit (over 10 s, e.g. 15 minutes of audio under ASan) is a
    # note, not a failure: -timeout decides what counts as a hang.
    [[ "$kind" == slow ]] && continue
    keep="$(minimize "$target" "$input")"
    hash="$(sha1sum "$keep" | cut -c1-12)"
    cp "$keep" "$ROOT/fixtures/hostile/fuzz-crash-$target-$kind-$hash"
    echo "  $kind: fixtures/hostile/fuzz-crash-$target-$kind-$hash ($(stat -c %s "$keep") bytes)"
    crashes=$((crashes + 1))
  done
  if [[ -z "$runs" && "$crashes" -eq 0 ]]; then
    echo "  $target did not run; its log:" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
  summary+=("$target: ${SECONDS_PER_TARGET}s, ${runs:-?} runs, ${rate:-?} exec/s, corpus $units inputs, $crashes crashes, $slow slow units")
  found=$((found + crashes))
done

printf '%s\n' "${summary[@]}"
if ((found)); then
  echo "$found crashing inputs copied to fixtures/hostile/ (see the logs in codecs/fuzz/artifacts/)" >&2
  exit 1
fi
