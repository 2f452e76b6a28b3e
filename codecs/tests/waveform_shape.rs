//! The waveform JSON (audiowaveform format) and the 100 feed bars.
#![allow(clippy::unwrap_used)]

use sori_codecs::waveform::WaveformBuilder;

fn sine(samples: usize, amplitude: f32) -> Vec<f32> {
    (0..samples)
        .map(|i| amplitude * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 48_000.0).sin())
        .collect()
}

fn build(samples: &[f32], chunk: usize) -> (sori_codecs::waveform::AudiowaveformJson, Vec<u8>) {
    let mut builder = WaveformBuilder::new(48_000);
    for c in samples.chunks(chunk) {
        builder.add(c);
    }
    builder.finish()
}

#[test]
fn json_has_exactly_the_audiowaveform_fields() {
    let (json, _) = build(&sine(48_000, 0.5), 4096);
    let value = serde_json::to_value(&json).unwrap();
    let mut keys: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "bits",
            "channels",
            "data",
            "length",
            "sample_rate",
            "samples_per_pixel",
            "version"
        ]
    );
    assert_eq!(value["version"], 2);
    assert_eq!(value["channels"], 1);
    assert_eq!(value["bits"], 8);
    assert_eq!(value["sample_rate"], 48_000);
    assert_eq!(value["samples_per_pixel"], 480);
    assert_eq!(value["length"], 100);
    assert_eq!(value["data"].as_array().unwrap().len(), 200);
}

#[test]
fn a_sine_gives_its_amplitude_and_constant_bars() {
    let (json, bars) = build(&sine(3 * 48_000, 0.5), 1000);
    assert_eq!(json.length, 300);
    for pair in json.data.chunks(2) {
        assert!((i32::from(pair[0]) + 64).abs() <= 1, "min {}", pair[0]);
        assert!((i32::from(pair[1]) - 64).abs() <= 1, "max {}", pair[1]);
    }
    assert_eq!(bars.len(), 100);
    // RMS of a 0.5 sine: −9.03 dBFS → (50 − 9.03) / 50 × 31 = 25.4 → 25.
    assert!(bars.iter().all(|&b| b == 25), "{bars:?}");
}

#[test]
fn silence_is_all_zeros() {
    let (json, bars) = build(&vec![0.0; 48_000], 333);
    assert!(json.data.iter().all(|&v| v == 0));
    assert!(bars.iter().all(|&b| b == 0));
    let (json, bars) = build(&[], 1);
    assert_eq!(json.length, 0);
    assert!(json.data.is_empty());
    assert_eq!(bars, vec![0; 100]);
}

#[test]
fn silence_then_tone_shows_in_the_bars() {
    let mut clip = vec![0.0; 48_000];
    clip.extend(sine(48_000, 0.5));
    let (json, bars) = build(&clip, 960);
    assert!(bars[..50].iter().all(|&b| b == 0), "{bars:?}");
    assert!(bars[50..].iter().all(|&b| b == 25), "{bars:?}");
    assert!(json.data[..200].iter().all(|&v| v == 0));
}

#[test]
fn very_quiet_audio_never_shows_all_zeros() {
    let (_, bars) = build(&sine(48_000, 0.001), 960); // −63 dBFS RMS
    assert!(bars.iter().all(|&b| b == 1), "{bars:?}");
}

#[test]
fn a_short_clip_still_has_100_bars() {
    let (json, bars) = build(&sine(1_000, 0.5), 7); // about 2 pixels
    assert_eq!(json.length, 3);
    assert_eq!(bars.len(), 100);
    assert!(bars.iter().all(|&b| b > 20), "{bars:?}");
}

#[test]
fn long_clips_are_capped_near_2000_pixels() {
    // 10 minutes of a quiet tone, streamed in 20 ms chunks.
    let chunk = sine(960, 0.25);
    let mut builder = WaveformBuilder::new(48_000);
    for _ in 0..(10 * 60 * 50) {
        builder.add(&chunk);
    }
    let (json, bars) = builder.finish();
    assert!(
        json.length <= 2000 && json.length >= 1000,
        "{}",
        json.length
    );
    assert_eq!(json.samples_per_pixel % 480, 0);
    assert_eq!(
        u64::from(json.length),
        (10 * 60 * 48_000u64).div_ceil(u64::from(json.samples_per_pixel))
    );
    assert_eq!(bars.len(), 100);
    // 20 s is the longest clip that keeps 100 px/s.
    let (json, _) = build(&vec![0.1; 20 * 48_000], 4800);
    assert_eq!((json.samples_per_pixel, json.length), (480, 2000));
    let (json, _) = build(&vec![0.1; 20 * 48_000 + 1], 4800);
    assert_eq!(json.samples_per_pixel, 960);
}
