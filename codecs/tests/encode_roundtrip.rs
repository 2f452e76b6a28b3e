//! libopus round trip through our own encoder and decoder wrappers: exact
//! lengths for every frame size, pre-skip = lookahead, and a decoded signal
//! that matches the input.
#![allow(clippy::unwrap_used)]

use sori_codecs::encode::{OpusDecoder, OpusEncoder};
use sori_codecs::profile::Application;
use sori_codecs::Profile;

fn tone(samples: usize, freq: f64, amplitude: f64) -> Vec<f32> {
    (0..samples)
        .map(|i| {
            (amplitude * (2.0 * std::f64::consts::PI * freq * i as f64 / 48_000.0).sin()) as f32
        })
        .collect()
}

/// Encodes in uneven chunks, decodes with `OpusDecoder`; returns (decoded, packets).
fn round_trip(profile: &Profile, input: &[f32]) -> (Vec<f32>, usize) {
    let mut encoder = OpusEncoder::new(profile).unwrap();
    let mut decoder = OpusDecoder::new(encoder.pre_skip()).unwrap();
    let mut packets = Vec::new();
    let frame = encoder.frame_samples() as u32;
    let mut sink = |p: &[u8], n: u32| {
        assert_eq!(n, frame);
        packets.push(p.to_vec());
        Ok(())
    };
    for chunk in input.chunks(777) {
        encoder.push(chunk, &mut sink).unwrap();
    }
    let total = encoder.finish(&mut sink).unwrap();
    assert_eq!(total, input.len() as u64);
    let expected_packets = (total + u64::from(encoder.pre_skip())).div_ceil(u64::from(frame));
    assert_eq!(packets.len() as u64, expected_packets);
    decoder.set_total_samples(total);
    let mut out = Vec::new();
    for p in &packets {
        decoder.decode(p, &mut out).unwrap();
    }
    (out, packets.len())
}

fn snr_db(reference: &[f32], decoded: &[f32]) -> f64 {
    let signal: f64 = reference.iter().map(|&x| f64::from(x).powi(2)).sum();
    let noise: f64 = reference
        .iter()
        .zip(decoded)
        .map(|(&a, &b)| f64::from(a - b).powi(2))
        .sum();
    10.0 * (signal / noise.max(1e-20)).log10()
}

/// The lag (decoded relative to input, in samples) with the best correlation.
fn best_lag(a: &[f32], b: &[f32]) -> i32 {
    (-40..=40)
        .max_by(|&x, &y| lagged(a, b, x).total_cmp(&lagged(a, b, y)))
        .unwrap()
}

fn lagged(a: &[f32], b: &[f32], lag: i32) -> f64 {
    let n = a.len() - 100;
    let b = &b[(50 + lag) as usize..];
    correlation(&a[50..n], &b[..n - 50])
}

fn correlation(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x) * f64::from(y))
        .sum();
    let na: f64 = a.iter().map(|&x| f64::from(x).powi(2)).sum();
    let nb: f64 = b.iter().map(|&x| f64::from(x).powi(2)).sum();
    dot / (na * nb).sqrt()
}

#[test]
fn pre_skip_is_the_encoder_lookahead() {
    let voip = OpusEncoder::new(&Profile::default()).unwrap();
    // libopus at 48 kHz: Fs/400 + Fs/250 = 312 samples for VOIP and AUDIO.
    assert_eq!(voip.pre_skip(), 312);
    let audio = OpusEncoder::new(&Profile {
        application: Application::Audio,
        ..Profile::default()
    })
    .unwrap();
    assert_eq!(audio.pre_skip(), 312);
    assert_eq!(voip.frame_samples(), 960);
}

#[test]
fn a_tone_survives_32_kbps_aligned_and_exact_in_length() {
    // A pure tone is music to Opus: the audio application codes it with
    // CELT, which keeps its waveform.
    let audio = Profile {
        application: Application::Audio,
        ..Profile::default()
    };
    let input = tone(2 * 48_000 + 17, 440.0, 0.5);
    let (decoded, _) = round_trip(&audio, &input);
    assert_eq!(decoded.len(), input.len());
    // Skip the first 20 ms (encoder warm-up) when comparing.
    let snr = snr_db(&input[960..], &decoded[960..]);
    let corr = correlation(&input[960..], &decoded[960..]);
    let lag = best_lag(&input[960..], &decoded[960..]);
    println!("440 Hz at 32 kbit/s, audio: SNR {snr:.1} dB, correlation {corr:.4}, best lag {lag}");
    // Without pre-skip trimming the lag would be 312.
    assert!(
        lag.abs() <= 8,
        "pre-skip must align the output with the input: lag {lag}"
    );
    assert!(corr > 0.95, "correlation {corr}");
    assert!(snr > 10.0, "SNR {snr} dB");
}

#[test]
fn the_voice_profile_codes_speech_style_and_stays_aligned() {
    // The voip profile keeps Opus on speech coding (SILK) throughout, which
    // models a pure tone as a voice: a few samples of phase shift and a
    // lower SNR, but the same length and alignment.
    let input = tone(2 * 48_000 + 17, 440.0, 0.5);
    let (decoded, _) = round_trip(&Profile::default(), &input);
    assert_eq!(decoded.len(), input.len());
    let lag = best_lag(&input[960..], &decoded[960..]);
    let aligned = lagged(&input[960..], &decoded[960..], lag);
    println!("440 Hz at 32 kbit/s, voip: correlation at lag {lag}: {aligned:.4}");
    assert!(lag.abs() <= 8, "lag {lag}");
    assert!(aligned > 0.9, "correlation at the best lag {aligned}");
}

#[test]
fn every_frame_size_and_cbr_round_trip_exactly() {
    let input = tone(48_000 + 333, 300.0, 0.3);
    for frame_ms in [10, 20, 40, 60] {
        for cbr in [false, true] {
            let profile = Profile {
                frame_ms,
                cbr,
                complexity: 5,
                ..Profile::default()
            };
            let (decoded, packets) = round_trip(&profile, &input);
            assert_eq!(decoded.len(), input.len(), "{frame_ms} ms cbr={cbr}");
            let corr = correlation(&input[2880..], &decoded[2880..]);
            println!("{frame_ms} ms cbr={cbr}: correlation {corr:.4}");
            assert!(
                corr > 0.85,
                "{frame_ms} ms cbr={cbr}: correlation {corr}, {packets} packets"
            );
        }
    }
}

#[test]
fn edge_lengths_decode_to_exactly_what_was_pushed() {
    for len in [0usize, 1, 647, 648, 649, 960, 961, 1920] {
        let input = tone(len, 200.0, 0.2);
        let (decoded, packets) = round_trip(&Profile::default(), &input);
        assert_eq!(decoded.len(), len, "{len} samples, {packets} packets");
    }
}

#[test]
fn invalid_settings_are_refused_up_front() {
    for profile in [
        Profile {
            frame_ms: 25,
            ..Profile::default()
        },
        Profile {
            complexity: 11,
            ..Profile::default()
        },
        Profile {
            bitrate_bps: 1_000,
            ..Profile::default()
        },
    ] {
        assert!(OpusEncoder::new(&profile).is_err(), "{profile:?}");
    }
}

#[test]
fn finish_is_final() {
    let mut encoder = OpusEncoder::new(&Profile::default()).unwrap();
    let mut count = 0;
    let mut sink = |_: &[u8], _: u32| {
        count += 1;
        Ok(())
    };
    encoder.push(&[0.1; 100], &mut sink).unwrap();
    assert_eq!(encoder.finish(&mut sink).unwrap(), 100);
    assert_eq!(encoder.finish(&mut sink).unwrap(), 100);
    assert!(encoder.push(&[0.0; 10], &mut sink).is_err());
    assert_eq!(count, 1);
}
