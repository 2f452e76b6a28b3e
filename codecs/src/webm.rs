//! Opus in WebM (Matroska subset): what Safari 17.5+ and every other
//! browser plays.
//!
//! A minimal EBML writer: EBML header, one Segment with SeekHead, Info
//! (Duration patched at the end), Tracks (`A_OPUS`, `CodecPrivate` =
//! `OpusHead`, `CodecDelay` = pre-skip, `SeekPreRoll` 80 ms), Clusters of
//! SimpleBlocks (a new cluster every 5 s), and Cues (one per cluster) so
//! players can seek without scanning. The last packet goes in a BlockGroup
//! with `DiscardPadding` when it holds padding, so the decoded duration is
//! exact. Block timestamps are not shifted by the codec delay (Matroska:
//! the player subtracts `CodecDelay`).
//!
//! Each cluster is built in a reused buffer (about 20 KB at 32 kbit/s) and
//! written with its size known; the Segment size, Duration and Cues position
//! are patched through `Seek` at the end.

use std::io::{Seek, SeekFrom, Write};

use crate::error::{CodecError, Result};
use crate::mux::{end_padding, samples_to_ns, OpusMuxer, OpusStreamHeader};
use crate::OUTPUT_RATE;

const ID_EBML: u32 = 0x1A45_DFA3;
const ID_EBML_VERSION: u32 = 0x4286;
const ID_EBML_READ_VERSION: u32 = 0x42F7;
const ID_EBML_MAX_ID_LENGTH: u32 = 0x42F2;
const ID_EBML_MAX_SIZE_LENGTH: u32 = 0x42F3;
const ID_DOC_TYPE: u32 = 0x4282;
const ID_DOC_TYPE_VERSION: u32 = 0x4287;
const ID_DOC_TYPE_READ_VERSION: u32 = 0x4285;
const ID_SEGMENT: u32 = 0x1853_8067;
const ID_SEEK_HEAD: u32 = 0x114D_9B74;
const ID_SEEK: u32 = 0x4DBB;
const ID_SEEK_ID: u32 = 0x53AB;
const ID_SEEK_POSITION: u32 = 0x53AC;
const ID_INFO: u32 = 0x1549_A966;
const ID_TIMECODE_SCALE: u32 = 0x2A_D7B1;
const ID_MUXING_APP: u32 = 0x4D80;
const ID_WRITING_APP: u32 = 0x5741;
const ID_DURATION: u32 = 0x4489;
const ID_TRACKS: u32 = 0x1654_AE6B;
const ID_TRACK_ENTRY: u32 = 0xAE;
const ID_TRACK_NUMBER: u32 = 0xD7;
const ID_TRACK_UID: u32 = 0x73C5;
const ID_TRACK_TYPE: u32 = 0x83;
const ID_FLAG_LACING: u32 = 0x9C;
const ID_CODEC_ID: u32 = 0x86;
const ID_CODEC_PRIVATE: u32 = 0x63A2;
const ID_CODEC_DELAY: u32 = 0x56AA;
const ID_SEEK_PRE_ROLL: u32 = 0x56BB;
const ID_AUDIO: u32 = 0xE1;
const ID_SAMPLING_FREQUENCY: u32 = 0xB5;
const ID_CHANNELS: u32 = 0x9F;
const ID_CLUSTER: u32 = 0x1F43_B675;
const ID_TIMECODE: u32 = 0xE7;
const ID_SIMPLE_BLOCK: u32 = 0xA3;
const ID_BLOCK_GROUP: u32 = 0xA0;
const ID_BLOCK: u32 = 0xA1;
const ID_DISCARD_PADDING: u32 = 0x75A2;
const ID_CUES: u32 = 0x1C53_BB6B;
const ID_CUE_POINT: u32 = 0xBB;
const ID_CUE_TIME: u32 = 0xB3;
const ID_CUE_TRACK_POSITIONS: u32 = 0xB7;
const ID_CUE_TRACK: u32 = 0xF7;
const ID_CUE_CLUSTER_POSITION: u32 = 0xF1;

/// Start a new cluster after this many milliseconds (also keeps the block's
/// 16-bit relative timecode far from overflow).
const CLUSTER_MS: u64 = 5_000;
/// RFC 7845 §4.6 / Matroska Opus mapping: 80 ms of pre-roll after a seek.
const SEEK_PRE_ROLL_NS: u64 = 80_000_000;
/// Size field of the Segment while unknown (patched at the end).
const UNKNOWN_SIZE_8: u64 = 0x01FF_FFFF_FFFF_FFFF;

/// Writes one Opus stream as a WebM file; needs `Seek` to patch sizes.
pub struct WebmOpusWriter<W: Write + Seek> {
    out: W,
    /// Position of the first byte we wrote; with `bytes_written`, where we are.
    start: u64,
    pre_skip: u16,
    /// Absolute positions to patch at the end.
    segment_size_pos: u64,
    segment_data_start: u64,
    duration_pos: u64,
    cues_seek_pos: u64,
    /// Body of the cluster being built (reused).
    cluster: Vec<u8>,
    cluster_ms: Option<u64>,
    /// The last packet, held back until we know whether it needs DiscardPadding.
    pending: Vec<u8>,
    pending_ms: Option<u64>,
    /// (cluster time ms, cluster position relative to the segment data).
    cues: Vec<(u64, u64)>,
    packet_samples: u64,
    bytes_written: u64,
    finished: bool,
}

impl<W: Write + Seek> WebmOpusWriter<W> {
    /// Writes the EBML header, the Segment start, SeekHead, Info and Tracks.
    pub fn new(mut out: W, header: &OpusStreamHeader) -> Result<Self> {
        let start = out.stream_position()?;
        let mut head = Vec::with_capacity(256);
        put_master(&mut head, ID_EBML, &ebml_header());
        put_id(&mut head, ID_SEGMENT);
        let segment_size_pos = start + head.len() as u64;
        put_size_fixed8(&mut head, UNKNOWN_SIZE_8);
        let segment_data_start = start + head.len() as u64;

        let info = info_body();
        let tracks = tracks_body(header);
        // SeekHead: three entries with fixed 8-byte positions.
        let seek_head_len = 5 + 3 * seek_entry_len();
        let info_pos = seek_head_len as u64;
        let tracks_pos = info_pos + element_len(ID_INFO, info.len()) as u64;
        let mut seek_head = Vec::with_capacity(seek_head_len);
        put_seek_entry(&mut seek_head, ID_INFO, info_pos);
        put_seek_entry(&mut seek_head, ID_TRACKS, tracks_pos);
        put_seek_entry(&mut seek_head, ID_CUES, 0); // patched at finish
        let seek_head_start = head.len();
        put_id(&mut head, ID_SEEK_HEAD);
        put_size_fixed(&mut head, seek_head.len() as u64, 1);
        head.extend_from_slice(&seek_head);
        if head.len() - seek_head_start != seek_head_len {
            return Err(CodecError::Internal("webm: seek head size mismatch".into()));
        }
        let cues_seek_pos = start + head.len() as u64 - 8;

        let info_start = head.len();
        put_master(&mut head, ID_INFO, &info);
        let duration_pos = start + (info_start + element_len(ID_INFO, info.len())) as u64 - 8;
        put_master(&mut head, ID_TRACKS, &tracks);
        out.write_all(&head)?;
        Ok(Self {
            out,
            start,
            pre_skip: header.pre_skip,
            segment_size_pos,
            segment_data_start,
            duration_pos,
            cues_seek_pos,
            cluster: Vec::with_capacity(32 * 1024),
            cluster_ms: None,
            pending: Vec::with_capacity(4096),
            pending_ms: None,
            cues: Vec::new(),
            packet_samples: 0,
            bytes_written: head.len() as u64,
            finished: false,
        })
    }

    /// Gives the underlying writer back (after [`OpusMuxer::finish`]).
    pub fn into_inner(self) -> W {
        self.out
    }

    /// Opens a new cluster for a block at `time_ms` if the current one is too long.
    fn cluster_for(&mut self, time_ms: u64) -> Result<u64> {
        if let Some(cluster_ms) = self.cluster_ms {
            if time_ms.saturating_sub(cluster_ms) < CLUSTER_MS {
                return Ok(cluster_ms);
            }
            self.flush_cluster()?;
        }
        self.cluster.clear();
        put_uint(&mut self.cluster, ID_TIMECODE, time_ms);
        self.cluster_ms = Some(time_ms);
        Ok(time_ms)
    }

    fn flush_cluster(&mut self) -> Result<()> {
        let Some(cluster_ms) = self.cluster_ms.take() else {
            return Ok(());
        };
        let position = self.position() - self.segment_data_start;
        self.cues.push((cluster_ms, position));
        let mut head = [0u8; 12];
        let mut head_len = 0;
        for byte in ID_CLUSTER.to_be_bytes() {
            head[head_len] = byte;
            head_len += 1;
        }
        let size = self.cluster.len() as u64 | (1 << 56);
        for byte in size.to_be_bytes() {
            head[head_len] = byte;
            head_len += 1;
        }
        self.out.write_all(&head[..head_len])?;
        self.out.write_all(&self.cluster)?;
        self.bytes_written += (head_len + self.cluster.len()) as u64;
        self.cluster.clear();
        Ok(())
    }

    /// Writes the held-back packet, as a SimpleBlock or (last one, padded)
    /// as a BlockGroup with DiscardPadding.
    fn write_pending(&mut self, discard_ns: u64) -> Result<()> {
        let Some(time_ms) = self.pending_ms.take() else {
            return Ok(());
        };
        let cluster_ms = self.cluster_for(time_ms)?;
        let relative = i16::try_from(time_ms - cluster_ms)
            .map_err(|_| CodecError::Internal("webm: relative timecode overflow".into()))?;
        let block_len = 4 + self.pending.len() as u64;
        if discard_ns == 0 {
            put_id(&mut self.cluster, ID_SIMPLE_BLOCK);
            put_size(&mut self.cluster, block_len);
            push_block_head(&mut self.cluster, relative, 0x80);
        } else {
            let discard = sint_bytes(discard_ns);
            let block = element_len(ID_BLOCK, block_len as usize);
            let padding = element_len(ID_DISCARD_PADDING, discard.len());
            put_id(&mut self.cluster, ID_BLOCK_GROUP);
            put_size(&mut self.cluster, (block + padding) as u64);
            put_id(&mut self.cluster, ID_BLOCK);
            put_size(&mut self.cluster, block_len);
            push_block_head(&mut self.cluster, relative, 0x00);
            self.cluster.extend_from_slice(&self.pending);
            put_bytes(&mut self.cluster, ID_DISCARD_PADDING, &discard);
            return Ok(());
        }
        self.cluster.extend_from_slice(&self.pending);
        Ok(())
    }

    fn write_cues(&mut self) -> Result<u64> {
        let position = self.position() - self.segment_data_start;
        let mut cues = Vec::with_capacity(self.cues.len() * 16);
        let mut point = Vec::with_capacity(32);
        let mut track = Vec::with_capacity(16);
        for &(time_ms, cluster_pos) in &self.cues {
            track.clear();
            put_uint(&mut track, ID_CUE_TRACK, 1);
            put_uint(&mut track, ID_CUE_CLUSTER_POSITION, cluster_pos);
            point.clear();
            put_uint(&mut point, ID_CUE_TIME, time_ms);
            put_master(&mut point, ID_CUE_TRACK_POSITIONS, &track);
            put_master(&mut cues, ID_CUE_POINT, &point);
        }
        let mut element = Vec::with_capacity(cues.len() + 12);
        put_master(&mut element, ID_CUES, &cues);
        self.out.write_all(&element)?;
        self.bytes_written += element.len() as u64;
        Ok(position)
    }

    fn position(&self) -> u64 {
        self.start + self.bytes_written
    }

    fn patch(&mut self, position: u64, bytes: &[u8]) -> Result<()> {
        self.out.seek(SeekFrom::Start(position))?;
        self.out.write_all(bytes)?;
        Ok(())
    }
}

impl<W: Write + Seek> OpusMuxer for WebmOpusWriter<W> {
    fn write_packet(&mut self, packet: &[u8], frame_samples: u32) -> Result<()> {
        if self.finished {
            return Err(CodecError::Internal("webm: packet after finish".into()));
        }
        self.write_pending(0)?;
        self.pending.clear();
        self.pending.extend_from_slice(packet);
        self.pending_ms = Some(samples_to_ms(self.packet_samples));
        self.packet_samples += u64::from(frame_samples);
        Ok(())
    }

    fn finish(&mut self, total_samples: u64) -> Result<u64> {
        if self.finished {
            return Ok(self.bytes_written);
        }
        let padding = end_padding(self.packet_samples, self.pre_skip, total_samples)?;
        self.finished = true;
        self.write_pending(samples_to_ns(padding))?;
        self.flush_cluster()?;
        let cues_pos = self.write_cues()?;
        let end = self.position();
        let duration_ms = total_samples as f64 * 1000.0 / f64::from(OUTPUT_RATE);
        self.patch(self.duration_pos, &duration_ms.to_be_bytes())?;
        self.patch(self.cues_seek_pos, &cues_pos.to_be_bytes())?;
        let segment_size = (end - self.segment_data_start) | (1 << 56);
        self.patch(self.segment_size_pos, &segment_size.to_be_bytes())?;
        self.out.seek(SeekFrom::Start(end))?;
        self.out.flush()?;
        Ok(self.bytes_written)
    }
}

fn samples_to_ms(samples: u64) -> u64 {
    let rate = u64::from(OUTPUT_RATE);
    (samples * 1000 + rate / 2) / rate
}

fn ebml_header() -> Vec<u8> {
    let mut body = Vec::with_capacity(40);
    put_uint(&mut body, ID_EBML_VERSION, 1);
    put_uint(&mut body, ID_EBML_READ_VERSION, 1);
    put_uint(&mut body, ID_EBML_MAX_ID_LENGTH, 4);
    put_uint(&mut body, ID_EBML_MAX_SIZE_LENGTH, 8);
    put_bytes(&mut body, ID_DOC_TYPE, b"webm");
    put_uint(&mut body, ID_DOC_TYPE_VERSION, 4);
    put_uint(&mut body, ID_DOC_TYPE_READ_VERSION, 2);
    body
}

/// Info with Duration last, so its 8 float bytes end the element (patched).
fn info_body() -> Vec<u8> {
    let mut body = Vec::with_capacity(40);
    put_uint(&mut body, ID_TIMECODE_SCALE, 1_000_000);
    put_bytes(&mut body, ID_MUXING_APP, b"sori");
    put_bytes(&mut body, ID_WRITING_APP, b"sori");
    put_bytes(&mut body, ID_DURATION, &0f64.to_be_bytes());
    body
}

fn tracks_body(header: &OpusStreamHeader) -> Vec<u8> {
    let mut audio = Vec::with_capacity(16);
    put_bytes(
        &mut audio,
        ID_SAMPLING_FREQUENCY,
        &f64::from(OUTPUT_RATE).to_be_bytes(),
    );
    put_uint(&mut audio, ID_CHANNELS, u64::from(header.channels));
    let mut entry = Vec::with_capacity(64);
    put_uint(&mut entry, ID_TRACK_NUMBER, 1);
    put_uint(&mut entry, ID_TRACK_UID, 1);
    put_uint(&mut entry, ID_TRACK_TYPE, 2); // audio
    put_uint(&mut entry, ID_FLAG_LACING, 0);
    put_bytes(&mut entry, ID_CODEC_ID, b"A_OPUS");
    put_bytes(&mut entry, ID_CODEC_PRIVATE, &header.opus_head());
    put_uint(
        &mut entry,
        ID_CODEC_DELAY,
        samples_to_ns(u64::from(header.pre_skip)),
    );
    put_uint(&mut entry, ID_SEEK_PRE_ROLL, SEEK_PRE_ROLL_NS);
    put_master(&mut entry, ID_AUDIO, &audio);
    let mut tracks = Vec::with_capacity(80);
    put_master(&mut tracks, ID_TRACK_ENTRY, &entry);
    tracks
}

fn seek_entry_len() -> usize {
    // Seek(2+1) { SeekID(2+1+4), SeekPosition(2+1+8) }
    3 + 7 + 11
}

fn put_seek_entry(out: &mut Vec<u8>, id: u32, position: u64) {
    put_id(out, ID_SEEK);
    put_size(out, 18);
    put_bytes(out, ID_SEEK_ID, &id.to_be_bytes());
    put_id(out, ID_SEEK_POSITION);
    put_size(out, 8);
    out.extend_from_slice(&position.to_be_bytes());
}

fn push_block_head(out: &mut Vec<u8>, relative_ms: i16, flags: u8) {
    out.push(0x81); // track number 1 as a 1-byte vint
    out.extend_from_slice(&relative_ms.to_be_bytes());
    out.push(flags);
}

fn id_len(id: u32) -> usize {
    4 - (id.leading_zeros() / 8) as usize
}

fn size_len(size: u64) -> usize {
    let mut len = 1;
    while len < 8 && size >= (1u64 << (7 * len)) - 1 {
        len += 1;
    }
    len
}

/// Bytes an element takes: its ID, its size field and its body.
fn element_len(id: u32, body_len: usize) -> usize {
    id_len(id) + size_len(body_len as u64) + body_len
}

fn put_id(out: &mut Vec<u8>, id: u32) {
    out.extend_from_slice(&id.to_be_bytes()[4 - id_len(id)..]);
}

fn put_size(out: &mut Vec<u8>, size: u64) {
    put_size_fixed(out, size, size_len(size));
}

/// A size as an EBML vint of exactly `len` bytes.
fn put_size_fixed(out: &mut Vec<u8>, size: u64, len: usize) {
    let marked = size | (1u64 << (7 * len));
    out.extend_from_slice(&marked.to_be_bytes()[8 - len..]);
}

fn put_size_fixed8(out: &mut Vec<u8>, raw: u64) {
    out.extend_from_slice(&raw.to_be_bytes());
}

fn put_bytes(out: &mut Vec<u8>, id: u32, body: &[u8]) {
    put_id(out, id);
    put_size(out, body.len() as u64);
    out.extend_from_slice(body);
}

fn put_master(out: &mut Vec<u8>, id: u32, body: &[u8]) {
    put_bytes(out, id, body);
}

fn put_uint(out: &mut Vec<u8>, id: u32, value: u64) {
    let len = (8 - (value.leading_zeros() / 8) as usize).max(1);
    put_bytes(out, id, &value.to_be_bytes()[8 - len..]);
}

/// A positive value as a minimal EBML signed integer (a leading zero byte
/// when the top bit would read as a sign).
fn sint_bytes(value: u64) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let mut first = bytes.iter().position(|&b| b != 0).unwrap_or(7);
    if bytes[first] & 0x80 != 0 && first > 0 {
        first -= 1;
    }
    bytes[first..].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vint_sizes_are_minimal_and_marked() {
        let mut out = Vec::new();
        put_size(&mut out, 0);
        put_size(&mut out, 126);
        put_size(&mut out, 127); // all-ones in 1 byte means "unknown": needs 2
        put_size(&mut out, 300);
        assert_eq!(out, [0x80, 0xFE, 0x40, 0x7F, 0x41, 0x2C]);
    }

    #[test]
    fn signed_ints_never_read_negative() {
        assert_eq!(sint_bytes(0x7F), [0x7F]);
        assert_eq!(sint_bytes(0x80), [0x00, 0x80]);
        assert_eq!(sint_bytes(6_500_000), [0x63, 0x2E, 0xA0]);
    }
}
