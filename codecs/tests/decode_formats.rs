//! Every fixture through `Decoder`, checked against ffmpeg/ffprobe as the
//! independent reference: format, rate, channels, length and the samples
//! themselves; the bad fixtures end with the specific error kind.
#![allow(clippy::unwrap_used)]

use sori_codecs::decode::{Decoder, StreamInfo};
use sori_codecs::downmix::Speaker;
use sori_codecs::{CodecError, Limits};
use std::io::Cursor;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use symphonia::core::io::ReadOnlySource;

fn fixture(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(name);
    assert!(
        path.exists(),
        "missing fixture {name}: run scripts/make-fixtures.sh"
    );
    path
}

struct Decoded {
    info: StreamInfo,
    samples: Vec<f32>,
    frames: u64,
}

fn decode(mut decoder: Decoder) -> Result<Decoded, CodecError> {
    let mut samples = Vec::new();
    while let Some(block) = decoder.next_block()? {
        samples.extend_from_slice(block);
    }
    let frames = decoder.frames_decoded();
    Ok(Decoded {
        info: decoder.info().clone(),
        samples,
        frames,
    })
}

fn decode_path(name: &str) -> Result<Decoded, CodecError> {
    decode(Decoder::open_path(&fixture(name), &Limits::default())?)
}

fn run(cmd: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} is required for this test: {e}"));
    assert!(out.status.success(), "{cmd} {args:?} failed");
    out.stdout
}

/// ffmpeg's decode of the first audio stream as interleaved f32 (libopus for
/// Opus: ffmpeg's native Opus decoder is offset by ~1.5 samples from libopus).
fn ffmpeg_decode(name: &str) -> Vec<f32> {
    let path = fixture(name);
    let path = path.to_str().unwrap();
    let mut args = vec!["-v", "error"];
    if name.ends_with(".opus") || name.ends_with(".webm") {
        args.extend(["-c:a", "libopus"]);
    }
    args.extend([
        "-i",
        path,
        "-map",
        "0:a:0",
        "-f",
        "f32le",
        "-acodec",
        "pcm_f32le",
        "-",
    ]);
    run("ffmpeg", &args)
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// ffprobe's duration of the first audio stream (edit lists applied), if any.
fn ffprobe_duration(name: &str) -> Option<f64> {
    let path = fixture(name);
    let out = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            "a:0",
            "-show_entries",
            "stream=duration",
            "-of",
            "csv=p=0",
            path.to_str().unwrap(),
        ],
    );
    String::from_utf8_lossy(&out).trim().parse().ok()
}

fn snr_db(ours: &[f32], reference: &[f32]) -> f64 {
    let n = ours.len().min(reference.len());
    let (mut signal, mut error) = (0.0f64, 0.0f64);
    for (a, b) in ours[..n].iter().zip(&reference[..n]) {
        signal += f64::from(*b).powi(2);
        error += f64::from(a - b).powi(2);
    }
    10.0 * (signal / error.max(1e-30)).log10()
}

fn rms_dbfs(samples: &[f32]) -> f64 {
    let energy: f64 = samples.iter().map(|s| f64::from(*s).powi(2)).sum();
    10.0 * (energy / samples.len().max(1) as f64).log10()
}

struct Case {
    name: &'static str,
    container: &'static str,
    codec: &'static str,
    rate: u32,
    channels: u16,
    /// Allowed length difference from the reference, ms.
    tolerance_ms: f64,
}

const fn case(
    name: &'static str,
    container: &'static str,
    codec: &'static str,
    rate: u32,
    channels: u16,
) -> Case {
    Case {
        name,
        container,
        codec,
        rate,
        channels,
        tolerance_ms: 2.0,
    }
}

fn good_cases() -> Vec<Case> {
    vec![
        case("speech-mono-16k.m4a", "mp4", "aac", 16_000, 1),
        case(
            "speech-mono-44k-moov-after-mdat.m4a",
            "mp4",
            "aac",
            44_100,
            1,
        ),
        case("speech-stereo-44k.mp3", "mp3", "mp3", 44_100, 2),
        case("speech-mono-48k.opus", "ogg", "opus", 48_000, 1),
        // MediaRecorder WebM carries no end trim (no duration, no DiscardPadding
        // from this muxer), so the last packet's padding stays: < one 20 ms packet.
        Case {
            tolerance_ms: 20.0,
            ..case(
                "speech-mono-48k-mediarecorder.webm",
                "webm",
                "opus",
                48_000,
                1,
            )
        },
        case("speech-stereo-44k.ogg", "ogg", "vorbis", 44_100, 2),
        case("speech-mono-22k.flac", "flac", "flac", 22_050, 1),
        case("speech-mono-8k-u8.wav", "wav", "pcm_u8", 8_000, 1),
        case("speech-stereo-48k-s24.wav", "wav", "pcm_s24le", 48_000, 2),
        case("speech-mono-96k-f32.wav", "wav", "pcm_f32le", 96_000, 1),
        case("speech-5.1-48k.wav", "wav", "pcm_s16le", 48_000, 6),
        case("speech-mono-44k.caf", "caf", "pcm_s16be", 44_100, 1),
        case("speech-mono-44k.aiff", "aiff", "pcm_s16be", 44_100, 1),
        case("speech-mono-44k-alac.m4a", "mp4", "alac", 44_100, 1),
        case("video-with-audio.mp4", "mp4", "aac", 44_100, 1),
    ]
}

#[test]
fn every_good_fixture_matches_ffmpeg() {
    for c in good_cases() {
        let d = decode_path(c.name).unwrap_or_else(|e| panic!("{}: {e}", c.name));
        assert_eq!(d.info.container, c.container, "{}", c.name);
        assert_eq!(d.info.codec, c.codec, "{}", c.name);
        assert_eq!(d.info.sample_rate, c.rate, "{}", c.name);
        assert_eq!(d.info.channels, c.channels, "{}", c.name);
        assert_eq!(d.info.speakers.len(), usize::from(c.channels), "{}", c.name);
        let ch = usize::from(c.channels);
        assert_eq!(d.samples.len() as u64, d.frames * ch as u64, "{}", c.name);

        // Length: ffmpeg's decoded length, capped by ffprobe's duration (which
        // applies MP4 edit lists that ffmpeg's raw decode leaves padded).
        let reference = ffmpeg_decode(c.name);
        let mut want = (reference.len() / ch) as f64;
        if let Some(seconds) = ffprobe_duration(c.name) {
            want = want.min(seconds * f64::from(c.rate));
        }
        let diff_ms = (d.frames as f64 - want).abs() / f64::from(c.rate) * 1000.0;
        assert!(
            diff_ms <= c.tolerance_ms,
            "{}: {} frames, reference {want:.0} ({diff_ms:.1} ms off)",
            c.name,
            d.frames
        );

        // Content: the same samples as an independent decoder, aligned.
        let snr = snr_db(&d.samples, &reference);
        assert!(snr > 60.0, "{}: SNR {snr:.1} dB against ffmpeg", c.name);
        let level = rms_dbfs(&d.samples);
        assert!(level > -40.0, "{}: silent ({level:.1} dBFS)", c.name);
    }
}

#[test]
fn stereo_channels_are_distinct_and_in_order() {
    // The fixtures' right channel is the left at 0.7 (energy 0.49), 5 ms later.
    for name in [
        "speech-stereo-44k.mp3",
        "speech-stereo-44k.ogg",
        "speech-stereo-48k-s24.wav",
    ] {
        let d = decode_path(name).unwrap();
        let left: f64 = d
            .samples
            .iter()
            .step_by(2)
            .map(|s| f64::from(*s).powi(2))
            .sum();
        let right: f64 = d
            .samples
            .iter()
            .skip(1)
            .step_by(2)
            .map(|s| f64::from(*s).powi(2))
            .sum();
        let ratio = right / left;
        assert!(
            (ratio - 0.49).abs() < 0.05,
            "{name}: right/left energy {ratio:.3}"
        );
        assert_eq!(
            d.info.speakers,
            vec![Speaker::FrontLeft, Speaker::FrontRight]
        );
    }
}

#[test]
fn five_one_layout_is_read() {
    let d = decode_path("speech-5.1-48k.wav").unwrap();
    use Speaker::*;
    assert_eq!(
        d.info.speakers,
        vec![FrontLeft, FrontRight, FrontCenter, Lfe, SideLeft, SideRight]
    );
}

#[test]
fn moov_after_mdat_decodes_to_the_end() {
    let bytes = std::fs::read(fixture("speech-mono-44k-moov-after-mdat.m4a")).unwrap();
    let find = |tag: &[u8]| bytes.windows(4).position(|w| w == tag).unwrap();
    assert!(find(b"mdat") < find(b"moov"), "fixture must have moov last");
    let d = decode_path("speech-mono-44k-moov-after-mdat.m4a").unwrap();
    let want = ffprobe_duration("speech-mono-44k-moov-after-mdat.m4a").unwrap();
    let got = d.frames as f64 / 44_100.0;
    assert!((got - want).abs() < 0.002, "{got} s vs {want} s");
}

#[test]
fn mediarecorder_webm_without_duration_decodes_to_the_end() {
    let name = "speech-mono-48k-mediarecorder.webm";
    assert_eq!(
        ffprobe_duration(name),
        None,
        "fixture must have no duration"
    );
    let d = decode_path(name).unwrap();
    assert_eq!(d.info.duration_hint, None);
    let reference = ffmpeg_decode(name).len() as f64 / 48_000.0;
    let got = d.frames as f64 / 48_000.0;
    assert!(
        got >= reference && got - reference < 0.02,
        "{got} s vs {reference} s"
    );
}

#[test]
fn ogg_opus_trims_pre_skip_and_end_exactly() {
    let name = "speech-mono-48k.opus";
    let d = decode_path(name).unwrap();
    assert_eq!(d.frames as usize, ffmpeg_decode(name).len());
}

#[test]
fn aac_priming_is_trimmed_by_the_edit_list() {
    let name = "speech-mono-16k.m4a";
    let d = decode_path(name).unwrap();
    let want = ffprobe_duration(name).unwrap() * 16_000.0;
    assert!(
        (d.frames as f64 - want).abs() <= 16.0,
        "{} vs {want}",
        d.frames
    );
}

#[test]
fn he_aac_is_refused_with_a_clear_reason() {
    let err = decode_path("speech-mono-22k-he-aac.m4a").err().unwrap();
    match &err {
        CodecError::Unsupported(msg) => assert!(msg.contains("HE-AAC"), "{msg}"),
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

fn assert_one_line(err: &CodecError) {
    let text = err.to_string();
    assert!(!text.is_empty() && !text.contains('\n'), "{text:?}");
}

#[test]
fn bad_fixtures_end_with_the_right_error() {
    let expect_invalid = ["bad-garbage.m4a", "bad-empty.wav", "bad-image.m4a"];
    for name in expect_invalid {
        let err = decode_path(name)
            .err()
            .unwrap_or_else(|| panic!("{name} decoded"));
        assert!(
            matches!(err, CodecError::InvalidInput(_)),
            "{name}: {err:?}"
        );
        assert_one_line(&err);
    }
    let err = decode_path("bad-no-audio.mp4").err().unwrap();
    assert!(matches!(err, CodecError::Unsupported(_)), "{err:?}");
    assert_one_line(&err);
}

#[test]
fn truncated_files_decode_what_is_there() {
    for (name, whole) in [
        ("bad-truncated.mp3", "speech-stereo-44k.mp3"),
        ("bad-truncated.m4a", "speech-mono-16k.m4a"),
    ] {
        let d = decode_path(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        let full = decode_path(whole).unwrap();
        let reference = ffmpeg_decode(name).len() / usize::from(d.info.channels);
        let fraction = d.frames as f64 / full.frames as f64;
        assert!(
            (0.3..0.7).contains(&fraction),
            "{name}: {fraction:.2} of the file"
        );
        let diff = (d.frames as f64 - reference as f64).abs() / f64::from(d.info.sample_rate);
        assert!(
            diff < 0.03,
            "{name}: {} frames vs ffmpeg {reference}",
            d.frames
        );
    }
}

fn limited(f: impl FnOnce(&mut Limits)) -> Limits {
    let mut limits = Limits::default();
    f(&mut limits);
    limits
}

fn assert_limit(result: Result<Decoded, CodecError>, what: &str) {
    match result {
        Err(CodecError::LimitExceeded { what: got, .. }) => assert_eq!(got, what),
        Err(other) => panic!("expected {what} limit, got {other:?}"),
        Ok(_) => panic!("expected {what} limit, decoded fine"),
    }
}

#[test]
fn limits_are_enforced() {
    let path = fixture("speech-mono-16k.m4a");
    let small = limited(|l| l.max_bytes = 1000);
    assert_limit(
        Decoder::open_path(&path, &small).and_then(decode),
        "file size",
    );
    let bytes = std::fs::read(&path).unwrap();
    let cursor = Box::new(Cursor::new(bytes.clone()));
    assert_limit(
        Decoder::open(cursor, Some("m4a"), &small).and_then(decode),
        "file size",
    );
    // A source that hides its length is cut off while reading.
    let flac = std::fs::read(fixture("speech-mono-22k.flac")).unwrap();
    let hidden = Box::new(ReadOnlySource::new(Cursor::new(flac)));
    let cap = limited(|l| l.max_bytes = 20_000);
    assert_limit(
        Decoder::open(hidden, None, &cap).and_then(decode),
        "file size",
    );

    let short = limited(|l| l.max_duration = Duration::from_secs(1));
    assert_limit(
        Decoder::open_path(&path, &short).and_then(decode),
        "duration",
    );
    // No duration in the header: caught while decoding.
    let webm = fixture("speech-mono-48k-mediarecorder.webm");
    assert_limit(
        Decoder::open_path(&webm, &short).and_then(decode),
        "duration",
    );

    let stereo_only = limited(|l| l.max_channels = 2);
    let surround = fixture("speech-5.1-48k.wav");
    assert_limit(
        Decoder::open_path(&surround, &stereo_only).and_then(decode),
        "channel count",
    );

    let up_to_48k = limited(|l| l.max_sample_rate = 48_000);
    let hi_rate = fixture("speech-mono-96k-f32.wav");
    assert_limit(
        Decoder::open_path(&hi_rate, &up_to_48k).and_then(decode),
        "sample rate",
    );
}

#[test]
fn in_memory_and_unseekable_sources_decode_without_a_hint() {
    for name in [
        "speech-mono-48k.opus",
        "speech-stereo-44k.mp3",
        "speech-mono-22k.flac",
    ] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        let seekable = decode(
            Decoder::open(
                Box::new(Cursor::new(bytes.clone())),
                None,
                &Limits::default(),
            )
            .unwrap(),
        )
        .unwrap();
        let stream = Box::new(ReadOnlySource::new(Cursor::new(bytes)));
        let unseekable = decode(Decoder::open(stream, None, &Limits::default()).unwrap()).unwrap();
        // Unseekable Ogg cannot reach its last page to learn the end trim
        // (symphonia seeks for it), so up to one packet of padding remains.
        let extra = unseekable.frames.checked_sub(seekable.frames);
        assert!(
            extra.is_some_and(|e| e < 960),
            "{name}: {} vs {}",
            unseekable.frames,
            seekable.frames
        );
        assert!(seekable.frames > 0);
    }
}
