//! Opus packets to samples with libopus: symphonia demuxes Ogg and WebM Opus
//! but has no Opus decoder. Reads the OpusHead (RFC 7845 §5.1, also the WebM
//! CodecPrivate) for the channel count, pre-skip and output gain.

use crate::error::{CodecError, Result};
use crate::libopus::{error_text, DecoderState};

/// The longest Opus packet: 120 ms at 48 kHz.
const MAX_FRAMES_PER_PACKET: usize = 5760;

/// What the decoder needs from an OpusHead.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct OpusHead {
    pub channels: u8,
    pub pre_skip: u16,
    /// Output gain to apply, dB (Q7.8 in the header).
    pub output_gain_db: f32,
}

/// Parses an OpusHead; multistream (surround) Opus is refused.
pub(crate) fn parse_opus_head(extra: &[u8]) -> Result<OpusHead> {
    let invalid = |why: &str| CodecError::InvalidInput(format!("Opus header: {why}"));
    if extra.len() < 19 || &extra[..8] != b"OpusHead" {
        return Err(invalid("missing or short OpusHead"));
    }
    if extra[8] >> 4 != 0 {
        return Err(invalid("unknown major version"));
    }
    let channels = extra[9];
    let pre_skip = u16::from_le_bytes([extra[10], extra[11]]);
    let gain_q8 = i16::from_le_bytes([extra[16], extra[17]]);
    let family = extra[18];
    if channels == 0 {
        return Err(invalid("zero channels"));
    }
    let single_stream = family == 0 || extra.get(19) == Some(&1);
    if channels > 2 || !single_stream {
        return Err(CodecError::Unsupported(format!(
            "multichannel Opus ({channels} channels, mapping family {family}) is not supported"
        )));
    }
    Ok(OpusHead {
        channels,
        pre_skip,
        output_gain_db: f32::from(gain_q8) / 256.0,
    })
}

/// Outcome of one packet.
pub(crate) enum OpusDecoded {
    /// Frames now in the output slice (may be 0 while pre-skip is dropped).
    Frames(usize),
    /// libopus rejected the packet: skip it.
    Corrupt,
}

/// libopus decoder at 48 kHz with pre-skip trimming and header gain.
pub(crate) struct OpusPacketDecoder {
    decoder: DecoderState,
    channels: usize,
    scratch: Vec<f32>,
    gain: f32,
    /// Pre-skip frames still to drop at the start.
    to_skip: usize,
    start: usize,
    end: usize,
}

impl OpusPacketDecoder {
    /// A decoder for the stream `head` describes; drops its pre-skip.
    pub fn new(head: &OpusHead) -> Result<Self> {
        let channels = usize::from(head.channels);
        let decoder = DecoderState::new(crate::OUTPUT_RATE as i32, channels)
            .map_err(|e| CodecError::Internal(format!("libopus decoder: {}", error_text(e))))?;
        Ok(Self {
            decoder,
            channels,
            scratch: vec![0.0; MAX_FRAMES_PER_PACKET * channels],
            gain: 10f32.powf(head.output_gain_db / 20.0),
            to_skip: usize::from(head.pre_skip),
            start: 0,
            end: 0,
        })
    }

    /// Decodes one packet, dropping `trim_start`/`trim_end` frames (gapless
    /// trims from the demuxer) and any pending pre-skip.
    pub fn decode(&mut self, packet: &[u8], trim_start: usize, trim_end: usize) -> OpusDecoded {
        self.start = 0;
        self.end = 0;
        if packet.is_empty() {
            return OpusDecoded::Frames(0);
        }
        let frames = match self.decoder.decode_float(packet, &mut self.scratch) {
            Ok(frames) => frames.min(MAX_FRAMES_PER_PACKET),
            Err(_) => return OpusDecoded::Corrupt,
        };
        let lead = (trim_start + self.to_skip).min(frames);
        self.to_skip -= self.to_skip.min(frames.saturating_sub(trim_start));
        let keep_end = frames.saturating_sub(trim_end).max(lead);
        self.start = lead * self.channels;
        self.end = keep_end * self.channels;
        if (self.gain - 1.0).abs() > f32::EPSILON {
            let gain = self.gain;
            self.scratch[self.start..self.end]
                .iter_mut()
                .for_each(|s| *s *= gain);
        }
        OpusDecoded::Frames(keep_end - lead)
    }

    /// Interleaved samples of the last decoded packet.
    pub fn samples(&self) -> &[f32] {
        &self.scratch[self.start..self.end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(channels: u8, pre_skip: u16, gain: i16, family: u8) -> Vec<u8> {
        let mut h = b"OpusHead".to_vec();
        h.push(1);
        h.push(channels);
        h.extend_from_slice(&pre_skip.to_le_bytes());
        h.extend_from_slice(&48_000u32.to_le_bytes());
        h.extend_from_slice(&gain.to_le_bytes());
        h.push(family);
        h
    }

    #[test]
    fn parses_head() {
        let parsed = parse_opus_head(&head(1, 312, 256, 0)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed.channels, 1);
        assert_eq!(parsed.pre_skip, 312);
        assert!((parsed.output_gain_db - 1.0).abs() < 1e-6);
    }

    #[test]
    fn refuses_surround_and_garbage() {
        let mut surround = head(6, 312, 0, 1);
        surround.extend_from_slice(&[4, 2, 0, 4, 1, 2, 3, 5]);
        assert!(matches!(
            parse_opus_head(&surround),
            Err(CodecError::Unsupported(_))
        ));
        assert!(parse_opus_head(b"OpusHea").is_err());
        assert!(parse_opus_head(&head(0, 0, 0, 0)).is_err());
    }
}
