//! The libopus encoder and decoder, wrapped for streaming: samples of any
//! chunk size go in, whole Opus packets come out through a callback, and the
//! end of the stream is padded so that, after the pre-skip, the decoder
//! yields exactly the samples that went in.
//!
//! [`FrameEncoder`] is the encoder a frame at a time, with its state
//! exposed so the encode stage can go back a few frames ([`crate::guard`]);
//! [`OpusEncoder`] cuts a stream of any chunk size into its frames.

use crate::error::{CodecError, Result};
use crate::libopus::{error_text, DecoderState, EncoderState};
use crate::profile::{Application, Profile};
use crate::OUTPUT_RATE;
use audiopus_sys as ffi;

/// Largest Opus packet for one 60 ms frame is 3 × 1275 bytes plus framing;
/// 4000 leaves headroom for any frame size we allow.
const MAX_PACKET_BYTES: usize = 4000;
/// 120 ms at 48 kHz: the longest duration one Opus packet can decode to.
const MAX_PACKET_SAMPLES: usize = 5760;
/// Frame durations we allow (RFC 6716 also has 2.5 and 5 ms; useless for voice posts).
const FRAME_MS_ALLOWED: [u32; 4] = [10, 20, 40, 60];

/// Callback receiving each packet and the number of 48 kHz samples it decodes to.
pub type PacketSink<'a> = dyn FnMut(&[u8], u32) -> Result<()> + 'a;

/// A mono 48 kHz libopus encoder, one whole frame per call, configured from
/// the profile. Its libopus state can be saved and restored.
#[derive(Debug, Clone)]
pub struct FrameEncoder {
    state: EncoderState,
    frame_samples: usize,
    packet: Vec<u8>,
    pre_skip: u16,
}

impl FrameEncoder {
    /// Builds an encoder with the profile's bitrate, VBR/CBR, frame size,
    /// complexity and application. Invalid settings are refused here, never
    /// later in the middle of a stream.
    pub fn new(profile: &Profile) -> Result<Self> {
        let frame_samples = frame_samples_for(profile.frame_ms)?;
        validate_settings(profile)?;
        let application = match profile.application {
            Application::Voip => ffi::OPUS_APPLICATION_VOIP,
            Application::Audio => ffi::OPUS_APPLICATION_AUDIO,
        };
        let mut state = EncoderState::new(OUTPUT_RATE as i32, 1, application).map_err(opus_err)?;
        let bitrate = i32::try_from(profile.bitrate_bps).unwrap_or(i32::MAX);
        state
            .set(ffi::OPUS_SET_BITRATE_REQUEST, bitrate)
            .map_err(opus_err)?;
        state
            .set(ffi::OPUS_SET_VBR_REQUEST, i32::from(!profile.cbr))
            .map_err(opus_err)?;
        if !profile.cbr {
            // Unconstrained VBR, as opusenc and ffmpeg use: better quality for
            // the same average rate; we store files, we do not fill a channel.
            state
                .set(ffi::OPUS_SET_VBR_CONSTRAINT_REQUEST, 0)
                .map_err(opus_err)?;
        }
        state
            .set(
                ffi::OPUS_SET_COMPLEXITY_REQUEST,
                i32::from(profile.complexity),
            )
            .map_err(opus_err)?;
        if profile.application == Application::Voip {
            // Speech coding throughout (SILK or hybrid), never a switch to
            // CELT on a frame the classifier finds music-like: the codec's
            // effect on loudness then depends on the recording, not on
            // where the classifier happened to flip (see crate::gain).
            state
                .set(ffi::OPUS_SET_SIGNAL_REQUEST, ffi::OPUS_SIGNAL_VOICE)
                .map_err(opus_err)?;
        }
        let lookahead = state
            .get(ffi::OPUS_GET_LOOKAHEAD_REQUEST)
            .map_err(opus_err)?;
        let pre_skip = u16::try_from(lookahead)
            .map_err(|_| CodecError::Encoder(format!("unexpected lookahead {lookahead}")))?;
        Ok(Self {
            state,
            frame_samples,
            packet: vec![0; MAX_PACKET_BYTES],
            pre_skip,
        })
    }

    /// The encoder's real lookahead (OPUS_GET_LOOKAHEAD), written as OpusHead
    /// pre-skip: the decoder drops these samples so the output lines up with the input.
    pub fn pre_skip(&self) -> u16 {
        self.pre_skip
    }

    /// Samples per packet at 48 kHz (960 for 20 ms frames).
    pub fn frame_samples(&self) -> usize {
        self.frame_samples
    }

    /// Encodes exactly one frame ([`Self::frame_samples`] samples).
    pub fn encode(&mut self, frame: &[f32]) -> Result<&[u8]> {
        if frame.len() != self.frame_samples {
            return Err(CodecError::Internal(format!(
                "opus encoder: frame of {} samples, expected {}",
                frame.len(),
                self.frame_samples
            )));
        }
        let len = self
            .state
            .encode_float(frame, &mut self.packet)
            .map_err(opus_err)?;
        Ok(&self.packet[..len])
    }

    /// The libopus state, to save with [`Clone`].
    pub fn state(&self) -> &EncoderState {
        &self.state
    }

    /// Goes back to a state saved from this encoder.
    pub fn restore(&mut self, saved: &EncoderState) {
        self.state.restore(saved);
    }
}

/// A mono 48 kHz libopus encoder that cuts the input into frames itself.
pub struct OpusEncoder {
    encoder: FrameEncoder,
    frame: Vec<f32>,
    filled: usize,
    pushed: u64,
    finished: bool,
}

impl OpusEncoder {
    /// A streaming encoder with the profile's settings (see [`FrameEncoder::new`]).
    pub fn new(profile: &Profile) -> Result<Self> {
        let encoder = FrameEncoder::new(profile)?;
        Ok(Self {
            frame: vec![0.0; encoder.frame_samples()],
            encoder,
            filled: 0,
            pushed: 0,
            finished: false,
        })
    }

    /// The encoder's real lookahead (OPUS_GET_LOOKAHEAD), written as OpusHead
    /// pre-skip: the decoder drops these samples so the output lines up with the input.
    pub fn pre_skip(&self) -> u16 {
        self.encoder.pre_skip()
    }

    /// Samples per packet at 48 kHz (960 for 20 ms frames).
    pub fn frame_samples(&self) -> usize {
        self.frame.len()
    }

    /// Samples pushed so far.
    pub fn pushed_samples(&self) -> u64 {
        self.pushed
    }

    /// Buffers samples into frames; for each full frame calls
    /// `sink(packet, frame_samples)`. No allocation per frame in steady state.
    pub fn push(&mut self, mono: &[f32], sink: &mut PacketSink<'_>) -> Result<()> {
        if self.finished {
            return Err(CodecError::Internal(
                "opus encoder: push after finish".into(),
            ));
        }
        let mut rest = mono;
        while !rest.is_empty() {
            let take = rest.len().min(self.frame.len() - self.filled);
            let (head, tail) = rest.split_at(take);
            self.frame[self.filled..self.filled + take].copy_from_slice(head);
            self.filled += take;
            rest = tail;
            if self.filled == self.frame.len() {
                self.encode_frame(sink)?;
            }
        }
        self.pushed += mono.len() as u64;
        Ok(())
    }

    /// Pads with silence so that the decoder, after dropping pre_skip samples,
    /// has produced every pushed sample; returns the number of samples pushed
    /// (the exact duration to store in the containers: final granule =
    /// pre_skip + that).
    ///
    /// The number of packets is always `ceil((pushed + pre_skip) / frame)`, so
    /// an empty input still gives one (silent) packet and a valid stream of
    /// duration 0. Calling it again returns the same count and emits nothing.
    pub fn finish(&mut self, sink: &mut PacketSink<'_>) -> Result<u64> {
        if self.finished {
            return Ok(self.pushed);
        }
        self.finished = true;
        let frame = self.frame.len() as u64;
        let needed = self.pushed + u64::from(self.encoder.pre_skip());
        let packets_needed = needed.div_ceil(frame);
        let mut encoded = (self.pushed - self.filled as u64) / frame;
        while encoded < packets_needed {
            self.frame[self.filled..].fill(0.0);
            self.filled = self.frame.len();
            self.encode_frame(sink)?;
            encoded += 1;
        }
        Ok(self.pushed)
    }

    fn encode_frame(&mut self, sink: &mut PacketSink<'_>) -> Result<()> {
        let packet = self.encoder.encode(&self.frame)?;
        self.filled = 0;
        let frame_samples = u32::try_from(self.frame.len()).unwrap_or(u32::MAX);
        sink(packet, frame_samples)
    }
}

/// Samples per frame at 48 kHz for a frame duration, or why it is refused.
fn frame_samples_for(frame_ms: u32) -> Result<usize> {
    if !FRAME_MS_ALLOWED.contains(&frame_ms) {
        return Err(CodecError::Encoder(format!(
            "frame duration {frame_ms} ms not supported (10, 20, 40 or 60)"
        )));
    }
    Ok((OUTPUT_RATE / 1000 * frame_ms) as usize)
}

fn validate_settings(profile: &Profile) -> Result<()> {
    if profile.complexity > 10 {
        return Err(CodecError::Encoder(format!(
            "complexity {} out of range 0..=10",
            profile.complexity
        )));
    }
    if !(6_000..=510_000).contains(&profile.bitrate_bps) {
        return Err(CodecError::Encoder(format!(
            "bitrate {} out of range 6000..=510000",
            profile.bitrate_bps
        )));
    }
    Ok(())
}

fn opus_err(code: i32) -> CodecError {
    CodecError::Encoder(error_text(code))
}

/// A mono 48 kHz libopus decoder used to measure the decoded output: it drops
/// the pre-skip and, once told the stream's duration, the end padding, so its
/// output is what a conforming player plays.
pub struct OpusDecoder {
    decoder: DecoderState,
    pcm: Vec<f32>,
    skip_left: usize,
    total_samples: Option<u64>,
    emitted: u64,
}

impl OpusDecoder {
    /// A decoder that drops the first `pre_skip` decoded samples.
    pub fn new(pre_skip: u16) -> Result<Self> {
        let decoder = DecoderState::new(OUTPUT_RATE as i32, 1).map_err(opus_err)?;
        Ok(Self {
            decoder,
            pcm: vec![0.0; MAX_PACKET_SAMPLES],
            skip_left: usize::from(pre_skip),
            total_samples: None,
            emitted: 0,
        })
    }

    /// Caps the output at the stream's duration (the final granule minus
    /// pre-skip), trimming the padding of the last packet.
    pub fn set_total_samples(&mut self, total_samples: u64) {
        self.total_samples = Some(total_samples);
    }

    /// Samples appended so far.
    pub fn decoded_samples(&self) -> u64 {
        self.emitted
    }

    /// Decodes one packet and appends its samples, after pre-skip and within
    /// the total set by [`Self::set_total_samples`], to `out`.
    pub fn decode(&mut self, packet: &[u8], out: &mut Vec<f32>) -> Result<()> {
        let decoded = self
            .decoder
            .decode_float(packet, &mut self.pcm)
            .map_err(opus_err)?;
        let skip = self.skip_left.min(decoded);
        self.skip_left -= skip;
        let mut samples = &self.pcm[skip..decoded];
        if let Some(total) = self.total_samples {
            let room = total.saturating_sub(self.emitted);
            let keep = usize::try_from(room)
                .unwrap_or(usize::MAX)
                .min(samples.len());
            samples = &samples[..keep];
        }
        out.extend_from_slice(samples);
        self.emitted += samples.len() as u64;
        Ok(())
    }
}
