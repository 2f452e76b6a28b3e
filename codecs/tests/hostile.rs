//! The hostile-input corpus (`fixtures/hostile/`, made by
//! `scripts/make-hostile.sh`, plus every `fuzz-crash-*` input found by
//! `scripts/fuzz.sh`) through the whole chain, as the worker runs it
//! (`process_file` with the default profile and limits).
//!
//! The worker stores an input error's `to_string()` as the media's failure
//! reason and fails the job at once (`CodecError::is_input_error`), so each
//! file's expected reason below is what the uploader reads. Valid but unusual
//! recordings must process. Every file in the folder must be listed: a new
//! fuzz crash fails this test until its expected outcome is written down.
//!
//! Bounded time and memory are checked by what the engine does, not by a
//! clock: a file claiming hours is refused from its header before decoding;
//! one that hides its length stops at the limit (frames decoded are counted);
//! headers claiming billions of entries are refused before anything is
//! allocated (the peak RSS of the whole replay stays small).
#![allow(clippy::unwrap_used)]

#[path = "../fuzz/common/mux_round_trip.rs"]
mod mux_round_trip;

use sori_codecs::decode::Decoder;
use sori_codecs::process::process_file;
use sori_codecs::{CodecError, Limits, Profile};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// What processing a file must end in.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// `ready`, with a duration in this range (ms).
    Ready(u64, u64),
    /// `failed`: an input error of this class whose reason contains the text.
    Failed(Class, &'static str),
    /// A `mux` fuzz input: replayed through the muxer round trip instead.
    MuxRoundTrip,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Class {
    Unsupported,
    Invalid,
    Limit,
}

use Class::{Invalid, Limit, Unsupported};
use Expect::{Failed, MuxRoundTrip, Ready};

const CORPUS: &[(&str, Expect)] = &[
    // Zero length, truncations at structural offsets, one mid-audio cut each.
    ("empty.m4a", Failed(Invalid, "invalid input: empty file")),
    (
        "trunc-m4a-at-6.m4a",
        Failed(Invalid, "not an audio format we recognise"),
    ),
    (
        "trunc-m4a-in-moov.m4a",
        Failed(Invalid, "mp4 file truncated before any audio"),
    ),
    (
        "trunc-m4a-before-mdat-data.m4a",
        Failed(Invalid, "invalid input: no audio"),
    ),
    ("trunc-m4a-mid-audio.m4a", Ready(300, 500)),
    (
        "trunc-flac-at-4.flac",
        Failed(Invalid, "flac file truncated before any audio"),
    ),
    (
        "trunc-flac-in-streaminfo.flac",
        Failed(Invalid, "flac file truncated before any audio"),
    ),
    (
        "trunc-flac-before-frames.flac",
        Failed(Invalid, "flac file truncated before any audio"),
    ),
    ("trunc-flac-mid-audio.flac", Ready(150, 300)),
    (
        "trunc-opus-in-first-page.opus",
        Failed(Invalid, "ogg file truncated before any audio"),
    ),
    (
        "trunc-opus-after-headers.opus",
        Failed(Invalid, "ogg file truncated before any audio"),
    ),
    ("trunc-opus-mid-audio.opus", Ready(300, 500)),
    (
        "trunc-mp3-at-3.mp3",
        Failed(Invalid, "mp3 file truncated before any audio"),
    ),
    (
        "trunc-webm-in-header.webm",
        Failed(Invalid, "webm file truncated before any audio"),
    ),
    (
        "trunc-caf-in-desc.caf",
        Failed(Invalid, "caf file truncated before any audio"),
    ),
    // Bit flips.
    (
        "flip-flac-magic.flac",
        Failed(Invalid, "not an audio format we recognise"),
    ),
    (
        "flip-m4a-moov-dense.m4a",
        Failed(Invalid, "mp4 file truncated before any audio"),
    ),
    (
        "flip-flac-audio.flac",
        Failed(Invalid, "invalid input: no audio"),
    ),
    ("flip-opus-audio.opus", Failed(Invalid, "ogg: crc mismatch")),
    ("flip-mp3-audio.mp3", Ready(800, 1000)),
    (
        "flip-m4a-every-byte.m4a",
        Failed(Unsupported, "aac: predictor data"),
    ),
    // Headers claiming absurd rates, channel counts, sizes and durations.
    (
        "wav-rate-0.wav",
        Failed(Invalid, "WAV header: sample rate 0 Hz"),
    ),
    (
        "wav-rate-1hz.wav",
        Failed(
            Limit,
            "sample rate 1 Hz exceeds the limit of 8000–192000 Hz",
        ),
    ),
    (
        "wav-rate-4ghz.wav",
        Failed(Limit, "sample rate 4294967295 Hz exceeds the limit"),
    ),
    (
        "wav-channels-0.wav",
        Failed(Invalid, "riff: invalid channel count"),
    ),
    (
        "wav-channels-65535.wav",
        Failed(Invalid, "riff: invalid channel count"),
    ),
    (
        "wav-bits-0.wav",
        Failed(
            Invalid,
            "bits per sample for fmt_pcm must be 8, 16, 24 or 32",
        ),
    ),
    (
        "wav-block-align-0.wav",
        Failed(Invalid, "too many corrupt packets (20 of 20)"),
    ),
    // Float samples that are NaN, infinite or 1e30: silenced or clamped.
    ("wav-float-nan-inf.wav", Ready(240, 260)),
    (
        "wav-fmt-size-4gb.wav",
        Failed(Invalid, "chunk length exceeds parent"),
    ),
    (
        "wav-data-4gb-8khz.wav",
        Failed(Invalid, "chunk length exceeds parent"),
    ),
    (
        "flac-rate-1hz.flac",
        Failed(Invalid, "flac file truncated before any audio"),
    ),
    (
        "flac-rate-1mhz.flac",
        Failed(Invalid, "flac: stream sample rate out of bounds"),
    ),
    (
        "flac-total-samples-max.flac",
        Failed(Limit, "duration 8589934.6 s exceeds the limit of 900.0 s"),
    ),
    (
        "flac-block-size-0.flac",
        Failed(Invalid, "flac: minimum block length is 16 samples"),
    ),
    (
        "caf-rate-nan.caf",
        Failed(Invalid, "CAF header: sample rate NaN Hz"),
    ),
    (
        "caf-rate-1e12.caf",
        Failed(Limit, "sample rate 4294967295 Hz exceeds the limit"),
    ),
    (
        "caf-rate-negative.caf",
        Failed(Invalid, "CAF header: sample rate -8000 Hz"),
    ),
    (
        "caf-channels-4g.caf",
        Failed(Limit, "channel count 4294967295 exceeds the limit of 8"),
    ),
    (
        "caf-bytes-per-packet-0.caf",
        Failed(Invalid, "CAF header: PCM packets of 0 bytes"),
    ),
    ("caf-data-size-huge.caf", Failed(Invalid, "unreadable file")),
    (
        "m4a-mdhd-duration-74h.m4a",
        Failed(Limit, "duration 1152921504606847.0 s exceeds"),
    ),
    (
        "m4a-mdhd-timescale-0.m4a",
        Failed(Invalid, "MP4 track with a timescale of 0"),
    ),
    // The AudioSpecificConfig holds the real rate and channels: still plays
    // (the edit list cannot be scaled at rate 0, so 88 ms of priming stay).
    ("m4a-stsd-channels-65535.m4a", Ready(990, 1010)),
    ("m4a-stsd-rate-0.m4a", Ready(990, 1100)),
    (
        "opus-head-channels-0.opus",
        Failed(Invalid, "Opus header: zero channels"),
    ),
    (
        "opus-head-channels-255.opus",
        Failed(Unsupported, "multichannel Opus (255 channels"),
    ),
    (
        "opus-head-version-255.opus",
        Failed(Invalid, "Opus header: unknown major version"),
    ),
    (
        "webm-opus-head-channels-8.webm",
        Failed(Unsupported, "multichannel Opus (8 channels"),
    ),
    // Tiny files that decode to hours.
    (
        "flac-silence-3h.flac",
        Failed(Limit, "duration 10800.0 s exceeds the limit of 900.0 s"),
    ),
    (
        "flac-silence-3h-no-length.flac",
        Failed(Limit, "exceeds the limit of 900.0 s"),
    ),
    // Not audio.
    ("video-only.mp4", Failed(Unsupported, "no audio track")),
    ("video-only.webm", Failed(Unsupported, "no audio track")),
    (
        "image-png.m4a",
        Failed(Invalid, "not an audio format we recognise"),
    ),
    (
        "image-jpeg.m4a",
        Failed(Invalid, "not an audio format we recognise"),
    ),
    // Valid but unusual recordings.
    ("valid-m4a-moov-after-mdat.m4a", Ready(990, 1010)),
    ("valid-webm-no-cues.webm", Ready(990, 1020)),
    // Found by scripts/fuzz.sh (see docs/RELIABILITY.md).
    (
        // One NaN sample in a float WAV: it panicked the resampler's FFT.
        "fuzz-crash-decode-crash-nan-float-wav",
        Ready(0, 0),
    ),
    (
        // A 473-byte M4A that made symphonia reserve 16 GB for its tables.
        "fuzz-crash-decode-oom-bf56380ba15c",
        Failed(Invalid, "MP4 sample table `stts` claims 1046400710 entries"),
    ),
    // Equal-size packets: a constant-bit-rate CAF with a packet table.
    ("fuzz-crash-mux-crash-constant-caf", MuxRoundTrip),
];

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/hostile")
}

fn class_of(e: &CodecError) -> Option<Class> {
    match e {
        CodecError::Unsupported(_) => Some(Unsupported),
        CodecError::InvalidInput(_) => Some(Invalid),
        CodecError::LimitExceeded { .. } => Some(Limit),
        _ => None,
    }
}

/// Runs one file and returns what went wrong, if anything did.
fn check(path: &Path, expect: Expect) -> Result<(), String> {
    if let Expect::MuxRoundTrip = expect {
        let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
        return std::panic::catch_unwind(|| mux_round_trip::run(&bytes))
            .map_err(|_| "the mux round trip panicked".to_string());
    }
    let out = tempfile::tempdir().unwrap();
    let result = process_file(path, out.path(), &Profile::default(), &Limits::default());
    match (expect, result) {
        (Ready(min, max), Ok(done)) => {
            let ms = done.report.duration_ms;
            (min..=max)
                .contains(&ms)
                .then_some(())
                .ok_or(format!("ready with {ms} ms, expected {min}–{max} ms"))
        }
        (Ready(..), Err(e)) => Err(format!("failed ({e}), expected ready")),
        (Failed(..), Ok(done)) => Err(format!("ready ({} ms)", done.report.duration_ms)),
        (Failed(class, reason), Err(e)) => {
            let text = e.to_string();
            let fits = e.is_input_error()
                && class_of(&e) == Some(class)
                && text.contains(reason)
                && !text.contains('\n');
            fits.then_some(()).ok_or(format!(
                "failed with {e:?} ({text}), expected {class:?} with {reason:?}"
            ))
        }
        (MuxRoundTrip, _) => unreachable!("handled above"),
    }
}

#[test]
fn every_hostile_file_ends_as_its_table_says() {
    let dir = corpus_dir();
    let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let listed: BTreeSet<String> = CORPUS.iter().map(|(n, _)| n.to_string()).collect();
    let unlisted: Vec<_> = on_disk.difference(&listed).collect();
    let missing: Vec<_> = listed.difference(&on_disk).collect();
    assert!(
        unlisted.is_empty(),
        "files without an expected outcome: {unlisted:?}"
    );
    assert!(
        missing.is_empty(),
        "listed files missing (run scripts/make-hostile.sh): {missing:?}"
    );
    let wrong: Vec<String> = CORPUS
        .iter()
        .filter_map(|(name, expect)| {
            check(&dir.join(name), *expect)
                .err()
                .map(|e| format!("{name}: {e}"))
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} files:\n{}",
        wrong.len(),
        CORPUS.len(),
        wrong.join("\n")
    );
}

#[test]
fn hours_of_audio_are_refused_before_they_are_decoded() {
    let limits = Limits::default();
    // Length in the header: refused at open, before a single packet.
    let declared = corpus_dir().join("flac-silence-3h.flac");
    match Decoder::open_path(&declared, &limits) {
        Err(CodecError::LimitExceeded {
            what: "duration", ..
        }) => {}
        other => panic!("expected a duration refusal at open, got {other:?}"),
    }
    // Length hidden: decoding stops at the limit, not after three hours.
    let hidden = corpus_dir().join("flac-silence-3h-no-length.flac");
    let mut decoder = Decoder::open_path(&hidden, &limits).unwrap();
    let rate = u64::from(decoder.info().sample_rate);
    let error = loop {
        match decoder.next_block() {
            Ok(Some(_)) => {}
            Ok(None) => panic!("three hours of silence decoded to the end"),
            Err(e) => break e,
        }
    };
    assert!(
        matches!(
            error,
            CodecError::LimitExceeded {
                what: "duration",
                ..
            }
        ),
        "{error:?}"
    );
    let limit_frames = limits.max_duration.as_secs() * rate;
    let decoded = decoder.frames_decoded();
    // One FLAC block (65 535 frames) past the limit at most: 15 of 180 minutes.
    assert!(
        decoded <= limit_frames + 65_535,
        "{decoded} frames for a limit of {limit_frames}"
    );
}

#[test]
fn replaying_the_corpus_stays_in_bounded_memory() {
    let dir = corpus_dir();
    for (name, expect) in CORPUS {
        let _ = check(&dir.join(name), *expect);
    }
    // Headers in the corpus claim 4 GB data chunks, 2^62-byte CAF data, a
    // billion MP4 table entries: none may be allocated. Peak RSS of this test
    // process (all tests of this file included) stays far below any of them.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let peak_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    assert!(peak_kb < 512 * 1024, "peak RSS {peak_kb} kB");
}
