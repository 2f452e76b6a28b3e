//! Recognising what an upload is before and beside symphonia: the container
//! from its magic bytes (symphonia does not name the format it probed), and
//! HE-AAC from the AudioSpecificConfig (symphonia decodes only the AAC-LC core
//! of HE-AAC, at half the rate, which would play back at the wrong speed),
//! and header fields that would make symphonia panic.

use crate::error::CodecError;
use crate::profile::Limits;

/// Container name from the first bytes of a file (`"unknown"` if none fits).
pub(crate) fn container_name(head: &[u8]) -> &'static str {
    let at = |offset: usize, magic: &[u8]| head.get(offset..offset + magic.len()) == Some(magic);
    if at(0, b"RIFF") && at(8, b"WAVE") || at(0, b"RF64") {
        "wav"
    } else if at(0, b"OggS") {
        "ogg"
    } else if at(0, b"fLaC") {
        "flac"
    } else if at(0, b"caff") {
        "caf"
    } else if at(0, b"FORM") && (at(8, b"AIFF") || at(8, b"AIFC")) {
        "aiff"
    } else if at(0, &[0x1A, 0x45, 0xDF, 0xA3]) {
        if head.windows(4).any(|w| w == b"webm") {
            "webm"
        } else {
            "mkv"
        }
    } else if at(4, b"ftyp") {
        if at(8, b"3gp") || at(8, b"3g2") {
            "3gp"
        } else {
            "mp4"
        }
    } else if at(0, b"ID3") {
        "mp3"
    } else if head.len() >= 2 && head[0] == 0xFF && head[1] & 0xE0 == 0xE0 {
        // MPEG audio frame sync; layer bits 00 mean an ADTS (AAC) header.
        if head[1] & 0x06 == 0 {
            "adts"
        } else {
            "mp3"
        }
    } else {
        "unknown"
    }
}

/// Header fields symphonia 0.5 trusts too far (it divides by them or shifts
/// by them, and panics, or it misreports them): a WAV at 0 Hz; an Ogg
/// OpusHead we cannot decode; a CAF whose rate is not a positive
/// number, whose channel count is 0 or over the limit, or whose PCM packets
/// have no size. Returns the reason to refuse the file with.
pub(crate) fn header_problem(head: &[u8], limits: &Limits) -> Option<CodecError> {
    let at = |offset: usize, magic: &[u8]| head.get(offset..offset + magic.len()) == Some(magic);
    let bytes4 =
        |offset: usize| -> Option<[u8; 4]> { head.get(offset..offset + 4)?.try_into().ok() };
    if at(0, b"RIFF") && at(8, b"WAVE") && at(12, b"fmt ") {
        let rate = u32::from_le_bytes(bytes4(24)?);
        return (rate == 0)
            .then(|| CodecError::InvalidInput("WAV header: sample rate 0 Hz".into()));
    }
    if at(0, b"OggS") && at(28, b"OpusHead") {
        // symphonia skips an Ogg stream whose OpusHead it cannot map and then
        // reports the file as truncated; say what is wrong instead.
        return crate::decode::opus_codec::parse_opus_head(&head[28..]).err();
    }
    if !(at(0, b"caff") && at(8, b"desc")) {
        return None;
    }
    let rate = f64::from_be_bytes(head.get(20..28)?.try_into().ok()?);
    let pcm = at(28, b"lpcm");
    let bytes_per_packet = u32::from_be_bytes(bytes4(36)?);
    let channels = u32::from_be_bytes(bytes4(44)?);
    if !(rate.is_finite() && rate > 0.0) {
        return Some(CodecError::InvalidInput(format!(
            "CAF header: sample rate {rate} Hz"
        )));
    }
    if channels == 0 {
        return Some(CodecError::InvalidInput("CAF header: 0 channels".into()));
    }
    if channels > u32::from(limits.max_channels) {
        return Some(CodecError::LimitExceeded {
            what: "channel count",
            actual: channels.to_string(),
            limit: limits.max_channels.to_string(),
        });
    }
    (pcm && bytes_per_packet == 0)
        .then(|| CodecError::InvalidInput("CAF header: PCM packets of 0 bytes".into()))
}

/// Reads big-endian bit fields from a byte slice; `None` past the end.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn read(&mut self, count: usize) -> Option<u32> {
        let mut value = 0u32;
        for _ in 0..count {
            let byte = *self.data.get(self.pos / 8)?;
            let bit = (byte >> (7 - self.pos % 8)) & 1;
            value = (value << 1) | u32::from(bit);
            self.pos += 1;
        }
        Some(value)
    }

    fn remaining(&self) -> usize {
        (self.data.len() * 8).saturating_sub(self.pos)
    }
}

fn object_type(bits: &mut Bits<'_>) -> Option<u32> {
    let aot = bits.read(5)?;
    if aot == 31 {
        Some(32 + bits.read(6)?)
    } else {
        Some(aot)
    }
}

fn skip_sample_rate(bits: &mut Bits<'_>) -> Option<()> {
    if bits.read(4)? == 15 {
        bits.read(24)?;
    }
    Some(())
}

/// True when an MPEG-4 AudioSpecificConfig signals SBR or PS (HE-AAC v1/v2):
/// explicitly (object type 5 or 29), or backward-compatibly through the
/// `0x2b7` sync extension with SBR present (ISO/IEC 14496-3 §1.6.2.1).
pub(crate) fn signals_sbr(asc: &[u8]) -> bool {
    let mut bits = Bits { data: asc, pos: 0 };
    let Some(aot) = object_type(&mut bits) else {
        return false;
    };
    if aot == 5 || aot == 29 {
        return true;
    }
    sync_extension_sbr(&mut bits, aot).unwrap_or(false)
}

fn sync_extension_sbr(bits: &mut Bits<'_>, aot: u32) -> Option<bool> {
    // Only the GASpecificConfig object types (AAC main/LC/SSR/LTP) are walked.
    if !(1..=4).contains(&aot) {
        return Some(false);
    }
    skip_sample_rate(bits)?;
    bits.read(4)?; // channel configuration
    bits.read(1)?; // frameLengthFlag
    if bits.read(1)? == 1 {
        bits.read(14)?; // coreCoderDelay
    }
    bits.read(1)?; // extensionFlag
    if bits.remaining() < 16 || bits.read(11)? != 0x2B7 {
        return Some(false);
    }
    let ext = object_type(bits)?;
    Some(ext == 5 && bits.read(1)? == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_containers() {
        assert_eq!(container_name(b"RIFF\0\0\0\0WAVEfmt "), "wav");
        assert_eq!(container_name(b"\0\0\0\x20ftypM4A \0\0"), "mp4");
        assert_eq!(container_name(b"OggS\0"), "ogg");
        assert_eq!(container_name(&[0xFF, 0xFB, 0x90]), "mp3");
        assert_eq!(container_name(&[0xFF, 0xF1, 0x50]), "adts");
        assert_eq!(container_name(b""), "unknown");
    }

    #[test]
    fn detects_sbr_signalling() {
        assert!(!signals_sbr(&[0x12, 0x10])); // AAC-LC 44.1 kHz stereo
        assert!(signals_sbr(&[0x2B, 0x8A, 0x08])); // explicit AOT 5
        assert!(signals_sbr(&[0xEB, 0x09, 0x88, 0x00])); // explicit AOT 29 (PS)
                                                         // LC 22.05 kHz stereo + sync extension 0x2b7, AOT 5, SBR present, 44.1 kHz.
        assert!(signals_sbr(&[0x13, 0x90, 0x56, 0xE5, 0xA0]));
        assert!(!signals_sbr(&[]));
    }
}
