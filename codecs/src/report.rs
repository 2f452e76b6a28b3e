//! The processing report (DESIGN §4): printed by `sori process`, stored per media.

use serde::{Deserialize, Serialize};

/// Everything a job learned about one input and what it made of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Duration of the output (equal to the decoded input, unless silence was trimmed).
    pub duration_ms: u64,
    pub input: InputReport,
    /// The one linear gain applied before the limiter.
    pub gain_db: f64,
    /// True when the gain wanted was larger than the profile's cap (near-silent input).
    pub gain_capped: bool,
    /// True when the true-peak limiter reduced any sample.
    pub limited: bool,
    /// Encode passes run: 1 normally; more when the decoded output first
    /// missed the loudness target or broke the true-peak ceiling.
    #[serde(default)]
    pub encode_passes: u32,
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

/// Wall-clock time spent per stage, milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    pub decode: u64,
    pub analyze: u64,
    pub encode: u64,
    pub total: u64,
}
