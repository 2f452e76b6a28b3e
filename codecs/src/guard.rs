//! The Opus encode with the true-peak ceiling held on the *decoded* output,
//! in one pass.
//!
//! A lossy codec does not reproduce peaks: at 32 kbit/s Opus's decoded
//! output overshoots its input's true peak by up to 2–3 dB here and there.
//! Leaving that much head-room everywhere would limit every loud syllable
//! more than the ceiling needs; finding out after the whole encode and
//! encoding again costs a second pass. Instead every packet is decoded as
//! soon as it is made and its 4× true peak scanned ([`checker`], on a thread
//! of its own, a frame or two behind the encoder). Where it breaks the
//! limit, a short dip (the overshoot plus a little, with raised-cosine ramps)
//! is applied to the input around the offending samples, and the few frames
//! since the dip's start are encoded again from the libopus states saved
//! before them ([`crate::libopus`]); the checker goes back to its own saved
//! state. Frames are handed on only once no later dip can reach them, a few
//! frames behind the newest.
//!
//! Timeline: frame `n` holds input samples `[n·F, (n+1)·F)`; its packet
//! decodes to output samples that, after the stream's pre-skip, are input
//! positions `[n·F − pre_skip, (n+1)·F − pre_skip)`. A dip starting at
//! position `a` changes what libopus was fed from frame `⌊a / F⌋` on, so
//! encoding resumes there; earlier packets never saw those samples.

mod checker;

use crate::encode::FrameEncoder;
use crate::error::{CodecError, Result};
use crate::libopus::EncoderState;
use crate::loudness::amplitude_to_db;
use crate::profile::Profile;
use checker::{Checker, Job, Verdict};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The dip covers this much before the first offending sample and after the
/// last (samples at 48 kHz: 2.5 ms), at full depth…
const DIP_HOLD: i64 = 120;
/// …with raised-cosine ramps this long on either side (2.5 ms): short
/// enough to be inaudible as a level change, long enough not to click.
const DIP_RAMP: i64 = 120;
/// Depth added to the measured overshoot, dB, per attempt at the same frame:
/// the codec does not scale its error exactly with its input.
const DIP_MARGIN_DB: f64 = 0.2;
/// Attempts at one frame before its overshoot is accepted as it is (and
/// shows in the report): bounds the work on pathological input.
const MAX_ATTEMPTS: u32 = 8;
/// Verified frames kept back behind the newest: a dip found in packet `n`
/// starts no earlier than `n·F − pre_skip − scan delay − DIP_HOLD −
/// DIP_RAMP`, within the two frames before `n`; two more cover dips found
/// while encoding those again.
const KEEP_FRAMES: usize = 4;
/// Committed frames reported to the checker at once (each message may wake it).
const COMMIT_BATCH: u64 = 16;
/// Frames encoded ahead of the checker's verdicts. Two keep both threads
/// busy (checking a frame costs a fifth of encoding it); more would only
/// encode more frames again after a dip.
const MAX_IN_FLIGHT: usize = 2;

/// What the guard did, for the report and the benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GuardStats {
    /// Frames encoded in all: the stream's own plus those encoded again.
    pub frames_encoded: u64,
    /// Frames encoded again after a dip (or encoded ahead and discarded).
    pub frames_redone: u64,
    /// Dips applied.
    pub dips: u64,
    /// The deepest single dip, dB.
    pub deepest_dip_db: f64,
    /// Frames whose overshoot was still over the limit after
    /// [`MAX_ATTEMPTS`] dips (0 on anything but pathological input).
    pub unresolved: u64,
    /// Most frames held back at once, uncommitted: bounds the guard's
    /// memory whatever the stream's length.
    pub max_pending_frames: usize,
    /// Time in libopus's encoder.
    pub encode_time: Duration,
    /// Time decoding the packets again, scanning and measuring them (on
    /// the checker's thread).
    pub verify_time: Duration,
}

/// What a player makes of the committed stream, as the checker measured it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decoded {
    /// Gated integrated loudness, dual mono, LUFS.
    pub integrated_lufs: f64,
    /// Highest 4× true peak, dBTP.
    pub true_peak_dbtp: f64,
}

/// One frame, final: handed to the caller in stream order.
#[derive(Debug)]
pub struct Committed<'a> {
    /// The Opus packet.
    pub packet: &'a [u8],
    /// Samples at 48 kHz the packet decodes to (the frame duration).
    pub frame_samples: u32,
    /// The frame's input as encoded (dips included), without end padding.
    pub input: &'a [f32],
}

/// Receives committed frames.
pub type CommitSink<'a> = dyn FnMut(Committed<'_>) -> Result<()> + 'a;

/// A frame not yet committed, with the encoder's state before it.
struct Pending {
    index: u64,
    input: Vec<f32>,
    encoder_before: EncoderState,
    packet: Vec<u8>,
    attempts: u32,
}

/// Where a packet's decoded output broke the limit: input positions of the
/// first and last offending samples, and the highest peak (linear).
#[derive(Debug, Clone, Copy)]
struct Overshoot {
    first: i64,
    last: i64,
    peak: f32,
}

/// Mono 48 kHz Opus encoder whose decoded output keeps its true peak at or
/// under a limit (see the module docs).
pub struct GuardedEncoder {
    encoder: FrameEncoder,
    checker: Checker,
    limit: f32,
    frame_len: usize,
    pre_skip: i64,
    fill: Vec<f32>,
    pushed: u64,
    /// Frames not yet committed, oldest first: `pending[..verified]` have
    /// the checker's approval, `pending[..encoded]` were encoded in the
    /// current epoch, the rest wait for the encoder.
    pending: VecDeque<Pending>,
    verified: usize,
    encoded: usize,
    /// Bumped at each dip; verdicts of older epochs are stale.
    epoch: u32,
    spare: Vec<Pending>,
    next_index: u64,
    /// The stream's length, once [`Self::finish`] knows it.
    total: Option<u64>,
    /// The newest committed frame the checker has not been told about.
    unreported: Option<u64>,
    stats: GuardStats,
}

impl GuardedEncoder {
    /// An encoder with the profile's Opus settings whose decoded true peak
    /// stays at or under `limit_dbtp`.
    pub fn new(profile: &Profile, limit_dbtp: f64) -> Result<Self> {
        let encoder = FrameEncoder::new(profile)?;
        let frame_len = encoder.frame_samples();
        let pre_skip = i64::from(encoder.pre_skip());
        let limit = 10f64.powf(limit_dbtp / 20.0) as f32;
        Ok(Self {
            checker: Checker::spawn(frame_len, pre_skip, limit)?,
            encoder,
            limit,
            frame_len,
            pre_skip,
            fill: Vec::with_capacity(frame_len),
            pushed: 0,
            pending: VecDeque::with_capacity(KEEP_FRAMES + MAX_IN_FLIGHT + 2),
            verified: 0,
            encoded: 0,
            epoch: 0,
            spare: Vec::new(),
            next_index: 0,
            total: None,
            unreported: None,
            stats: GuardStats::default(),
        })
    }

    /// The encoder's lookahead, written as the streams' pre-skip.
    pub fn pre_skip(&self) -> u16 {
        self.encoder.pre_skip()
    }

    /// Samples per frame at 48 kHz.
    pub fn frame_samples(&self) -> usize {
        self.frame_len
    }

    /// Encodes `samples` (any length); frames that are final go to `commit`.
    pub fn push(&mut self, samples: &[f32], commit: &mut CommitSink<'_>) -> Result<()> {
        let mut rest = samples;
        while !rest.is_empty() {
            let take = rest.len().min(self.frame_len - self.fill.len());
            self.fill.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.fill.len() == self.frame_len {
                self.add_frame();
                self.pump(commit, false)?;
            }
        }
        self.pushed += samples.len() as u64;
        Ok(())
    }

    /// Pads the stream so that a player, after the pre-skip, has every pushed
    /// sample; commits everything. Returns the stream's length in samples,
    /// what a player decodes from it, and what the guard did.
    pub fn finish(mut self, commit: &mut CommitSink<'_>) -> Result<(u64, Decoded, GuardStats)> {
        let total = self.pushed;
        self.total = Some(total);
        let frame = self.frame_len as u64;
        let packets = (total + self.pre_skip as u64).div_ceil(frame);
        while self.next_index < packets {
            self.fill.resize(self.frame_len, 0.0);
            self.add_frame();
        }
        self.pump(commit, true)?;
        self.report_commits()?;
        let (decoded, verify_time) = self.checker.finish()?;
        self.stats.verify_time = verify_time;
        Ok((total, decoded, self.stats))
    }

    /// Queues the filled frame for the encoder.
    fn add_frame(&mut self) {
        let mut frame = self.spare.pop().unwrap_or_else(|| Pending {
            index: 0,
            input: Vec::with_capacity(self.frame_len),
            encoder_before: self.encoder.state().clone(),
            packet: Vec::new(),
            attempts: 0,
        });
        frame.index = self.next_index;
        frame.attempts = 0;
        frame.input.clear();
        frame.input.append(&mut self.fill);
        self.next_index += 1;
        self.pending.push_back(frame);
        self.stats.max_pending_frames = self.stats.max_pending_frames.max(self.pending.len());
    }

    /// Encodes what may be encoded, applies the checker's verdicts, commits
    /// what no dip can reach any more. Returns with every pending frame
    /// encoded (so what is held stays a few frames, whatever the stream's
    /// length); waits for verdicts only when the encoder is too far ahead,
    /// or, when `draining`, until all is committed.
    fn pump(&mut self, commit: &mut CommitSink<'_>, draining: bool) -> Result<()> {
        loop {
            while self.encoded < self.pending.len() && self.encoded - self.verified < MAX_IN_FLIGHT
            {
                self.encode_at(self.encoded)?;
                self.encoded += 1;
            }
            while let Some(verdict) = self.checker.try_verdict()? {
                self.apply(verdict)?;
            }
            let keep = if draining { 0 } else { KEEP_FRAMES };
            while self.verified > keep {
                self.commit_oldest(commit)?;
            }
            let in_flight = self.encoded - self.verified;
            if self.encoded < self.pending.len() && in_flight < MAX_IN_FLIGHT {
                // A dip rewound the encoder: catch up before returning, or
                // frames would pile up behind it on noisy input.
                continue;
            }
            let done = if draining {
                self.pending.is_empty()
            } else {
                in_flight < MAX_IN_FLIGHT
            };
            if done {
                return Ok(());
            }
            if in_flight > 0 {
                let verdict = self.checker.verdict()?;
                self.apply(verdict)?;
            }
        }
    }

    /// Saves the encoder's state, encodes `pending[i]` and sends its packet
    /// to the checker.
    fn encode_at(&mut self, i: usize) -> Result<()> {
        let started = Instant::now();
        let frame = &mut self.pending[i];
        frame.encoder_before.restore(self.encoder.state());
        let packet = self.encoder.encode(&frame.input)?;
        frame.packet.clear();
        frame.packet.extend_from_slice(packet);
        self.stats.frames_encoded += 1;
        self.stats.encode_time += started.elapsed();
        let job = Job::Check {
            epoch: self.epoch,
            index: frame.index,
            packet: self.checker.buffer_with(&frame.packet),
            end: self.stream_end(),
        };
        self.checker.send(job)
    }

    /// Takes the checker's verdict on the oldest unverified frame.
    fn apply(&mut self, verdict: Verdict) -> Result<()> {
        let Verdict {
            epoch,
            index,
            overshoot,
            packet,
        } = verdict;
        self.checker.recycle(packet);
        if epoch != self.epoch {
            return Ok(());
        }
        let i = self.verified;
        if self.pending.get(i).map(|p| p.index) != Some(index) {
            return Err(CodecError::Internal(format!(
                "guard: verdict on frame {index} out of order"
            )));
        }
        let Some(over) = overshoot else {
            self.verified += 1;
            return Ok(());
        };
        match self.dip(i, over) {
            Some(first) => {
                self.stats.frames_redone += (self.encoded - first) as u64;
                self.epoch += 1;
                let frame = &self.pending[first];
                self.encoder.restore(&frame.encoder_before);
                self.checker.send(Job::Rewind { index: frame.index })?;
                self.encoded = first;
                self.verified = first;
            }
            None => {
                self.stats.unresolved += 1;
                self.verified += 1;
            }
        }
        Ok(())
    }

    /// Lowers the pending input around an overshoot found in `pending[i]`'s
    /// packet; returns the index of the first frame to encode again, or
    /// `None` when that frame has had its attempts.
    fn dip(&mut self, i: usize, over: Overshoot) -> Option<usize> {
        self.pending[i].attempts += 1;
        let attempts = self.pending[i].attempts;
        if attempts > MAX_ATTEMPTS {
            return None;
        }
        let excess_db = amplitude_to_db(f64::from(over.peak) / f64::from(self.limit));
        let depth_db = excess_db + DIP_MARGIN_DB * f64::from(attempts);
        let floor = 10f64.powf(-depth_db / 20.0);
        let frame = self.frame_len as i64;
        let oldest = self.pending.front().map_or(0, |p| p.index as i64 * frame);
        let hold = (over.first - DIP_HOLD, over.last + DIP_HOLD);
        let start = (hold.0 - DIP_RAMP).max(oldest);
        let end = hold.1 + DIP_RAMP;
        for p in self.pending.iter_mut() {
            let first = p.index as i64 * frame;
            for (k, s) in p.input.iter_mut().enumerate() {
                let t = first + k as i64;
                if t < start || t > end {
                    continue;
                }
                let weight = dip_weight(t, hold, start, end);
                *s = (f64::from(*s) * (1.0 - (1.0 - floor) * weight)) as f32;
            }
        }
        self.stats.dips += 1;
        self.stats.deepest_dip_db = self.stats.deepest_dip_db.max(depth_db);
        let first_index = (start / frame) as u64;
        self.pending.iter().position(|p| p.index >= first_index)
    }

    /// One past the last input position: unknown (unbounded) until [`Self::finish`].
    fn stream_end(&self) -> i64 {
        self.total.map_or(i64::MAX / 2, |t| t as i64)
    }

    /// Hands the oldest (verified) frame on and keeps its buffers for reuse.
    fn commit_oldest(&mut self, commit: &mut CommitSink<'_>) -> Result<()> {
        let Some(frame) = self.pending.pop_front() else {
            return Ok(());
        };
        self.verified -= 1;
        self.encoded -= 1;
        let f = self.frame_len as i64;
        let start = frame.index as i64 * f;
        let end = self.stream_end();
        let input_len = (end - start).clamp(0, f) as usize;
        let result = commit(Committed {
            packet: &frame.packet,
            frame_samples: self.frame_len as u32,
            input: &frame.input[..input_len],
        });
        self.unreported = Some(frame.index);
        let index = frame.index;
        self.spare.push(frame);
        result?;
        if index % COMMIT_BATCH == COMMIT_BATCH - 1 {
            self.report_commits()?;
        }
        Ok(())
    }

    /// Tells the checker which frames are final.
    fn report_commits(&mut self) -> Result<()> {
        match self.unreported.take() {
            Some(index) => self.checker.send(Job::Commit {
                index,
                end: self.stream_end(),
            }),
            None => Ok(()),
        }
    }
}

/// Weight of the dip at position `t`: 1 over `hold`, raised-cosine ramps
/// down to 0 at `start` and `end`.
fn dip_weight(t: i64, hold: (i64, i64), start: i64, end: i64) -> f64 {
    let ramp = |distance: i64, length: i64| -> f64 {
        if length <= 0 {
            return 1.0;
        }
        let x = (distance as f64 / length as f64).clamp(0.0, 1.0);
        0.5 - 0.5 * (std::f64::consts::PI * x).cos()
    };
    if t < hold.0 {
        ramp(t - start, hold.0 - start)
    } else if t > hold.1 {
        ramp(end - t, end - hold.1)
    } else {
        1.0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::encode::OpusDecoder;
    use crate::loudness::{Loudness, LoudnessMeter};

    /// Syllables of a vowel-like tone with sharp onsets, peaking at
    /// `level`: the codec overshoots on some of their attacks.
    fn bursts(seconds: f32, level: f32) -> Vec<f32> {
        let n = (seconds * 48_000.0) as usize;
        let raw: Vec<f32> = (0..n)
            .map(|i| {
                let t = i as f32 / 48_000.0;
                let syllable = (t * 4.0).fract();
                let envelope = if syllable < 0.6 {
                    (-syllable * 5.0).exp()
                } else {
                    0.0
                };
                let w = 2.0 * std::f32::consts::PI * 170.0 * t;
                envelope * (w.sin() + 0.6 * (3.0 * w).sin() + 0.4 * (7.0 * w).sin())
            })
            .collect();
        let peak = raw.iter().fold(0f32, |m, s| m.max(s.abs()));
        raw.iter().map(|s| s * level / peak).collect()
    }

    /// Runs the guard; returns what a player decodes from the committed
    /// packets, the stream length, the guard's own figures and its stats.
    fn run(input: &[f32], limit_db: f64) -> (Vec<f32>, u64, Decoded, GuardStats) {
        let mut g = GuardedEncoder::new(&Profile::default(), limit_db).unwrap();
        let mut packets: Vec<Vec<u8>> = Vec::new();
        let mut sink = |c: Committed<'_>| {
            packets.push(c.packet.to_vec());
            Ok(())
        };
        for chunk in input.chunks(1000) {
            g.push(chunk, &mut sink).unwrap();
        }
        let (total, decoded, stats) = g.finish(&mut sink).unwrap();
        let pre_skip = FrameEncoder::new(&Profile::default()).unwrap().pre_skip();
        let mut player = OpusDecoder::new(pre_skip).unwrap();
        player.set_total_samples(total);
        let mut out = Vec::new();
        for p in &packets {
            player.decode(p, &mut out).unwrap();
        }
        (out, total, decoded, stats)
    }

    fn measure(samples: &[f32]) -> Loudness {
        let mut meter = LoudnessMeter::new(1, 48_000).unwrap();
        meter.add(samples).unwrap();
        meter.finish()
    }

    #[test]
    fn the_decoded_true_peak_stays_under_the_limit() {
        let input = bursts(3.0, 0.75);
        let (played, total, _, stats) = run(&input, -1.6);
        assert_eq!(total, input.len() as u64);
        assert_eq!(played.len(), input.len());
        let peak = measure(&played).true_peak_dbtp;
        assert!(peak <= -1.6 + 1e-3, "decoded true peak {peak} dBTP");
        assert!(
            stats.dips > 0,
            "the test signal should need dips: {stats:?}"
        );
        assert_eq!(stats.unresolved, 0);
        // Only the frames around the dips were encoded twice.
        assert!(stats.frames_redone < stats.frames_encoded / 2, "{stats:?}");
    }

    #[test]
    fn the_guard_reports_what_a_player_decodes() {
        let input = bursts(1.5, 0.8);
        let (played, _, decoded, _) = run(&input, -2.0);
        let player = measure(&played);
        assert!((player.integrated_lufs - decoded.integrated_lufs).abs() < 0.01);
        assert!((player.true_peak_dbtp - decoded.true_peak_dbtp).abs() < 0.01);
    }

    #[test]
    fn memory_stays_bounded_on_a_long_stream() {
        // Two minutes of loud syllables: dips all along the stream.
        let input = bursts(120.0, 0.8);
        let (_, _, _, stats) = run(&input, -1.5);
        assert!(stats.dips > 100, "{stats:?}");
        assert!(
            stats.max_pending_frames <= KEEP_FRAMES + MAX_IN_FLIGHT + 2,
            "{stats:?}"
        );
    }

    #[test]
    fn quiet_input_is_encoded_once() {
        let input = bursts(1.0, 0.1);
        let (_, _, _, stats) = run(&input, -1.5);
        assert_eq!(stats.dips, 0);
        assert_eq!(stats.frames_redone, 0);
    }
}
