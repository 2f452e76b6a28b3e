//! The gain planner's cost: recording 10 s of mono at 44.1 kHz into its
//! per-millisecond levels, then planning the gain (the limiter simulated
//! over the record for a dozen candidate gains).
#![allow(clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sori_codecs::gain::{plan, LevelRecorder};
use sori_codecs::Profile;
use std::hint::black_box;

/// Harmonics with a syllable envelope, peaky enough to need limiting.
fn speech_like(rate: u32, seconds: usize) -> Vec<f32> {
    (0..seconds * rate as usize)
        .map(|i| {
            let t = i as f32 / rate as f32;
            let syllable = (t * 4.0).fract();
            let env = if syllable < 0.6 {
                (-syllable * 5.0).exp()
            } else {
                0.0
            };
            let v: f32 = (1..10)
                .map(|h| (2.0 * std::f32::consts::PI * 150.0 * h as f32 * t).sin() / h as f32)
                .sum();
            0.05 * env * v
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let rate = 44_100;
    let input = speech_like(rate, 10);
    let mut group = c.benchmark_group("gain_10s");
    group.throughput(Throughput::Elements(input.len() as u64));
    group.sample_size(20);
    group.bench_function("record_levels", |b| {
        b.iter(|| {
            let mut recorder = LevelRecorder::new(rate);
            for chunk in input.chunks(4096) {
                recorder.add(chunk);
            }
            recorder.finish()
        })
    });
    let mut recorder = LevelRecorder::new(rate);
    recorder.add(&input);
    let history = recorder.finish();
    let lufs = history.loudness(0.0, None);
    group.bench_function("plan", |b| {
        b.iter(|| plan(&Profile::default(), black_box(lufs), &history, -2.2, 0.0))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
