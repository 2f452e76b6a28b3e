//! Processing settings (the "voice" profile: mono 48 kHz Opus at 32 kbit/s,
//! −16 LUFS, −1.5 dBTP) and input limits.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// libopus application mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Application {
    /// Speech-tuned (SILK/hybrid at low rates): the default for voice posts.
    Voip,
    /// Music-tuned (CELT favoured).
    Audio,
}

/// How a job should sound when it is done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Integrated loudness target, LUFS (measured dual-mono on the decoded output).
    pub target_lufs: f64,
    /// True-peak ceiling, dBTP, held on the decoded output.
    pub true_peak_dbtp: f64,
    /// Largest gain applied to quiet input, dB: a backstop only. What keeps
    /// near-silence and noise from being blown up is their signal-to-noise
    /// ratio ([`crate::gain`]), not their level.
    pub max_gain_db: f64,
    /// Opus target bitrate, bits per second.
    pub bitrate_bps: u32,
    /// Constant bitrate instead of VBR (oldest iOS CAF players want it).
    pub cbr: bool,
    /// Opus frame duration in milliseconds (2.5, 5, 10, 20, 40, 60 → we allow 10/20/40/60).
    pub frame_ms: u32,
    /// libopus complexity 0–10.
    pub complexity: u8,
    pub application: Application,
    /// Trim leading and trailing silence before encoding.
    pub trim_silence: bool,
}

impl Default for Profile {
    fn default() -> Self {
        Self {
            target_lufs: -16.0,
            true_peak_dbtp: -1.5,
            max_gain_db: 40.0,
            bitrate_bps: 32_000,
            cbr: false,
            frame_ms: 20,
            complexity: 10,
            application: Application::Voip,
            trim_silence: false,
        }
    }
}

/// Bounds on what an upload may be, checked from the header and again while decoding.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub max_bytes: u64,
    pub max_duration: Duration,
    pub max_channels: u16,
    pub min_sample_rate: u32,
    pub max_sample_rate: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 50 * 1024 * 1024,
            max_duration: Duration::from_secs(15 * 60),
            max_channels: 8,
            min_sample_rate: 8_000,
            max_sample_rate: 192_000,
        }
    }
}
