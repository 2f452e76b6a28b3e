//! `sori process IN --out DIR`: the whole chain on one local file.

use crate::cli::{AppMode, ProcessArgs};
use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sori_codecs::process::{process_file_observed, Progress};
use sori_codecs::profile::Application;
use sori_codecs::{Limits, Profile};
use std::io::IsTerminal;
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
/// whose one line says why. On a terminal, a progress bar on stderr follows
/// the two passes (a long file takes a while); piped, nothing but the report.
pub fn run(args: &ProcessArgs) -> anyhow::Result<()> {
    let bar = progress_bar();
    let mut observer = |p: Progress| show(&bar, p);
    let processed = process_file_observed(
        &args.input,
        &args.out,
        &args.profile(),
        &args.limits(),
        &mut observer,
    );
    bar.finish_and_clear();
    let processed = processed.with_context(|| format!("{}", args.input.display()))?;
    let json = serde_json::to_string(&processed.report)?;
    println!("{json}");
    Ok(())
}

/// A bar on stderr when both stdout and stderr are terminals; hidden otherwise.
fn progress_bar() -> ProgressBar {
    if !(std::io::stdout().is_terminal() && std::io::stderr().is_terminal()) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{msg:>10} {bar:30} {pos}/{len} s of audio ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

fn show(bar: &ProgressBar, progress: Progress) {
    let (message, seconds, of) = match progress {
        Progress::Analyzing { seconds, of } => ("measuring".to_string(), seconds, of),
        Progress::Encoding { seconds, of, pass } if pass > 1 => {
            (format!("encoding ({pass})"), seconds, Some(of))
        }
        Progress::Encoding { seconds, of, .. } => ("encoding".to_string(), seconds, Some(of)),
    };
    if bar.message() != message {
        bar.set_message(message);
        bar.set_length(of.map_or(0, |s| s.ceil() as u64));
    }
    bar.set_position(seconds as u64);
}
