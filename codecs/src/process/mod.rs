//! The whole chain on one input: two streaming passes over the decoder.
//!
//! Pass 1 ([`analyze`]) decodes and measures at the input's rate: the
//! input's loudness on its own channels, the mono downmix's (dual mono), its
//! per-millisecond levels and its silent edges. From those, [`crate::gain`]
//! decides one linear gain whose result, after the limiter and the codec,
//! lands on the target, within what the signal-to-noise ratio allows.
//!
//! Pass 2 decodes again on a thread of its own ([`front`]): downmix,
//! resample, gain, and the true-peak limiter where the gained peaks could
//! reach its ceiling. This thread encodes with [`GuardedEncoder`], which
//! decodes every packet at once and holds the decoded true peak under the
//! ceiling by re-encoding the few frames around an overshoot; the same
//! packets go to every container, and the decoded output is measured: the
//! targets hold for what a listener hears. Only when that loudness still
//! misses the target by more than [`LOUDNESS_TOLERANCE_LU`] (which the
//! prediction makes rare) does the encode run again, with the miss corrected.
//!
//! Holding the decoded signal in memory would skip the second decode, but a
//! 15-minute input is 170 MB of samples at 48 kHz; decoding twice keeps memory
//! flat whatever the duration, and decoding is cheap next to the encoder.

mod analyze;
mod front;

use crate::decode::Decoder;
use crate::encode::OpusEncoder;
use crate::error::{CodecError, Result};
use crate::gain::{self, GainPlan};
use crate::guard::{Committed, Decoded, GuardStats, GuardedEncoder};
use crate::mux::{OpusMuxer, OpusStreamHeader};
use crate::output_format::OutputFormat;
use crate::profile::{Limits, Profile};
use crate::report::{InputReport, OutputReport, Report, Timings, WaveformSummary};
use crate::waveform::{AudiowaveformJson, WaveformBuilder};
use crate::OUTPUT_RATE;
use analyze::Analysis;
use front::{FrontEnd, FrontStats, Normalize};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, sync_channel};
use std::time::{Duration, Instant};

/// Encode passes allowed before the result is taken as it is.
pub const MAX_ENCODE_PASSES: u32 = 3;
/// Head-room under the true-peak ceiling the limiter keeps for the codec's
/// overshoot (dB). Small: where the codec overshoots more, the guard dips
/// locally, so only a few frames pay for it, not every limited peak.
pub const CODEC_HEADROOM_DB: f64 = 0.7;
/// The guard holds the decoded true peak this far under the ceiling (dB),
/// for the small differences between true-peak meters (other decoders,
/// other interpolators).
pub const VERIFY_MARGIN_DB: f64 = 0.3;
/// Output loudness may sit this far from the target before the encode is
/// redone (LU). The promise is ±0.5 LU as any BS.1770 meter reads the
/// decoded output; ours and ffmpeg's agree within 0.1 LU on the corpus, so
/// 0.4 keeps the promise without encoding again for a near miss.
pub const LOUDNESS_TOLERANCE_LU: f64 = 0.4;

/// What [`process`] returns besides the container bytes it wrote.
#[derive(Debug, Clone)]
pub struct Processed {
    pub report: Report,
    /// The scrubber waveform, in audiowaveform's JSON format.
    pub waveform: AudiowaveformJson,
}

/// Where a job is, for a progress display on long inputs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Progress {
    /// Pass 1: seconds of input measured, of the duration the header
    /// claims (if it says).
    Analyzing { seconds: f64, of: Option<f64> },
    /// The encode: seconds of output encoded, of the total; `pass` is 1
    /// unless the loudness missed.
    Encoding { seconds: f64, of: f64, pass: u32 },
}

/// Hears [`Progress`] as the job goes.
pub type Observer<'a> = dyn FnMut(Progress) + 'a;

/// Opens the input afresh for each pass.
pub type OpenInput<'a> = dyn FnMut() -> Result<Decoder> + 'a;
/// Makes the containers for one encode pass; the first one's size is reported
/// as the output's bytes (by convention the Ogg Opus file).
pub type OpenOutputs<'a> =
    dyn FnMut(&OpusStreamHeader, u32) -> Result<Vec<Box<dyn OpusMuxer + 'a>>> + 'a;

/// Runs the chain: analyze, then encode into the containers `outputs` makes.
pub fn process(
    open: &mut OpenInput<'_>,
    outputs: &mut OpenOutputs<'_>,
    profile: &Profile,
    observer: &mut Observer<'_>,
) -> Result<Processed> {
    let started = Instant::now();
    let decoder = open()?;
    let claimed = decoder.info().duration_hint.map(|d| d.as_secs_f64());
    let analysis = analyze::analyze(decoder, &mut |seconds| {
        observer(Progress::Analyzing {
            seconds,
            of: claimed,
        })
    })?;
    let mut timings = Timings {
        decode: millis(analysis.decode_time),
        analyze: millis(analysis.analyze_time),
        ..Timings::default()
    };
    let ceiling = profile.true_peak_dbtp - CODEC_HEADROOM_DB;
    let mut correction = 0.0;
    let mut pass = 1;
    loop {
        let planning = Instant::now();
        let plan = gain::plan(
            profile,
            analysis.mono_lufs,
            &analysis.history,
            ceiling,
            correction,
        );
        timings.analyze += millis(planning.elapsed());
        let normalize = Normalize {
            gain_db: plan.gain_db,
            limiter_ceiling: (analysis.history.true_peak_dbtp() + plan.gain_db > ceiling - 0.1)
                .then_some(ceiling),
            window: analysis.window(profile),
        };
        let encoded = encode_pass(
            open()?,
            outputs,
            profile,
            &analysis,
            normalize,
            pass,
            observer,
        )?;
        encoded.add_timings(&mut timings);
        let miss = encoded.output.integrated_lufs - profile.target_lufs;
        if plan.capped.is_some() || miss.abs() <= LOUDNESS_TOLERANCE_LU || pass == MAX_ENCODE_PASSES
        {
            timings.total = millis(started.elapsed());
            return Ok(Processed {
                report: build_report(&analysis, &encoded, &plan, pass, timings),
                waveform: encoded.waveform,
            });
        }
        // What the prediction missed is what the next pass corrects.
        correction += encoded.output.integrated_lufs - plan.predicted_lufs;
        pass += 1;
    }
}

/// What one encode pass produced.
struct Encoded {
    output: Decoded,
    front: FrontStats,
    guard: GuardStats,
    mux_time: Duration,
    waveform_time: Duration,
    packet_bytes: u64,
    file_bytes: u64,
    samples: u64,
    waveform: AudiowaveformJson,
    bars: Vec<u8>,
}

impl Encoded {
    fn add_timings(&self, t: &mut Timings) {
        t.decode += millis(self.front.decode);
        t.resample += millis(self.front.resample);
        t.normalize += millis(self.front.normalize);
        t.encode += millis(self.guard.encode_time);
        t.verify += millis(self.guard.verify_time);
        t.mux += millis(self.mux_time);
        t.waveform += millis(self.waveform_time);
    }
}

/// The encoder's side of a pass: containers, output meter and waveform,
/// fed with committed frames.
struct Sinks<'m> {
    muxers: Vec<Box<dyn OpusMuxer + 'm>>,
    waveform: WaveformBuilder,
    packet_bytes: u64,
    mux_time: Duration,
    waveform_time: Duration,
}

impl Sinks<'_> {
    fn commit(&mut self, frame: Committed<'_>) -> Result<()> {
        let started = Instant::now();
        for muxer in &mut self.muxers {
            muxer.write_packet(frame.packet, frame.frame_samples)?;
        }
        self.packet_bytes += frame.packet.len() as u64;
        let muxed = Instant::now();
        self.mux_time += muxed - started;
        self.waveform.add(frame.input);
        self.waveform_time += muxed.elapsed();
        Ok(())
    }
}

fn encode_pass<'m>(
    decoder: Decoder,
    outputs: &mut OpenOutputs<'m>,
    profile: &Profile,
    analysis: &Analysis,
    normalize: Normalize,
    pass: u32,
    observer: &mut Observer<'_>,
) -> Result<Encoded> {
    let mut guard = GuardedEncoder::new(profile, profile.true_peak_dbtp - VERIFY_MARGIN_DB)?;
    let header = OpusStreamHeader::for_profile(profile, guard.pre_skip(), analysis.sample_rate);
    let mut sinks = Sinks {
        muxers: outputs(&header, guard.frame_samples() as u32)?,
        waveform: WaveformBuilder::new(OUTPUT_RATE),
        packet_bytes: 0,
        mux_time: Duration::ZERO,
        waveform_time: Duration::ZERO,
    };
    let total = (normalize.window.1 - normalize.window.0) as f64 / f64::from(OUTPUT_RATE);
    let (blocks_tx, blocks_rx) = sync_channel(front::QUEUE_BLOCKS);
    let (spare_tx, spare_rx) = channel();
    let (encoded, front) = std::thread::scope(|scope| {
        let handle = scope.spawn(move || front::run(decoder, normalize, blocks_tx, spare_rx));
        let mut commit = |frame: Committed<'_>| sinks.commit(frame);
        let mut pushed = 0u64;
        let run = || -> Result<(u64, Decoded, GuardStats)> {
            for block in &blocks_rx {
                guard.push(&block, &mut commit)?;
                pushed += block.len() as u64;
                observer(Progress::Encoding {
                    seconds: pushed as f64 / f64::from(OUTPUT_RATE),
                    of: total,
                    pass,
                });
                let _ = spare_tx.send(block);
            }
            guard.finish(&mut commit)
        };
        let encoded = run();
        // Hang up first, so a front thread waiting to send stops.
        drop(blocks_rx);
        (encoded, front::join(handle))
    });
    let front = front?;
    let (samples, decoded, guard) = encoded?;
    let mut file_bytes = 0;
    for (i, muxer) in sinks.muxers.iter_mut().enumerate() {
        let bytes = muxer.finish(samples)?;
        if i == 0 {
            file_bytes = bytes;
        }
    }
    let started = Instant::now();
    let (waveform, bars) = sinks.waveform.finish();
    Ok(Encoded {
        output: decoded,
        front,
        guard,
        mux_time: sinks.mux_time,
        waveform_time: sinks.waveform_time + started.elapsed(),
        packet_bytes: sinks.packet_bytes,
        file_bytes,
        samples,
        waveform,
        bars,
    })
}

fn build_report(
    analysis: &Analysis,
    encoded: &Encoded,
    plan: &GainPlan,
    encode_passes: u32,
    timings: Timings,
) -> Report {
    let duration_ms = encoded.samples * 1000 / u64::from(OUTPUT_RATE);
    let bitrate_bps = (encoded.packet_bytes * 8 * u64::from(OUTPUT_RATE))
        .checked_div(encoded.samples)
        .unwrap_or(0);
    Report {
        duration_ms,
        input: InputReport {
            container: analysis.container.clone(),
            codec: analysis.codec.clone(),
            sample_rate: analysis.sample_rate,
            channels: analysis.channels,
            integrated_lufs: round2(analysis.input.integrated_lufs),
            true_peak_dbtp: round2(analysis.input.true_peak_dbtp),
            loudness_range_lu: round2(analysis.input.loudness_range_lu),
            dual_mono: analysis.input_dual_mono,
            noise_floor_lufs: round2(plan.noise_floor_lufs),
            skipped_packets: analysis.skipped_packets,
            leading_silence_ms: analysis.leading_ms,
            trailing_silence_ms: analysis.trailing_ms,
        },
        gain_db: round2(plan.gain_db),
        gain_capped: plan.capped.is_some(),
        gain_cap_reason: plan.capped,
        limited: encoded.front.limited,
        encode_passes,
        reencoded_frames: encoded.guard.frames_redone,
        output: OutputReport {
            integrated_lufs: round2(encoded.output.integrated_lufs),
            true_peak_dbtp: round2(encoded.output.true_peak_dbtp),
            bitrate_bps: u32::try_from(bitrate_bps).unwrap_or(u32::MAX),
            bytes: encoded.file_bytes,
            dual_mono: true,
        },
        waveform: WaveformSummary {
            bars: encoded.bars.clone(),
        },
        timings_ms: timings,
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Runs the chain on a local file and writes every [`OutputFormat`] into
/// `out_dir` (created if missing), each under its file name.
///
/// Each file is written under a temporary name and renamed into place only
/// when the whole job succeeded, so a failed run never leaves a half-written
/// file where a good one was.
pub fn process_file(
    input: &Path,
    out_dir: &Path,
    profile: &Profile,
    limits: &Limits,
) -> Result<Processed> {
    process_file_observed(input, out_dir, profile, limits, &mut |_| {})
}

/// [`process_file`], telling `observer` how far it is.
pub fn process_file_observed(
    input: &Path,
    out_dir: &Path,
    profile: &Profile,
    limits: &Limits,
    observer: &mut Observer<'_>,
) -> Result<Processed> {
    std::fs::create_dir_all(out_dir)?;
    let serial = stream_serial(input);
    let part = |output: OutputFormat| out_dir.join(format!(".{}.part", output.file_name()));
    let mut open = || Decoder::open_path(input, limits);
    let mut outputs =
        |header: &OpusStreamHeader, frame_samples: u32| -> Result<Vec<Box<dyn OpusMuxer>>> {
            OutputFormat::AUDIO
                .into_iter()
                .map(|audio| {
                    let file = create(&part(audio))?;
                    audio.opus_muxer(file, header, frame_samples, serial)
                })
                .collect()
        };
    let processed = match process(&mut open, &mut outputs, profile, observer) {
        Ok(p) => p,
        Err(e) => {
            for audio in OutputFormat::AUDIO {
                let _ = std::fs::remove_file(part(audio));
            }
            return Err(e);
        }
    };
    let mut json = create(&part(OutputFormat::Waveform))?;
    serde_json::to_writer(&mut json, &processed.waveform)
        .map_err(|e| CodecError::Internal(format!("waveform json: {e}")))?;
    json.flush()?;
    drop(json);
    for output in OutputFormat::ALL {
        std::fs::rename(part(output), out_dir.join(output.file_name()))?;
    }
    Ok(processed)
}

fn create(path: &PathBuf) -> Result<BufWriter<File>> {
    Ok(BufWriter::with_capacity(64 * 1024, File::create(path)?))
}

/// A stable Ogg stream serial per input (FNV-1a of the path), so processing
/// the same file twice writes the same bytes.
fn stream_serial(input: &Path) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in input.as_os_str().as_encoded_bytes() {
        hash ^= u32::from(*byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// The first `max_samples` of what the encoder receives for an input the
/// chain processed into `report` (its gain, and the limiter when it
/// limited), through the chain's own front end: for comparing codec
/// settings on what a job really encodes (`sori bench`).
pub fn encoder_input(
    decoder: Decoder,
    profile: &Profile,
    report: &Report,
    max_samples: usize,
) -> Result<Vec<f32>> {
    let normalize = Normalize {
        gain_db: report.gain_db,
        limiter_ceiling: report
            .limited
            .then_some(profile.true_peak_dbtp - CODEC_HEADROOM_DB),
        window: (0, u64::MAX),
    };
    let (blocks_tx, blocks) = sync_channel(front::QUEUE_BLOCKS);
    let (_spare_tx, spare) = channel();
    std::thread::scope(|scope| {
        let handle = scope.spawn(move || front::run(decoder, normalize, blocks_tx, spare));
        let mut out = Vec::with_capacity(max_samples.min(1 << 24));
        for block in &blocks {
            let room = max_samples - out.len();
            out.extend_from_slice(&block[..room.min(block.len())]);
            if out.len() >= max_samples {
                break;
            }
        }
        drop(blocks);
        front::join(handle)?;
        Ok(out)
    })
}

/// The bare floor the chain is measured against: decode → downmix → resample
/// → the same Opus encode, nothing else (no measuring, gain, limiter,
/// containers or waveform). Returns the bytes of Opus packets produced.
pub fn bare_floor(decoder: Decoder, profile: &Profile) -> Result<u64> {
    let mut front = FrontEnd::new(decoder)?;
    let mut encoder = OpusEncoder::new(profile)?;
    let mut bytes = 0u64;
    let mut sink = |packet: &[u8], _samples: u32| {
        bytes += packet.len() as u64;
        Ok(())
    };
    while let Some(block) = front.next()? {
        encoder.push(block, &mut sink)?;
    }
    encoder.finish(&mut sink)?;
    Ok(bytes)
}
