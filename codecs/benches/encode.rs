//! libopus encoding cost: 10 s of 48 kHz mono at 32 kbit/s VOIP, complexity 10 and 5.
//! Realtime factor = 10 s / reported time.
#![allow(clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sori_codecs::encode::OpusEncoder;
use sori_codecs::Profile;

fn speech_like(samples: usize) -> Vec<f32> {
    let mut phase = 0.0f64;
    (0..samples)
        .map(|i| {
            let t = i as f64 / 48_000.0;
            let f0 = 120.0 + 30.0 * (2.0 * std::f64::consts::PI * 0.7 * t).sin();
            phase += 2.0 * std::f64::consts::PI * f0 / 48_000.0;
            let v: f64 = (1..=12).map(|k| (phase * k as f64).sin() / k as f64).sum();
            let envelope = 0.5 + 0.5 * (2.0 * std::f64::consts::PI * 3.0 * t).sin();
            (0.2 * v * envelope) as f32
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let input = speech_like(10 * 48_000);
    let mut group = c.benchmark_group("opus_encode_10s");
    group.throughput(Throughput::Elements(input.len() as u64));
    group.sample_size(10);
    for complexity in [10u8, 5] {
        let profile = Profile {
            complexity,
            ..Profile::default()
        };
        group.bench_function(format!("complexity_{complexity}"), |b| {
            b.iter(|| {
                let mut encoder = OpusEncoder::new(&profile).unwrap();
                let mut bytes = 0usize;
                let mut sink = |p: &[u8], _: u32| {
                    bytes += p.len();
                    Ok(())
                };
                for chunk in input.chunks(4096) {
                    encoder.push(chunk, &mut sink).unwrap();
                }
                encoder.finish(&mut sink).unwrap();
                bytes
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
