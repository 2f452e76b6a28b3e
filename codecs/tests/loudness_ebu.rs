//! EBU Tech 3341 (loudness, true peak) and Tech 3342 (loudness range) cases,
//! rebuilt from their published definitions, measured by `LoudnessMeter`.
#![allow(clippy::unwrap_used)]

use ebur128::Channel;
use sori_codecs::loudness::{Loudness, LoudnessMeter, TruePeakScanner};
use std::f64::consts::PI;

const RATE: u32 = 48_000;

/// Appends `seconds` of a sine at `freq` with peak level `dbfs` and initial
/// `phase_deg`, to every one of `channels` interleaved channels.
fn push_tone(
    out: &mut Vec<f32>,
    channels: usize,
    rate: u32,
    freq: f64,
    dbfs: f64,
    phase_deg: f64,
    seconds: f64,
) {
    let amp = 10f64.powf(dbfs / 20.0);
    let n = (seconds * f64::from(rate)).round() as usize;
    let phase = phase_deg.to_radians();
    for i in 0..n {
        let v = (amp * (2.0 * PI * freq * i as f64 / f64::from(rate) + phase).sin()) as f32;
        out.extend(std::iter::repeat_n(v, channels));
    }
}

/// Stereo 1 kHz tone sequence: (level dBFS, seconds) segments.
fn stereo_sequence(segments: &[(f64, f64)]) -> Vec<f32> {
    let mut out = Vec::new();
    for &(db, secs) in segments {
        push_tone(&mut out, 2, RATE, 1000.0, db, 0.0, secs);
    }
    out
}

fn measure(channels: u16, rate: u32, samples: &[f32]) -> Loudness {
    let mut m = LoudnessMeter::new(channels, rate).unwrap();
    // Feed in odd-sized blocks, as a decoder would.
    for block in samples.chunks(4801 * usize::from(channels)) {
        m.add(block).unwrap();
    }
    m.finish()
}

fn assert_near(actual: f64, expected: f64, tol: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= tol,
        "{what}: got {actual:.3}, expected {expected} ± {tol}"
    );
}

#[test]
fn tech3341_case1_and_2_steady_tones() {
    let l = measure(2, RATE, &stereo_sequence(&[(-23.0, 20.0)]));
    assert_near(l.integrated_lufs, -23.0, 0.1, "3341 #1");
    let l = measure(2, RATE, &stereo_sequence(&[(-33.0, 20.0)]));
    assert_near(l.integrated_lufs, -33.0, 0.1, "3341 #2");
}

#[test]
fn tech3341_case3_to_5_gating() {
    let case3 = stereo_sequence(&[(-36.0, 10.0), (-23.0, 60.0), (-36.0, 10.0)]);
    assert_near(measure(2, RATE, &case3).integrated_lufs, -23.0, 0.1, "#3");
    let case4 = stereo_sequence(&[
        (-72.0, 10.0),
        (-36.0, 10.0),
        (-23.0, 60.0),
        (-36.0, 10.0),
        (-72.0, 10.0),
    ]);
    assert_near(measure(2, RATE, &case4).integrated_lufs, -23.0, 0.1, "#4");
    let case5 = stereo_sequence(&[(-26.0, 20.0), (-20.0, 20.1), (-26.0, 20.0)]);
    assert_near(measure(2, RATE, &case5).integrated_lufs, -23.0, 0.1, "#5");
}

#[test]
fn tech3341_case6_five_channels_with_surround_weighting() {
    // L, R at −28 dBFS, C at −24, Ls, Rs at −30: the surrounds count +1.5 dB.
    let levels = [-28.0, -28.0, -24.0, -30.0, -30.0];
    let amps: Vec<f64> = levels.iter().map(|d| 10f64.powf(d / 20.0)).collect();
    let n = 20 * RATE as usize;
    let mut samples = Vec::with_capacity(n * 5);
    for i in 0..n {
        let s = (2.0 * PI * 1000.0 * i as f64 / f64::from(RATE)).sin();
        samples.extend(amps.iter().map(|a| (a * s) as f32));
    }
    assert_near(measure(5, RATE, &samples).integrated_lufs, -23.0, 0.1, "#6");

    // The same with a silent LFE in 5.1 order (L R C LFE Ls Rs).
    let mut six = Vec::with_capacity(n * 6);
    for frame in samples.chunks(5) {
        six.extend_from_slice(&frame[..3]);
        six.push(0.9); // a loud LFE must not count
        six.extend_from_slice(&frame[3..]);
    }
    assert_near(measure(6, RATE, &six).integrated_lufs, -23.0, 0.1, "#6 5.1");
}

/// Sine at `fs / divisor` with the given phase, whose true peak is
/// `true_peak_db`, two seconds, stereo, faded in and out over 20 ms (an
/// abrupt start would ring above the sine's own peak).
fn true_peak_case(divisor: f64, phase_deg: f64, true_peak_db: f64) -> Vec<f32> {
    let mut out = Vec::new();
    let freq = f64::from(RATE) / divisor;
    push_tone(&mut out, 2, RATE, freq, true_peak_db, phase_deg, 2.0);
    let frames = out.len() / 2;
    let fade = RATE as usize / 50;
    for i in 0..fade {
        let g = (0.5 - 0.5 * (PI * i as f64 / fade as f64).cos()) as f32;
        for c in 0..2 {
            out[2 * i + c] *= g;
            out[2 * (frames - 1 - i) + c] *= g;
        }
    }
    out
}

fn assert_true_peak(samples: &[f32], expected: f64, what: &str) {
    let tp = measure(2, RATE, samples).true_peak_dbtp;
    eprintln!("{what}: {tp:.3} dBTP");
    assert!(
        (expected - 0.4..=expected + 0.2).contains(&tp),
        "{what}: true peak {tp:.3} dBTP, expected {expected} +0.2/−0.4"
    );
    // The meter's own scanner agrees with ebur128's true-peak mode to 0.05 dB.
    let mut reference = ebur128::EbuR128::new(2, RATE, ebur128::Mode::TRUE_PEAK).unwrap();
    reference.add_frames_f32(samples).unwrap();
    let theirs = reference
        .true_peak(0)
        .unwrap()
        .max(reference.true_peak(1).unwrap());
    let theirs_db = 20.0 * theirs.log10();
    assert!(
        (theirs_db - tp).abs() <= 0.05,
        "{what}: ours {tp:.3} vs ebur128 {theirs_db:.3}"
    );
    // And the scanner on its own (as the limiter uses it) says the same.
    let mono: Vec<f32> = samples.iter().step_by(2).copied().collect();
    let mut scanner = TruePeakScanner::new();
    let alone = f64::from(scanner.max_peak(&mono).max(scanner.flush()));
    assert!((20.0 * alone.log10() - tp).abs() <= 0.01);
}

#[test]
fn tech3341_case15_to_19_true_peak() {
    assert_true_peak(&true_peak_case(4.0, 0.0, -6.0), -6.0, "#15 fs/4 0°");
    assert_true_peak(&true_peak_case(4.0, 45.0, -6.0), -6.0, "#16 fs/4 45°");
    assert_true_peak(&true_peak_case(6.0, 60.0, -6.0), -6.0, "#17 fs/6 60°");
    assert_true_peak(&true_peak_case(8.0, 67.5, -6.0), -6.0, "#18 fs/8 67.5°");
    // #19: fs/4 at 45° whose *samples* reach 0 dBFS: the wave peaks at +3.01.
    let case19 = true_peak_case(4.0, 45.0, 20.0 * 2f64.sqrt().log10());
    let sample_peak = case19.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!((sample_peak - 1.0).abs() < 1e-6);
    assert_true_peak(&case19, 3.0, "#19 fs/4 45° 0 dBFS samples");
}

#[test]
fn tech3342_loudness_range_cases() {
    let cases: [(&[(f64, f64)], f64); 4] = [
        (&[(-20.0, 20.0), (-30.0, 20.0)], 10.0),
        (&[(-20.0, 20.0), (-15.0, 20.0)], 5.0),
        (&[(-40.0, 20.0), (-20.0, 20.0)], 20.0),
        (
            &[
                (-50.0, 20.0),
                (-35.0, 20.0),
                (-20.0, 20.0),
                (-35.0, 20.0),
                (-50.0, 20.0),
            ],
            15.0,
        ),
    ];
    for (i, (segments, expected)) in cases.iter().enumerate() {
        let l = measure(2, RATE, &stereo_sequence(segments));
        assert_near(
            l.loudness_range_lu,
            *expected,
            1.0,
            &format!("3342 #{}", i + 1),
        );
    }
}

#[test]
fn mono_is_measured_as_dual_mono() {
    let mut mono = Vec::new();
    push_tone(&mut mono, 1, RATE, 1000.0, -23.0, 0.0, 20.0);
    let dual = measure(1, RATE, &mono);
    assert_near(dual.integrated_lufs, -23.0, 0.1, "dual mono");

    let stereo = measure(2, RATE, &stereo_sequence(&[(-23.0, 20.0)]));
    assert_near(
        dual.integrated_lufs,
        stereo.integrated_lufs,
        0.01,
        "mono vs stereo",
    );

    let mut plain = LoudnessMeter::with_channel_map(1, RATE, Some(&[Channel::Center])).unwrap();
    plain.add(&mono).unwrap();
    assert!(!plain.is_dual_mono());
    let diff = dual.integrated_lufs - plain.finish().integrated_lufs;
    // Two readings, each quantized to ebur128's 0.1 LU histogram bins.
    assert_near(diff, 3.01, 0.1, "dual mono − plain mono");
}

#[test]
fn k_weighting_holds_at_every_supported_rate() {
    // A 1 kHz tone reads the same at every rate (K-weighting is ~+0.7 dB at
    // 1 kHz and the meter computes its coefficients per rate); a 100 Hz tone
    // too (the RLB high-pass matters there).
    for rate in [8_000, 16_000, 22_050, 44_100, 48_000, 96_000] {
        for freq in [1000.0, 100.0] {
            let mut s = Vec::new();
            push_tone(&mut s, 2, rate, freq, -23.0, 0.0, 10.0);
            let l = measure(2, rate, &s);
            eprintln!("{freq} Hz @ {rate}: {:.3} LUFS", l.integrated_lufs);
            let reference = {
                let mut s48 = Vec::new();
                push_tone(&mut s48, 2, RATE, freq, -23.0, 0.0, 10.0);
                measure(2, RATE, &s48).integrated_lufs
            };
            // ebur128's histogram quantizes each reading to 0.1 LU bins, so
            // two readings of the same level may differ by one bin; at 8 kHz
            // the bilinear K-weighting adds ~0.1 LU at 100 Hz.
            let tol = if rate == 8_000 { 0.21 } else { 0.11 };
            assert_near(
                l.integrated_lufs,
                reference,
                tol,
                &format!("{freq} Hz @ {rate}"),
            );
            if freq == 1000.0 {
                assert_near(l.integrated_lufs, -23.0, 0.1, &format!("1 kHz @ {rate}"));
            }
            assert_near(l.sample_peak_dbfs, -23.0, 0.1, "sample peak");
        }
    }
}
