//! Decode throughput per format, from memory (no disk), as × realtime.
#![allow(clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sori_codecs::decode::Decoder;
use sori_codecs::Limits;
use std::io::Cursor;
use std::path::PathBuf;
use std::time::Instant;

const FIXTURES: [&str; 6] = [
    "speech-mono-44k-moov-after-mdat.m4a",
    "speech-stereo-44k.mp3",
    "speech-mono-48k.opus",
    "speech-stereo-44k.ogg",
    "speech-mono-22k.flac",
    "speech-mono-8k-u8.wav",
];

fn load(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("missing fixture {name}: {e}"))
}

/// Decodes the whole file; returns (frames, sample rate).
fn decode_all(bytes: &[u8]) -> (u64, u32) {
    let source = Box::new(Cursor::new(bytes.to_vec()));
    let mut decoder = Decoder::open(source, None, &Limits::default()).unwrap();
    let mut checksum = 0.0f32;
    while let Some(block) = decoder.next_block().unwrap() {
        checksum += block.first().copied().unwrap_or(0.0);
    }
    std::hint::black_box(checksum);
    (decoder.frames_decoded(), decoder.info().sample_rate)
}

fn realtime_factor(bytes: &[u8]) -> f64 {
    let (frames, rate) = decode_all(bytes);
    let runs = 20;
    let started = Instant::now();
    for _ in 0..runs {
        decode_all(bytes);
    }
    let per_run = started.elapsed().as_secs_f64() / f64::from(runs);
    frames as f64 / f64::from(rate) / per_run
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for name in FIXTURES {
        let bytes = load(name);
        let (frames, _) = decode_all(&bytes);
        println!("decode {name}: {:.0}x realtime", realtime_factor(&bytes));
        group.throughput(Throughput::Elements(frames));
        group.bench_function(name, |b| b.iter(|| decode_all(&bytes)));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
