//! Downmix on real decoded layouts: the BS.775 coefficients, LFE dropped.
#![allow(clippy::unwrap_used)]

use sori_codecs::decode::Decoder;
use sori_codecs::downmix::{Downmixer, MINUS_3DB};
use sori_codecs::Limits;
use std::path::PathBuf;

fn decode(name: &str) -> (Vec<f32>, Downmixer, usize) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(name);
    let mut d = Decoder::open_path(&path, &Limits::default()).unwrap();
    let downmix = Downmixer::new(&d.info().speakers);
    let channels = usize::from(d.info().channels);
    let mut all = Vec::new();
    while let Some(block) = d.next_block().unwrap() {
        all.extend_from_slice(block);
    }
    (all, downmix, channels)
}

#[test]
fn five_one_fixture_folds_per_bs775_without_lfe() {
    // The fixture: C = s, L = R = 0.5 s, Ls = Rs = 0.25 s, LFE = a 60 Hz tone.
    let (all, mut downmix, channels) = decode("speech-5.1-48k.wav");
    assert_eq!(channels, 6);
    let mut mono = Vec::new();
    downmix.process(&all, &mut mono);
    assert_eq!(mono.len(), all.len() / 6);
    // mono = (L' + R')/2 with L' = L + 0.7071 C + 0.7071 Ls: 0.5 + 0.7071 + 0.7071·0.25.
    let gain = 0.5 + MINUS_3DB + MINUS_3DB * 0.25;
    let mut worst = 0.0f32;
    let mut lfe_energy = 0.0f32;
    for (frame, m) in all.chunks_exact(6).zip(&mono) {
        worst = worst.max((m - gain * frame[2]).abs());
        lfe_energy += frame[3] * frame[3];
    }
    assert!(lfe_energy > 1.0, "fixture must carry an LFE tone");
    // 16-bit quantization of five channels: a few LSBs at most.
    assert!(worst < 2e-4, "downmix deviates by {worst}");
}

#[test]
fn stereo_fixture_folds_to_the_mean() {
    let (all, mut downmix, channels) = decode("speech-stereo-48k-s24.wav");
    assert_eq!(channels, 2);
    let mut mono = Vec::new();
    downmix.process(&all, &mut mono);
    for (frame, m) in all.chunks_exact(2).zip(&mono) {
        assert!((m - (frame[0] + frame[1]) / 2.0).abs() < 1e-6);
    }
}
