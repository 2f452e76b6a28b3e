//! Ogg Opus writer (RFC 7845 over RFC 3533 pages): the file Sori serves as
//! `audio.opus`.
//!
//! Streaming, no seeking: the `OpusHead` page (BOS, alone, granule 0), the
//! `OpusTags` page(s), then audio pages flushed every second of audio or
//! 4 KiB, whichever comes first. The last page carries EOS and the granule
//! `pre_skip + total_samples`, which trims the padding of the last packet
//! (RFC 7845 §4.4) so the decoded duration is exact to the sample.

use std::io::Write;

use crate::error::{CodecError, Result};
use crate::mux::{end_padding, OpusMuxer, OpusStreamHeader};
use crate::OUTPUT_RATE;

/// Flush an audio page once it holds this many bytes of packets…
const PAGE_TARGET_BYTES: usize = 4096;
/// …or this much audio (one second), so a player never waits long for a page.
const PAGE_TARGET_SAMPLES: u64 = OUTPUT_RATE as u64;
/// An Ogg page has at most 255 lacing values.
const MAX_SEGMENTS: usize = 255;
/// Granule position of a page on which no packet completes (RFC 3533).
const NO_GRANULE: u64 = u64::MAX;

const FLAG_CONTINUED: u8 = 0x01;
const FLAG_BOS: u8 = 0x02;
const FLAG_EOS: u8 = 0x04;

/// CRC-32 of Ogg: polynomial 0x04c11db7, not reflected, initial value 0.
const CRC_TABLE: [u32; 256] = crc_table();

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u32) << 24;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

fn crc_update(mut crc: u32, bytes: &[u8]) -> u32 {
    for &byte in bytes {
        crc = (crc << 8) ^ CRC_TABLE[((crc >> 24) as u8 ^ byte) as usize];
    }
    crc
}

/// Writes one Opus stream as an Ogg Opus file to any `Write`.
pub struct OggOpusWriter<W: Write> {
    out: W,
    serial: u32,
    sequence: u32,
    pre_skip: u16,
    /// Lacing values and body of the page being built (reused).
    segments: Vec<u8>,
    body: Vec<u8>,
    /// Page header scratch (reused).
    header: Vec<u8>,
    /// The page being built starts with the tail of a packet begun on the previous one.
    continued: bool,
    /// Granule after the last packet that completed on the page being built.
    page_granule: u64,
    page_start_granule: u64,
    /// Granule after every packet written so far (pre-skip included).
    granule: u64,
    audio_packets: u64,
    bytes_written: u64,
    finished: bool,
}

impl<W: Write> OggOpusWriter<W> {
    /// Writes the two header pages at once. `serial` identifies the logical
    /// stream; any value works for a single-stream file (pass a random or
    /// deterministic one, e.g. derived from the media id).
    pub fn new(out: W, header: &OpusStreamHeader, serial: u32) -> Result<Self> {
        let mut writer = Self {
            out,
            serial,
            sequence: 0,
            pre_skip: header.pre_skip,
            segments: Vec::with_capacity(MAX_SEGMENTS),
            body: Vec::with_capacity(PAGE_TARGET_BYTES + 8192),
            header: Vec::with_capacity(27 + MAX_SEGMENTS),
            continued: false,
            page_granule: NO_GRANULE,
            page_start_granule: 0,
            granule: u64::from(header.pre_skip),
            audio_packets: 0,
            bytes_written: 0,
            finished: false,
        };
        writer.append_packet(&header.opus_head(), 0)?;
        writer.flush_page(FLAG_BOS)?;
        writer.append_packet(&header.opus_tags(), 0)?;
        writer.flush_page(0)?;
        // Audio starts at granule 0: the decoder output before pre-skip.
        writer.granule = 0;
        writer.page_start_granule = 0;
        Ok(writer)
    }

    /// Gives the underlying writer back (after [`OpusMuxer::finish`]).
    pub fn into_inner(self) -> W {
        self.out
    }

    /// Adds a packet to the current page, flushing full pages (with no
    /// completed packet they get granule -1) when the packet spans them.
    fn append_packet(&mut self, packet: &[u8], granule_after: u64) -> Result<()> {
        let mut rest = packet;
        loop {
            if self.segments.len() == MAX_SEGMENTS {
                self.flush_page(0)?;
                self.continued = true;
            }
            let lace = rest.len().min(255);
            self.segments.push(lace as u8);
            self.body.extend_from_slice(&rest[..lace]);
            rest = &rest[lace..];
            if lace < 255 {
                break; // A lace below 255 (possibly 0) ends the packet.
            }
        }
        self.page_granule = granule_after;
        Ok(())
    }

    fn page_is_full(&self) -> bool {
        let samples = self.granule.saturating_sub(self.page_start_granule);
        self.body.len() >= PAGE_TARGET_BYTES || samples >= PAGE_TARGET_SAMPLES
    }

    fn flush_page(&mut self, flags: u8) -> Result<()> {
        let flags = flags | if self.continued { FLAG_CONTINUED } else { 0 };
        self.header.clear();
        self.header.extend_from_slice(b"OggS");
        self.header.push(0); // stream structure version
        self.header.push(flags);
        self.header
            .extend_from_slice(&self.page_granule.to_le_bytes());
        self.header.extend_from_slice(&self.serial.to_le_bytes());
        self.header.extend_from_slice(&self.sequence.to_le_bytes());
        self.header.extend_from_slice(&[0; 4]); // CRC, filled below
        self.header.push(self.segments.len() as u8);
        self.header.extend_from_slice(&self.segments);
        let crc = crc_update(crc_update(0, &self.header), &self.body);
        self.header[22..26].copy_from_slice(&crc.to_le_bytes());
        self.out.write_all(&self.header)?;
        self.out.write_all(&self.body)?;
        self.bytes_written += (self.header.len() + self.body.len()) as u64;
        self.sequence = self.sequence.wrapping_add(1);
        self.segments.clear();
        self.body.clear();
        self.continued = false;
        self.page_granule = NO_GRANULE;
        self.page_start_granule = self.granule;
        Ok(())
    }
}

impl<W: Write> OpusMuxer for OggOpusWriter<W> {
    fn write_packet(&mut self, packet: &[u8], frame_samples: u32) -> Result<()> {
        if self.finished {
            return Err(CodecError::Internal("ogg: packet after finish".into()));
        }
        // Flush before adding, so the last packet always waits for the EOS page.
        let laces = packet.len() / 255 + 1;
        let no_room = self.segments.len() + laces > MAX_SEGMENTS;
        if !self.segments.is_empty() && (no_room || self.page_is_full()) {
            self.flush_page(0)?;
        }
        self.granule += u64::from(frame_samples);
        self.audio_packets += 1;
        self.append_packet(packet, self.granule)
    }

    fn finish(&mut self, total_samples: u64) -> Result<u64> {
        if self.finished {
            return Ok(self.bytes_written);
        }
        end_padding(self.granule, self.pre_skip, total_samples)?;
        self.finished = true;
        // End trimming: the final granule may be below what the packets hold.
        self.page_granule = u64::from(self.pre_skip) + total_samples;
        self.flush_page(FLAG_EOS)?;
        self.out.flush()?;
        Ok(self.bytes_written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_ogg_reference_value() {
        // CRC-32/MPEG-2 without init/xorout ("CRC-32/BZIP2" unreflected, init 0):
        // the check value of "123456789" for poly 0x04c11db7, init 0, no xorout.
        assert_eq!(crc_update(0, b"123456789"), 0x89a1_897f);
    }
}
