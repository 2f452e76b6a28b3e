//! The round trip behind the `mux` fuzz target, shared with
//! `codecs/tests/hostile.rs`, which replays the inputs it once failed on.
//!
//! The Ogg, CAF and WebM muxers with any stream the encoder could hand them:
//! header fields, packet sizes (1 byte to 3 frames of the largest Opus frame, so
//! packets span Ogg pages and WebM clusters), packet counts, frame durations
//! and end trims are all taken from the fuzzer's bytes.
//!
//! Each output is read back with symphonia's demuxer, an implementation we
//! did not write: every packet must come back byte for byte, in order. A
//! claimed duration longer than the packets hold must be refused with an
//! error, never written.
//!
//! One exception: when every packet has the same size the CAF is constant
//! bit rate (`mBytesPerPacket` set) and still carries a `pakt` chunk for the
//! priming and remainder frames, as Apple's CAF specification allows.
//! symphonia 0.5 refuses that combination ("unexpected packet table for
//! constant bit rate format"), so those files are checked by walking their
//! chunks here instead.

use sori_codecs::mux::{OpusMuxer, OpusStreamHeader};
use sori_codecs::output_format::Container;
use sori_codecs::OutputFormat;
use std::io::Cursor;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::MediaSourceStream;
use symphonia::default::formats::{CafReader, MkvReader, OggReader};

/// Opus frame durations at 48 kHz (2.5 to 60 ms).
const FRAME_SAMPLES: [u32; 6] = [120, 240, 480, 960, 1920, 2880];
/// Largest packet: three frames of libopus's 1275-byte maximum.
const MAX_PACKET: usize = 3 * 1275;

/// Reads the fuzzer's bytes as a stream of small integers (zeros when empty).
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        let (first, rest) = self.0.split_first().map_or((0, &[][..]), |(f, r)| (*f, r));
        self.0 = rest;
        first
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    fn take(&mut self, len: usize) -> Vec<u8> {
        let len = len.min(self.0.len());
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        head.to_vec()
    }
}

struct Stream {
    header: OpusStreamHeader,
    frame_samples: u32,
    packets: Vec<Vec<u8>>,
    total_samples: u64,
}

fn stream(data: &[u8]) -> Stream {
    let mut bytes = Bytes(data);
    let channels = 1 + bytes.u8() % 2;
    let pre_skip = bytes.u16() % 4000;
    let input_sample_rate = u32::from(bytes.u16()) * 3;
    let vendor_len = usize::from(bytes.u8() % 40);
    let vendor = String::from_utf8_lossy(&bytes.take(vendor_len)).into_owned();
    let tags = (0..bytes.u8() % 3)
        .map(|i| {
            let len = usize::from(bytes.u8() % 30);
            (
                format!("T{i}"),
                String::from_utf8_lossy(&bytes.take(len)).into_owned(),
            )
        })
        .collect();
    let frame_samples = FRAME_SAMPLES[usize::from(bytes.u8()) % FRAME_SAMPLES.len()];
    let trim = u64::from(bytes.u16());
    let mut packets = Vec::new();
    while !bytes.0.is_empty() && packets.len() < 2000 {
        // At least the TOC byte: libopus never emits an empty packet.
        let len = 1 + usize::from(bytes.u16()) % MAX_PACKET;
        // Packet bodies are a pattern, not fuzzer bytes: sizes are what matter.
        let seed = packets.len() as u8;
        packets.push(
            (0..len)
                .map(|i| (i as u8).wrapping_mul(31) ^ seed)
                .collect(),
        );
    }
    let held = packets.len() as u64 * u64::from(frame_samples);
    // Mostly valid durations; now and then one longer than the packets hold.
    let total_samples = held
        .saturating_sub(u64::from(pre_skip))
        .wrapping_sub(trim % 3000);
    let header = OpusStreamHeader {
        channels,
        pre_skip,
        input_sample_rate,
        vendor,
        tags,
    };
    Stream {
        header,
        frame_samples,
        packets,
        total_samples: total_samples.min(held + 1),
    }
}

/// Writes the stream; false when the muxer (rightly) refused its duration.
fn write(mut muxer: Box<dyn OpusMuxer + '_>, stream: &Stream) -> bool {
    for packet in &stream.packets {
        muxer
            .write_packet(packet, stream.frame_samples)
            .expect("a packet the encoder could make is accepted");
    }
    let held = stream.packets.len() as u64 * u64::from(stream.frame_samples);
    let fits = stream.total_samples + u64::from(stream.header.pre_skip) <= held;
    match muxer.finish(stream.total_samples) {
        Ok(_) => {
            assert!(fits, "a duration beyond the packets was written");
            true
        }
        Err(e) => {
            assert!(!fits, "valid stream refused: {e}");
            false
        }
    }
}

/// Every packet symphonia demuxes from `bytes`, in order.
fn read_back<R: FormatReader>(bytes: Vec<u8>, name: &str) -> Vec<Vec<u8>> {
    let source = MediaSourceStream::new(Box::new(Cursor::new(bytes)), Default::default());
    let mut reader = R::try_new(source, &FormatOptions::default())
        .unwrap_or_else(|e| panic!("{name}: our file does not open: {e}"));
    let mut packets = Vec::new();
    loop {
        match reader.next_packet() {
            Ok(packet) => packets.push(packet.data.to_vec()),
            Err(symphonia::core::errors::Error::IoError(e))
                if e.kind() == std::io::ErrorKind::UnexpectedEof =>
            {
                return packets
            }
            Err(e) => panic!("{name}: demuxing our file failed: {e}"),
        }
    }
}

fn check(name: &str, written: &[Vec<u8>], read: &[Vec<u8>]) {
    assert_eq!(written.len(), read.len(), "{name}: packet count");
    for (i, (a, b)) in written.iter().zip(read).enumerate() {
        assert!(
            a == b,
            "{name}: packet {i} differs ({} vs {} bytes)",
            a.len(),
            b.len()
        );
    }
}

/// A constant-bit-rate CAF: `desc` names the packet size, `data` holds the
/// packets back to back after its 4-byte edit count, `pakt` counts them.
fn check_constant_caf(bytes: &[u8], packets: &[Vec<u8>]) {
    assert_eq!(&bytes[..4], b"caff", "caf: file type");
    let mut pos = 8;
    let (mut desc, mut data, mut pakt) = (None, None, None);
    while pos + 12 <= bytes.len() {
        let kind = &bytes[pos..pos + 4];
        let size = i64::from_be_bytes(bytes[pos + 4..pos + 12].try_into().unwrap());
        let size = usize::try_from(size).expect("caf: chunk size");
        let body = &bytes[pos + 12..pos + 12 + size];
        match kind {
            b"desc" => desc = Some(body),
            b"data" => data = Some(body),
            b"pakt" => pakt = Some(body),
            _ => {}
        }
        pos += 12 + size;
    }
    assert_eq!(
        pos,
        bytes.len(),
        "caf: chunks do not end at the end of the file"
    );
    let desc = desc.expect("caf: no desc");
    let bytes_per_packet = u32::from_be_bytes(desc[16..20].try_into().unwrap());
    assert_eq!(
        bytes_per_packet as usize,
        packets[0].len(),
        "caf: mBytesPerPacket"
    );
    assert_eq!(
        &data.expect("caf: no data")[4..],
        packets.concat(),
        "caf: data"
    );
    let pakt = pakt.expect("caf: no pakt");
    let count = u64::from_be_bytes(pakt[..8].try_into().unwrap());
    assert_eq!(count, packets.len() as u64, "caf: mNumberPackets");
    assert_eq!(
        pakt.len(),
        24,
        "caf: a constant-rate packet table lists no sizes"
    );
}

/// Builds a stream from `data`, muxes it into every audio output the
/// service writes, the way the engine makes them, and checks each file;
/// panics on any mismatch.
pub fn run(data: &[u8]) {
    let stream = stream(data);
    if stream.packets.is_empty() {
        return;
    }
    for format in OutputFormat::AUDIO {
        let name = format.file_name();
        let mut bytes = Vec::new();
        let muxer = format
            .opus_muxer(
                Cursor::new(&mut bytes),
                &stream.header,
                stream.frame_samples,
                0x5EED,
            )
            .unwrap_or_else(|e| panic!("{name}: header: {e}"));
        if write(muxer, &stream) {
            check_file(format, bytes, &stream.packets);
        }
    }
}

/// Reads a written file back with symphonia's demuxer for its container.
fn check_file(format: OutputFormat, bytes: Vec<u8>, packets: &[Vec<u8>]) {
    let name = format.file_name();
    match format.container().expect("an audio output has a container") {
        Container::Ogg => check(name, packets, &read_back::<OggReader>(bytes, name)),
        Container::Caf => {
            let size = packets[0].len();
            if packets.iter().all(|p| p.len() == size) {
                check_constant_caf(&bytes, packets);
            } else {
                check(name, packets, &read_back::<CafReader>(bytes, name));
            }
        }
        Container::Webm => check(name, packets, &read_back::<MkvReader>(bytes, name)),
    }
}
