//! The encode with the decoded true peak held (the checker thread decoding
//! and scanning every packet, frames re-encoded around overshoots) against
//! the plain libopus encode, on 10 s of speech-like signal peaking at the
//! limit: the guard's cost in wall time.
#![allow(clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sori_codecs::encode::OpusEncoder;
use sori_codecs::guard::GuardedEncoder;
use sori_codecs::Profile;

fn speech_like(samples: usize) -> Vec<f32> {
    let raw: Vec<f32> = (0..samples)
        .map(|i| {
            let t = i as f32 / 48_000.0;
            let syllable = (t * 4.0).fract();
            let env = if syllable < 0.6 {
                (-syllable * 5.0).exp()
            } else {
                0.0
            };
            let w = 2.0 * std::f32::consts::PI * 140.0 * t;
            env * (w.sin() + 0.6 * (3.0 * w).sin() + 0.4 * (7.0 * w).sin())
        })
        .collect();
    let peak = raw.iter().fold(0f32, |m, s| m.max(s.abs()));
    // Peaks at −2.2 dBFS: where the limiter leaves them.
    raw.iter().map(|s| s * 0.776 / peak).collect()
}

fn bench(c: &mut Criterion) {
    let input = speech_like(10 * 48_000);
    let profile = Profile::default();
    let mut group = c.benchmark_group("guarded_encode_10s");
    group.throughput(Throughput::Elements(input.len() as u64));
    group.sample_size(10);
    group.bench_function("plain", |b| {
        b.iter(|| {
            let mut encoder = OpusEncoder::new(&profile).unwrap();
            let mut sink = |_: &[u8], _: u32| Ok(());
            for chunk in input.chunks(8192) {
                encoder.push(chunk, &mut sink).unwrap();
            }
            encoder.finish(&mut sink).unwrap()
        })
    });
    group.bench_function("guarded", |b| {
        b.iter(|| {
            let mut guard = GuardedEncoder::new(&profile, -1.8).unwrap();
            let mut sink = |_: sori_codecs::guard::Committed<'_>| Ok(());
            for chunk in input.chunks(8192) {
                guard.push(chunk, &mut sink).unwrap();
            }
            guard.finish(&mut sink).unwrap().2
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
