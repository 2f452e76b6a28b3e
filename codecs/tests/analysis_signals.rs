//! Silence detection and log-spectral distance on constructed signals.
#![allow(clippy::unwrap_used)]

use sori_codecs::analysis::{log_spectral_distance, Silence, SilenceDetector, SpectralDistance};
use std::f64::consts::PI;

const RATE: u32 = 48_000;

fn tone(seconds: f64, amp: f64) -> Vec<f32> {
    let n = (seconds * f64::from(RATE)) as usize;
    (0..n)
        .map(|i| (amp * (2.0 * PI * 440.0 * i as f64 / f64::from(RATE)).sin()) as f32)
        .collect()
}

/// Deterministic white noise in [−amp, amp].
fn noise(n: usize, amp: f32, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let u = (state >> 40) as f32 / (1u64 << 24) as f32;
            (2.0 * u - 1.0) * amp
        })
        .collect()
}

fn detect(signal: &[f32], block: usize) -> Silence {
    let mut d = SilenceDetector::new(RATE);
    for b in signal.chunks(block) {
        d.add(b);
    }
    d.finish()
}

#[test]
fn silence_at_both_ends_and_in_the_middle() {
    let mut s = vec![0f32; RATE as usize / 2]; // 500 ms
    s.extend(noise(RATE as usize / 1000 * 300, 1e-5, 1)); // 300 ms hiss at −100 dB
    s.extend(tone(1.0, 0.5));
    s.extend(vec![0f32; RATE as usize / 5]); // 200 ms gap
    s.extend(tone(1.0, 0.5));
    s.extend(vec![0f32; RATE as usize * 3 / 4]); // 750 ms
    for block in [1, 480, 1000, 100_000] {
        let got = detect(&s, block);
        assert_eq!(got.leading_ms, 800, "blocks of {block}: {got:?}");
        assert_eq!(got.trailing_ms, 750, "blocks of {block}: {got:?}");
        assert_eq!(got.total_ms, 1750, "blocks of {block}: {got:?}");
    }
}

#[test]
fn threshold_is_relative_to_the_loudest_frame_and_absolute() {
    // A quiet recording (peak −40 dBFS) with −75 dBFS room tone at the edges:
    // the room tone is under the −60 floor but only 35 dB under the speech,
    // so with the relative rule (−50 dB of the loudest) it is *not* silence…
    let mut s = noise(RATE as usize / 2, 10f32.powf(-75.0 / 20.0) * 1.732, 2);
    s.extend(tone(1.0, 0.01 * 1.414));
    s.extend(noise(
        RATE as usize / 2,
        10f32.powf(-75.0 / 20.0) * 1.732,
        3,
    ));
    assert_eq!(detect(&s, 4800).leading_ms, 0);
    // …while next to full-scale speech the same room tone is silence.
    let mut s = noise(RATE as usize / 2, 10f32.powf(-75.0 / 20.0) * 1.732, 2);
    s.extend(tone(1.0, 0.7));
    let got = detect(&s, 4800);
    assert_eq!(got.leading_ms, 500);
    assert_eq!(got.trailing_ms, 0);
}

#[test]
fn all_silent_empty_and_partial_frames() {
    assert_eq!(detect(&[0.0; 48_000], 512).leading_ms, 1000);
    assert_eq!(detect(&[0.0; 48_000], 512).total_ms, 1000);
    let empty = SilenceDetector::new(RATE).finish();
    assert_eq!(empty, Silence::default());
    // 15 ms of tone: one full frame and one partial frame, both loud.
    let got = detect(&tone(0.015, 0.5), 7);
    assert_eq!(got, Silence::default());
    let mut d = SilenceDetector::new(0);
    d.add(&[f32::NAN, f32::INFINITY, 0.0]);
    let _ = d.finish();
}

#[test]
fn sixty_minutes_in_constant_memory() {
    // The detector is a fixed-size value: no heap that grows with input.
    let mut d = SilenceDetector::new(RATE);
    let block = tone(1.0, 0.3);
    for _ in 0..3600 {
        d.add(&block);
    }
    assert_eq!(d.finish().total_ms, 0);
    assert!(std::mem::size_of::<SilenceDetector>() < 8 * 1024);
}

fn mix(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

/// A rich test signal: harmonics of 150 Hz with a slow vibrato.
fn voice_like(seconds: f64) -> Vec<f32> {
    let n = (seconds * f64::from(RATE)) as usize;
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(RATE);
            let f0 = 150.0 * (1.0 + 0.02 * (2.0 * PI * 5.0 * t).sin());
            let v: f64 = (1..40)
                .map(|h| (2.0 * PI * f0 * h as f64 * t).sin() / h as f64)
                .sum();
            (0.2 * v) as f32
        })
        .collect()
}

#[test]
fn log_spectral_distance_orders_degradations() {
    let clean = voice_like(2.0);
    assert!(log_spectral_distance(&clean, &clean, RATE).abs() < 1e-12);

    let rms = (clean.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / clean.len() as f64).sqrt()
        as f32;
    let at = |db: f32| {
        let amp = rms * 10f32.powf(db / 20.0) * 3f32.sqrt(); // uniform noise RMS = amp/√3
        mix(&clean, &noise(clean.len(), amp, 7))
    };
    let d20 = log_spectral_distance(&clean, &at(-20.0), RATE);
    let d40 = log_spectral_distance(&clean, &at(-40.0), RATE);
    eprintln!("LSD: noise −20 dB {d20:.2} dB, −40 dB {d40:.2} dB");
    assert!(d20 > d40 && d40 > 0.5, "{d20} vs {d40}");

    // Low-passed (a 2-pole moving average smears the highs away).
    let low: Vec<f32> = clean
        .windows(8)
        .map(|w| w.iter().sum::<f32>() / 8.0)
        .chain(std::iter::repeat_n(0.0, 7))
        .collect();
    let dlow = log_spectral_distance(&clean, &low, RATE);
    eprintln!("LSD: 8-tap moving average {dlow:.2} dB");
    assert!(dlow > 3.0);

    // Silence against silence is skipped, not a division by zero.
    assert_eq!(
        log_spectral_distance(&[0.0; 10_000], &[0.0; 10_000], RATE),
        0.0
    );
}

#[test]
fn streaming_equals_one_shot() {
    let a = voice_like(1.0);
    let b = mix(&a, &noise(a.len(), 0.01, 9));
    let whole = log_spectral_distance(&a, &b, RATE);
    let mut s = SpectralDistance::new(RATE);
    // Unequal block sizes on the two sides.
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let ni = (i + 700).min(a.len());
        let nj = (j + 1300).min(b.len());
        s.add(&a[i..ni], &b[j..nj]);
        i = ni;
        j = nj;
    }
    assert!(
        (s.finish() - whole).abs() < 1e-9,
        "{} vs {whole}",
        s.finish()
    );
}
