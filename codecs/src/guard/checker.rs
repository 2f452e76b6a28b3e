//! The guard's checker, on a thread of its own: decodes every packet as a
//! player would, scans its 4× true peak and reports where it breaks the
//! limit; goes back to a saved state when the encoder does; measures the
//! loudness and true peak of what is finally committed.
//!
//! The encoder talks to it through two channels: [`Job`]s in order, and
//! [`Verdict`]s back, one per checked packet, in the same order.

use super::{Decoded, Overshoot};
use crate::error::{CodecError, Result};
use crate::libopus::{error_text, DecoderState};
use crate::loudness::{amplitude_to_db, LoudnessMeter, Measure, TruePeakScanner};
use crate::OUTPUT_RATE;
use std::collections::VecDeque;
use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The longest Opus packet decodes to 120 ms.
const MAX_PACKET_SAMPLES: usize = 5760;

/// What the encoder asks of the checker.
pub(super) enum Job {
    /// Decode and scan frame `index`'s packet; positions at or past `end`
    /// (the stream's length, once known) are padding and not judged.
    Check {
        epoch: u32,
        index: u64,
        packet: Vec<u8>,
        end: i64,
    },
    /// Go back to the state before frame `index` (checked before).
    Rewind { index: u64 },
    /// Every frame up to `index` is final: measure their decoded samples
    /// within `end`.
    Commit { index: u64, end: i64 },
}

/// The checker's answer about one packet; `packet` comes back for reuse.
pub(super) struct Verdict {
    pub epoch: u32,
    pub index: u64,
    pub overshoot: Option<Overshoot>,
    pub packet: Vec<u8>,
}

/// The encoder's handle on the checker thread.
pub(super) struct Checker {
    jobs: Option<Sender<Job>>,
    verdicts: Receiver<Verdict>,
    handle: Option<JoinHandle<Result<(Decoded, Duration)>>>,
    buffers: Vec<Vec<u8>>,
}

impl Checker {
    /// Starts the thread for frames of `frame_len` samples, a stream with
    /// `pre_skip`, and a true-peak `limit` (linear).
    pub fn spawn(frame_len: usize, pre_skip: i64, limit: f32) -> Result<Self> {
        let decoder = DecoderState::new(OUTPUT_RATE as i32, 1)
            .map_err(|e| CodecError::Encoder(format!("libopus decoder: {}", error_text(e))))?;
        let (jobs, job_rx) = channel();
        let (verdict_tx, verdicts) = channel();
        let state = State::new(decoder, frame_len, pre_skip, limit)?;
        let handle = std::thread::Builder::new()
            .name("sori-opus-check".into())
            .spawn(move || state.run(job_rx, verdict_tx))?;
        Ok(Self {
            jobs: Some(jobs),
            verdicts,
            handle: Some(handle),
            buffers: Vec::new(),
        })
    }

    pub fn send(&mut self, job: Job) -> Result<()> {
        let sent = self
            .jobs
            .as_ref()
            .is_some_and(|jobs| jobs.send(job).is_ok());
        if sent {
            Ok(())
        } else {
            Err(self.failure())
        }
    }

    /// The next verdict if one is waiting.
    pub fn try_verdict(&mut self) -> Result<Option<Verdict>> {
        match self.verdicts.try_recv() {
            Ok(v) => Ok(Some(v)),
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => Err(self.failure()),
        }
    }

    /// The next verdict, waiting for it.
    pub fn verdict(&mut self) -> Result<Verdict> {
        self.verdicts.recv().map_err(|_| self.failure())
    }

    /// A packet buffer holding `bytes` (reused from earlier verdicts).
    pub fn buffer_with(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut buffer = self.buffers.pop().unwrap_or_default();
        buffer.clear();
        buffer.extend_from_slice(bytes);
        buffer
    }

    pub fn recycle(&mut self, buffer: Vec<u8>) {
        self.buffers.push(buffer);
    }

    /// Ends the thread; returns what the committed stream decodes to and
    /// the time the checker spent working.
    pub fn finish(mut self) -> Result<(Decoded, Duration)> {
        self.jobs = None;
        let handle = self
            .handle
            .take()
            .ok_or_else(|| CodecError::Internal("checker already finished".into()))?;
        handle
            .join()
            .map_err(|_| CodecError::Internal("the checking thread panicked".into()))?
    }

    /// Why the thread stopped early: its own error, or a panic.
    fn failure(&mut self) -> CodecError {
        self.jobs = None;
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(Err(e))) => e,
            Some(Err(_)) => CodecError::Internal("the checking thread panicked".into()),
            _ => CodecError::Internal("the checking thread stopped".into()),
        }
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        // Closing the job channel ends the thread's loop.
        self.jobs = None;
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// A checked frame not yet committed, with the states before it.
struct Saved {
    index: u64,
    decoder_before: DecoderState,
    scanner_before: TruePeakScanner,
    decoded: Vec<f32>,
    peak: f32,
}

/// Everything the checker thread owns.
struct State {
    decoder: DecoderState,
    scanner: TruePeakScanner,
    frame_len: usize,
    pre_skip: i64,
    limit: f32,
    saved: VecDeque<Saved>,
    spare: Vec<Saved>,
    pcm: Vec<f32>,
    peaks: Vec<f32>,
    meter: LoudnessMeter,
    true_peak: f32,
}

impl State {
    fn new(decoder: DecoderState, frame_len: usize, pre_skip: i64, limit: f32) -> Result<Self> {
        // The scan gives the true peak; the meter measures loudness only.
        let measure = Measure {
            range: false,
            true_peak: false,
        };
        Ok(Self {
            decoder,
            scanner: TruePeakScanner::new(),
            frame_len,
            pre_skip,
            limit,
            saved: VecDeque::new(),
            spare: Vec::new(),
            pcm: vec![0.0; MAX_PACKET_SAMPLES],
            peaks: vec![0.0; frame_len],
            meter: LoudnessMeter::with_measure(1, OUTPUT_RATE, measure)?,
            true_peak: 0.0,
        })
    }

    fn run(
        mut self,
        jobs: Receiver<Job>,
        verdicts: Sender<Verdict>,
    ) -> Result<(Decoded, Duration)> {
        let mut busy = Duration::ZERO;
        for job in jobs {
            let started = Instant::now();
            match job {
                Job::Check {
                    epoch,
                    index,
                    packet,
                    end,
                } => {
                    let overshoot = self.check(index, &packet, end)?;
                    let verdict = Verdict {
                        epoch,
                        index,
                        overshoot,
                        packet,
                    };
                    if verdicts.send(verdict).is_err() {
                        break;
                    }
                }
                Job::Rewind { index } => self.rewind(index)?,
                Job::Commit { index, end } => self.commit(index, end)?,
            }
            busy += started.elapsed();
        }
        let loudness = self.meter.finish();
        let decoded = Decoded {
            integrated_lufs: loudness.integrated_lufs,
            true_peak_dbtp: amplitude_to_db(f64::from(self.true_peak)),
        };
        Ok((decoded, busy))
    }

    fn check(&mut self, index: u64, packet: &[u8], end: i64) -> Result<Option<Overshoot>> {
        let mut slot = self.spare.pop().unwrap_or_else(|| Saved {
            index: 0,
            decoder_before: self.decoder.clone(),
            scanner_before: self.scanner.clone(),
            decoded: vec![0.0; self.frame_len],
            peak: 0.0,
        });
        slot.index = index;
        slot.decoder_before.restore(&self.decoder);
        slot.scanner_before.clone_from(&self.scanner);
        let n = self
            .decoder
            .decode_float(packet, &mut self.pcm)
            .map_err(|e| {
                CodecError::Encoder(format!("decoding our own packet: {}", error_text(e)))
            })?;
        if n != self.frame_len {
            return Err(CodecError::Internal(format!(
                "a {}-sample frame decoded to {n} samples",
                self.frame_len
            )));
        }
        slot.decoded.copy_from_slice(&self.pcm[..n]);
        self.scanner.scan(&slot.decoded, &mut self.peaks);
        // peaks[k] is about decoder output sample index·F + k − DELAY.
        let base =
            index as i64 * self.frame_len as i64 - TruePeakScanner::DELAY as i64 - self.pre_skip;
        let mut over: Option<Overshoot> = None;
        slot.peak = 0.0;
        for (k, &peak) in self.peaks.iter().enumerate() {
            let position = base + k as i64;
            if !(0..end).contains(&position) {
                continue;
            }
            slot.peak = slot.peak.max(peak);
            if peak > self.limit {
                let o = over.get_or_insert(Overshoot {
                    first: position,
                    last: position,
                    peak,
                });
                o.last = position;
                o.peak = o.peak.max(peak);
            }
        }
        self.saved.push_back(slot);
        Ok(over)
    }

    fn rewind(&mut self, index: u64) -> Result<()> {
        let at = self
            .saved
            .iter()
            .position(|s| s.index == index)
            .ok_or_else(|| CodecError::Internal(format!("checker: rewind to frame {index}")))?;
        self.decoder.restore(&self.saved[at].decoder_before);
        self.scanner.clone_from(&self.saved[at].scanner_before);
        self.spare.extend(self.saved.drain(at..));
        Ok(())
    }

    fn commit(&mut self, upto: u64, end: i64) -> Result<()> {
        while self.saved.front().is_some_and(|s| s.index <= upto) {
            self.commit_oldest(end)?;
        }
        Ok(())
    }

    fn commit_oldest(&mut self, end: i64) -> Result<()> {
        let slot = self
            .saved
            .pop_front()
            .ok_or_else(|| CodecError::Internal("checker: commit of no frame".into()))?;
        let index = slot.index;
        // Decoder output k is input position start + k − pre_skip.
        let f = self.frame_len as i64;
        let start = index as i64 * f;
        let from = (self.pre_skip - start).clamp(0, f) as usize;
        let to = (end + self.pre_skip - start).clamp(from as i64, f) as usize;
        self.meter.add(&slot.decoded[from..to])?;
        self.true_peak = self.true_peak.max(slot.peak);
        self.spare.push(slot);
        Ok(())
    }
}
