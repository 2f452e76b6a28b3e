//! The engine over a broad corpus of ordinary speech uploads, not files
//! shaped like the engine: every format a phone or browser records × stereo
//! 44.1 kHz and mono 16 kHz × −35, −20 and −8 LUFS × clean and noisy, plus
//! noise-only clips (`benches/make-corpus.sh --short`: the 15 s clips), in
//! two variants with different voices, sentences and backgrounds (the codec
//! model was fitted on the first; the second checks it on speech it never
//! saw).
//!
//! Every output is decoded and measured by ffmpeg, nobody's code here:
//! loudness within ±0.5 LU of the target and true peak at or under the
//! ceiling, as libopus (the reference decoder, which browsers and phones
//! use) decodes it; one encode pass on at least 95 % of inputs; noise is
//! refused, with its reason, rather than raised.
#![allow(clippy::unwrap_used)]

use sori_codecs::gain::CapReason;
use sori_codecs::process::process_file;
use sori_codecs::report::Report;
use sori_codecs::{Limits, OutputFormat, Profile};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Makes (or finds up to date) the short corpus of one variant.
fn corpus(variant: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = root.join(format!("benches/out/corpus-{variant}-short"));
    let status = Command::new(root.join("benches/make-corpus.sh"))
        .arg(&dir)
        .arg("--short")
        .arg(format!("--variant={variant}"))
        .status()
        .expect("benches/make-corpus.sh needs bash, espeak-ng, sox and ffmpeg (scripts/setup.sh)");
    assert!(status.success(), "benches/make-corpus.sh failed");
    dir
}

struct Entry {
    file: String,
    noise_only: bool,
}

fn manifest(dir: &Path) -> Vec<Entry> {
    let text = std::fs::read_to_string(dir.join("corpus.tsv")).unwrap();
    text.lines()
        .skip(1)
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            Entry {
                file: cols[0].to_string(),
                noise_only: cols[6] == "noise",
            }
        })
        .collect()
}

/// (integrated LUFS, true peak dBTP) as ffmpeg's ebur128 measures a file
/// decoded by `decoder` (`libopus`, or ffmpeg's own `opus`).
fn ffmpeg_measure(path: &Path, decoder: &str) -> (f64, f64) {
    let out = Command::new("ffmpeg")
        .args(["-nostats", "-hide_banner", "-c:a", decoder, "-i"])
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

struct Outcome {
    file: String,
    noise_only: bool,
    report: Report,
    /// ffmpeg, libopus decoding.
    lufs: f64,
    peak: f64,
    /// ffmpeg's own Opus decoder: reported, not judged (see the test).
    native_peak: f64,
}

fn run_corpus(dir: &Path) -> Vec<Outcome> {
    let entries = manifest(dir);
    let next = AtomicUsize::new(0);
    let outcomes = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(entry) = entries.get(i) else { break };
                let out = tempfile::tempdir().unwrap();
                let processed = process_file(
                    &dir.join(&entry.file),
                    out.path(),
                    &Profile::default(),
                    &Limits::default(),
                )
                .unwrap_or_else(|e| panic!("{}: {e}", entry.file));
                let ogg = out.path().join(OutputFormat::Opus.file_name());
                let (lufs, peak) = ffmpeg_measure(&ogg, "libopus");
                let (_, native_peak) = ffmpeg_measure(&ogg, "opus");
                outcomes.lock().unwrap().push(Outcome {
                    file: entry.file.clone(),
                    noise_only: entry.noise_only,
                    report: processed.report,
                    lufs,
                    peak,
                    native_peak,
                });
            });
        }
    });
    let mut outcomes = outcomes.into_inner().unwrap();
    outcomes.sort_by(|a, b| a.file.cmp(&b.file));
    outcomes
}

#[test]
fn the_broad_corpus_lands_on_target_in_one_pass() {
    let profile = Profile::default();
    let mut failures = Vec::new();
    for variant in ["a", "b"] {
        let outcomes = run_corpus(&corpus(variant));
        assert!(
            outcomes.len() >= 70,
            "variant {variant}: {} files",
            outcomes.len()
        );
        let one_pass = outcomes
            .iter()
            .filter(|o| o.report.encode_passes == 1)
            .count();
        let speech: Vec<&Outcome> = outcomes.iter().filter(|o| !o.noise_only).collect();
        let worst_lufs = speech
            .iter()
            .map(|o| (o.lufs - profile.target_lufs).abs())
            .fold(0.0, f64::max);
        let worst_peak = speech.iter().map(|o| o.peak).fold(f64::MIN, f64::max);
        let worst_native = speech
            .iter()
            .map(|o| o.native_peak)
            .fold(f64::MIN, f64::max);
        println!(
            "variant {variant}: {} files, one pass on {one_pass}, worst loudness error \
             {worst_lufs:.2} LU, worst true peak {worst_peak:.1} dBTP (ffmpeg's own Opus \
             decoder: {worst_native:.1})",
            outcomes.len()
        );
        if one_pass * 100 < outcomes.len() * 95 {
            failures.push(format!(
                "variant {variant}: one pass on only {one_pass} of {}",
                outcomes.len()
            ));
        }
        for o in &outcomes {
            let r = &o.report;
            if o.noise_only {
                let raised = o.lufs > r.input.integrated_lufs + 0.5;
                if r.gain_cap_reason != Some(CapReason::Noise) || raised {
                    failures.push(format!(
                        "{}: noise not refused ({:?}, gain {} dB, {} LUFS)",
                        o.file, r.gain_cap_reason, r.gain_db, o.lufs
                    ));
                }
                continue;
            }
            if (o.lufs - profile.target_lufs).abs() > 0.5 || o.peak > profile.true_peak_dbtp {
                failures.push(format!(
                    "{}: {} LUFS, {} dBTP (gain {} dB, passes {}, capped {:?})",
                    o.file, o.lufs, o.peak, r.gain_db, r.encode_passes, r.gain_cap_reason
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
