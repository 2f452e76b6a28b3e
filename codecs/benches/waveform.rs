//! Waveform + bars on 60 s of 48 kHz mono in 20 ms chunks.
//! Realtime factor = 60 s / reported time.
#![allow(clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sori_codecs::waveform::WaveformBuilder;

fn bench(c: &mut Criterion) {
    let input: Vec<f32> = (0..60 * 48_000)
        .map(|i| 0.3 * (i as f32 * 0.05).sin())
        .collect();
    let mut group = c.benchmark_group("waveform_60s");
    group.throughput(Throughput::Elements(input.len() as u64));
    group.bench_function("build", |b| {
        b.iter(|| {
            let mut builder = WaveformBuilder::new(48_000);
            for chunk in input.chunks(960) {
                builder.add(chunk);
            }
            builder.finish()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
