//! The whole chain, checked by a decoder and a meter nobody here wrote:
//! ffmpeg decodes what we wrote and measures it with its `ebur128` filter.
#![allow(clippy::unwrap_used)]

use sori_codecs::gain::CapReason;
use sori_codecs::process::process_file;
use sori_codecs::{CodecError, Limits, OutputFormat, Profile};
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(name);
    assert!(
        path.exists(),
        "missing fixture {name}: run scripts/make-fixtures.sh"
    );
    path
}

/// (integrated LUFS, true peak dBTP) of a file as ffmpeg measures it, dual mono.
fn ffmpeg_loudness(path: &Path) -> (f64, f64) {
    let out = Command::new("ffmpeg")
        .args(["-nostats", "-hide_banner", "-i"])
        .arg(path)
        .args(["-af", "ebur128=peak=true:dualmono=true", "-f", "null", "-"])
        .output()
        .expect("ffmpeg must be installed (scripts/setup.sh)");
    let text = String::from_utf8_lossy(&out.stderr);
    let summary = &text[text.find("Summary:").expect("ffmpeg ebur128 summary")..];
    let value = |key: &str| -> f64 {
        let line = summary
            .lines()
            .find(|l| l.trim_start().starts_with(key))
            .unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    (value("I:"), value("Peak:"))
}

/// Integrated loudness as ffmpeg's `ebur128` filter measures it, to three
/// decimals (its per-frame metadata; the summary rounds to one).
fn ffmpeg_integrated_precise(path: &Path) -> f64 {
    let out = Command::new("ffmpeg")
        .args(["-nostats", "-hide_banner", "-i"])
        .arg(path)
        .args([
            "-af",
            "ebur128=metadata=1:dualmono=true,ametadata=mode=print:key=lavfi.r128.I",
            "-f",
            "null",
            "-",
        ])
        .output()
        .expect("ffmpeg must be installed (scripts/setup.sh)");
    let text = String::from_utf8_lossy(&out.stderr);
    let last = text
        .lines()
        .rev()
        .find_map(|l| l.split("lavfi.r128.I=").nth(1))
        .expect("ffmpeg printed no loudness");
    last.trim().parse().unwrap()
}

/// Samples ffmpeg decodes from a file, at 48 kHz mono.
fn ffmpeg_sample_count(path: &Path) -> usize {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args(["-f", "f32le", "-ac", "1", "-ar", "48000", "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout.len() / 4
}

fn ffprobe_codec(path: &Path) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "a:0", "-show_entries"])
        .args(["stream=codec_name,sample_rate,channels", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

const GOOD: &[&str] = &[
    "speech-mono-16k.m4a",
    "speech-mono-44k-moov-after-mdat.m4a",
    "speech-stereo-44k.mp3",
    "speech-mono-48k.opus",
    "speech-mono-48k-mediarecorder.webm",
    "speech-stereo-44k.ogg",
    "speech-mono-22k.flac",
    "speech-mono-8k-u8.wav",
    "speech-stereo-48k-s24.wav",
    "speech-mono-96k-f32.wav",
    "speech-5.1-48k.wav",
    "speech-mono-44k.caf",
    "speech-mono-44k.aiff",
    "speech-mono-44k-alac.m4a",
];

#[test]
fn every_format_lands_on_target_as_ffmpeg_hears_it() {
    let profile = Profile::default();
    for name in GOOD {
        let dir = tempfile::tempdir().unwrap();
        let processed = process_file(&fixture(name), dir.path(), &profile, &Limits::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let report = &processed.report;
        let ogg = dir.path().join(OutputFormat::Opus.file_name());
        let (lufs, peak) = ffmpeg_loudness(&ogg);
        assert!(
            (lufs - profile.target_lufs).abs() <= 0.5,
            "{name}: ffmpeg measures {lufs} LUFS"
        );
        assert!(
            peak <= profile.true_peak_dbtp + 0.05,
            "{name}: ffmpeg true peak {peak}"
        );
        // Our own figures agree with ffmpeg's.
        assert!(
            (report.output.integrated_lufs - lufs).abs() <= 0.15,
            "{name}"
        );
        // Exact duration: ffmpeg decodes exactly the samples of the input.
        let samples = ffmpeg_sample_count(&ogg);
        let reported = report.duration_ms as f64 / 1000.0;
        assert!(
            (samples as f64 / 48_000.0 - reported).abs() < 0.002,
            "{name}"
        );
        assert_eq!(ffprobe_codec(&ogg), "opus,48000,1", "{name}");
        for other in [OutputFormat::Caf, OutputFormat::Webm].map(OutputFormat::file_name) {
            assert_eq!(
                ffprobe_codec(&dir.path().join(other)),
                "opus,48000,1",
                "{name} {other}"
            );
        }
        assert_eq!(report.waveform.bars.len(), 100);
        assert!(
            report.waveform.bars.iter().any(|&b| b > 10),
            "{name}: flat bars"
        );
        assert!(report.output.bytes > 1000);
        assert!(report.encode_passes >= 1);
    }
}

#[test]
fn input_loudness_matches_ffmpeg_within_a_tenth_of_a_lu_on_every_fixture() {
    for name in GOOD {
        let dir = tempfile::tempdir().unwrap();
        let report = process_file(
            &fixture(name),
            dir.path(),
            &Profile::default(),
            &Limits::default(),
        )
        .unwrap()
        .report;
        let reference = ffmpeg_integrated_precise(&fixture(name));
        let ours = report.input.integrated_lufs;
        assert!(
            (ours - reference).abs() <= 0.1,
            "{name}: ours {ours} LUFS, ffmpeg {reference} LUFS"
        );
    }
}

#[test]
fn waveform_json_is_in_audiowaveform_format() {
    let dir = tempfile::tempdir().unwrap();
    process_file(
        &fixture("speech-mono-16k.m4a"),
        dir.path(),
        &Profile::default(),
        &Limits::default(),
    )
    .unwrap();
    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join(OutputFormat::Waveform.file_name())).unwrap(),
    )
    .unwrap();
    assert_eq!(json["version"], 2);
    assert_eq!(json["channels"], 1);
    assert_eq!(json["bits"], 8);
    assert_eq!(json["sample_rate"], 48_000);
    let length = json["length"].as_u64().unwrap() as usize;
    assert_eq!(json["data"].as_array().unwrap().len(), 2 * length);
    assert!(length > 100);
}

/// Writes `seconds` of a mono f32 WAV made by `f(t)`.
fn write_wav(path: &Path, rate: u32, seconds: f64, f: impl Fn(f64) -> f64) {
    let n = (seconds * f64::from(rate)) as u32;
    let mut bytes = Vec::new();
    let data_len = n * 4;
    bytes.extend_from_slice(b"RIFF");
    bytes.extend_from_slice(&(36 + data_len).to_le_bytes());
    bytes.extend_from_slice(b"WAVEfmt ");
    bytes.extend_from_slice(&16u32.to_le_bytes());
    bytes.extend_from_slice(&3u16.to_le_bytes()); // IEEE float
    bytes.extend_from_slice(&1u16.to_le_bytes());
    bytes.extend_from_slice(&rate.to_le_bytes());
    bytes.extend_from_slice(&(rate * 4).to_le_bytes());
    bytes.extend_from_slice(&4u16.to_le_bytes());
    bytes.extend_from_slice(&32u16.to_le_bytes());
    bytes.extend_from_slice(b"data");
    bytes.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..n {
        let t = f64::from(i) / f64::from(rate);
        bytes.extend_from_slice(&(f(t) as f32).to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn near_silence_is_not_blown_up_into_noise() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("hiss.wav");
    // −80 dBFS noise-like signal: 44 dB below target would need +60 dB.
    write_wav(&input, 48_000, 3.0, |t| {
        1e-4 * ((t * 7919.0).sin() * (t * 104_729.0).cos())
    });
    let profile = Profile::default();
    let out = dir.path().join("out");
    let report = process_file(&input, &out, &profile, &Limits::default())
        .unwrap()
        .report;
    // Noise stands nowhere above its own floor: it is not amplified at all
    // (the old fixed cap raised it by 20 dB), and the report says why.
    assert!(report.gain_capped);
    assert_eq!(report.gain_cap_reason, Some(CapReason::Silence));
    assert!(report.gain_db <= 0.0, "gain {}", report.gain_db);
    assert!(report.output.integrated_lufs < report.input.integrated_lufs + 0.5);
    assert!(report.output.integrated_lufs < profile.target_lufs - 10.0);
}

#[test]
fn a_hot_square_wave_is_limited_under_the_ceiling_without_clipping() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("square.wav");
    // A 0 dBFS square wave at 220 Hz with a quiet stretch: loud peaks everywhere.
    write_wav(&input, 44_100, 4.0, |t| {
        let level = if t < 2.0 { 0.99 } else { 0.05 };
        level * (t * 220.0 * std::f64::consts::TAU).sin().signum()
    });
    let profile = Profile::default();
    let out = dir.path().join("out");
    let report = process_file(&input, &out, &profile, &Limits::default())
        .unwrap()
        .report;
    let (lufs, peak) = ffmpeg_loudness(&out.join(OutputFormat::Opus.file_name()));
    assert!(peak <= profile.true_peak_dbtp + 0.05, "true peak {peak}");
    assert!((lufs - report.output.integrated_lufs).abs() < 0.2);
    assert!(report.output.true_peak_dbtp <= profile.true_peak_dbtp);
}

#[test]
fn quiet_speech_is_raised_to_target() {
    let dir = tempfile::tempdir().unwrap();
    let quiet = dir.path().join("quiet.wav");
    let status = Command::new("sox")
        .arg(fixture("speech-mono-22k.flac"))
        .arg(&quiet)
        .args(["gain", "-14"])
        .status()
        .expect("sox must be installed");
    assert!(status.success());
    let report = process_file(
        &quiet,
        &dir.path().join("out"),
        &Profile::default(),
        &Limits::default(),
    )
    .unwrap()
    .report;
    assert!(!report.gain_capped);
    assert!(report.gain_db > 14.0, "{}", report.gain_db);
    let (lufs, _) = ffmpeg_loudness(&dir.path().join("out").join(OutputFormat::Opus.file_name()));
    assert!((lufs + 16.0).abs() <= 0.5, "{lufs}");
}

/// Runs sox to make a test input; sox is one of the suite's independent tools.
fn sox(args: &[&str]) {
    let status = Command::new("sox")
        .args(args)
        .status()
        .expect("sox must be installed (scripts/setup.sh)");
    assert!(status.success(), "sox {args:?}");
}

/// Integrated loudness of a file as ffmpeg measures it (dual mono).
fn ffmpeg_lufs_of(path: &Path) -> f64 {
    ffmpeg_loudness(path).0
}

#[test]
fn clean_speech_at_minus_35_lufs_reaches_the_target() {
    // A quiet but clean phone recording needs +19 dB: more than the old
    // fixed 20 dB cap left once limiting took its share.
    let dir = tempfile::tempdir().unwrap();
    let speech = fixture("speech-mono-22k.flac");
    let gain = -35.0 - ffmpeg_lufs_of(&speech);
    let quiet = dir.path().join("quiet.wav");
    sox(&[
        speech.to_str().unwrap(),
        quiet.to_str().unwrap(),
        "gain",
        &format!("{gain:.2}"),
    ]);
    let out = dir.path().join("out");
    let report = process_file(&quiet, &out, &Profile::default(), &Limits::default())
        .unwrap()
        .report;
    assert!(!report.gain_capped, "{:?}", report.gain_cap_reason);
    assert!(report.gain_db > 18.0, "{}", report.gain_db);
    let (lufs, peak) = ffmpeg_loudness(&out.join(OutputFormat::Opus.file_name()));
    assert!((lufs + 16.0).abs() <= 0.5, "{lufs} LUFS");
    assert!(peak <= -1.5 + 0.3, "{peak} dBTP");
}

#[test]
fn noise_at_minus_50_lufs_is_not_blown_up() {
    let dir = tempfile::tempdir().unwrap();
    let hiss = dir.path().join("hiss.wav");
    sox(&[
        "-n",
        "-r",
        "48000",
        "-c",
        "1",
        hiss.to_str().unwrap(),
        "synth",
        "5",
        "pinknoise",
    ]);
    let loud = ffmpeg_lufs_of(&hiss);
    let quiet = dir.path().join("quiet-hiss.wav");
    let gain = format!("{:.2}", -50.0 - loud);
    sox(&[
        hiss.to_str().unwrap(),
        quiet.to_str().unwrap(),
        "gain",
        &gain,
    ]);
    let out = dir.path().join("out");
    let report = process_file(&quiet, &out, &Profile::default(), &Limits::default())
        .unwrap()
        .report;
    assert!(report.gain_capped);
    assert_eq!(report.gain_cap_reason, Some(CapReason::Noise));
    assert!(report.gain_db <= 0.0, "{}", report.gain_db);
    let lufs = ffmpeg_lufs_of(&out.join(OutputFormat::Opus.file_name()));
    assert!(lufs < -45.0, "noise raised to {lufs} LUFS");
}

#[test]
fn trimming_removes_leading_and_trailing_silence() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("padded.wav");
    write_wav(&input, 48_000, 4.0, |t| {
        if (1.0..3.0).contains(&t) {
            0.3 * (t * 440.0 * std::f64::consts::TAU).sin()
        } else {
            0.0
        }
    });
    let profile = Profile {
        trim_silence: true,
        ..Profile::default()
    };
    let report = process_file(
        &input,
        &dir.path().join("out"),
        &profile,
        &Limits::default(),
    )
    .unwrap()
    .report;
    assert!(
        (900..=1010).contains(&report.input.leading_silence_ms),
        "{report:?}"
    );
    assert!(
        (900..=1010).contains(&report.input.trailing_silence_ms),
        "{report:?}"
    );
    assert!(
        (1990..=2200).contains(&report.duration_ms),
        "{}",
        report.duration_ms
    );
}

#[test]
fn unusable_input_fails_with_a_reason_and_leaves_no_files() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "bad-garbage.m4a",
        "bad-empty.wav",
        "bad-image.m4a",
        "bad-no-audio.mp4",
    ] {
        let out = dir.path().join(name);
        let err = process_file(
            &fixture(name),
            &out,
            &Profile::default(),
            &Limits::default(),
        )
        .expect_err(name);
        assert!(err.is_input_error(), "{name}: {err}");
        assert_eq!(err.to_string().lines().count(), 1);
        let left: Vec<_> = std::fs::read_dir(&out).unwrap().collect();
        assert!(left.is_empty(), "{name}: left {left:?}");
    }
}

#[test]
fn limits_are_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_duration: std::time::Duration::from_secs(2),
        ..Limits::default()
    };
    let err = process_file(
        &fixture("speech-mono-16k.m4a"),
        dir.path(),
        &Profile::default(),
        &limits,
    )
    .unwrap_err();
    assert!(matches!(err, CodecError::LimitExceeded { .. }), "{err}");
}
