//! Cost of the look-ahead true-peak limiter on 10 s of speech-like mono
//! 48 kHz audio (× realtime = 10 s / reported time): quiet enough never to
//! be limited (the fast path), and pushed +12 dB so it limits often.
#![allow(clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sori_codecs::limiter::Limiter;
use std::hint::black_box;

const RATE: u32 = 48_000;
const SECONDS: usize = 10;

/// Harmonics of a 140 Hz voice with a syllable envelope and pauses.
fn speech_like(peak: f32) -> Vec<f32> {
    let n = SECONDS * RATE as usize;
    let raw: Vec<f32> = (0..n)
        .map(|i| {
            let t = i as f32 / RATE as f32;
            let syllable = (std::f32::consts::PI * 4.0 * t).sin().max(0.0);
            let pause = if (t % 2.0) > 1.6 { 0.0 } else { 1.0 };
            let v = (1..12)
                .map(|h| (2.0 * std::f32::consts::PI * 140.0 * h as f32 * t).sin() / h as f32)
                .sum::<f32>();
            syllable * pause * v
        })
        .collect();
    let max = raw.iter().fold(0f32, |m, v| m.max(v.abs()));
    raw.iter().map(|v| v / max * peak).collect()
}

fn limiter(c: &mut Criterion) {
    let mut g = c.benchmark_group("limiter_mono48k_10s");
    g.throughput(Throughput::Elements((SECONDS * RATE as usize) as u64));
    g.sample_size(20);
    for (name, peak) in [("unlimited_-6dBFS", 0.5f32), ("limited_+12dB", 4.0)] {
        let input = speech_like(peak);
        let mut out = Vec::with_capacity(input.len() + 1024);
        g.bench_function(name, |b| {
            b.iter(|| {
                out.clear();
                let mut lim = Limiter::new(RATE, -1.5);
                for block in black_box(&input).chunks(960) {
                    lim.process(block, &mut out);
                }
                lim.flush(&mut out);
                lim.stats().samples_reduced
            })
        });
    }
    g.finish();
}

criterion_group!(benches, limiter);
criterion_main!(benches);
