//! The front of the chain: decoder → downmix → resample to mono 48 kHz, and,
//! in the encode pass, the gain and the true-peak limiter, run on a thread
//! of its own so that it overlaps with the encoder.

use crate::decode::Decoder;
use crate::downmix::Downmixer;
use crate::error::{CodecError, Result};
use crate::limiter::Limiter;
use crate::resample::Resampler;
use crate::OUTPUT_RATE;
use std::sync::mpsc::{Receiver, SyncSender};
use std::time::{Duration, Instant};

/// Decoder → downmix → resample: mono 48 kHz blocks, one at a time, with
/// the time spent decoding and resampling (downmix included).
pub(crate) struct FrontEnd {
    decoder: Decoder,
    downmix: Downmixer,
    resampler: Resampler,
    mono: Vec<f32>,
    out: Vec<f32>,
    done: bool,
    pub decode_time: Duration,
    pub resample_time: Duration,
}

impl FrontEnd {
    pub fn new(decoder: Decoder) -> Result<Self> {
        let info = decoder.info();
        let downmix = Downmixer::new(&info.speakers);
        let resampler = Resampler::new(info.sample_rate)?;
        Ok(Self {
            decoder,
            downmix,
            resampler,
            mono: Vec::new(),
            out: Vec::new(),
            done: false,
            decode_time: Duration::ZERO,
            resample_time: Duration::ZERO,
        })
    }

    /// The next mono 48 kHz block, `None` at the end.
    pub fn next(&mut self) -> Result<Option<&[f32]>> {
        loop {
            if self.done {
                return Ok(None);
            }
            let started = Instant::now();
            self.out.clear();
            let block = self.decoder.next_block()?;
            let decoded = Instant::now();
            self.decode_time += decoded - started;
            match block {
                Some(block) => {
                    self.downmix.process(block, &mut self.mono);
                    self.resampler.process(&self.mono, &mut self.out)?;
                }
                None => {
                    self.resampler.finish(&mut self.out)?;
                    self.done = true;
                }
            }
            self.resample_time += decoded.elapsed();
            if !self.out.is_empty() {
                return Ok(Some(&self.out));
            }
        }
    }
}

/// What the encode pass's front applies.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Normalize {
    pub gain_db: f64,
    /// The limiter's ceiling, when the gained peaks can reach it.
    pub limiter_ceiling: Option<f64>,
    /// The span of mono 48 kHz samples to keep (silence trimming).
    pub window: (u64, u64),
}

/// What the front thread reports when it is done.
#[derive(Debug, Default)]
pub(crate) struct FrontStats {
    pub decode: Duration,
    pub resample: Duration,
    pub normalize: Duration,
    pub limited: bool,
}

/// Blocks in flight between the front thread and the encoder: enough to
/// ride out a slow decode or a burst of re-encoded frames.
pub(crate) const QUEUE_BLOCKS: usize = 4;
/// Samples gathered before a block goes to the encoder (about 170 ms):
/// each hand-off may wake a thread, and a decoder's blocks are small.
const BATCH_SAMPLES: usize = 8192;

/// Runs the front of the encode pass: sends gained, limited mono 48 kHz
/// blocks to `blocks`, taking back emptied buffers from `spare`. Stops early,
/// without error, when the encoder hangs up (it failed and says why).
pub(crate) fn run(
    decoder: Decoder,
    normalize: Normalize,
    blocks: SyncSender<Vec<f32>>,
    spare: Receiver<Vec<f32>>,
) -> Result<FrontStats> {
    let mut front = FrontEnd::new(decoder)?;
    let mut limiter = normalize
        .limiter_ceiling
        .map(|ceiling| Limiter::new(OUTPUT_RATE, ceiling));
    let gain = 10f64.powf(normalize.gain_db / 20.0) as f32;
    let (start, end) = normalize.window;
    let mut position = 0u64;
    let mut gained = Vec::new();
    let mut normalize_time = Duration::ZERO;
    let mut batch = spare.try_recv().unwrap_or_default();
    let send = |batch: &mut Vec<f32>, last: bool| -> bool {
        if batch.is_empty() || (batch.len() < BATCH_SAMPLES && !last) {
            return true;
        }
        let mut next = spare.try_recv().unwrap_or_default();
        next.clear();
        blocks.send(std::mem::replace(batch, next)).is_ok()
    };
    while let Some(block) = front.next()? {
        let from = start.saturating_sub(position).min(block.len() as u64) as usize;
        let to = end.saturating_sub(position).min(block.len() as u64) as usize;
        position += block.len() as u64;
        if from >= to {
            continue;
        }
        let started = Instant::now();
        gained.clear();
        gained.extend(block[from..to].iter().map(|s| s * gain));
        match limiter.as_mut() {
            Some(l) => l.process(&gained, &mut batch),
            None => batch.extend_from_slice(&gained),
        }
        normalize_time += started.elapsed();
        if !send(&mut batch, false) {
            return Ok(FrontStats::default());
        }
    }
    if let Some(l) = limiter.as_mut() {
        l.flush(&mut batch);
    }
    send(&mut batch, true);
    Ok(FrontStats {
        decode: front.decode_time,
        resample: front.resample_time,
        normalize: normalize_time,
        limited: limiter.is_some_and(|l| l.stats().limited),
    })
}

/// Joins the front thread: its own error first, a panic as an internal error.
pub(crate) fn join(
    handle: std::thread::ScopedJoinHandle<'_, Result<FrontStats>>,
) -> Result<FrontStats> {
    handle
        .join()
        .map_err(|_| CodecError::Internal("the decoding thread panicked".into()))?
}
