//! What the three Opus containers ([`crate::ogg`], [`crate::caf`],
//! [`crate::webm`]) share: the stream description and the muxer trait, so the
//! encoder's packets can be fanned out to all of them in one pass.

use crate::error::Result;
use crate::profile::Profile;
use crate::OUTPUT_RATE;

/// Everything a container needs to know about an Opus stream before the first
/// packet: the fields of RFC 7845's `OpusHead` plus the `OpusTags` comments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusStreamHeader {
    pub channels: u8,
    /// Samples (at 48 kHz) the decoder must drop at the start: the encoder's lookahead.
    pub pre_skip: u16,
    /// Informational only (RFC 7845 §5.1): the rate of the upload before resampling.
    pub input_sample_rate: u32,
    pub vendor: String,
    /// User comments, written as `KEY=value`.
    pub tags: Vec<(String, String)>,
}

impl OpusStreamHeader {
    /// The header Sori writes for a mono stream encoded with `profile`:
    /// libopus's version as vendor, `ENCODER=sori` and the encoder options as tags.
    pub fn for_profile(profile: &Profile, pre_skip: u16, input_sample_rate: u32) -> Self {
        let mode = if profile.cbr { "cbr" } else { "vbr" };
        let options = format!(
            "bitrate={} {} complexity={} frame={}ms",
            profile.bitrate_bps, mode, profile.complexity, profile.frame_ms
        );
        Self {
            channels: 1,
            pre_skip,
            input_sample_rate,
            vendor: crate::libopus::version(),
            tags: vec![
                ("ENCODER".to_string(), "sori".to_string()),
                ("ENCODER_OPTIONS".to_string(), options),
            ],
        }
    }

    /// The 19-byte `OpusHead` packet (RFC 7845 §5.1, mapping family 0).
    /// Ogg carries it as its first packet, WebM as `CodecPrivate`.
    pub fn opus_head(&self) -> [u8; 19] {
        let mut head = [0u8; 19];
        head[..8].copy_from_slice(b"OpusHead");
        head[8] = 1; // version
        head[9] = self.channels;
        head[10..12].copy_from_slice(&self.pre_skip.to_le_bytes());
        head[12..16].copy_from_slice(&self.input_sample_rate.to_le_bytes());
        // Output gain 0 (bytes 16..18) and mapping family 0 (byte 18).
        head
    }

    /// The `OpusTags` packet (RFC 7845 §5.2).
    pub fn opus_tags(&self) -> Vec<u8> {
        let mut tags = Vec::with_capacity(64);
        tags.extend_from_slice(b"OpusTags");
        push_len_prefixed(&mut tags, self.vendor.as_bytes());
        tags.extend_from_slice(&len_u32(self.tags.len()).to_le_bytes());
        for (key, value) in &self.tags {
            let comment = format!("{key}={value}");
            push_len_prefixed(&mut tags, comment.as_bytes());
        }
        tags
    }
}

fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

fn push_len_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&len_u32(bytes.len()).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// A container writer fed with the encoder's packets, in order.
///
/// The same calls drive every container, so one encoding pass produces the
/// Ogg, CAF and WebM files together.
pub trait OpusMuxer {
    /// Appends one Opus packet that decodes to `frame_samples` samples at 48 kHz.
    fn write_packet(&mut self, packet: &[u8], frame_samples: u32) -> Result<()>;
    /// Closes the stream. `total_samples` is the exact duration (after
    /// pre-skip) the decoder must output: the padding in the last packet is
    /// trimmed by the container. Returns the number of bytes written.
    fn finish(&mut self, total_samples: u64) -> Result<u64>;
}

/// Samples the decoder drops at the end: what the packets hold beyond
/// `pre_skip + total_samples`. An error if the packets hold fewer samples
/// than the duration claims.
pub(crate) fn end_padding(packet_samples: u64, pre_skip: u16, total_samples: u64) -> Result<u64> {
    let needed = total_samples.saturating_add(u64::from(pre_skip));
    packet_samples.checked_sub(needed).ok_or_else(|| {
        crate::error::CodecError::Internal(format!(
            "muxer: {total_samples} samples claimed but the packets hold {packet_samples} \
             (pre-skip {pre_skip})"
        ))
    })
}

/// Converts samples at the output rate into nanoseconds, rounded to nearest.
pub(crate) fn samples_to_ns(samples: u64) -> u64 {
    let rate = u128::from(OUTPUT_RATE);
    let ns = (u128::from(samples) * 1_000_000_000 + rate / 2) / rate;
    u64::try_from(ns).unwrap_or(u64::MAX)
}
