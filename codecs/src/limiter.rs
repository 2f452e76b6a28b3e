//! Look-ahead true-peak limiter: the last safety net of normalization.
//!
//! The chain applies one linear gain to reach the loudness target; where that
//! pushes a peak over the ceiling, this limiter pulls the gain down just
//! enough, just there. Everywhere else the output is the input, bit for bit.
//!
//! How the gain is built, per sample, on a timeline delayed by
//! [`Limiter::latency`] samples:
//! 1. [`TruePeakScanner`] reports the 4× oversampled peak of the interval
//!    starting at each sample; the *required gain* is `ceiling / peak`
//!    (1 where the peak is under the ceiling).
//! 2. A sliding minimum over look-ahead + hold + the interpolator's reach
//!    (monotonic deque, O(1) per sample) holds the lowest requirement.
//! 3. Attack is instant, release exponential (time constant
//!    [`RELEASE_MS`]): quick enough not to dip the next syllable, slow
//!    enough not to pump.
//! 4. A moving average over the look-ahead ([`LOOKAHEAD_MS`]) turns every
//!    step into a linear ramp that *ends* on the peak: no click, and because
//!    each averaged value is ≤ the requirement of every sample it covers, the
//!    gain on a peak is never above what that peak needs.
//!
//! The output is aimed 0.02 dB under the ceiling to absorb the small error
//! of interpolating a signal whose gain changes across the interpolator's
//! 12 taps.
//!
//! Fast path: while no reduction is pending, a chunk whose sample peak times
//! the interpolator's worst-case gain ([`TruePeakScanner::worst_case_gain`])
//! stays under the ceiling cannot have an inter-sample peak over it either,
//! so the scanner is skipped and the samples are copied through the delay.

use crate::loudness::TruePeakScanner;

/// Look-ahead: the length of the gain ramp before a peak. 5 ms is shorter
/// than a plosive's rise yet long enough for a ramp not to be heard as a click.
pub const LOOKAHEAD_MS: f64 = 5.0;
/// Extra hold after a peak, so that a run of peaks (a vowel's periods) gets
/// one smooth reduction instead of a ripple at the pitch frequency.
pub const HOLD_MS: f64 = 10.0;
/// Release time constant: 80 ms recovers between words without pumping
/// inside them.
pub const RELEASE_MS: f64 = 80.0;
/// Head-room kept below the ceiling for the interpolation error under a
/// changing gain (dB).
const SAFETY_DB: f64 = 0.02;
/// The release aims this much above the held gain, to end in finite time.
const RELEASE_OVERSHOOT: f64 = 1.02;
/// Input magnitude treated as the loudest possible (+80 dBFS): anything
/// beyond is garbage, and bounding it keeps the gain arithmetic exact enough.
const MAX_INPUT: f32 = 1e4;
/// Samples per internal chunk (stack buffers, no allocation per call).
const CHUNK: usize = 256;
/// Reach of the true-peak interpolator on each side of a sample.
const REACH: usize = 6;

/// What the limiter did over the whole stream, for the report.
#[derive(Debug, Clone, Copy, Default)]
pub struct LimiterStats {
    /// True if any sample's gain was reduced.
    pub limited: bool,
    /// The deepest reduction, in dB (positive).
    pub max_reduction_db: f64,
    /// How many output samples had a gain below 1.
    pub samples_reduced: u64,
}

/// Streaming look-ahead true-peak limiter for one channel.
pub struct Limiter {
    ceiling: f32,
    /// `ceiling` divided by the interpolator's worst-case gain.
    fast_threshold: f32,
    scanner: TruePeakScanner,
    /// Input delay line, `delay` long, as a ring.
    delay_line: Vec<f32>,
    delay_pos: usize,
    delay: usize,
    /// Sliding minimum of required gains: (time, gain) ring used as a deque.
    min_queue: Vec<(u64, f64)>,
    min_head: usize,
    min_len: usize,
    min_window: u64,
    /// Release-smoothed envelope.
    envelope: f64,
    release_coeff: f64,
    /// Moving average of the envelope over `ramp` samples.
    ramp_values: Vec<f64>,
    ramp_pos: usize,
    ramp_sum: f64,
    /// Envelope values below 1 still inside the moving average.
    ramp_reduced: usize,
    /// Position of the next required-gain value on the timeline.
    time: u64,
    /// Outputs still to swallow: the delay line's initial zeros.
    to_skip: usize,
    flushed: bool,
    stats: LimiterStats,
    min_gain: f64,
}

impl Limiter {
    /// A limiter holding the 4× oversampled peak at or below `ceiling_dbtp`.
    ///
    /// Rates under 1 kHz are treated as 1 kHz for the time constants; a
    /// non-finite ceiling is treated as 0 dBTP.
    pub fn new(sample_rate: u32, ceiling_dbtp: f64) -> Self {
        let rate = f64::from(sample_rate.max(1000));
        let ms = |v: f64| ((v * rate / 1000.0).round() as usize).max(1);
        let ramp = ms(LOOKAHEAD_MS);
        let hold = ms(HOLD_MS);
        let ceiling_db = if ceiling_dbtp.is_finite() {
            ceiling_dbtp.clamp(-100.0, 20.0)
        } else {
            0.0
        };
        let ceiling = 10f64.powf((ceiling_db - SAFETY_DB) / 20.0) as f32;
        // See the module docs: output sample j is gained by an average of
        // requirements covering [j − REACH, j + REACH].
        let delay = ramp + 2 * REACH - 1;
        let scanner = TruePeakScanner::new();
        let min_window = (ramp + 2 * REACH + hold) as u64;
        Self {
            ceiling,
            fast_threshold: ceiling / scanner.worst_case_gain(),
            scanner,
            delay_line: vec![0.0; delay],
            delay_pos: 0,
            delay,
            min_queue: vec![(0, 1.0); min_window as usize + 1],
            min_head: 0,
            min_len: 0,
            min_window,
            envelope: 1.0,
            release_coeff: 1.0 - (-1.0 / (RELEASE_MS * rate / 1000.0)).exp(),
            ramp_values: vec![1.0; ramp],
            ramp_pos: 0,
            ramp_sum: ramp as f64,
            ramp_reduced: 0,
            time: 0,
            to_skip: delay,
            flushed: false,
            stats: LimiterStats::default(),
            min_gain: 1.0,
        }
    }

    /// Delay between an input sample and its output (internal; the stream
    /// as a whole is latency compensated).
    pub fn latency(&self) -> usize {
        self.delay
    }

    /// Appends processed samples to `out`. The limiter delays internally;
    /// over the whole stream, total output length == total input length
    /// (call [`Limiter::flush`] at the end), and output sample k is input
    /// sample k (latency compensated). Non-finite input samples come out as 0.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        out.reserve(input.len());
        for chunk in input.chunks(CHUNK) {
            self.process_chunk(chunk, out);
        }
    }

    /// Emits the last [`Limiter::latency`] samples. Call once, at the end;
    /// later calls do nothing.
    pub fn flush(&mut self, out: &mut Vec<f32>) {
        if self.flushed {
            return;
        }
        self.flushed = true;
        let zeros = [0f32; CHUNK];
        let mut left = self.delay;
        out.reserve(left);
        while left > 0 {
            let n = left.min(CHUNK);
            self.process_chunk(&zeros[..n], out);
            left -= n;
        }
    }

    /// What the limiter did so far.
    pub fn stats(&self) -> LimiterStats {
        let mut stats = self.stats;
        stats.max_reduction_db = (-20.0 * self.min_gain.log10()).max(0.0);
        stats
    }

    fn process_chunk(&mut self, raw: &[f32], out: &mut Vec<f32>) {
        let mut clean = [0f32; CHUNK];
        let chunk = &mut clean[..raw.len()];
        let mut peak = 0f32;
        for (c, &x) in chunk.iter_mut().zip(raw) {
            *c = sanitize(x);
            peak = peak.max(c.abs());
        }
        let chunk = &*chunk;
        // The scanner's history (previous samples) takes part in this
        // chunk's first interpolations.
        let quiet = peak.max(self.scanner.history_peak()) <= self.fast_threshold;
        if quiet && self.is_idle() {
            self.pass_through(chunk, out);
            return;
        }
        let mut peaks = [0f32; CHUNK];
        let peaks = &mut peaks[..chunk.len()];
        if quiet {
            // Nothing here can exceed the ceiling, but the scanner must still
            // see these samples as history for the next chunk.
            self.scanner.push_history(chunk);
        } else {
            self.scanner.scan(chunk, peaks);
        }
        for (&x, &p) in chunk.iter().zip(peaks.iter()) {
            let required = if p > self.ceiling {
                f64::from(self.ceiling) / f64::from(p)
            } else {
                1.0
            };
            let gain = self.next_gain(required);
            let delayed = self.swap_delay(x);
            if self.to_skip > 0 {
                self.to_skip -= 1;
                continue;
            }
            out.push(if gain < 1.0 {
                self.count_reduction(gain);
                (f64::from(delayed) * gain) as f32
            } else {
                delayed
            });
        }
    }

    /// True when no reduction is pending anywhere in the pipeline.
    fn is_idle(&self) -> bool {
        self.min_len == 0 && self.envelope >= 1.0 && self.ramp_reduced == 0
    }

    /// Fast path: copy through the delay line, keep the scanner's history,
    /// advance time with requirement 1 (nothing to record while idle).
    fn pass_through(&mut self, chunk: &[f32], out: &mut Vec<f32>) {
        self.scanner.push_history(chunk);
        for &x in chunk {
            let delayed = self.swap_delay(x);
            if self.to_skip > 0 {
                self.to_skip -= 1;
            } else {
                out.push(delayed);
            }
        }
        self.time += chunk.len() as u64;
    }

    fn swap_delay(&mut self, x: f32) -> f32 {
        let old = std::mem::replace(&mut self.delay_line[self.delay_pos], x);
        self.delay_pos += 1;
        if self.delay_pos == self.delay {
            self.delay_pos = 0;
        }
        old
    }

    /// Pushes one required gain and returns the gain for the sample leaving
    /// the delay line now.
    fn next_gain(&mut self, required: f64) -> f64 {
        let held = self.sliding_min(required);
        self.envelope = if held < self.envelope {
            held
        } else {
            // Aim a little past the held value so that the exponential
            // arrives in finite time (≈ 3.6 time constants after a 10 dB
            // reduction) and the output is the input again, bit for bit.
            let aim = held * RELEASE_OVERSHOOT;
            (self.envelope + self.release_coeff * (aim - self.envelope)).min(held)
        };
        self.average(self.envelope)
    }

    fn sliding_min(&mut self, required: f64) -> f64 {
        let cap = self.min_queue.len();
        let now = self.time;
        self.time += 1;
        // Drop expired entries from the front.
        while self.min_len > 0 && self.min_queue[self.min_head].0 + self.min_window <= now {
            self.min_head = (self.min_head + 1) % cap;
            self.min_len -= 1;
        }
        if required < 1.0 {
            // Drop entries from the back that are no lower than the new one.
            while self.min_len > 0 {
                let back = (self.min_head + self.min_len - 1) % cap;
                if self.min_queue[back].1 >= required {
                    self.min_len -= 1;
                } else {
                    break;
                }
            }
            let slot = (self.min_head + self.min_len) % cap;
            self.min_queue[slot] = (now, required);
            self.min_len += 1;
        }
        if self.min_len > 0 {
            self.min_queue[self.min_head].1
        } else {
            1.0
        }
    }

    fn average(&mut self, value: f64) -> f64 {
        let old = std::mem::replace(&mut self.ramp_values[self.ramp_pos], value);
        self.ramp_pos = (self.ramp_pos + 1) % self.ramp_values.len();
        if old < 1.0 {
            self.ramp_reduced -= 1;
        }
        if value < 1.0 {
            self.ramp_reduced += 1;
        }
        if self.ramp_reduced == 0 {
            // Exactly unity: resetting the sum also stops rounding drift.
            self.ramp_sum = self.ramp_values.len() as f64;
            return 1.0;
        }
        if self.ramp_pos == 0 {
            // Once per window, an exact sum keeps rounding from piling up.
            self.ramp_sum = self.ramp_values.iter().sum();
        } else {
            self.ramp_sum += value - old;
        }
        (self.ramp_sum / self.ramp_values.len() as f64).clamp(0.0, 1.0)
    }

    fn count_reduction(&mut self, gain: f64) {
        self.stats.limited = true;
        self.stats.samples_reduced += 1;
        self.min_gain = self.min_gain.min(gain);
    }
}

/// Non-finite samples become silence; absurd magnitudes are bounded.
fn sanitize(x: f32) -> f32 {
    if x.is_finite() {
        x.clamp(-MAX_INPUT, MAX_INPUT)
    } else {
        0.0
    }
}
