//! Resampler throughput (FFT vs sinc engine), fed in decoder-sized blocks,
//! as × realtime.
#![allow(clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sori_codecs::resample::{Engine, Resampler};
use std::time::Instant;

const SECONDS: usize = 10;
const BLOCK: usize = 1152;

fn signal(rate: u32) -> Vec<f32> {
    let mut state = 1u32;
    (0..rate as usize * SECONDS)
        .map(|n| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let noise = (state >> 9) as f32 / (1u32 << 23) as f32 - 0.5;
            0.3 * (n as f32 * 0.05).sin() + 0.1 * noise
        })
        .collect()
}

fn run(resampler: &mut Resampler, input: &[f32], out: &mut Vec<f32>) {
    out.clear();
    for block in input.chunks(BLOCK) {
        resampler.process(block, out).unwrap();
    }
    resampler.finish(out).unwrap();
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("resample");
    for rate in [44_100u32, 16_000] {
        let input = signal(rate);
        for engine in [Engine::Fft, Engine::Sinc] {
            let mut resampler = Resampler::with_engine(rate, engine).unwrap();
            let mut out = Vec::with_capacity(48_000 * (SECONDS + 1));
            let runs = 10;
            let started = Instant::now();
            for _ in 0..runs {
                run(&mut resampler, &input, &mut out);
            }
            let per_run = started.elapsed().as_secs_f64() / f64::from(runs);
            println!(
                "resample {rate}->48000 {engine:?}: {:.0}x realtime",
                SECONDS as f64 / per_run
            );
            group.throughput(Throughput::Elements(input.len() as u64));
            group.bench_function(format!("{rate}_{engine:?}"), |b| {
                b.iter(|| run(&mut resampler, &input, &mut out))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
