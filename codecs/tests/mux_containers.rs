//! The same Opus packets in Ogg, CAF and WebM, checked by tools nobody here
//! wrote: `opusinfo` (opus-tools), `ffprobe` and `ffmpeg`. These tools are
//! required: a missing tool fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::io::{BufWriter, Cursor};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sori_codecs::caf::CafOpusWriter;
use sori_codecs::encode::OpusEncoder;
use sori_codecs::mux::{OpusMuxer, OpusStreamHeader};
use sori_codecs::ogg::OggOpusWriter;
use sori_codecs::webm::WebmOpusWriter;
use sori_codecs::Profile;

const RATE: f64 = 48_000.0;

/// A voiced-like tone: 140 Hz with decaying harmonics and a slow vibrato.
fn voiced(samples: usize) -> Vec<f32> {
    let mut phase = 0.0f64;
    (0..samples)
        .map(|i| {
            let t = i as f64 / RATE;
            let f0 = 140.0 + 10.0 * (2.0 * std::f64::consts::PI * 3.0 * t).sin();
            phase += 2.0 * std::f64::consts::PI * f0 / RATE;
            let v: f64 = (1..=8).map(|k| (phase * k as f64).sin() / k as f64).sum();
            (0.25 * v) as f32
        })
        .collect()
}

struct Muxed {
    packets: Vec<Vec<u8>>,
    pre_skip: u16,
    frame: u64,
    total: u64,
    ogg: PathBuf,
    caf: PathBuf,
    webm: PathBuf,
}

/// Encodes `input` in chunks of odd size and writes the three containers.
fn encode_and_mux(dir: &Path, name: &str, input: &[f32], profile: &Profile) -> Muxed {
    let mut encoder = OpusEncoder::new(profile).unwrap();
    let header = OpusStreamHeader::for_profile(profile, encoder.pre_skip(), 44_100);
    let frame = encoder.frame_samples() as u32;
    let paths = ["opus", "caf", "webm"].map(|ext| dir.join(format!("{name}.{ext}")));
    let mut ogg = OggOpusWriter::new(
        BufWriter::new(File::create(&paths[0]).unwrap()),
        &header,
        0x5eed,
    )
    .unwrap();
    let mut caf = CafOpusWriter::new(
        BufWriter::new(File::create(&paths[1]).unwrap()),
        &header,
        frame,
    )
    .unwrap();
    let mut webm =
        WebmOpusWriter::new(BufWriter::new(File::create(&paths[2]).unwrap()), &header).unwrap();
    let mut packets = Vec::new();
    let mut sink = |packet: &[u8], samples: u32| {
        ogg.write_packet(packet, samples)?;
        caf.write_packet(packet, samples)?;
        webm.write_packet(packet, samples)?;
        packets.push(packet.to_vec());
        Ok(())
    };
    for chunk in input.chunks(1237) {
        encoder.push(chunk, &mut sink).unwrap();
    }
    let total = encoder.finish(&mut sink).unwrap();
    assert_eq!(total, input.len() as u64);
    for bytes in [
        ogg.finish(total).unwrap(),
        caf.finish(total).unwrap(),
        webm.finish(total).unwrap(),
    ] {
        assert!(bytes > 0);
    }
    drop((ogg, caf, webm));
    let [ogg, caf, webm] = paths;
    Muxed {
        packets,
        pre_skip: encoder.pre_skip(),
        frame: u64::from(frame),
        total,
        ogg,
        caf,
        webm,
    }
}

fn tool(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} is required for this test and failed to run: {e}"))
}

fn opusinfo_clean(path: &Path) -> String {
    let out = tool("opusinfo", &[path.to_str().unwrap()]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "opusinfo failed:\n{text}");
    let lower = text.to_lowercase();
    assert!(
        !lower.contains("warning") && !lower.contains("error"),
        "opusinfo complained:\n{text}"
    );
    text
}

fn ffprobe(path: &Path) -> serde_json::Value {
    let out = tool(
        "ffprobe",
        &[
            "-v",
            "error",
            "-show_streams",
            "-show_format",
            "-of",
            "json",
            path.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "ffprobe on {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Samples ffmpeg decodes from `path` (mono f32 at 48 kHz).
fn ffmpeg_sample_count(path: &Path) -> u64 {
    let out = tool(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-i",
            path.to_str().unwrap(),
            "-f",
            "f32le",
            "-ac",
            "1",
            "-ar",
            "48000",
            "-",
        ],
    );
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "ffmpeg on {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout.len() as u64 / 4
}

fn check_stream_fields(probe: &serde_json::Value) -> f64 {
    let stream = &probe["streams"][0];
    assert_eq!(stream["codec_name"], "opus", "{probe}");
    assert_eq!(stream["sample_rate"], "48000", "{probe}");
    assert_eq!(stream["channels"], 1, "{probe}");
    probe["format"]["duration"]
        .as_str()
        .unwrap_or_else(|| panic!("no format duration: {probe}"))
        .parse::<f64>()
        .unwrap()
}

/// Checks all three files; returns what ffmpeg decoded from (Ogg, CAF, WebM).
fn check_all(m: &Muxed) -> [u64; 3] {
    let seconds = m.total as f64 / RATE;
    let text = opusinfo_clean(&m.ogg);
    assert!(
        text.contains(&format!("Pre-skip: {}", m.pre_skip)),
        "{text}"
    );
    let ogg_count = ffmpeg_sample_count(&m.ogg);
    assert_eq!(
        ogg_count, m.total,
        "Ogg must decode to the exact sample count"
    );
    // ffprobe (5.x) reports an Ogg Opus duration of final granule / 48000, pre-skip
    // included (it does so for ffmpeg's own files too): check that granule exactly.
    let probe = ffprobe(&m.ogg);
    let ogg_duration = check_stream_fields(&probe);
    let granule = (u64::from(m.pre_skip) + m.total) as f64 / RATE;
    assert!(
        (ogg_duration - granule).abs() < 1e-6,
        "ogg {ogg_duration} vs {granule}"
    );
    let duration_ts = probe["streams"][0]["duration_ts"].as_u64();
    assert_eq!(duration_ts, Some(u64::from(m.pre_skip) + m.total));

    // ffmpeg 5.x's CAF reader ignores the packet table's priming and remainder
    // frames (its own CAF muxer writes 0 for both): it reports and decodes every
    // sample of every packet. Check that, and check our `pakt` fields directly.
    let packet_samples = m.packets.len() as u64 * m.frame;
    let caf_duration = check_stream_fields(&ffprobe(&m.caf));
    assert!((caf_duration - packet_samples as f64 / RATE).abs() <= 1.0e-3);
    let caf_count = ffmpeg_sample_count(&m.caf);
    assert_eq!(caf_count, packet_samples, "CAF as ffmpeg decodes it");
    check_caf_tables(m);

    let webm_duration = check_stream_fields(&ffprobe(&m.webm));
    assert!(
        (webm_duration - seconds).abs() <= 1.0e-3,
        "webm: duration {webm_duration} vs {seconds}"
    );
    let webm_count = ffmpeg_sample_count(&m.webm);
    let padded = packet_samples > m.total + u64::from(m.pre_skip);
    if m.packets.len() >= 2 || !padded {
        assert_eq!(
            webm_count, m.total,
            "WebM exact with CodecDelay and DiscardPadding"
        );
    } else {
        // ffmpeg 5.x drops the CodecDelay skip when the first block also
        // carries DiscardPadding (both go through one skip-samples side data).
        assert_eq!(webm_count, m.total + u64::from(m.pre_skip));
    }
    [ogg_count, caf_count, webm_count]
}

#[test]
fn three_seconds_of_voice_in_all_containers() {
    let dir = tempfile::tempdir().unwrap();
    let input = voiced(3 * 48_000 + 123);
    let m = encode_and_mux(dir.path(), "voice", &input, &Profile::default());
    let counts = check_all(&m);
    println!("pushed {} ffmpeg decoded ogg/caf/webm {counts:?}", m.total);
    let probe = ffprobe(&m.webm);
    assert_eq!(probe["format"]["format_name"], "matroska,webm");
    let probe = ffprobe(&m.caf);
    assert_eq!(probe["format"]["format_name"], "caf");
    // OpusHead pre-skip is the encoder's lookahead (312 for libopus at 48 kHz).
    assert!(m.pre_skip > 0);
    let ogg = std::fs::read(&m.ogg).unwrap();
    assert_eq!(u16::from_le_bytes([ogg[28 + 10], ogg[28 + 11]]), m.pre_skip);
}

#[test]
fn edge_lengths_make_valid_files() {
    let dir = tempfile::tempdir().unwrap();
    // Empty input is one silent packet trimmed to duration 0; ffprobe reports no
    // usable duration for a zero-length stream, so it is checked on its own.
    for (name, len) in [
        ("one-sample", 1usize),
        ("one-frame", 960),
        ("frame-minus-preskip", 648),
    ] {
        let m = encode_and_mux(dir.path(), name, &voiced(len), &Profile::default());
        let counts = check_all(&m);
        println!(
            "{name}: pushed {} decoded {counts:?}, {} packets",
            m.total,
            m.packets.len()
        );
    }
    let m = encode_and_mux(dir.path(), "empty", &[], &Profile::default());
    assert_eq!(m.packets.len(), 1);
    opusinfo_clean(&m.ogg);
    assert_eq!(ffmpeg_sample_count(&m.ogg), 0);
    let pages = parse_ogg(&std::fs::read(&m.ogg).unwrap());
    assert_eq!(pages.last().unwrap().granule, u64::from(m.pre_skip));
}

#[test]
fn cbr_packets_of_255_bytes_need_a_zero_lace_and_caf_declares_constant_size() {
    let dir = tempfile::tempdir().unwrap();
    // Hard CBR at 102 kbit/s with 20 ms frames: every packet is 255 bytes.
    let profile = Profile {
        cbr: true,
        bitrate_bps: 102_000,
        ..Profile::default()
    };
    let m = encode_and_mux(dir.path(), "cbr255", &voiced(48_000), &profile);
    assert!(m.packets.iter().all(|p| p.len() == 255), "hard CBR sizes");
    let pages = parse_ogg(&std::fs::read(&m.ogg).unwrap());
    let audio_laces: Vec<u8> = pages[2..].iter().flat_map(|p| p.laces.clone()).collect();
    assert_eq!(audio_laces.len(), 2 * m.packets.len());
    assert!(audio_laces.chunks(2).all(|pair| pair == [255, 0]));
    check_all(&m);
    // desc: mBytesPerPacket = 255, mFramesPerPacket = 960.
    let caf = std::fs::read(&m.caf).unwrap();
    assert_eq!(&caf[36..44], &[0, 0, 0, 255, 0, 0, 3, 192]);
}

#[test]
fn long_input_spans_many_pages_with_monotonic_granules() {
    let dir = tempfile::tempdir().unwrap();
    let input = voiced(20 * 48_000 + 7);
    let m = encode_and_mux(dir.path(), "long", &input, &Profile::default());
    check_all(&m);
    let pages = parse_ogg(&std::fs::read(&m.ogg).unwrap());
    assert!(pages.len() > 20, "{} pages", pages.len());
    assert!(
        pages[0].flags & 2 != 0 && pages[0].laces == [19],
        "BOS page holds OpusHead alone"
    );
    assert_eq!(pages[0].granule, 0);
    assert_eq!(pages[1].granule, 0);
    let last = pages.last().unwrap();
    assert!(last.flags & 4 != 0, "EOS on the last page");
    assert_eq!(last.granule, u64::from(m.pre_skip) + m.total);
    let mut previous = 0;
    for (i, page) in pages.iter().enumerate() {
        assert_eq!(page.sequence as usize, i);
        assert!(page.body_len <= 8192, "page {i}: {} bytes", page.body_len);
        assert!(page.granule >= previous, "granule went back at page {i}");
        previous = page.granule;
    }
    for page in &pages[2..pages.len() - 1] {
        assert!(page.granule - page.start_granule_hint <= 48_000);
    }
}

#[test]
fn muxers_write_into_memory_and_refuse_a_short_total() {
    let profile = Profile::default();
    let mut encoder = OpusEncoder::new(&profile).unwrap();
    let header = OpusStreamHeader::for_profile(&profile, encoder.pre_skip(), 48_000);
    let mut ogg = OggOpusWriter::new(Vec::new(), &header, 1).unwrap();
    let mut webm = WebmOpusWriter::new(Cursor::new(Vec::new()), &header).unwrap();
    let mut caf = CafOpusWriter::new(Cursor::new(Vec::new()), &header, 960).unwrap();
    let mut sink = |p: &[u8], n: u32| {
        ogg.write_packet(p, n)?;
        webm.write_packet(p, n)?;
        caf.write_packet(p, n)
    };
    encoder.push(&voiced(960), &mut sink).unwrap();
    // One packet of 960 cannot hold 960 samples after a 312-sample pre-skip.
    assert!(ogg.finish(960).is_err());
    assert!(webm.finish(960).is_err());
    assert!(caf.finish(960).is_err());
    assert!(ogg.finish(960 - u64::from(encoder.pre_skip())).is_ok());
    assert!(ogg.into_inner().starts_with(b"OggS"));
}

struct Page {
    flags: u8,
    granule: u64,
    sequence: u32,
    laces: Vec<u8>,
    body_len: usize,
    /// Granule of the previous page (to bound a page's duration).
    start_granule_hint: u64,
}

/// A minimal Ogg page reader for structural checks (opusinfo checks CRCs).
fn parse_ogg(bytes: &[u8]) -> Vec<Page> {
    let mut pages: Vec<Page> = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        assert_eq!(&bytes[at..at + 4], b"OggS", "page at {at}");
        let flags = bytes[at + 5];
        let granule = u64::from_le_bytes(bytes[at + 6..at + 14].try_into().unwrap());
        let sequence = u32::from_le_bytes(bytes[at + 18..at + 22].try_into().unwrap());
        let count = bytes[at + 26] as usize;
        let laces = bytes[at + 27..at + 27 + count].to_vec();
        let body_len: usize = laces.iter().map(|&l| l as usize).sum();
        let start_granule_hint = pages.last().map_or(0, |p| p.granule);
        pages.push(Page {
            flags,
            granule,
            sequence,
            laces,
            body_len,
            start_granule_hint,
        });
        at += 27 + count + body_len;
    }
    pages
}

/// Reads the CAF `data` and `pakt` chunks and checks them against what was muxed.
fn check_caf_tables(m: &Muxed) {
    let caf = std::fs::read(&m.caf).unwrap();
    assert_eq!(&caf[..8], b"caff\0\x01\0\0");
    let mut at = 8;
    let (mut data, mut pakt) = (None, None);
    while at + 12 <= caf.len() {
        let kind = &caf[at..at + 4];
        let size = i64::from_be_bytes(caf[at + 4..at + 12].try_into().unwrap());
        assert!(size >= 0, "every chunk size is patched");
        let body = &caf[at + 12..at + 12 + size as usize];
        match kind {
            b"data" => data = Some(body),
            b"pakt" => pakt = Some(body),
            _ => {}
        }
        at += 12 + size as usize;
    }
    assert_eq!(at, caf.len());
    let data = data.expect("data chunk");
    let pakt = pakt.expect("pakt chunk");
    let audio: usize = m.packets.iter().map(Vec::len).sum();
    assert_eq!(data.len(), 4 + audio);
    let be64 = |b: &[u8]| u64::from_be_bytes(b.try_into().unwrap());
    let be32 = |b: &[u8]| u32::from_be_bytes(b.try_into().unwrap());
    let listed = be64(&pakt[0..8]);
    assert_eq!(be64(&pakt[8..16]), m.total, "valid frames");
    assert_eq!(be32(&pakt[16..20]), u32::from(m.pre_skip), "priming frames");
    let remainder = m.packets.len() as u64 * m.frame - u64::from(m.pre_skip) - m.total;
    assert_eq!(
        u64::from(be32(&pakt[20..24])),
        remainder,
        "remainder frames"
    );
    let constant = m.packets.iter().all(|p| p.len() == m.packets[0].len());
    assert_eq!(listed, m.packets.len() as u64);
    if constant {
        assert_eq!(
            pakt.len(),
            24,
            "no size table when every packet has one size"
        );
        return;
    }
    let mut sizes = Vec::new();
    let mut value = 0u64;
    for &byte in &pakt[24..] {
        value = (value << 7) | u64::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            sizes.push(value as usize);
            value = 0;
        }
    }
    let expected: Vec<usize> = m.packets.iter().map(Vec::len).collect();
    assert_eq!(sizes, expected);
}
