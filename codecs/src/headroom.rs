//! Predicting how much loudness the true-peak limiter will take away, from
//! the analysis pass alone, so the first encode pass already lands on target.
//!
//! Normalizing peaky speech by +5 to +10 dB makes the limiter work on every
//! plosive; each reduction removes a little energy, and the gated loudness of
//! the result falls 0.2–0.8 LU short of the target. Finding that out after
//! encoding means encoding twice, and the encoder is most of the job's cost.
//!
//! So pass 1 keeps a small histogram: for each 10 ms block of the mono
//! signal, its peak level (0.25 dB bins) and its energy added to that bin.
//! For a candidate gain `g` and ceiling `c`, a block whose gained peak exceeds
//! `c` is assumed reduced by the excess over the whole block (the limiter's
//! look-ahead and hold span about that long), so the energy kept is
//! `Σ E_b · min(1, c / (g · p_b))²`. [`LossPredictor::gain_for`] solves for the
//! gain whose *limited* loudness meets the target. Memory is fixed (the
//! histogram), whatever the duration.

/// Width of a histogram bin, dB.
const BIN_DB: f64 = 0.25;
/// Lowest peak level tracked, dBFS; quieter blocks are never limited.
const FLOOR_DB: f64 = -60.0;
/// Bins from the floor up to +24 dBFS (hostile input may exceed full scale).
const BINS: usize = ((24.0 - FLOOR_DB) / BIN_DB) as usize;
/// The most gain spent compensating for limiting, dB: beyond that the voice
/// would be squashed flat; the report will show the shortfall.
const MAX_COMPENSATION_DB: f64 = 3.0;

/// Streaming peak/energy histogram of a mono signal.
#[derive(Debug, Clone)]
pub struct LossPredictor {
    block_len: usize,
    filled: usize,
    peak: f32,
    energy: f64,
    bins: Vec<f64>,
    total: f64,
}

impl LossPredictor {
    /// A predictor for a mono signal at `sample_rate`.
    pub fn new(sample_rate: u32) -> Self {
        Self {
            block_len: (sample_rate as usize / 10).max(1),
            filled: 0,
            peak: 0.0,
            energy: 0.0,
            bins: vec![0.0; BINS],
            total: 0.0,
        }
    }

    pub fn add(&mut self, mono: &[f32]) {
        for &s in mono {
            let s = if s.is_finite() { s } else { 0.0 };
            self.peak = self.peak.max(s.abs());
            self.energy += f64::from(s) * f64::from(s);
            self.filled += 1;
            if self.filled == self.block_len {
                self.close_block();
            }
        }
    }

    fn close_block(&mut self) {
        if self.filled > 0 {
            self.total += self.energy;
            let db = 20.0 * f64::from(self.peak.max(1e-9)).log10();
            if db >= FLOOR_DB {
                let bin = (((db - FLOOR_DB) / BIN_DB) as usize).min(BINS - 1);
                self.bins[bin] += self.energy;
            }
        }
        self.filled = 0;
        self.peak = 0.0;
        self.energy = 0.0;
    }

    /// Loudness lost (dB, ≥ 0) when the signal is gained by `gain_db` and
    /// limited to `ceiling_db`; `peak_offset_db` is how far true peaks sit
    /// above sample peaks.
    pub fn loss_db(&self, gain_db: f64, ceiling_db: f64, peak_offset_db: f64) -> f64 {
        let total = self.total + self.energy;
        if total <= 0.0 {
            return 0.0;
        }
        let mut removed = 0.0;
        for (i, &energy) in self.bins.iter().enumerate() {
            let peak_db = FLOOR_DB + (i as f64 + 0.5) * BIN_DB + peak_offset_db + gain_db;
            let excess = peak_db - ceiling_db;
            if excess > 0.0 && energy > 0.0 {
                removed += energy * (1.0 - 10f64.powf(-excess / 10.0));
            }
        }
        let kept = ((total - removed) / total).max(1e-6);
        -10.0 * kept.log10()
    }

    /// The gain (dB) that brings a signal measured at `measured_lufs` to
    /// `target_lufs` *after* limiting to `ceiling_db`, never more than
    /// `max_gain_db` and never compensating more than a few dB.
    pub fn gain_for(
        &self,
        measured_lufs: f64,
        target_lufs: f64,
        ceiling_db: f64,
        peak_offset_db: f64,
        max_gain_db: f64,
    ) -> f64 {
        let plain = target_lufs - measured_lufs;
        let mut gain = plain;
        for _ in 0..8 {
            let loss = self.loss_db(gain, ceiling_db, peak_offset_db);
            gain = plain + loss.min(MAX_COMPENSATION_DB);
        }
        gain.min(max_gain_db)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_loss_when_peaks_stay_under_the_ceiling() {
        let mut p = LossPredictor::new(48_000);
        let sine: Vec<f32> = (0..48_000).map(|i| 0.1 * (i as f32 * 0.05).sin()).collect();
        p.add(&sine);
        assert!(p.loss_db(6.0, -1.0, 0.0) < 1e-9);
    }

    #[test]
    fn a_constant_tone_pushed_over_the_ceiling_loses_the_excess() {
        let mut p = LossPredictor::new(48_000);
        let sine: Vec<f32> = (0..48_000).map(|i| 0.5 * (i as f32 * 0.05).sin()).collect();
        p.add(&sine);
        // Peak −6 dBFS + 8 dB gain = +2 dB; a −1 dB ceiling takes 3 dB off.
        let loss = p.loss_db(8.0, -1.0, 0.0);
        assert!((loss - 3.0).abs() < 0.2, "{loss}");
        // Under the ceiling, the plain gain is the answer.
        let g = p.gain_for(-20.0, -16.0, -1.0, 0.0, 20.0);
        assert!((g - 4.0).abs() < 1e-9, "{g}");
        // Over it, more gain is asked for, but never more than the compensation cap.
        let g = p.gain_for(-20.0, -12.0, -1.0, 0.0, 20.0);
        assert!((g - (8.0 + MAX_COMPENSATION_DB)).abs() < 1e-9, "{g}");
        // And never more than the profile's cap.
        assert!(p.gain_for(-20.0, -12.0, -1.0, 0.0, 9.0) <= 9.0);
    }
}
