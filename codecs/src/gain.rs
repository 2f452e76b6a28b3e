//! The one gain a job applies, decided from the analysis pass alone so that
//! the first encode lands on target.
//!
//! **What the limiter will take.** Normalizing speech by +5 to +20 dB makes
//! the true-peak limiter work on every loud syllable, and each reduction,
//! with its hold and its 80 ms release, removes a little loudness: 0.2 to
//! 1 LU for ordinary recordings. So the analysis pass keeps a compact
//! record of the mono signal, one entry per millisecond: its K-weighted
//! energy and its 4× true peak ([`LevelRecorder`]). For a candidate gain,
//! [`LevelHistory::loudness`] runs the limiter's gain envelope (the same
//! look-ahead ramp, hold and release as [`crate::limiter`]) over those
//! peaks and the BS.1770 gating over the reduced energies: the loudness the
//! limited signal will have. [`plan`] solves for the gain whose limited
//! loudness meets the target. A millisecond is short against every time
//! constant of the limiter (5 ms ramp, 10 ms hold, 80 ms release), so the
//! prediction is within a tenth of a LU on speech.
//!
//! **What the codec will take.** Speech coding (SILK) lowers the gain of
//! frames it finds noisy or unvoiced when bits are short, so at 32 kbit/s
//! the decoded output is 0.25 to 0.9 LU quieter than what went in: more for
//! noisy recordings, more for dense (compressed, AGC'd) ones. [`codec_loss_db`]
//! predicts it from those two properties of the analysis (see its docs for
//! how it was fitted and checked).
//!
//! **How far to raise.** A quiet but clean phone recording should reach the
//! target however much gain that takes; near-silence and noise should not
//! be raised into loud noise. That is a question of signal-to-noise ratio,
//! not of level: the noise floor is the 10th percentile of the signal's
//! 25 ms levels (speech leaves gaps between words where only the background
//! is heard), and input whose loudness stands less than [`MIN_SNR_DB`]
//! above it is not amplified at all ([`CapReason::Noise`]).
//!
//! Memory: 4 bytes per millisecond (14 MB for an hour); past
//! [`MAX_RECORDS`] entries, neighbours are merged, so it is bounded at any
//! duration.

use crate::limiter::{HOLD_MS, LOOKAHEAD_MS, RELEASE_MS};
use crate::loudness::{TruePeakScanner, SILENCE_LUFS};
use crate::profile::{Application, Profile};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Loudness above the noise floor under which input is treated as noise
/// (dB): it is not amplified.
pub const MIN_SNR_DB: f64 = 8.0;
/// The most gain spent compensating for limiting, dB: beyond that the voice
/// would be squashed flat; the report shows the shortfall.
pub const MAX_COMPENSATION_DB: f64 = 3.0;
/// Entries kept before neighbours are merged (about 67 minutes at 1 ms).
pub const MAX_RECORDS: usize = 1 << 22;
/// Percentile of 25 ms levels taken as the noise floor.
const NOISE_PERCENTILE: f64 = 0.10;
/// Window of the levels the noise floor and the density are taken from, seconds.
const LEVEL_WINDOW_S: f64 = 0.025;
/// Blocks whose sample peak is this far under the loudest so far are never
/// limited at any gain the planner chooses: their true peak is not computed.
const PEAK_SKIP_DB: f32 = 30.0;
/// dB coding of the record: `LOW_DB + code · STEP_DB`.
const LOW_DB: f64 = -160.0;
const STEP_DB: f64 = 0.005;

/// Why the gain stopped short of the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CapReason {
    /// Nothing above the absolute gate: silence, or too short to measure.
    Silence,
    /// The input stands less than [`MIN_SNR_DB`] above its own noise floor:
    /// noise, hum or near-silence, not speech to bring forward.
    Noise,
    /// The gain would exceed the profile's `max_gain_db`.
    MaxGain,
    /// Even [`MAX_COMPENSATION_DB`] of extra gain cannot make up for what
    /// the limiter takes (extremely peaky input).
    Limiting,
}

/// The gain decided for one input.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GainPlan {
    pub gain_db: f64,
    /// Why the gain falls short of the target, if it does.
    pub capped: Option<CapReason>,
    /// The output loudness this gain is expected to give, LUFS.
    pub predicted_lufs: f64,
    /// The input's noise floor (10th percentile of 25 ms levels, dual mono), LUFS.
    pub noise_floor_lufs: f64,
    /// The codec's predicted loudness change, LU (≤ 0).
    pub codec_db: f64,
}

/// The Opus encode's loudness change (decoded minus encoded, LU) predicted
/// for a recording whose loudness stands `snr_db` above its noise floor and
/// of whose active 25 ms windows a fraction `density` is within 6 dB of its
/// loudness (speech with pauses: 0.5–0.7; compressed or AGC'd: 0.8–0.95).
///
/// A least-squares fit on the broad corpus (`benches/make-corpus.sh`: six
/// voices, street noise, 144 files, residual 0.07 LU, at most 0.18), checked
/// on a second corpus it never saw (`--variant=b`: other voices and
/// sentences, café babble: residual 0.08 LU, at most 0.25). It describes
/// speech coding, so it applies to the voip application only; CELT (audio)
/// keeps band energies, and loses a few hundredths.
pub fn codec_loss_db(profile: &Profile, snr_db: f64, density: f64) -> f64 {
    match profile.application {
        Application::Voip => -0.093 + 0.0097 * snr_db.min(40.0) - 0.928 * density,
        Application::Audio => -0.03,
    }
}

/// Chooses the gain for a mono signal measured at `mono_lufs` (dual mono)
/// whose limiter will hold `ceiling_dbtp`. `correction_db` is what an
/// earlier encode of the same input measured beyond the prediction (0 the
/// first time).
pub fn plan(
    profile: &Profile,
    mono_lufs: f64,
    history: &LevelHistory,
    ceiling_dbtp: f64,
    correction_db: f64,
) -> GainPlan {
    let levels = history.window_levels();
    let noise_floor_lufs = noise_floor(&levels);
    let snr = mono_lufs - noise_floor_lufs;
    let codec_db = codec_loss_db(profile, snr, density(&levels, mono_lufs)) + correction_db;
    // The simulation's own reading of the ungained signal differs from the
    // meter's by a few hundredths; only its changes are used.
    let simulated = history.loudness(0.0, None);
    let predict =
        |gain: f64| mono_lufs + history.loudness(gain, Some(ceiling_dbtp)) - simulated + codec_db;
    let plain = profile.target_lufs - mono_lufs - codec_db;
    let done = |gain_db: f64, capped| GainPlan {
        gain_db,
        capped,
        predicted_lufs: predict(gain_db),
        noise_floor_lufs,
        codec_db,
    };
    if mono_lufs <= SILENCE_LUFS {
        return done(0.0, Some(CapReason::Silence));
    }
    if snr < MIN_SNR_DB && plain > 0.0 {
        return done(0.0, Some(CapReason::Noise));
    }
    let (gain, short) = solve(plain, |g| predict(g) - profile.target_lufs);
    if gain > profile.max_gain_db {
        return done(profile.max_gain_db, Some(CapReason::MaxGain));
    }
    done(gain, short.then_some(CapReason::Limiting))
}

/// The gain in `[plain, plain + MAX_COMPENSATION_DB]` where `miss` (the
/// predicted output minus the target, increasing with the gain) crosses 0;
/// true when even the top of the range falls short.
fn solve(plain: f64, miss: impl Fn(f64) -> f64) -> (f64, bool) {
    let (mut low, mut high) = (plain, plain + MAX_COMPENSATION_DB);
    let (mut f_low, f_high) = (miss(low), miss(high));
    if f_low >= 0.0 {
        return (low, false);
    }
    if f_high < 0.0 {
        return (high, true);
    }
    let mut f_high = f_high;
    // Regula falsi (Illinois): the loss is smooth in the gain, so a handful
    // of evaluations reach 0.01 dB.
    for _ in 0..12 {
        let g = high - f_high * (high - low) / (f_high - f_low);
        let f = miss(g);
        if f.abs() < 0.005 {
            return (g, false);
        }
        if f < 0.0 {
            low = g;
            f_low = f;
        } else {
            high = g;
            f_high = f;
        }
    }
    (low + (high - low) * 0.5, false)
}

/// One second-order section, transposed direct form II.
#[derive(Debug, Clone, Copy)]
struct Biquad {
    b: [f64; 3],
    a: [f64; 2],
    s: [f64; 2],
}

impl Biquad {
    #[inline]
    fn run(&mut self, x: f64) -> f64 {
        let y = self.b[0] * x + self.s[0];
        self.s[0] = self.b[1] * x - self.a[0] * y + self.s[1];
        self.s[1] = self.b[2] * x - self.a[1] * y;
        y
    }

    /// Zeroes states decayed to nothing, which would otherwise become
    /// denormals (very slow) after long silence; NaN from hostile input too.
    fn settle(&mut self) {
        for s in &mut self.s {
            if s.is_nan() || s.abs() < 1e-30 {
                *s = 0.0;
            }
        }
    }
}

/// The BS.1770 K-weighting pre-filter (high shelf, then high pass) at any
/// rate, with the coefficients libebur128 derives.
#[derive(Debug, Clone)]
struct KWeighting {
    shelf: Biquad,
    high_pass: Biquad,
}

impl KWeighting {
    fn new(rate: u32) -> Self {
        use std::f64::consts::PI;
        let rate = f64::from(rate.max(1000));
        let (f0, g, q) = (
            1_681.974_450_955_533,
            3.999_843_853_973_347,
            0.707_175_236_955_419_6,
        );
        let k = (PI * f0 / rate).tan();
        let vh = 10f64.powf(g / 20.0);
        let vb = vh.powf(0.499_666_774_154_541_6);
        let a0 = 1.0 + k / q + k * k;
        let shelf = Biquad {
            b: [
                (vh + vb * k / q + k * k) / a0,
                2.0 * (k * k - vh) / a0,
                (vh - vb * k / q + k * k) / a0,
            ],
            a: [2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0],
            s: [0.0; 2],
        };
        let (f0, q) = (38.135_470_876_024_44, 0.500_327_037_323_877_3);
        let k = (PI * f0 / rate).tan();
        let a0 = 1.0 + k / q + k * k;
        let high_pass = Biquad {
            b: [1.0, -2.0, 1.0],
            a: [2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0],
            s: [0.0; 2],
        };
        Self { shelf, high_pass }
    }

    /// Filters `input` into `out` (cleared first).
    fn filter(&mut self, input: &[f32], out: &mut Vec<f64>) {
        out.clear();
        out.extend(
            input
                .iter()
                .map(|&x| self.high_pass.run(self.shelf.run(f64::from(x)))),
        );
        self.shelf.settle();
        self.high_pass.settle();
    }
}

/// One millisecond (or, after merges, a few) of the mono signal.
#[derive(Debug, Clone, Copy)]
struct Record {
    /// Mean square of the K-weighted signal, dB-coded.
    energy: u16,
    /// 4× true peak, dB-coded.
    peak: u16,
}

fn encode_db(db: f64) -> u16 {
    ((db - LOW_DB) / STEP_DB)
        .round()
        .clamp(0.0, f64::from(u16::MAX)) as u16
}

fn decode_db(code: u16) -> f64 {
    LOW_DB + f64::from(code) * STEP_DB
}

/// The mean square a record's energy code stands for. The planner reads
/// every record a dozen times: a table (256 KB, built once per process)
/// instead of a `powf` each time.
fn linear_energy(code: u16) -> f64 {
    static TABLE: std::sync::OnceLock<Vec<f32>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        (0..=u16::MAX)
            .map(|c| 10f64.powf(decode_db(c) / 10.0) as f32)
            .collect()
    });
    f64::from(table[usize::from(code)])
}

fn power_db(x: f64) -> f64 {
    if x > 0.0 {
        10.0 * x.log10()
    } else {
        LOW_DB
    }
}

/// Streams the mono signal of the analysis pass into a [`LevelHistory`].
pub struct LevelRecorder {
    block_len: usize,
    kweight: KWeighting,
    scanner: TruePeakScanner,
    weighted: Vec<f64>,
    peaks: Vec<f32>,
    energy: f64,
    block_peak: f32,
    filled: usize,
    loudest: f32,
    history: LevelHistory,
}

impl LevelRecorder {
    /// A recorder for a mono signal at `rate`.
    pub fn new(rate: u32) -> Self {
        let block_len = ((f64::from(rate) / 1000.0).round() as usize).max(1);
        Self {
            block_len,
            kweight: KWeighting::new(rate),
            scanner: TruePeakScanner::new(),
            weighted: Vec::new(),
            peaks: Vec::new(),
            energy: 0.0,
            block_peak: 0.0,
            filled: 0,
            loudest: 0.0,
            history: LevelHistory {
                records: Vec::new(),
                per_record: 1,
                block_seconds: block_len as f64 / f64::from(rate.max(1)),
                partial: None,
                true_peak: 0.0,
            },
        }
    }

    /// Adds the next samples (any length). Non-finite samples count as silence.
    pub fn add(&mut self, mono: &[f32]) {
        self.kweight.filter(mono, &mut self.weighted);
        self.peaks.clear();
        self.peaks.extend(
            mono.iter()
                .map(|s| if s.is_finite() { s.abs() } else { 0.0 }),
        );
        let sample_peak = self.peaks.iter().fold(0f32, |m, &p| m.max(p));
        // Far under the loudest so far, the exact true peak cannot matter:
        // the sample peaks stand in (see PEAK_SKIP_DB).
        let skip = 10f32.powf(-PEAK_SKIP_DB / 20.0);
        if sample_peak * self.scanner.worst_case_gain() < self.loudest * skip {
            self.scanner.push_history(mono);
        } else {
            self.scanner.scan(mono, &mut self.peaks);
            self.loudest = self.peaks.iter().fold(self.loudest, |m, &p| m.max(p));
        }
        let mut at = 0;
        while at < mono.len() {
            let take = (mono.len() - at).min(self.block_len - self.filled);
            let range = at..at + take;
            self.energy += self.weighted[range.clone()]
                .iter()
                .map(|k| k * k)
                .sum::<f64>();
            let peak = self.peaks[range].iter().fold(0f32, |m, &p| m.max(p));
            self.block_peak = self.block_peak.max(peak);
            self.filled += take;
            at += take;
            if self.filled == self.block_len {
                self.close_block();
            }
        }
    }

    fn close_block(&mut self) {
        if self.filled == 0 {
            return;
        }
        let mean_square = self.energy / self.filled as f64;
        let mean_square = if mean_square.is_finite() {
            mean_square
        } else {
            0.0
        };
        self.history.push(mean_square, f64::from(self.block_peak));
        self.energy = 0.0;
        self.block_peak = 0.0;
        self.filled = 0;
    }

    /// The record of everything added.
    pub fn finish(mut self) -> LevelHistory {
        let tail = self.scanner.flush();
        self.block_peak = self.block_peak.max(tail);
        self.loudest = self.loudest.max(tail);
        self.close_block();
        self.history.flush_partial();
        self.history.true_peak = self.loudest;
        self.history
    }
}

/// The per-millisecond levels of a mono signal (see the module docs).
#[derive(Debug, Clone)]
pub struct LevelHistory {
    records: Vec<Record>,
    /// Blocks merged into each record (doubles at each merge).
    per_record: usize,
    block_seconds: f64,
    /// Blocks of the record being merged: energy sum, peak, count.
    partial: Option<(f64, f64, usize)>,
    true_peak: f32,
}

impl LevelHistory {
    fn push(&mut self, mean_square: f64, peak: f64) {
        let (energy, max, count) = self.partial.get_or_insert((0.0, 0.0, 0));
        *energy += mean_square;
        *max = max.max(peak);
        *count += 1;
        if *count == self.per_record {
            self.flush_partial();
        }
        if self.records.len() >= MAX_RECORDS {
            self.merge_pairs();
        }
    }

    fn flush_partial(&mut self) {
        if let Some((energy, peak, count)) = self.partial.take() {
            self.records.push(Record {
                energy: encode_db(power_db(energy / count as f64)),
                peak: encode_db(20.0 * peak.max(1e-12).log10()),
            });
        }
    }

    /// Halves the resolution: each record becomes the merge of two.
    fn merge_pairs(&mut self) {
        let merged: Vec<Record> = self
            .records
            .chunks(2)
            .map(|pair| {
                let energy =
                    pair.iter().map(|r| linear_energy(r.energy)).sum::<f64>() / pair.len() as f64;
                Record {
                    energy: encode_db(power_db(energy)),
                    peak: pair.iter().map(|r| r.peak).max().unwrap_or(0),
                }
            })
            .collect();
        self.records = merged;
        self.per_record *= 2;
    }

    fn record_seconds(&self) -> f64 {
        self.block_seconds * self.per_record as f64
    }

    /// Highest 4× true peak, dBTP.
    pub fn true_peak_dbtp(&self) -> f64 {
        crate::loudness::amplitude_to_db(f64::from(self.true_peak))
    }

    /// The levels of consecutive 25 ms windows, K-weighted, on the
    /// dual-mono LUFS scale.
    pub fn window_levels(&self) -> Vec<f64> {
        let per_window = ((LEVEL_WINDOW_S / self.record_seconds()).round() as usize).max(1);
        self.records
            .chunks_exact(per_window)
            .map(|w| {
                let ms = w.iter().map(|r| linear_energy(r.energy)).sum::<f64>() / w.len() as f64;
                lufs_of_mono(ms)
            })
            .collect()
    }

    /// Gated integrated loudness (BS.1770, dual mono) of the signal gained
    /// by `gain_db` and, with a ceiling, true-peak limited to it the way
    /// [`crate::limiter::Limiter`] does.
    pub fn loudness(&self, gain_db: f64, ceiling_dbtp: Option<f64>) -> f64 {
        let dt_ms = self.record_seconds() * 1000.0;
        let per_sub = ((0.1 / self.record_seconds()).round() as usize).max(1);
        let gain = 10f64.powf(gain_db / 10.0);
        let mut subs: Vec<f64> = Vec::with_capacity(self.records.len() / per_sub + 1);
        let (mut sum, mut n) = (0.0, 0);
        let mut add = |energy: f64, reduction: f64| {
            sum += energy * gain * reduction * reduction;
            n += 1;
            if n == per_sub {
                subs.push(sum / per_sub as f64);
                sum = 0.0;
                n = 0;
            }
        };
        match ceiling_dbtp {
            None => {
                for r in &self.records {
                    add(linear_energy(r.energy), 1.0);
                }
            }
            Some(ceiling) => {
                let mut envelope = Envelope::new(dt_ms);
                let delay = envelope.lookahead();
                let mut energies = VecDeque::with_capacity(delay + 1);
                for r in &self.records {
                    let excess = decode_db(r.peak) + gain_db - ceiling;
                    let required = if excess > 0.0 {
                        10f64.powf(-excess / 20.0)
                    } else {
                        1.0
                    };
                    energies.push_back(linear_energy(r.energy));
                    if let Some(g) = envelope.next(required) {
                        if let Some(e) = energies.pop_front() {
                            add(e, g);
                        }
                    }
                }
                while let Some(e) = energies.pop_front() {
                    add(e, envelope.next(1.0).unwrap_or(1.0));
                }
            }
        }
        gated_loudness(&subs)
    }
}

/// The limiter's gain envelope at the records' resolution: instant attack,
/// hold, exponential release, and a linear ramp over the look-ahead that
/// ends on the peak. Gains come out `lookahead()` records late.
struct Envelope {
    window: VecDeque<(usize, f64)>,
    hold: usize,
    time: usize,
    envelope: f64,
    release: f64,
    ramp: VecDeque<f64>,
    ramp_len: usize,
}

impl Envelope {
    fn new(dt_ms: f64) -> Self {
        let steps = |ms: f64| ((ms / dt_ms).round() as usize).max(1);
        let ramp_len = steps(LOOKAHEAD_MS);
        Self {
            window: VecDeque::new(),
            hold: steps(HOLD_MS),
            time: 0,
            envelope: 1.0,
            release: 1.0 - (-dt_ms / RELEASE_MS).exp(),
            ramp: VecDeque::with_capacity(ramp_len + 1),
            ramp_len,
        }
    }

    fn lookahead(&self) -> usize {
        self.ramp_len - 1
    }

    /// Takes the next record's required gain; returns the gain of the
    /// record `lookahead()` earlier once there is one.
    fn next(&mut self, required: f64) -> Option<f64> {
        let now = self.time;
        self.time += 1;
        while self
            .window
            .front()
            .is_some_and(|&(t, _)| t + self.hold < now)
        {
            self.window.pop_front();
        }
        while self.window.back().is_some_and(|&(_, g)| g >= required) {
            self.window.pop_back();
        }
        self.window.push_back((now, required));
        let held = self.window.front().map_or(1.0, |&(_, g)| g);
        self.envelope = if held < self.envelope {
            held
        } else {
            (self.envelope + self.release * (held * 1.02 - self.envelope)).min(held)
        };
        self.ramp.push_back(self.envelope);
        if self.ramp.len() < self.ramp_len {
            return None;
        }
        let mean = self.ramp.iter().sum::<f64>() / self.ramp.len() as f64;
        self.ramp.pop_front();
        Some(mean)
    }
}

/// The noise floor: the 10th percentile of the window levels (speech
/// leaves gaps where only the background is heard), LUFS.
pub fn noise_floor(levels: &[f64]) -> f64 {
    if levels.is_empty() {
        return SILENCE_LUFS;
    }
    let mut sorted = levels.to_vec();
    let k = ((sorted.len() as f64 * NOISE_PERCENTILE) as usize).min(sorted.len() - 1);
    let (_, floor, _) = sorted.select_nth_unstable_by(k, f64::total_cmp);
    floor.max(LOW_DB)
}

/// Of the windows within 20 dB of `loudness` (the active ones), the
/// fraction within 6 dB of it: how dense, how compressed the recording is.
pub fn density(levels: &[f64], loudness: f64) -> f64 {
    let active = levels.iter().filter(|&&l| l > loudness - 20.0).count();
    let near = levels.iter().filter(|&&l| l > loudness - 6.0).count();
    near as f64 / active.max(1) as f64
}

/// Loudness of a mono mean square on the dual-mono LUFS scale.
fn lufs_of_mono(mean_square: f64) -> f64 {
    -0.691 + power_db(2.0 * mean_square)
}

/// BS.1770 gating over 100 ms mean squares: 400 ms blocks every 100 ms,
/// absolute gate −70 LUFS, relative gate −10 LU.
fn gated_loudness(subs: &[f64]) -> f64 {
    let blocks: Vec<f64> = subs
        .windows(4)
        .map(|w| w.iter().sum::<f64>() / 4.0)
        .collect();
    let above = |gate: f64| {
        let kept: Vec<f64> = blocks
            .iter()
            .copied()
            .filter(|&b| lufs_of_mono(b) > gate)
            .collect();
        (!kept.is_empty()).then(|| kept.iter().sum::<f64>() / kept.len() as f64)
    };
    let Some(absolute) = above(SILENCE_LUFS) else {
        return SILENCE_LUFS;
    };
    let relative = lufs_of_mono(absolute) - 10.0;
    above(relative).map_or(SILENCE_LUFS, lufs_of_mono)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::limiter::Limiter;
    use crate::loudness::LoudnessMeter;

    /// Syllable-like bursts of a vowel-ish tone with sharp onsets, over a
    /// noise floor.
    fn speechy(rate: u32, seconds: f32, level: f32, noise: f32) -> Vec<f32> {
        let mut seed = 1u32;
        (0..(seconds * rate as f32) as usize)
            .map(|i| {
                let t = i as f32 / rate as f32;
                let syllable = (t * 4.0).fract();
                let env = if syllable < 0.6 {
                    (-syllable * 6.0).exp()
                } else {
                    0.0
                };
                let tone = (2.0 * std::f32::consts::PI * 180.0 * t).sin()
                    + 0.5 * (2.0 * std::f32::consts::PI * 540.0 * t).sin()
                    + 0.3 * (2.0 * std::f32::consts::PI * 1260.0 * t).sin();
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let n = (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
                level * env * tone + noise * n
            })
            .collect()
    }

    fn measure(signal: &[f32], rate: u32) -> (f64, f64) {
        let mut m = LoudnessMeter::new(1, rate).unwrap();
        m.add(signal).unwrap();
        let l = m.finish();
        (l.integrated_lufs, l.true_peak_dbtp)
    }

    fn history(signal: &[f32], rate: u32) -> LevelHistory {
        let mut r = LevelRecorder::new(rate);
        for chunk in signal.chunks(1000) {
            r.add(chunk);
        }
        r.finish()
    }

    #[test]
    fn simulated_loudness_matches_the_meter() {
        let signal = speechy(48_000, 10.0, 0.3, 0.001);
        let (lufs, peak) = measure(&signal, 48_000);
        let h = history(&signal, 48_000);
        assert!(
            (h.loudness(0.0, None) - lufs).abs() < 0.1,
            "{} vs {lufs}",
            h.loudness(0.0, None)
        );
        assert!((h.loudness(6.0, None) - lufs - 6.0).abs() < 0.1);
        assert!((h.true_peak_dbtp() - peak).abs() < 0.05);
    }

    #[test]
    fn the_limited_loudness_is_predicted_within_a_tenth() {
        for rate in [16_000, 44_100, 48_000] {
            let signal = speechy(rate, 10.0, 0.2, 0.002);
            let h = history(&signal, rate);
            let gain_db = 14.0;
            let ceiling = -2.0;
            let gain = 10f32.powf(gain_db as f32 / 20.0);
            let gained: Vec<f32> = signal.iter().map(|s| s * gain).collect();
            let mut limiter = Limiter::new(rate, ceiling);
            let mut limited = Vec::new();
            limiter.process(&gained, &mut limited);
            limiter.flush(&mut limited);
            let (actual, peak) = measure(&limited, rate);
            let predicted = h.loudness(gain_db, Some(ceiling));
            let unlimited = h.loudness(gain_db, None);
            assert!(
                unlimited - actual > 1.0,
                "the test should limit hard: {unlimited} vs {actual}"
            );
            assert!(
                (predicted - actual).abs() < 0.1,
                "{rate} Hz: predicted {predicted}, got {actual}"
            );
            assert!(peak <= ceiling + 0.01);
        }
    }

    #[test]
    fn speech_over_a_quiet_floor_is_raised_to_the_target() {
        let signal = speechy(48_000, 10.0, 0.01, 0.0005);
        let (lufs, _) = measure(&signal, 48_000);
        assert!(lufs < -35.0, "{lufs}");
        let h = history(&signal, 48_000);
        let profile = Profile::default();
        let plan = plan(&profile, lufs, &h, -2.0, 0.0);
        assert_eq!(plan.capped, None, "{plan:?}");
        assert!(plan.gain_db > 19.0, "{plan:?}");
        assert!(
            (plan.predicted_lufs - profile.target_lufs).abs() < 0.02,
            "{plan:?}"
        );
    }

    #[test]
    fn noise_is_not_raised() {
        let signal = speechy(48_000, 5.0, 0.0, 0.01);
        let (lufs, _) = measure(&signal, 48_000);
        let quiet = plan(
            &Profile::default(),
            lufs,
            &history(&signal, 48_000),
            -2.0,
            0.0,
        );
        assert_eq!(quiet.capped, Some(CapReason::Noise), "{quiet:?}");
        assert_eq!(quiet.gain_db, 0.0);
        // Loud noise is still brought down to the target.
        let loud: Vec<f32> = signal.iter().map(|s| s * 200.0).collect();
        let (lufs, _) = measure(&loud, 48_000);
        let loud = plan(
            &Profile::default(),
            lufs,
            &history(&loud, 48_000),
            -2.0,
            0.0,
        );
        assert!(loud.gain_db < 0.0, "{loud:?}");
    }

    #[test]
    fn silence_gets_no_gain() {
        let plan = plan(
            &Profile::default(),
            SILENCE_LUFS,
            &history(&[0.0; 48_000], 48_000),
            -2.0,
            0.0,
        );
        assert_eq!((plan.gain_db, plan.capped), (0.0, Some(CapReason::Silence)));
    }

    #[test]
    fn merged_records_keep_the_loudness_and_the_peak() {
        let signal = speechy(8_000, 20.0, 0.3, 0.001);
        let mut h = history(&signal, 8_000);
        let floor = |h: &LevelHistory| noise_floor(&h.window_levels());
        let before = (h.loudness(3.0, Some(-1.0)), h.true_peak_dbtp(), floor(&h));
        h.merge_pairs();
        let after = (h.loudness(3.0, Some(-1.0)), h.true_peak_dbtp(), floor(&h));
        assert!((before.0 - after.0).abs() < 0.15, "{before:?} {after:?}");
        assert!((before.1 - after.1).abs() < 1e-9);
        assert!((before.2 - after.2).abs() < 1.5, "{before:?} {after:?}");
    }
}
