//! The processing report: printed by `sori process`, stored per media and
//! returned by the API, so its field names are a contract.

use crate::gain::CapReason;
use serde::{Deserialize, Serialize};

/// Everything a job learned about one input and what it made of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Duration of the output (equal to the decoded input, unless silence was trimmed).
    pub duration_ms: u64,
    pub input: InputReport,
    /// The one linear gain applied before the limiter.
    pub gain_db: f64,
    /// True when the gain stopped short of the target (see `gain_cap_reason`).
    pub gain_capped: bool,
    /// Why: `noise` (the input stands too little above its own noise floor
    /// to be raised), `silence`, `max_gain` (the profile's backstop) or
    /// `limiting` (peaks too dense to make up for); `null` when not capped.
    #[serde(default)]
    pub gain_cap_reason: Option<CapReason>,
    /// True when the true-peak limiter reduced any sample.
    pub limited: bool,
    /// Encode passes run: 1 normally; 2 when the decoded output missed the
    /// loudness target (the true-peak ceiling is held within the pass).
    #[serde(default)]
    pub encode_passes: u32,
    /// Frames encoded a second time, within the pass, because the codec's
    /// overshoot broke the true-peak ceiling there.
    #[serde(default)]
    pub reencoded_frames: u64,
    pub output: OutputReport,
    pub waveform: WaveformSummary,
    pub timings_ms: Timings,
}

/// What the upload was, and how loud.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputReport {
    pub container: String,
    pub codec: String,
    pub sample_rate: u32,
    pub channels: u16,
    /// Gated integrated loudness (mono input measured as dual mono).
    pub integrated_lufs: f64,
    pub true_peak_dbtp: f64,
    pub loudness_range_lu: f64,
    /// Mono input is measured as dual mono (as heard on two speakers).
    #[serde(default)]
    pub dual_mono: bool,
    /// The background's level: the 10th percentile of 25 ms levels of the
    /// mono downmix, K-weighted, dual mono (LUFS).
    #[serde(default)]
    pub noise_floor_lufs: f64,
    /// Packets the decoder could not read and skipped.
    #[serde(default)]
    pub skipped_packets: u64,
    /// Leading silence before the first sound, milliseconds.
    #[serde(default)]
    pub leading_silence_ms: u64,
    /// Trailing silence after the last sound, milliseconds.
    #[serde(default)]
    pub trailing_silence_ms: u64,
}

/// The encoded Opus stream, measured after decoding it again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputReport {
    pub integrated_lufs: f64,
    pub true_peak_dbtp: f64,
    pub bitrate_bps: u32,
    /// Size of the Ogg Opus file.
    pub bytes: u64,
    /// Always true: mono output is measured as dual mono.
    #[serde(default)]
    pub dual_mono: bool,
}

/// The compact feed rendering of the waveform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WaveformSummary {
    /// 100 bars, each 0–31.
    pub bars: Vec<u8>,
}

/// Time spent per stage, milliseconds, measured inside the chain (both
/// passes). The encode pass runs its front (decode, resample, normalize) on
/// a thread of its own beside the encoder, so the stages add up to more
/// than `total`, the job's wall-clock time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Timings {
    /// Decoding the input, both passes.
    pub decode: u64,
    /// Downmix and resampling to 48 kHz.
    pub resample: u64,
    /// Pass 1's measurements and the gain planning.
    pub analyze: u64,
    /// Gain and true-peak limiter.
    pub normalize: u64,
    /// libopus encoding, frames encoded again included.
    pub encode: u64,
    /// Decoding every packet again and measuring it (true peak, loudness),
    /// on a thread beside the encoder.
    pub verify: u64,
    /// Writing the Ogg, CAF and WebM containers.
    pub mux: u64,
    /// The scrubber waveform and the feed's bars.
    pub waveform: u64,
    pub total: u64,
}
