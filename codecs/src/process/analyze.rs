//! Pass 1: decode and measure, at the input's own rate.
//!
//! K-weighting, the 4× true-peak interpolator and the gain planner's record
//! work at any rate, so this pass skips the resampler (a fifth of the work).
//! It measures the input on its own channels (for the report), the mono
//! downmix as dual mono (what the gain is computed from), the mono signal's
//! per-millisecond levels ([`LevelRecorder`]) and the silence at its edges.

use crate::analysis::SilenceDetector;
use crate::decode::Decoder;
use crate::downmix::Downmixer;
use crate::error::{CodecError, Result};
use crate::gain::{LevelHistory, LevelRecorder};
use crate::loudness::{Loudness, LoudnessMeter, Measure};
use crate::profile::Profile;
use crate::resample::expected_output_len;
use crate::OUTPUT_RATE;
use std::sync::mpsc::{channel, sync_channel, Receiver, SyncSender};
use std::thread::{Scope, ScopedJoinHandle};
use std::time::{Duration, Instant};

/// Decoded blocks queued for the input meter's thread.
const BLOCKS_IN_FLIGHT: usize = 16;

/// What pass 1 learned.
pub(crate) struct Analysis {
    pub container: String,
    pub codec: String,
    pub sample_rate: u32,
    pub channels: u16,
    /// The input on its own channels (a mono input: its dual-mono figures).
    pub input: Loudness,
    pub input_dual_mono: bool,
    /// Integrated loudness of the mono downmix, dual mono.
    pub mono_lufs: f64,
    /// Mono samples at 48 kHz the input becomes.
    pub samples: u64,
    pub leading_ms: u64,
    pub trailing_ms: u64,
    pub skipped_packets: u64,
    pub history: LevelHistory,
    /// Time decoding (and downmixing) in this pass.
    pub decode_time: Duration,
    /// Time measuring, summed over the threads that do it.
    pub analyze_time: Duration,
}

impl Analysis {
    /// The span of mono 48 kHz samples to encode: all of it, or without the
    /// leading and trailing silence when the profile trims it.
    pub fn window(&self, profile: &Profile) -> (u64, u64) {
        if !profile.trim_silence {
            return (0, self.samples);
        }
        let per_ms = u64::from(OUTPUT_RATE) / 1000;
        let start = (self.leading_ms * per_ms).min(self.samples);
        let end = self.samples.saturating_sub(self.trailing_ms * per_ms);
        if end > start {
            (start, end)
        } else {
            (0, self.samples)
        }
    }
}

/// The measurements of the mono signal, made on a thread of their own.
struct MonoMeasures {
    /// Only for multichannel input: a mono input's meter is the input meter.
    meter: Option<LoudnessMeter>,
    silence: SilenceDetector,
    levels: LevelRecorder,
}

impl MonoMeasures {
    fn add(&mut self, mono: &[f32]) -> Result<()> {
        if let Some(meter) = self.meter.as_mut() {
            meter.add(mono)?;
        }
        self.silence.add(mono);
        self.levels.add(mono);
        Ok(())
    }
}

/// Samples gathered before a copy goes to a measuring thread: each hand-off
/// wakes that thread, and a decoder's blocks are small.
const BATCH_SAMPLES: usize = 16_384;

/// Work moved to a thread of its own, fed with copies of the blocks.
struct Offload<'scope, T> {
    blocks: SyncSender<Vec<f32>>,
    spare: Receiver<Vec<f32>>,
    batch: Vec<f32>,
    handle: ScopedJoinHandle<'scope, Result<(T, Duration)>>,
}

impl<'scope, T: Send + 'scope> Offload<'scope, T> {
    fn spawn<'env>(
        scope: &'scope Scope<'scope, 'env>,
        mut state: T,
        work: fn(&mut T, &[f32]) -> Result<()>,
    ) -> Self {
        let (blocks, block_rx) = sync_channel::<Vec<f32>>(BLOCKS_IN_FLIGHT);
        let (spare_tx, spare) = channel::<Vec<f32>>();
        let handle = scope.spawn(move || {
            let mut busy = Duration::ZERO;
            for block in block_rx {
                let started = Instant::now();
                work(&mut state, &block)?;
                busy += started.elapsed();
                let _ = spare_tx.send(block);
            }
            Ok((state, busy))
        });
        Self {
            blocks,
            spare,
            batch: Vec::new(),
            handle,
        }
    }

    /// Queues a copy of `block`; hands the batch over once it is large.
    /// Blocks keep their order and their frame boundaries (a batch holds
    /// whole interleaved blocks).
    fn send(&mut self, block: &[f32]) {
        self.batch.extend_from_slice(block);
        if self.batch.len() >= BATCH_SAMPLES {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let mut next = self.spare.try_recv().unwrap_or_default();
        next.clear();
        // A closed channel means the work failed: its error comes at join.
        let _ = self.blocks.send(std::mem::replace(&mut self.batch, next));
    }

    /// The state, and the time the work took.
    fn finish(mut self) -> Result<(T, Duration)> {
        self.flush();
        drop(self.blocks);
        self.handle
            .join()
            .map_err(|_| CodecError::Internal("an analysis thread panicked".into()))?
    }
}

/// Runs pass 1; `progress` hears the seconds of input decoded so far.
///
/// This thread decodes and downmixes; the input's own meter (loudness and
/// range; for multichannel input also every channel's true peak) and the
/// mono signal's measurements each run on a thread of their own, fed with
/// copies of the blocks: together they cost twice the decoding. A mono
/// input is its own mono signal: the input meter's figures are the mono
/// figures too.
pub(crate) fn analyze(mut decoder: Decoder, progress: &mut dyn FnMut(f64)) -> Result<Analysis> {
    let info = decoder.info().clone();
    let rate = info.sample_rate;
    let mono_input = info.channels == 1;
    let loudness_only = Measure {
        range: false,
        true_peak: false,
    };
    let input_meter = if mono_input {
        // The true peak comes from the level record, which scans anyway.
        let measure = Measure {
            range: true,
            true_peak: false,
        };
        LoudnessMeter::with_measure(1, rate, measure)?
    } else {
        LoudnessMeter::new(info.channels, rate)?
    };
    let measures = MonoMeasures {
        meter: (!mono_input)
            .then(|| LoudnessMeter::with_measure(1, rate, loudness_only))
            .transpose()?,
        silence: SilenceDetector::new(rate),
        levels: LevelRecorder::new(rate),
    };
    let mut downmix = Downmixer::new(&info.speakers);
    let mut mono = Vec::new();
    let mut frames = 0u64;
    let mut decode_time = Duration::ZERO;
    let ((input_meter, metering), (measures, measuring)) = std::thread::scope(|scope| {
        let mut input_work = Offload::spawn(scope, input_meter, |m, block| m.add(block));
        let mut mono_work = Offload::spawn(scope, measures, MonoMeasures::add);
        let mut decoding = || -> Result<()> {
            loop {
                let started = Instant::now();
                let Some(block) = decoder.next_block()? else {
                    break;
                };
                downmix.process(block, &mut mono);
                decode_time += started.elapsed();
                input_work.send(block);
                mono_work.send(&mono);
                frames += mono.len() as u64;
                progress(frames as f64 / f64::from(rate.max(1)));
            }
            Ok(())
        };
        let decoded = decoding();
        let input_meter = input_work.finish();
        let measures = mono_work.finish();
        decoded?;
        Ok::<_, CodecError>((input_meter?, measures?))
    })?;
    let finishing = Instant::now();
    let history = measures.levels.finish();
    let input = input_meter.finish();
    let mut mono_loudness = measures.meter.as_ref().map_or(input, LoudnessMeter::finish);
    mono_loudness.true_peak_dbtp = history.true_peak_dbtp().max(mono_loudness.sample_peak_dbfs);
    // A mono input is the mono signal: its figures are the mono ones.
    let (input, input_dual_mono) = if mono_input {
        (mono_loudness, true)
    } else {
        (input, input_meter.is_dual_mono())
    };
    let quiet = measures.silence.finish();
    let analyze_time = metering + measuring + finishing.elapsed();
    Ok(Analysis {
        container: info.container,
        codec: info.codec,
        sample_rate: rate,
        channels: info.channels,
        input,
        input_dual_mono,
        mono_lufs: mono_loudness.integrated_lufs,
        samples: expected_output_len(frames, rate),
        leading_ms: quiet.leading_ms,
        trailing_ms: quiet.trailing_ms,
        skipped_packets: decoder.skipped_packets(),
        history,
        decode_time,
        analyze_time,
    })
}
