//! The limiter against hostile signals: its output's true peak, measured by
//! ebur128 (an implementation nobody here wrote), never exceeds the ceiling;
//! under the ceiling it is the identity; its gain moves without steps.
#![allow(clippy::unwrap_used)]

use sori_codecs::limiter::Limiter;
use std::f64::consts::PI;
use std::process::Command;

const RATE: u32 = 48_000;
const CEILING: f64 = -1.5;

/// Runs `input` through a limiter fed in blocks of `block`.
fn limit(input: &[f32], ceiling: f64, block: usize) -> (Vec<f32>, Limiter) {
    let mut lim = Limiter::new(RATE, ceiling);
    let mut out = Vec::new();
    for b in input.chunks(block) {
        lim.process(b, &mut out);
    }
    lim.flush(&mut out);
    assert_eq!(
        out.len(),
        input.len(),
        "output length must equal input length"
    );
    (out, lim)
}

/// ebur128's 4× true peak, in dBTP.
fn true_peak_db(samples: &[f32]) -> f64 {
    let mut m = ebur128::EbuR128::new(1, RATE, ebur128::Mode::TRUE_PEAK).unwrap();
    m.add_frames_f32(samples).unwrap();
    // Let the interpolator see past the last sample.
    m.add_frames_f32(&[0.0; 64]).unwrap();
    20.0 * m.true_peak(0).unwrap().log10()
}

fn sine(freq: f64, db: f64, phase_deg: f64, seconds: f64) -> Vec<f32> {
    let amp = 10f64.powf(db / 20.0);
    let n = (seconds * f64::from(RATE)) as usize;
    (0..n)
        .map(|i| {
            (amp * (2.0 * PI * freq * i as f64 / f64::from(RATE) + phase_deg.to_radians()).sin())
                as f32
        })
        .collect()
}

fn assert_under_ceiling(name: &str, input: &[f32]) -> Vec<f32> {
    for block in [480, 1, 4097] {
        let (out, lim) = limit(input, CEILING, block);
        let tp = true_peak_db(&out);
        assert!(
            tp <= CEILING + 0.05,
            "{name} (blocks of {block}): output true peak {tp:.3} dBTP over {CEILING}"
        );
        assert!(lim.stats().limited, "{name}: limiter should have acted");
        assert!(out.iter().all(|s| s.is_finite()));
        if block == 480 {
            eprintln!(
                "{name}: in {:.2} dBTP → out {tp:.3} dBTP, max reduction {:.2} dB, {} samples reduced",
                true_peak_db(input),
                lim.stats().max_reduction_db,
                lim.stats().samples_reduced
            );
        }
    }
    limit(input, CEILING, 480).0
}

#[test]
fn full_scale_square_wave() {
    let input: Vec<f32> = (0..RATE as usize)
        .map(|i| if (i / 60) % 2 == 0 { 1.0 } else { -1.0 })
        .collect();
    assert_under_ceiling("square 400 Hz 0 dBFS", &input);
}

#[test]
fn sine_pushed_to_plus_6_dbfs() {
    assert_under_ceiling("sine 997 Hz +6 dBFS", &sine(997.0, 6.0, 0.0, 1.0));
}

#[test]
fn inter_sample_peak_at_quarter_rate() {
    // Samples at −1 dBFS, the wave between them at +2 dBFS.
    let input = sine(12_000.0, -1.0 + 3.01, 45.0, 1.0);
    let sample_peak = input.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(20.0 * f64::from(sample_peak).log10() < CEILING + 1.0);
    assert_under_ceiling("fs/4 45° (+3 dB inter-sample)", &input);
}

#[test]
fn single_sample_impulses() {
    let mut input = vec![0f32; RATE as usize];
    for (k, i) in (1000..input.len()).step_by(4_700).enumerate() {
        input[i] = if k % 2 == 0 { 1.0 } else { -0.99 };
    }
    input[0] = 1.0; // at the very start
    let last = input.len() - 1;
    input[last] = -1.0; // and at the very end (flushed)
    assert_under_ceiling("single-sample impulses", &input);
}

fn speech_48k() -> Vec<f32> {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("speech.wav");
    let status = Command::new("espeak-ng")
        .args(["-w", wav.to_str().unwrap()])
        .arg("Peaks over the ceiling are pulled down, and nothing else changes at all.")
        .status()
        .expect("espeak-ng is required for this test");
    assert!(status.success());
    let raw = dir.path().join("speech.f32");
    let status = Command::new("sox")
        .arg(&wav)
        .args(["-r", "48000", "-c", "1", "-e", "floating-point", "-b", "32"])
        .arg(raw.to_str().unwrap().replace(".f32", ".raw"))
        .status()
        .expect("sox is required for this test");
    assert!(status.success());
    let bytes = std::fs::read(raw.with_extension("raw")).unwrap();
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

#[test]
fn speech_with_20_db_gain() {
    let speech = speech_48k();
    assert!(speech.len() > RATE as usize);
    let gain = 10f32.powf(20.0 / 20.0);
    let loud: Vec<f32> = speech.iter().map(|s| s * gain).collect();
    let out = assert_under_ceiling("speech +20 dB", &loud);
    // Gain changes smoothly: the per-sample gain never jumps. Look where the
    // input is not tiny (gain = out / in is well defined there).
    let gains: Vec<(usize, f64)> = loud
        .iter()
        .zip(&out)
        .enumerate()
        .filter(|(_, (i, _))| i.abs() > 0.05)
        .map(|(k, (i, o))| (k, f64::from(*o) / f64::from(*i)))
        .collect();
    let mut worst = 0f64;
    for w in gains.windows(2) {
        let ((k0, g0), (k1, g1)) = (w[0], w[1]);
        let per_sample = (g1 - g0).abs() / (k1 - k0) as f64;
        worst = worst.max(per_sample);
    }
    // The ramp spans 5 ms (240 samples): even a 20 dB reduction moves less
    // than 0.9/240 per sample.
    assert!(worst < 0.9 / 240.0 + 1e-4, "gain step {worst} per sample");
}

#[test]
fn under_the_ceiling_the_output_is_the_input_bit_for_bit() {
    let mut input = sine(440.0, -3.0, 0.0, 0.5);
    input.extend(sine(12_000.0, -3.0 - 3.5, 45.0, 0.5)); // true peak −3.5
    let speech = speech_48k();
    let peak = speech.iter().fold(0f32, |m, v| m.max(v.abs()));
    input.extend(speech.iter().map(|s| s / peak * 0.5));
    assert!(true_peak_db(&input) < CEILING);
    for block in [1, 333, 48_000] {
        let (out, lim) = limit(&input, CEILING, block);
        assert!(!lim.stats().limited);
        assert_eq!(lim.stats().samples_reduced, 0);
        assert!(
            out.iter()
                .zip(&input)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "blocks of {block}: output differs from input"
        );
    }
}

#[test]
fn acts_only_around_the_peaks() {
    // Quiet tone with one loud burst in the middle: far from the burst the
    // output is the input exactly, and the stream is latency compensated.
    let mut input = sine(300.0, -20.0, 0.0, 2.0);
    for (i, s) in input[48_000..48_480].iter_mut().enumerate() {
        *s = (1.5 * (2.0 * PI * 300.0 * i as f64 / 48_000.0).sin()) as f32;
    }
    let (out, lim) = limit(&input, CEILING, 1024);
    assert!(lim.stats().limited);
    // 1.5 (+3.5 dBFS) down to −1.52 dBTP: about 5 dB.
    let reduction = lim.stats().max_reduction_db;
    assert!((4.9..5.3).contains(&reduction), "{reduction}");
    // 100 ms before the burst and 1 s after it: untouched.
    assert!(out[..43_000]
        .iter()
        .zip(&input[..43_000])
        .all(|(a, b)| a.to_bits() == b.to_bits()));
    assert!(out[90_000..]
        .iter()
        .zip(&input[90_000..])
        .all(|(a, b)| a.to_bits() == b.to_bits()));
    assert!(true_peak_db(&out) <= CEILING + 0.05);
    // Reduced samples: the ramp, the burst, hold and release, not more.
    assert!(lim.stats().samples_reduced < 48_000 / 2);
}

#[test]
fn silly_inputs_do_not_panic() {
    let mut lim = Limiter::new(0, f64::NAN);
    let mut out = Vec::new();
    lim.process(
        &[f32::NAN, f32::INFINITY, -f32::INFINITY, 1e30, 0.5],
        &mut out,
    );
    lim.flush(&mut out);
    lim.flush(&mut out);
    assert_eq!(out.len(), 5);
    assert!(
        out.iter().all(|s| s.is_finite() && s.abs() <= 1.0),
        "{out:?}"
    );
    let mut empty = Limiter::new(RATE, -1.0);
    let mut out = Vec::new();
    empty.flush(&mut out);
    assert!(out.is_empty());
    // A stream shorter than the look-ahead.
    let mut short = Limiter::new(RATE, -1.0);
    short.process(&[0.1, 0.2, 0.3], &mut out);
    short.flush(&mut out);
    assert_eq!(out, vec![0.1, 0.2, 0.3]);
}
