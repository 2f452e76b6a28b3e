//! Resampler contract: exact length, compensated delay, flat passband,
//! rejected images and aliases.
#![allow(clippy::unwrap_used)]

use sori_codecs::resample::{expected_output_len, Engine, Resampler};
use std::f64::consts::PI;

const RATES: [u32; 9] = [
    8_000, 11_025, 16_000, 22_050, 32_000, 44_100, 48_000, 96_000, 192_000,
];

fn sine(freq: f64, rate: u32, frames: usize, amp: f64) -> Vec<f32> {
    (0..frames)
        .map(|n| (amp * (2.0 * PI * freq * n as f64 / f64::from(rate)).sin()) as f32)
        .collect()
}

/// Runs a whole stream through, fed in irregular block sizes.
fn run(resampler: &mut Resampler, input: &[f32]) -> Vec<f32> {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut step = 1;
    while pos < input.len() {
        let end = (pos + step).min(input.len());
        resampler.process(&input[pos..end], &mut out).unwrap();
        pos = end;
        step = (step * 7 + 3) % 3001 + 1;
    }
    resampler.finish(&mut out).unwrap();
    out
}

/// Amplitude and phase (radians, relative to a sine starting at 0) of `freq`
/// in `x`, by projection onto a Hann-windowed complex exponential.
fn tone(x: &[f32], freq: f64, rate: f64) -> (f64, f64) {
    let n = x.len();
    let (mut re, mut im, mut wsum) = (0.0, 0.0, 0.0);
    for (i, &s) in x.iter().enumerate() {
        let w = 0.5 - 0.5 * (2.0 * PI * i as f64 / n as f64).cos();
        let ph = 2.0 * PI * freq * i as f64 / rate;
        re += w * f64::from(s) * ph.cos();
        im += w * f64::from(s) * ph.sin();
        wsum += w;
    }
    let amp = 2.0 * (re * re + im * im).sqrt() / wsum;
    // s = A sin(ph + φ) → re ≈ A/2 sin φ, im ≈ A/2 cos φ
    (amp, re.atan2(im))
}

fn db(x: f64) -> f64 {
    20.0 * x.log10()
}

#[test]
fn length_is_exact_for_every_rate_and_length() {
    for rate in RATES.into_iter().chain([47_999, 12_345]) {
        for frames in [0usize, 1, 7, 1000, 4096, 33_333, 100_001] {
            let input = sine(300.0, rate, frames, 0.5);
            let mut r = Resampler::new(rate).unwrap();
            let out = run(&mut r, &input);
            assert_eq!(
                out.len() as u64,
                expected_output_len(frames as u64, rate),
                "rate {rate}, {frames} frames"
            );
        }
    }
}

#[test]
fn resampler_is_reusable_after_finish() {
    let input = sine(1000.0, 44_100, 20_000, 0.5);
    let mut r = Resampler::new(44_100).unwrap();
    let a = run(&mut r, &input);
    let b = run(&mut r, &input);
    assert_eq!(a.len(), b.len());
    let diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    assert!(diff < 1e-6, "second stream differs by {diff}");
}

#[test]
fn delay_is_compensated_sine_phase() {
    for rate in RATES.into_iter().chain([47_999]) {
        let frames = rate as usize; // one second
        let input = sine(1000.0, rate, frames, 0.5);
        let out = run(&mut Resampler::new(rate).unwrap(), &input);
        let mid = &out[12_000..36_000];
        let (_, phase) = tone(mid, 1000.0, 48_000.0);
        // Phase of sin(2π f k/48000) over a window starting at k=12000 is
        // 2π·1000·12000/48000 = 500π ≡ 0: any residual phase is delay.
        let delay_samples = -phase / (2.0 * PI * 1000.0 / 48_000.0);
        assert!(
            delay_samples.abs() < 0.6,
            "rate {rate}: residual delay {delay_samples:.3} output samples"
        );
    }
}

#[test]
fn delay_is_compensated_impulse() {
    for rate in [16_000u32, 44_100, 96_000] {
        let mut input = vec![0.0f32; rate as usize / 2];
        let at = rate as usize / 5; // t = 0.2 s
        input[at] = 1.0;
        let out = run(&mut Resampler::new(rate).unwrap(), &input);
        let peak = out
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .unwrap()
            .0;
        let want = 9_600; // 0.2 s at 48 kHz
        assert!(
            peak.abs_diff(want) <= 1,
            "rate {rate}: impulse at {peak}, want {want}"
        );
    }
}

#[test]
fn sinc_engine_delay_is_compensated() {
    for rate in [8_000u32, 44_100, 96_000, 192_000] {
        let input = sine(1000.0, rate, rate as usize, 0.5);
        let out = run(
            &mut Resampler::with_engine(rate, Engine::Sinc).unwrap(),
            &input,
        );
        let (amp, phase) = tone(&out[12_000..36_000], 1000.0, 48_000.0);
        let delay_samples = -phase / (2.0 * PI * 1000.0 / 48_000.0);
        assert!(
            delay_samples.abs() < 0.6,
            "sinc {rate}: delay {delay_samples:.3}"
        );
        assert!(
            db(amp / 0.5).abs() < 0.1,
            "sinc {rate}: {:.3} dB",
            db(amp / 0.5)
        );
    }
}

#[test]
fn passband_1khz_within_0_1_db() {
    for rate in RATES.into_iter().chain([47_999]) {
        let input = sine(1000.0, rate, rate as usize, 0.5);
        let out = run(&mut Resampler::new(rate).unwrap(), &input);
        let (amp, _) = tone(&out[12_000..36_000], 1000.0, 48_000.0);
        assert!(
            db(amp / 0.5).abs() < 0.1,
            "rate {rate}: 1 kHz at {:.3} dB",
            db(amp / 0.5)
        );
    }
}

#[test]
fn images_are_rejected_when_upsampling() {
    // 16 kHz → 48 kHz: a 1 kHz tone has spectral images at 15 and 17 kHz.
    for engine in [Engine::Fft, Engine::Sinc] {
        let input = sine(1000.0, 16_000, 16_000, 0.5);
        let out = run(&mut Resampler::with_engine(16_000, engine).unwrap(), &input);
        let mid = &out[12_000..36_000];
        let (signal, _) = tone(mid, 1000.0, 48_000.0);
        for image in [15_000.0, 17_000.0] {
            let (level, _) = tone(mid, image, 48_000.0);
            let rejection = db(level / signal);
            assert!(
                rejection < -60.0,
                "{engine:?}: image at {image} Hz only {rejection:.1} dB down"
            );
        }
    }
}

#[test]
fn aliases_are_rejected_when_downsampling() {
    // 96 kHz → 48 kHz: a 30 kHz tone would alias to 18 kHz.
    for engine in [Engine::Fft, Engine::Sinc] {
        let input = sine(30_000.0, 96_000, 96_000, 0.5);
        let out = run(&mut Resampler::with_engine(96_000, engine).unwrap(), &input);
        let (alias, _) = tone(&out[12_000..36_000], 18_000.0, 48_000.0);
        let rejection = db(alias / 0.5);
        assert!(
            rejection < -60.0,
            "{engine:?}: alias at 18 kHz only {rejection:.1} dB down"
        );
    }
}

#[test]
fn zero_rate_is_rejected() {
    assert!(Resampler::new(0).is_err());
}
