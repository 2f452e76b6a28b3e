//! `sori process IN --out DIR`: the whole chain on one local file.

use crate::cli::{AppMode, ProcessArgs};
use anyhow::Context;
use sori_codecs::process::process_file;
use sori_codecs::profile::Application;
use sori_codecs::{Limits, Profile};
use std::time::Duration;

impl ProcessArgs {
    /// The processing profile these flags describe.
    pub fn profile(&self) -> Profile {
        Profile {
            target_lufs: self.target_lufs,
            true_peak_dbtp: self.true_peak,
            max_gain_db: self.max_gain,
            bitrate_bps: self.bitrate,
            cbr: self.cbr,
            frame_ms: self.frame_ms,
            complexity: self.complexity,
            application: match self.application {
                AppMode::Voip => Application::Voip,
                AppMode::Audio => Application::Audio,
            },
            trim_silence: self.trim_silence,
        }
    }

    pub fn limits(&self) -> Limits {
        Limits {
            max_bytes: self.max_bytes,
            max_duration: Duration::from_secs(self.max_duration_secs),
            ..Limits::default()
        }
    }
}

/// Writes the outputs, prints the report JSON; an unusable input is an error
/// whose one line says why.
pub fn run(args: &ProcessArgs) -> anyhow::Result<()> {
    let processed = process_file(&args.input, &args.out, &args.profile(), &args.limits())
        .with_context(|| format!("{}", args.input.display()))?;
    let json = serde_json::to_string(&processed.report)?;
    println!("{json}");
    Ok(())
}
