//! Opus in Apple's Core Audio Format: what iOS 11+ plays natively (Ogg Opus
//! only from iOS 18.4).
//!
//! Layout, as ffmpeg's CAF muxer writes Opus: the file header, `desc`
//! (`opus`, 48 kHz, frames per packet = frame size), `chan` (mono/stereo
//! layout tag), `data` (edit count 0, then the packets; its size patched at
//! the end through `Seek`), then `pakt` after the data: packet count, valid
//! frames = duration, priming frames = pre-skip, remainder frames = end
//! padding. No `kuki`: neither ffmpeg nor CoreAudio needs one for mono Opus.
//!
//! When every packet has the same size (libopus hard CBR, `Profile::cbr`),
//! `desc` declares that constant size and `pakt` carries only its header
//! (still with the real packet count, which "must always be valid" per the
//! CAF spec and which ffmpeg uses for the duration), because Safari and
//! QuickTime reportedly refuse VBR Opus in CAF; with VBR `mBytesPerPacket`
//! is 0 and `pakt` lists every packet size as a VLQ.

use std::io::{Seek, SeekFrom, Write};

use crate::error::{CodecError, Result};
use crate::mux::{end_padding, OpusMuxer, OpusStreamHeader};
use crate::OUTPUT_RATE;

/// Byte offset of `mBytesPerPacket`: file header, `desc` chunk header,
/// mSampleRate, mFormatID, mFormatFlags.
const BYTES_PER_PACKET_OFFSET: u64 = 8 + 12 + 8 + 4 + 4;
const DESC_SIZE: i64 = 32;

/// Writes one Opus stream as a CAF file; needs `Seek` to patch the sizes.
pub struct CafOpusWriter<W: Write + Seek> {
    out: W,
    start: u64,
    pre_skip: u16,
    /// Position of the `data` chunk's size field.
    data_size_pos: u64,
    data_bytes: u64,
    packet_sizes: Vec<u16>,
    packet_samples: u64,
    frame_samples: u32,
    bytes_written: u64,
    finished: bool,
}

impl<W: Write + Seek> CafOpusWriter<W> {
    /// Writes the header chunks and opens the `data` chunk. Every packet must
    /// decode to `frame_samples` samples (CAF has one frames-per-packet value).
    pub fn new(mut out: W, header: &OpusStreamHeader, frame_samples: u32) -> Result<Self> {
        let start = out.stream_position()?;
        let mut head = Vec::with_capacity(96);
        head.extend_from_slice(b"caff");
        head.extend_from_slice(&1u16.to_be_bytes()); // file version
        head.extend_from_slice(&0u16.to_be_bytes()); // flags
        push_chunk_header(&mut head, b"desc", DESC_SIZE);
        head.extend_from_slice(&f64::from(OUTPUT_RATE).to_be_bytes());
        head.extend_from_slice(b"opus");
        head.extend_from_slice(&0u32.to_be_bytes()); // mFormatFlags
        head.extend_from_slice(&0u32.to_be_bytes()); // mBytesPerPacket: patched if CBR
        head.extend_from_slice(&frame_samples.to_be_bytes());
        head.extend_from_slice(&u32::from(header.channels).to_be_bytes());
        head.extend_from_slice(&0u32.to_be_bytes()); // mBitsPerChannel
        if let Some(tag) = channel_layout_tag(header.channels) {
            push_chunk_header(&mut head, b"chan", 12);
            head.extend_from_slice(&tag.to_be_bytes());
            head.extend_from_slice(&0u32.to_be_bytes()); // channel bitmap
            head.extend_from_slice(&0u32.to_be_bytes()); // number of descriptions
        }
        push_chunk_header(&mut head, b"data", -1); // size patched at finish
        let data_size_pos = start + head.len() as u64 - 8;
        head.extend_from_slice(&0u32.to_be_bytes()); // edit count
        out.write_all(&head)?;
        Ok(Self {
            out,
            start,
            pre_skip: header.pre_skip,
            data_size_pos,
            data_bytes: 4,
            packet_sizes: Vec::new(),
            packet_samples: 0,
            frame_samples,
            bytes_written: head.len() as u64,
            finished: false,
        })
    }

    /// Gives the underlying writer back (after [`OpusMuxer::finish`]).
    pub fn into_inner(self) -> W {
        self.out
    }

    /// The size shared by every packet, if there is one (hard CBR).
    fn constant_packet_size(&self) -> Option<u16> {
        let first = *self.packet_sizes.first()?;
        self.packet_sizes
            .iter()
            .all(|&size| size == first)
            .then_some(first)
    }

    fn packet_table(&self, total_samples: u64, constant: bool) -> Result<Vec<u8>> {
        let remainder = end_padding(self.packet_samples, self.pre_skip, total_samples)?;
        let packets = self.packet_sizes.len();
        let mut table = Vec::with_capacity(24 + if constant { 0 } else { packets * 2 });
        table.extend_from_slice(&(packets as u64).to_be_bytes());
        table.extend_from_slice(&total_samples.to_be_bytes());
        table.extend_from_slice(&u32::from(self.pre_skip).to_be_bytes());
        let remainder = u32::try_from(remainder)
            .map_err(|_| CodecError::Internal(format!("caf: remainder {remainder} too large")))?;
        table.extend_from_slice(&remainder.to_be_bytes());
        if !constant {
            for &size in &self.packet_sizes {
                push_vlq(&mut table, u32::from(size));
            }
        }
        Ok(table)
    }
}

impl<W: Write + Seek> OpusMuxer for CafOpusWriter<W> {
    fn write_packet(&mut self, packet: &[u8], frame_samples: u32) -> Result<()> {
        if self.finished {
            return Err(CodecError::Internal("caf: packet after finish".into()));
        }
        if frame_samples != self.frame_samples {
            return Err(CodecError::Internal(format!(
                "caf: packet of {frame_samples} samples in a stream of {}",
                self.frame_samples
            )));
        }
        let size = u16::try_from(packet.len())
            .map_err(|_| CodecError::Internal("caf: packet larger than 64 KiB".into()))?;
        self.out.write_all(packet)?;
        self.packet_sizes.push(size);
        self.packet_samples += u64::from(frame_samples);
        self.data_bytes += packet.len() as u64;
        self.bytes_written += packet.len() as u64;
        Ok(())
    }

    fn finish(&mut self, total_samples: u64) -> Result<u64> {
        if self.finished {
            return Ok(self.bytes_written);
        }
        let constant = self.constant_packet_size();
        let table = self.packet_table(total_samples, constant.is_some())?;
        self.finished = true;
        let mut chunk = Vec::with_capacity(12);
        push_chunk_header(&mut chunk, b"pakt", table.len() as i64);
        self.out.write_all(&chunk)?;
        self.out.write_all(&table)?;
        self.bytes_written += (chunk.len() + table.len()) as u64;
        let end = self.out.stream_position()?;
        self.out.seek(SeekFrom::Start(self.data_size_pos))?;
        self.out.write_all(&self.data_bytes.to_be_bytes())?;
        if let Some(size) = constant {
            self.out
                .seek(SeekFrom::Start(self.start + BYTES_PER_PACKET_OFFSET))?;
            self.out.write_all(&u32::from(size).to_be_bytes())?;
        }
        self.out.seek(SeekFrom::Start(end))?;
        self.out.flush()?;
        Ok(self.bytes_written)
    }
}

fn push_chunk_header(out: &mut Vec<u8>, kind: &[u8; 4], size: i64) {
    out.extend_from_slice(kind);
    out.extend_from_slice(&size.to_be_bytes());
}

/// CoreAudio layout tags: kCAFChannelLayoutTag_Mono / _Stereo.
fn channel_layout_tag(channels: u8) -> Option<u32> {
    match channels {
        1 => Some((100 << 16) | 1),
        2 => Some((101 << 16) | 2),
        _ => None,
    }
}

/// CAF's variable-length integer: 7 bits per byte, most significant first,
/// high bit set on every byte but the last.
fn push_vlq(out: &mut Vec<u8>, value: u32) {
    let mut shift = 28;
    while shift > 0 && value >> shift == 0 {
        shift -= 7;
    }
    while shift > 0 {
        out.push(0x80 | ((value >> shift) & 0x7f) as u8);
        shift -= 7;
    }
    out.push((value & 0x7f) as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vlq_matches_the_caf_spec() {
        let mut out = Vec::new();
        for value in [0u32, 127, 128, 300, 16_383, 16_384] {
            push_vlq(&mut out, value);
        }
        assert_eq!(
            out,
            [0x00, 0x7f, 0x81, 0x00, 0x82, 0x2c, 0xff, 0x7f, 0x81, 0x80, 0x00]
        );
    }
}
