//! The three muxers on 60 s of pre-encoded packets (in memory): should be
//! negligible next to encoding. Realtime factor = 60 s / reported time.
#![allow(clippy::unwrap_used)]

use std::io::Cursor;

use criterion::{criterion_group, criterion_main, Criterion};
use sori_codecs::caf::CafOpusWriter;
use sori_codecs::encode::OpusEncoder;
use sori_codecs::mux::{OpusMuxer, OpusStreamHeader};
use sori_codecs::ogg::OggOpusWriter;
use sori_codecs::webm::WebmOpusWriter;
use sori_codecs::Profile;

fn packets(seconds: usize) -> (Vec<Vec<u8>>, u64, OpusStreamHeader) {
    let profile = Profile {
        complexity: 0,
        ..Profile::default()
    };
    let mut encoder = OpusEncoder::new(&profile).unwrap();
    let input: Vec<f32> = (0..seconds * 48_000)
        .map(|i| 0.3 * (i as f32 * 0.05).sin())
        .collect();
    let mut out = Vec::new();
    let mut sink = |p: &[u8], _: u32| {
        out.push(p.to_vec());
        Ok(())
    };
    encoder.push(&input, &mut sink).unwrap();
    let total = encoder.finish(&mut sink).unwrap();
    let header = OpusStreamHeader::for_profile(&profile, encoder.pre_skip(), 48_000);
    (out, total, header)
}

fn run(muxer: &mut dyn OpusMuxer, packets: &[Vec<u8>], total: u64) -> u64 {
    for p in packets {
        muxer.write_packet(p, 960).unwrap();
    }
    muxer.finish(total).unwrap()
}

fn bench(c: &mut Criterion) {
    let (packets, total, header) = packets(60);
    let mut group = c.benchmark_group("mux_60s");
    group.bench_function("ogg", |b| {
        b.iter(|| {
            let mut w = OggOpusWriter::new(Vec::with_capacity(300_000), &header, 7).unwrap();
            run(&mut w, &packets, total)
        })
    });
    group.bench_function("caf", |b| {
        b.iter(|| {
            let out = Cursor::new(Vec::with_capacity(300_000));
            let mut w = CafOpusWriter::new(out, &header, 960).unwrap();
            run(&mut w, &packets, total)
        })
    });
    group.bench_function("webm", |b| {
        b.iter(|| {
            let out = Cursor::new(Vec::with_capacity(300_000));
            let mut w = WebmOpusWriter::new(out, &header).unwrap();
            run(&mut w, &packets, total)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
