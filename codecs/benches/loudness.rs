//! Cost of loudness measurement per ebur128 mode, in time per 10 s of audio
//! (× realtime = 10 s / reported time). Also the crate's own true-peak
//! scanner against ebur128's true-peak mode.
#![allow(clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ebur128::{EbuR128, Mode};
use sori_codecs::loudness::{LoudnessMeter, TruePeakScanner};
use std::hint::black_box;

const SECONDS: usize = 10;

/// Speech-like test signal: harmonics with a syllable-rate envelope.
fn signal(rate: u32, channels: usize) -> Vec<f32> {
    let n = SECONDS * rate as usize;
    let mut out = Vec::with_capacity(n * channels);
    for i in 0..n {
        let t = i as f32 / rate as f32;
        let env = (std::f32::consts::PI * 4.0 * t).sin().abs();
        let v = (1..8)
            .map(|h| (2.0 * std::f32::consts::PI * 140.0 * h as f32 * t).sin() / h as f32)
            .sum::<f32>();
        for c in 0..channels {
            out.push(0.3 * env * v * (1.0 - 0.1 * c as f32));
        }
    }
    out
}

fn run_mode(samples: &[f32], channels: u32, rate: u32, mode: Mode) -> f64 {
    let mut m = EbuR128::new(channels, rate, mode | Mode::HISTOGRAM).unwrap();
    for block in samples.chunks(4800 * channels as usize) {
        m.add_frames_f32(block).unwrap();
    }
    m.loudness_global().unwrap_or(0.0)
}

fn modes(c: &mut Criterion) {
    for (name, rate, channels) in [("mono48k", 48_000u32, 1u32), ("stereo44k1", 44_100, 2)] {
        let samples = signal(rate, channels as usize);
        let mut g = c.benchmark_group(format!("loudness_{name}_10s"));
        g.throughput(Throughput::Elements((SECONDS * rate as usize) as u64));
        g.sample_size(20);
        for (mode_name, mode) in [
            ("I", Mode::I),
            ("I+LRA", Mode::I | Mode::LRA),
            ("I+LRA+TP", Mode::I | Mode::LRA | Mode::TRUE_PEAK),
            ("TP_only", Mode::TRUE_PEAK),
        ] {
            g.bench_function(mode_name, |b| {
                b.iter(|| run_mode(black_box(&samples), channels, rate, mode))
            });
        }
        g.bench_function("LoudnessMeter", |b| {
            b.iter(|| {
                let mut m = LoudnessMeter::new(channels as u16, rate).unwrap();
                for block in samples.chunks(4800 * channels as usize) {
                    m.add(block).unwrap();
                }
                m.finish()
            })
        });
        if channels == 1 {
            g.bench_function("TruePeakScanner", |b| {
                b.iter(|| {
                    let mut s = TruePeakScanner::new();
                    let mut max = 0f32;
                    for block in samples.chunks(4800) {
                        max = max.max(s.max_peak(black_box(block)));
                    }
                    max
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, modes);
criterion_main!(benches);
