//! The decode stage: any file a phone or browser records → interleaved f32
//! samples, streamed block by block in bounded memory.
//!
//! symphonia probes and demuxes everything; it decodes AAC-LC, MP3, Vorbis,
//! FLAC, ALAC and PCM, and libopus ([`opus_codec`]) decodes Opus. The input is
//! untrusted, so:
//! - limits (size, duration, channels, rate) are checked from the header and
//!   again while decoding, because headers lie;
//! - a corrupt packet is skipped and counted, a reset request resets the
//!   decoder, and an unexpected end of file ends the stream with what was
//!   decoded (a truncated upload still plays); too many corrupt packets in a
//!   row, or more than half of them, fail instead of spinning;
//! - symphonia can panic on some hostile inputs, so every probe, demux and
//!   decode call runs under `catch_unwind`: a panic becomes
//!   [`CodecError::InvalidInput`] and never unwinds into the worker;
//! - HE-AAC is refused: symphonia would decode its core at half the rate;
//! - float PCM can carry NaN, infinities and absurd magnitudes, which would
//!   poison every sum downstream (the resampler's FFT panics on a NaN): a
//!   non-finite sample becomes silence and magnitudes are clamped to
//!   [`MAX_SAMPLE`], far above anything a real recording holds.

mod mp4;
pub(crate) mod opus_codec;
mod sniff;
mod source;

use crate::downmix::{default_speakers, speakers_from_channels, Speaker};
use crate::error::{CodecError, Result};
use crate::profile::Limits;
use opus_codec::{parse_opus_head, OpusDecoded, OpusPacketDecoder};
use source::{check_size, prepare_mp4, probe, size_error, sniff_container, ByteCap};
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::Duration;
use symphonia::core::audio::{SampleBuffer, SignalSpec};
use symphonia::core::codecs::{
    CodecParameters, Decoder as SymphoniaDecoder, DecoderOptions, CODEC_TYPE_AAC, CODEC_TYPE_NULL,
    CODEC_TYPE_OPUS,
};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::{FormatReader, Packet};
use symphonia::core::io::{MediaSource, MediaSourceStream};

/// Consecutive corrupt packets after which the input is declared unusable.
const MAX_CONSECUTIVE_BAD: u64 = 100;
/// Packets seen before the "more than half corrupt" rule applies.
const MIN_PACKETS_FOR_RATIO: u64 = 20;
/// Largest decoder block accepted, in samples (all channels): bounds memory.
const MAX_BLOCK_SAMPLES: usize = 1 << 22;

/// Largest sample magnitude handed out (+30 dBFS): float PCM beyond full
/// scale is legal, but nothing recorded comes near this.
pub const MAX_SAMPLE: f32 = 32.0;

/// What the upload is, as far as the header tells.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamInfo {
    /// `"mp4"`, `"ogg"`, `"webm"`, `"mkv"`, `"wav"`, `"flac"`, `"mp3"`, `"adts"`, `"caf"`, `"aiff"`, `"3gp"`.
    pub container: String,
    /// symphonia's short codec name (`"aac"`, `"mp3"`, `"vorbis"`, `"flac"`,
    /// `"alac"`, `"pcm_s16le"`…) or `"opus"`.
    pub codec: String,
    /// Rate of the decoded samples (48 000 for Opus).
    pub sample_rate: u32,
    pub channels: u16,
    /// Speaker of each interleaved channel (WAVE order assumed when unknown).
    pub speakers: Vec<Speaker>,
    /// Duration from the header: may lie or be missing (MediaRecorder WebM).
    pub duration_hint: Option<Duration>,
}

enum Backend {
    Symphonia {
        decoder: Box<dyn SymphoniaDecoder>,
        buffer: Option<SampleBuffer<f32>>,
    },
    Opus(Box<OpusPacketDecoder>),
}

/// Outcome of one packet.
enum Decoded {
    Frames(usize),
    Corrupt,
}

/// A streaming decoder over one audio track of an untrusted file.
pub struct Decoder {
    format: Box<dyn FormatReader>,
    backend: Backend,
    track_id: u32,
    info: StreamInfo,
    max_frames: u64,
    max_duration: Duration,
    max_bytes: u64,
    block: Vec<f32>,
    /// MP4 edit list still to apply (priming to drop, length to keep).
    edit: Option<mp4::Edit>,
    /// Priming frames still to drop.
    skip_frames: u64,
    /// Total frames to hand out (from the edit list), if known.
    keep_frames: Option<u64>,
    /// `block` holds the block decoded while opening, not yet handed out.
    pending: bool,
    finished: bool,
    frames: u64,
    packets: u64,
    skipped: u64,
    consecutive_bad: u64,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("info", &self.info)
            .field("frames", &self.frames)
            .finish_non_exhaustive()
    }
}

impl Decoder {
    /// Opens a file: checks its size against `limits.max_bytes` first, probes
    /// with the extension as a hint, and validates the header against `limits`.
    pub fn open_path(path: &Path, limits: &Limits) -> Result<Decoder> {
        let file = std::fs::File::open(path)?;
        check_size(file.metadata()?.len(), limits)?;
        let ext = path.extension().and_then(|e| e.to_str());
        Self::open(Box::new(file), ext, limits)
    }

    /// Opens any source (in-memory bytes in tests and fuzzing). The source is
    /// cut off at `limits.max_bytes`, whatever it claims its length is.
    pub fn open(
        source: Box<dyn MediaSource>,
        ext_hint: Option<&str>,
        limits: &Limits,
    ) -> Result<Decoder> {
        if let Some(len) = source.byte_len() {
            check_size(len, limits)?;
        }
        let mut capped = ByteCap::new(source, limits.max_bytes);
        let edit = prepare_mp4(&mut capped)?;
        let mut stream = MediaSourceStream::new(Box::new(capped), Default::default());
        let container = sniff_container(&mut stream, limits)?;
        let format = probe(stream, ext_hint, limits.max_bytes, container)?;
        let mut decoder = Self::select_track(format, container, limits)?;
        decoder.edit = edit;
        decoder.prime(limits)?;
        Ok(decoder)
    }

    /// What is being decoded.
    pub fn info(&self) -> &StreamInfo {
        &self.info
    }

    /// The next block of interleaved samples (`info().channels` per frame),
    /// `Ok(None)` at the end. Fails on a broken limit, a change of sample
    /// rate or channel count mid-stream, or an input that is mostly corrupt.
    pub fn next_block(&mut self) -> Result<Option<&[f32]>> {
        if self.pending {
            self.pending = false;
            return Ok(Some(&self.block));
        }
        if self.finished || !self.fill()? {
            self.finished = true;
            return Ok(None);
        }
        Ok(Some(&self.block))
    }

    /// Frames (samples per channel) decoded so far.
    pub fn frames_decoded(&self) -> u64 {
        self.frames
    }

    /// Packets that could not be decoded and were skipped.
    pub fn skipped_packets(&self) -> u64 {
        self.skipped
    }

    fn select_track(
        format: Box<dyn FormatReader>,
        container: &str,
        limits: &Limits,
    ) -> Result<Decoder> {
        let mut first_error = None;
        let mut chosen = None;
        for track in format.tracks() {
            if track.codec_params.codec == CODEC_TYPE_NULL {
                continue;
            }
            match make_backend(&track.codec_params, container) {
                Ok(backend) => {
                    chosen = Some((track.id, track.codec_params.clone(), backend));
                    break;
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        let Some((track_id, params, backend)) = chosen else {
            return Err(first_error.unwrap_or_else(|| {
                CodecError::Unsupported("no audio track (a video-only or empty file)".into())
            }));
        };
        let info = stream_info(&params, container, &backend);
        validate(&info, limits)?;
        Ok(Decoder {
            format,
            backend,
            track_id,
            max_frames: max_frames(limits, info.sample_rate),
            max_duration: limits.max_duration,
            max_bytes: limits.max_bytes,
            info,
            block: Vec::new(),
            edit: None,
            skip_frames: 0,
            keep_frames: None,
            pending: false,
            finished: false,
            frames: 0,
            packets: 0,
            skipped: 0,
            consecutive_bad: 0,
        })
    }

    /// Decodes the first block so the real rate and channel count are known
    /// (and checked) before anyone relies on `info()`.
    fn prime(&mut self, limits: &Limits) -> Result<()> {
        if let Some(edit) = self.edit {
            // The edit is in the container's rate, the one symphonia reports.
            let rate = self.info.sample_rate;
            if rate > 0 {
                self.skip_frames = edit.skip_frames(rate);
                self.keep_frames = edit.keep_frames(rate);
            }
        }
        if !self.fill()? {
            return Err(CodecError::InvalidInput("no audio".into()));
        }
        validate(&self.info, limits)?;
        self.max_frames = max_frames(limits, self.info.sample_rate);
        self.pending = true;
        Ok(())
    }

    /// Decodes packets until one yields samples into `block`; false at the end.
    fn fill(&mut self) -> Result<bool> {
        loop {
            let packet = match self.read_packet()? {
                Next::Packet(p) => p,
                Next::Retry => continue,
                Next::End => return self.end_of_stream(),
            };
            if packet.track_id() != self.track_id {
                continue;
            }
            self.packets += 1;
            match self.decode_packet(&packet)? {
                Decoded::Frames(0) => self.consecutive_bad = 0,
                Decoded::Frames(frames) => {
                    self.consecutive_bad = 0;
                    sanitize(&mut self.block);
                    let kept = self.apply_edit(frames);
                    if kept == 0 {
                        if self.keep_frames.is_some_and(|k| self.frames >= k) {
                            return self.end_of_stream();
                        }
                        continue;
                    }
                    self.frames += kept as u64;
                    self.check_duration()?;
                    return Ok(true);
                }
                Decoded::Corrupt => self.count_bad()?,
            }
        }
    }

    fn end_of_stream(&self) -> Result<bool> {
        if self.frames == 0 && self.skipped > 0 {
            return Err(CodecError::InvalidInput(format!(
                "no decodable audio ({} of {} packets corrupt)",
                self.skipped, self.packets
            )));
        }
        if self.frames == 0 {
            return Err(CodecError::InvalidInput("no audio".into()));
        }
        Ok(false)
    }

    /// Drops priming frames and frames past the edit's end from `block`;
    /// returns the frames left.
    fn apply_edit(&mut self, frames: usize) -> usize {
        let channels = usize::from(self.info.channels.max(1));
        let drop = usize::try_from(self.skip_frames)
            .unwrap_or(usize::MAX)
            .min(frames);
        self.skip_frames -= drop as u64;
        let mut keep = frames - drop;
        if let Some(total) = self.keep_frames {
            let room = total.saturating_sub(self.frames);
            keep = keep.min(usize::try_from(room).unwrap_or(usize::MAX));
        }
        if keep < frames {
            self.block
                .copy_within(drop * channels..(drop + keep) * channels, 0);
            self.block.truncate(keep * channels);
        }
        keep
    }

    fn read_packet(&mut self) -> Result<Next> {
        let format = &mut self.format;
        let result = catch_unwind(AssertUnwindSafe(|| format.next_packet()))
            .map_err(|_| crashed("demuxer"))?;
        match result {
            Ok(packet) => Ok(Next::Packet(packet)),
            Err(SymphoniaError::IoError(e)) => match e.kind() {
                io::ErrorKind::UnexpectedEof => Ok(Next::End),
                io::ErrorKind::FileTooLarge => Err(size_error(self.max_bytes)),
                _ => Err(CodecError::Io(e)),
            },
            Err(SymphoniaError::ResetRequired) => {
                self.reset_track()?;
                Ok(Next::Retry)
            }
            Err(SymphoniaError::DecodeError(_)) => {
                // A malformed page or atom: count it like a corrupt packet.
                self.packets += 1;
                self.count_bad()?;
                Ok(Next::Retry)
            }
            Err(SymphoniaError::Unsupported(what)) => Err(CodecError::Unsupported(what.into())),
            Err(SymphoniaError::LimitError(what)) => Err(CodecError::LimitExceeded {
                what: "demuxer limit",
                actual: what.into(),
                limit: "symphonia default".into(),
            }),
            Err(SymphoniaError::SeekError(_)) => Ok(Next::End),
        }
    }

    /// After a reset request (a chained Ogg stream, a new track list): keep
    /// going only if the same track is still there with the same layout.
    fn reset_track(&mut self) -> Result<()> {
        let params = self
            .format
            .tracks()
            .iter()
            .find(|t| t.id == self.track_id)
            .map(|t| t.codec_params.clone())
            .ok_or_else(|| CodecError::InvalidInput("audio track vanished mid-stream".into()))?;
        let container = self.info.container.clone();
        self.backend = make_backend(&params, &container)?;
        let fresh = stream_info(&params, &container, &self.backend);
        if fresh.sample_rate != self.info.sample_rate || fresh.channels != self.info.channels {
            return Err(CodecError::InvalidInput(
                "stream parameters changed mid-stream".into(),
            ));
        }
        Ok(())
    }

    fn count_bad(&mut self) -> Result<()> {
        self.skipped += 1;
        self.consecutive_bad += 1;
        let mostly_bad =
            self.packets >= MIN_PACKETS_FOR_RATIO && self.skipped * 2 > self.packets.max(1);
        if self.consecutive_bad > MAX_CONSECUTIVE_BAD || mostly_bad {
            return Err(CodecError::InvalidInput(format!(
                "too many corrupt packets ({} of {})",
                self.skipped, self.packets
            )));
        }
        Ok(())
    }

    fn check_duration(&self) -> Result<()> {
        if self.frames > self.max_frames {
            return Err(CodecError::LimitExceeded {
                what: "duration",
                actual: format!(
                    "more than {:.1} s",
                    self.frames as f64 / f64::from(self.info.sample_rate.max(1))
                ),
                limit: format!("{:.1} s", self.max_duration.as_secs_f64()),
            });
        }
        Ok(())
    }

    fn decode_packet(&mut self, packet: &Packet) -> Result<Decoded> {
        match &mut self.backend {
            Backend::Opus(opus) => {
                let trim_start = packet.trim_start() as usize;
                let trim_end = packet.trim_end() as usize;
                match opus.decode(&packet.data, trim_start, trim_end) {
                    OpusDecoded::Frames(frames) => {
                        self.block.clear();
                        self.block.extend_from_slice(opus.samples());
                        Ok(Decoded::Frames(frames))
                    }
                    OpusDecoded::Corrupt => Ok(Decoded::Corrupt),
                }
            }
            Backend::Symphonia { decoder, buffer } => {
                let started = self.frames > 0;
                let step = (decoder, buffer, packet);
                decode_symphonia(step, started, &mut self.info, &mut self.block)
            }
        }
    }
}

/// Replaces non-finite samples by silence and clamps the rest to
/// ±[`MAX_SAMPLE`].
fn sanitize(block: &mut [f32]) {
    for sample in block {
        *sample = if sample.is_finite() {
            sample.clamp(-MAX_SAMPLE, MAX_SAMPLE)
        } else {
            0.0
        };
    }
}

enum Next {
    Packet(Packet),
    Retry,
    End,
}

/// What one symphonia decode call produced (samples already in `block`).
enum Step {
    Frames(SignalSpec, usize),
    Empty,
    TooLarge,
}

/// Decodes one packet. `started`: audio was decoded before, so a packet
/// using a feature symphonia does not support (AAC prediction, say) is a
/// corrupt packet in a stream that decodes, not an unsupported stream.
fn decode_symphonia(
    (decoder, buffer, packet): (
        &mut Box<dyn SymphoniaDecoder>,
        &mut Option<SampleBuffer<f32>>,
        &Packet,
    ),
    started: bool,
    info: &mut StreamInfo,
    block: &mut Vec<f32>,
) -> Result<Decoded> {
    // Decode and convert under one catch_unwind: both run symphonia code on
    // attacker-controlled data.
    let result = catch_unwind(AssertUnwindSafe(|| -> Result<Step, SymphoniaError> {
        let audio = decoder.decode(packet)?;
        let spec = *audio.spec();
        let frames = audio.frames();
        if frames == 0 {
            return Ok(Step::Empty);
        }
        let samples_needed = audio.capacity().saturating_mul(spec.channels.count());
        if samples_needed > MAX_BLOCK_SAMPLES {
            return Ok(Step::TooLarge);
        }
        let fits = buffer
            .as_ref()
            .is_some_and(|b| b.capacity() >= samples_needed);
        if !fits {
            *buffer = Some(SampleBuffer::new(audio.capacity() as u64, spec));
        }
        if let Some(samples) = buffer.as_mut() {
            samples.copy_interleaved_ref(audio);
            block.clear();
            block.extend_from_slice(samples.samples());
        }
        Ok(Step::Frames(spec, frames))
    }));
    match result.map_err(|_| crashed("decoder"))? {
        Ok(Step::Frames(spec, frames)) => {
            let channels = u16::try_from(spec.channels.count()).unwrap_or(u16::MAX);
            check_layout(info, spec.rate, channels)?;
            Ok(Decoded::Frames(frames))
        }
        Ok(Step::Empty) => Ok(Decoded::Frames(0)),
        Ok(Step::TooLarge) => Err(CodecError::InvalidInput("decoder block too large".into())),
        Err(SymphoniaError::DecodeError(_)) | Err(SymphoniaError::IoError(_)) => {
            Ok(Decoded::Corrupt)
        }
        Err(SymphoniaError::ResetRequired) => {
            decoder.reset();
            Ok(Decoded::Frames(0))
        }
        Err(SymphoniaError::Unsupported(_)) if started => Ok(Decoded::Corrupt),
        Err(SymphoniaError::Unsupported(what)) => Err(CodecError::Unsupported(what.into())),
        Err(e) => Err(CodecError::InvalidInput(format!("decoder: {e}"))),
    }
}

/// The decoded layout must match the header (once known): a rate or channel
/// change mid-stream would corrupt everything downstream.
fn check_layout(info: &mut StreamInfo, rate: u32, channels: u16) -> Result<()> {
    if info.sample_rate == 0 {
        info.sample_rate = rate;
    }
    if info.channels == 0 {
        info.channels = channels;
        info.speakers = default_speakers(usize::from(channels));
    }
    if rate != info.sample_rate {
        if info.codec == "aac" && u64::from(rate) * 2 == u64::from(info.sample_rate) {
            return Err(he_aac());
        }
        return Err(CodecError::InvalidInput(format!(
            "sample rate changed mid-stream ({} → {rate} Hz)",
            info.sample_rate
        )));
    }
    if channels != info.channels {
        return Err(CodecError::InvalidInput(format!(
            "channel count changed mid-stream ({} → {channels})",
            info.channels
        )));
    }
    Ok(())
}

fn he_aac() -> CodecError {
    CodecError::Unsupported(
        "HE-AAC (AAC with SBR) is not supported; record AAC-LC (the default \"AAC\" setting)"
            .into(),
    )
}

fn crashed(what: &str) -> CodecError {
    CodecError::InvalidInput(format!("malformed input crashed the {what}"))
}

fn make_backend(params: &CodecParameters, container: &str) -> Result<Backend> {
    if params.codec == CODEC_TYPE_OPUS {
        let extra = params.extra_data.as_deref().unwrap_or_default();
        let head = parse_opus_head(extra)?;
        // Pre-skip is ours to drop in both containers: symphonia's Ogg
        // packet trims cover only granule-position start/end padding.
        let decoder = OpusPacketDecoder::new(&head)?;
        return Ok(Backend::Opus(Box::new(decoder)));
    }
    if params.codec == CODEC_TYPE_AAC {
        if let Some(asc) = params.extra_data.as_deref() {
            if sniff::signals_sbr(asc) {
                return Err(he_aac());
            }
        }
    }
    let registry = symphonia::default::get_codecs();
    let made = catch_unwind(AssertUnwindSafe(|| {
        registry.make(params, &DecoderOptions::default())
    }))
    .map_err(|_| crashed("decoder set-up"))?;
    match made {
        Ok(decoder) => Ok(Backend::Symphonia {
            decoder,
            buffer: None,
        }),
        Err(SymphoniaError::Unsupported(_)) => Err(CodecError::Unsupported(format!(
            "{} audio is not supported",
            codec_name(params, container)
        ))),
        Err(e) => Err(CodecError::InvalidInput(format!("codec set-up: {e}"))),
    }
}

fn codec_name(params: &CodecParameters, container: &str) -> String {
    if params.codec == CODEC_TYPE_OPUS {
        return "opus".into();
    }
    match symphonia::default::get_codecs().get_codec(params.codec) {
        Some(descriptor) => descriptor.short_name.to_string(),
        None if container == "3gp" => "AMR or another 3GP codec".into(),
        None => format!("codec {}", params.codec),
    }
}

fn stream_info(params: &CodecParameters, container: &str, backend: &Backend) -> StreamInfo {
    let (sample_rate, channels, speakers) = match backend {
        Backend::Opus(_) => {
            let count = params
                .extra_data
                .as_deref()
                .and_then(|e| parse_opus_head(e).ok())
                .map_or(1, |h| usize::from(h.channels));
            (crate::OUTPUT_RATE, count, default_speakers(count))
        }
        Backend::Symphonia { .. } => {
            let rate = params.sample_rate.unwrap_or(0);
            match params.channels {
                Some(mask) if mask.count() > 0 => {
                    (rate, mask.count(), speakers_from_channels(mask))
                }
                _ => (rate, 0, Vec::new()),
            }
        }
    };
    let duration_hint = match (params.n_frames, params.sample_rate) {
        (Some(n), Some(rate)) if rate > 0 => {
            Some(Duration::from_secs_f64(n as f64 / f64::from(rate)))
        }
        _ => None,
    };
    StreamInfo {
        container: container.to_string(),
        codec: codec_name(params, container),
        sample_rate,
        channels: u16::try_from(channels).unwrap_or(u16::MAX),
        speakers,
        duration_hint,
    }
}

/// Header checks; 0 means "not known yet" and is checked again after priming.
fn validate(info: &StreamInfo, limits: &Limits) -> Result<()> {
    if info.channels > limits.max_channels {
        return Err(CodecError::LimitExceeded {
            what: "channel count",
            actual: info.channels.to_string(),
            limit: limits.max_channels.to_string(),
        });
    }
    let rate = info.sample_rate;
    if rate != 0 && (rate < limits.min_sample_rate || rate > limits.max_sample_rate) {
        return Err(CodecError::LimitExceeded {
            what: "sample rate",
            actual: format!("{rate} Hz"),
            limit: format!("{}–{} Hz", limits.min_sample_rate, limits.max_sample_rate),
        });
    }
    if let Some(hint) = info.duration_hint {
        if hint > limits.max_duration {
            return Err(CodecError::LimitExceeded {
                what: "duration",
                actual: format!("{:.1} s", hint.as_secs_f64()),
                limit: format!("{:.1} s", limits.max_duration.as_secs_f64()),
            });
        }
    }
    Ok(())
}

/// Frames the duration limit allows at `rate`; unbounded while the rate is
/// unknown (0), which lasts only until the first block is decoded (one
/// block, itself bounded by `MAX_BLOCK_SAMPLES`).
fn max_frames(limits: &Limits, rate: u32) -> u64 {
    if rate == 0 {
        return u64::MAX;
    }
    let frames = limits.max_duration.as_secs_f64() * f64::from(rate.max(1));
    frames.ceil() as u64
}
