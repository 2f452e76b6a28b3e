//! Signal analysis that is not loudness: silence at the edges of a clip (for
//! trimming and for the report) and a spectral quality proxy that `sori
//! bench` uses to compare codec settings.
//!
//! Both stream in bounded memory.
//!
//! **Silence.** Levels are taken as RMS over 10 ms frames. A frame is silent
//! when it is below an absolute floor ([`SILENCE_FLOOR_DBFS`]) *and* more
//! than [`SILENCE_RELATIVE_DB`] under the loudest frame. The loudest frame is
//! only known at the end, so instead of keeping every frame's level the
//! detector keeps, for each of a fixed ladder of thresholds (every 1 dB from
//! −120 to 0 dBFS), the first and last frame above it and how many frames
//! are above it. At the end, the threshold is `min(floor, loudest − 50 dB)`
//! rounded down to the ladder (never more than 1 dB lower than exact), and
//! its three counters answer leading, trailing and total silence. Memory:
//! 121 × 3 integers, whatever the duration.
//!
//! **Log-spectral distance.** Mean over 1024-point Hann frames (50 %
//! overlap) of the RMS difference, in dB, between the two power spectra over
//! 50 Hz – min(rate/2, 20 kHz), each floored at −100 dB; frames where both
//! signals are under the floor are skipped.

use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};
use std::sync::Arc;

/// Frames quieter than this are silence candidates (dBFS RMS).
pub const SILENCE_FLOOR_DBFS: f64 = -60.0;
/// …and must also be this far under the loudest frame.
pub const SILENCE_RELATIVE_DB: f64 = 50.0;
/// RMS frame length for the silence detector.
const FRAME_MS: u64 = 10;
/// The threshold ladder: every 1 dB from −120 dBFS to 0 dBFS.
const LADDER_LOW_DB: i32 = -120;
const LADDER_STEPS: usize = 121;

/// Leading, trailing and total silence of a clip, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Silence {
    /// Silence before the first sound: what trimming the start would remove.
    pub leading_ms: u64,
    /// Silence after the last sound.
    pub trailing_ms: u64,
    /// All silent frames, edges and gaps included.
    pub total_ms: u64,
}

/// Streaming silence detector over a mono signal (see the module docs).
pub struct SilenceDetector {
    frame_len: usize,
    /// Partial frame: sum of squares and samples so far.
    acc: f64,
    acc_len: usize,
    frames: u64,
    loudest_db: f64,
    /// Per ladder step: first frame above, last frame above, frames above.
    first_above: [Option<u64>; LADDER_STEPS],
    last_above: [u64; LADDER_STEPS],
    count_above: [u64; LADDER_STEPS],
}

impl SilenceDetector {
    /// A detector for a mono signal at `sample_rate` (0 is treated as 1 Hz).
    pub fn new(sample_rate: u32) -> Self {
        let frame_len = ((u64::from(sample_rate.max(1)) * FRAME_MS / 1000) as usize).max(1);
        Self {
            frame_len,
            acc: 0.0,
            acc_len: 0,
            frames: 0,
            loudest_db: f64::NEG_INFINITY,
            first_above: [None; LADDER_STEPS],
            last_above: [0; LADDER_STEPS],
            count_above: [0; LADDER_STEPS],
        }
    }

    /// Feeds the next samples. Non-finite samples count as silence.
    pub fn add(&mut self, mono: &[f32]) {
        let mut rest = mono;
        while !rest.is_empty() {
            let take = (self.frame_len - self.acc_len).min(rest.len());
            let (now, later) = rest.split_at(take);
            self.acc += now
                .iter()
                .map(|&s| {
                    if s.is_finite() {
                        f64::from(s) * f64::from(s)
                    } else {
                        0.0
                    }
                })
                .sum::<f64>();
            self.acc_len += take;
            rest = later;
            if self.acc_len == self.frame_len {
                self.end_frame();
            }
        }
    }

    /// Silence so far. A trailing partial frame counts as a frame. A clip
    /// that is silent throughout is all leading silence (and trailing too).
    pub fn finish(&self) -> Silence {
        let mut frames = self.frames;
        let mut snapshot = None;
        if self.acc_len > 0 {
            let mut copy = self.clone_counters();
            copy.end_frame();
            frames = copy.frames;
            snapshot = Some(copy);
        }
        let this = snapshot.as_ref().unwrap_or(self);
        let ms = |n: u64| n * FRAME_MS;
        let threshold = SILENCE_FLOOR_DBFS.min(this.loudest_db - SILENCE_RELATIVE_DB);
        let step = ladder_step_at_or_below(threshold);
        match step.and_then(|s| this.first_above[s].map(|first| (s, first))) {
            Some((s, first)) => Silence {
                leading_ms: ms(first),
                trailing_ms: ms(frames - 1 - this.last_above[s]),
                total_ms: ms(frames - this.count_above[s]),
            },
            None => Silence {
                leading_ms: ms(frames),
                trailing_ms: ms(frames),
                total_ms: ms(frames),
            },
        }
    }

    fn clone_counters(&self) -> Self {
        Self {
            frame_len: self.frame_len,
            acc: self.acc,
            acc_len: self.acc_len,
            frames: self.frames,
            loudest_db: self.loudest_db,
            first_above: self.first_above,
            last_above: self.last_above,
            count_above: self.count_above,
        }
    }

    fn end_frame(&mut self) {
        let mean_square = self.acc / self.acc_len.max(1) as f64;
        let db = if mean_square > 0.0 {
            10.0 * mean_square.log10()
        } else {
            f64::NEG_INFINITY
        };
        let index = self.frames;
        self.loudest_db = self.loudest_db.max(db);
        // Every ladder step strictly below this frame's level sees it as loud.
        let above = ladder_steps_below(db);
        for s in 0..above {
            if self.first_above[s].is_none() {
                self.first_above[s] = Some(index);
            }
            self.last_above[s] = index;
            self.count_above[s] += 1;
        }
        self.frames += 1;
        self.acc = 0.0;
        self.acc_len = 0;
    }
}

/// How many ladder thresholds lie strictly below `db`.
fn ladder_steps_below(db: f64) -> usize {
    if db.is_nan() || db <= f64::from(LADDER_LOW_DB) {
        return 0;
    }
    let above_low = (db - f64::from(LADDER_LOW_DB)).ceil() as usize;
    above_low.min(LADDER_STEPS)
}

/// The ladder step whose threshold is the highest at or below `db`.
fn ladder_step_at_or_below(db: f64) -> Option<usize> {
    if db.is_nan() || db < f64::from(LADDER_LOW_DB) {
        return None;
    }
    let step = (db - f64::from(LADDER_LOW_DB)).floor() as usize;
    Some(step.min(LADDER_STEPS - 1))
}

/// FFT size of the spectral comparison.
pub const LSD_FFT: usize = 1024;
/// Floor of the dB power spectra, so that log(0) never happens.
pub const LSD_FLOOR_DB: f64 = -100.0;

/// Log-spectral distance between a reference and a degraded version of it,
/// in dB (0 for identical signals; larger is worse). The signals must be
/// time-aligned; the shorter length is used. See the module docs.
pub fn log_spectral_distance(reference: &[f32], degraded: &[f32], sample_rate: u32) -> f64 {
    let mut lsd = SpectralDistance::new(sample_rate);
    lsd.add(reference, degraded);
    lsd.finish()
}

/// Streaming [`log_spectral_distance`]: feed aligned pairs of blocks (of
/// any, even different, lengths), read the mean at the end.
pub struct SpectralDistance {
    fft: Arc<dyn Fft<f64>>,
    window: Vec<f64>,
    /// Pending samples of each signal (less than one hop after `add`).
    pending: [Vec<f32>; 2],
    spectra: [Vec<Complex<f64>>; 2],
    scratch: Vec<Complex<f64>>,
    bins: std::ops::Range<usize>,
    sum: f64,
    frames: u64,
}

impl SpectralDistance {
    /// A comparison of two signals at `sample_rate` (0 is treated as 48 kHz).
    pub fn new(sample_rate: u32) -> Self {
        let rate = if sample_rate == 0 {
            48_000.0
        } else {
            f64::from(sample_rate)
        };
        let fft = FftPlanner::new().plan_fft_forward(LSD_FFT);
        let window = (0..LSD_FFT)
            .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / LSD_FFT as f64).cos())
            .collect();
        let hz_per_bin = rate / LSD_FFT as f64;
        let low = ((50.0 / hz_per_bin).ceil() as usize).max(1);
        let high = (((rate / 2.0).min(20_000.0) / hz_per_bin).floor() as usize).min(LSD_FFT / 2);
        let scratch = vec![Complex::default(); fft.get_inplace_scratch_len()];
        Self {
            fft,
            window,
            pending: [
                Vec::with_capacity(2 * LSD_FFT),
                Vec::with_capacity(2 * LSD_FFT),
            ],
            spectra: [
                vec![Complex::default(); LSD_FFT],
                vec![Complex::default(); LSD_FFT],
            ],
            scratch,
            bins: low..(high + 1).max(low + 1).min(LSD_FFT / 2 + 1),
            sum: 0.0,
            frames: 0,
        }
    }

    /// Feeds the next blocks of the reference and of the degraded signal.
    pub fn add(&mut self, reference: &[f32], degraded: &[f32]) {
        self.pending[0].extend_from_slice(reference);
        self.pending[1].extend_from_slice(degraded);
        let hop = LSD_FFT / 2;
        let mut start = 0;
        let ready = self.pending[0].len().min(self.pending[1].len());
        while start + LSD_FFT <= ready {
            self.frame(start);
            start += hop;
        }
        for p in &mut self.pending {
            p.drain(..start.min(p.len()));
        }
    }

    /// Mean distance over the frames seen (0 when no frame had sound). A
    /// tail shorter than one FFT frame is not compared.
    pub fn finish(&self) -> f64 {
        if self.frames == 0 {
            0.0
        } else {
            self.sum / self.frames as f64
        }
    }

    fn frame(&mut self, start: usize) {
        for (pending, spectrum) in self.pending.iter().zip(self.spectra.iter_mut()) {
            for ((out, &x), &w) in spectrum
                .iter_mut()
                .zip(&pending[start..start + LSD_FFT])
                .zip(&self.window)
            {
                let x = if x.is_finite() { f64::from(x) } else { 0.0 };
                *out = Complex::new(x * w, 0.0);
            }
            self.fft.process_with_scratch(spectrum, &mut self.scratch);
        }
        // Power normalized so that a full-scale sine reads about 0 dB.
        let norm = 4.0 / (LSD_FFT as f64 * LSD_FFT as f64 / 4.0);
        let mut sq = 0.0;
        let mut any_sound = false;
        for k in self.bins.clone() {
            let a = power_db(self.spectra[0][k].norm_sqr() * norm);
            let b = power_db(self.spectra[1][k].norm_sqr() * norm);
            any_sound |= a > LSD_FLOOR_DB || b > LSD_FLOOR_DB;
            sq += (a - b) * (a - b);
        }
        if any_sound {
            self.sum += (sq / self.bins.len() as f64).sqrt();
            self.frames += 1;
        }
    }
}

fn power_db(p: f64) -> f64 {
    if p > 0.0 {
        (10.0 * p.log10()).max(LSD_FLOOR_DB)
    } else {
        LSD_FLOOR_DB
    }
}
