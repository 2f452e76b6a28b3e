//! `LoudnessMeter` against ffmpeg's `ebur128` filter (an independent
//! implementation) on speech and noise, at several sample rates.
#![allow(clippy::unwrap_used)]

use sori_codecs::loudness::LoudnessMeter;
use std::path::{Path, PathBuf};
use std::process::Command;

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what} is required for this test: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Converts `input` with sox to a 32-bit float WAV at `rate`, `channels`.
fn sox_convert(input: &Path, output: &Path, rate: u32, channels: u16) {
    run(
        Command::new("sox")
            .arg(input)
            .args(["-e", "floating-point", "-b", "32", "-r", &rate.to_string()])
            .args(["-c", &channels.to_string()])
            .arg(output),
        "sox",
    );
}

/// Interleaved samples of a WAV, decoded by sox to raw f32.
fn samples(wav: &Path) -> Vec<f32> {
    let raw = wav.with_extension("f32");
    run(
        Command::new("sox")
            .arg(wav)
            .args(["-t", "f32", "-e", "floating-point", "-b", "32"])
            .arg(&raw),
        "sox",
    );
    std::fs::read(&raw)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// ffmpeg's Summary: (I, LRA, true peak).
fn ffmpeg_ebur128(wav: &Path) -> (f64, f64, f64) {
    let log = run(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-nostats", "-i"])
            .arg(wav)
            .args(["-af", "ebur128=peak=true:dualmono=true", "-f", "null", "-"]),
        "ffmpeg",
    );
    let summary = log.rsplit("Summary:").next().unwrap();
    let field = |key: &str| -> f64 {
        summary
            .lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in ffmpeg summary:\n{summary}"))
    };
    (field("I:"), field("LRA:"), field("Peak:"))
}

fn ours(wav: &Path, rate: u32, channels: u16) -> sori_codecs::loudness::Loudness {
    let mut m = LoudnessMeter::new(channels, rate).unwrap();
    for block in samples(wav).chunks(1000 * usize::from(channels)) {
        m.add(block).unwrap();
    }
    m.finish()
}

fn compare(wav: &Path, rate: u32, channels: u16) {
    let (i, lra, peak) = ffmpeg_ebur128(wav);
    let l = ours(wav, rate, channels);
    eprintln!(
        "{}: ffmpeg I {i:.2} LRA {lra:.1} TP {peak:.2} | ours I {:.3} LRA {:.2} TP {:.2}",
        wav.file_name().unwrap().to_string_lossy(),
        l.integrated_lufs,
        l.loudness_range_lu,
        l.true_peak_dbtp
    );
    assert!(
        (l.integrated_lufs - i).abs() <= 0.1,
        "{wav:?}: integrated {} vs ffmpeg {i}",
        l.integrated_lufs
    );
    assert!((l.loudness_range_lu - lra).abs() <= 1.0, "{wav:?}: LRA");
    // ffmpeg oversamples to 192 kHz with another filter: a looser check.
    assert!((l.true_peak_dbtp - peak).abs() <= 0.5, "{wav:?}: true peak");
}

fn speech(dir: &Path) -> PathBuf {
    let wav = dir.join("espeak.wav");
    run(
        Command::new("espeak-ng")
            .args(["-s", "150", "-w"])
            .arg(&wav)
            .arg(
                "Sori measures every voice clip the way a broadcast meter would. \
                 Quiet words, loud words, and the pauses in between all count.",
            ),
        "espeak-ng",
    );
    wav
}

#[test]
fn speech_at_every_rate_matches_ffmpeg() {
    let dir = tempfile::tempdir().unwrap();
    let src = speech(dir.path());
    for rate in [8_000, 16_000, 22_050, 44_100, 48_000, 96_000] {
        let wav = dir.path().join(format!("speech-mono-{rate}.wav"));
        sox_convert(&src, &wav, rate, 1);
        compare(&wav, rate, 1);
    }
    let stereo = dir.path().join("speech-stereo-44100.wav");
    sox_convert(&src, &stereo, 44_100, 2);
    compare(&stereo, 44_100, 2);
}

/// Writes 12 s of pink noise with ffmpeg's seeded generator, one
/// independent noise per channel. Not sox's `synth pinknoise`: its generator
/// is unseeded and wraps around when it clips, leaving two-sample spikes
/// whose true peak depends on each meter's interpolation filter.
fn pink_noise(wav: &Path, rate: u32, channels: u16, amplitude: f64) {
    let source = |seed: u16| {
        format!(
            "anoisesrc=color=pink:seed={seed}:amplitude={amplitude}:duration=12:sample_rate={rate}"
        )
    };
    let graph = if channels == 1 {
        source(1)
    } else {
        let labelled: Vec<String> = (1..=channels)
            .map(|c| format!("{}[c{c}]", source(c)))
            .collect();
        let inputs: String = (1..=channels).map(|c| format!("[c{c}]")).collect();
        format!("{};{inputs}amerge=inputs={channels}", labelled.join(";"))
    };
    run(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y"])
            .args(["-filter_complex", &graph, "-c:a", "pcm_f32le"])
            .arg(wav),
        "ffmpeg",
    );
}

#[test]
fn pink_noise_and_tone_bursts_match_ffmpeg() {
    let dir = tempfile::tempdir().unwrap();
    let pink = dir.path().join("pink-mono-48000.wav");
    pink_noise(&pink, 48_000, 1, 0.3);
    compare(&pink, 48_000, 1);

    let stereo = dir.path().join("pink-stereo-44100.wav");
    pink_noise(&stereo, 44_100, 2, 0.1);
    compare(&stereo, 44_100, 2);

    // Bursts: 1 s of 500 Hz at −12 dBFS, 2 s near-silence, repeated.
    let bursts = dir.path().join("bursts-mono-48000.wav");
    run(
        Command::new("sox")
            .args([
                "-n",
                "-e",
                "floating-point",
                "-b",
                "32",
                "-r",
                "48000",
                "-c",
                "1",
            ])
            .arg(&bursts)
            .args(["synth", "1", "sine", "500", "vol", "0.25", "pad", "0", "2"])
            .args(["repeat", "4"]),
        "sox",
    );
    compare(&bursts, 48_000, 1);
}
