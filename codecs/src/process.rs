//! The whole chain on one input, in two streaming passes over the decoder.
//!
//! Pass 1 (*analyze*) decodes, downmixes and resamples to mono 48 kHz and
//! measures: the input's loudness on its own channels, the mono signal's
//! loudness (dual mono) and its leading/trailing silence. From that comes one
//! linear gain to the target.
//!
//! Pass 2 (*encode*) decodes again, applies the gain, runs the true-peak
//! limiter only when the gained peaks could reach the ceiling, encodes Opus
//! once and hands the same packets to every container. Each packet is also
//! decoded again and measured, because the targets hold for what a listener
//! hears: when the codec's overshoot breaks the ceiling, or limiting moved the
//! loudness off target, pass 2 runs again with a corrected ceiling or gain
//! (rare; at most [`MAX_ENCODE_PASSES`] times).
//!
//! Holding the decoded signal in memory would skip the second decode, but a
//! 15-minute input is 170 MB of samples at 48 kHz; decoding twice keeps memory
//! flat whatever the duration, and decoding is cheap next to the encoder.

use crate::analysis::SilenceDetector;
use crate::caf::CafOpusWriter;
use crate::decode::Decoder;
use crate::downmix::Downmixer;
use crate::encode::{OpusDecoder, OpusEncoder};
use crate::error::{CodecError, Result};
use crate::headroom::LossPredictor;
use crate::limiter::Limiter;
use crate::loudness::{Loudness, LoudnessMeter, Measure};
use crate::mux::{OpusMuxer, OpusStreamHeader};
use crate::ogg::OggOpusWriter;
use crate::profile::{Limits, Profile};
use crate::report::{InputReport, OutputReport, Report, Timings, WaveformSummary};
use crate::resample::{expected_output_len, Resampler};
use crate::waveform::{AudiowaveformJson, WaveformBuilder};
use crate::webm::WebmOpusWriter;
use crate::OUTPUT_RATE;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::time::{Duration, Instant};

/// Encode passes allowed before the result is taken as it is.
pub const MAX_ENCODE_PASSES: usize = 3;
/// Head-room under the true-peak ceiling kept for the codec's overshoot on
/// the first pass (dB). Opus at 32 kbit/s typically overshoots 0.1–0.5 dB.
pub const CODEC_HEADROOM_DB: f64 = 2.0;
/// Output loudness may sit this far from the target before a pass is redone (LU).
const LOUDNESS_TOLERANCE_LU: f64 = 0.4;

/// What [`process`] returns besides the container bytes it wrote.
#[derive(Debug, Clone)]
pub struct Processed {
    pub report: Report,
    /// The scrubber waveform, in audiowaveform's JSON format.
    pub waveform: AudiowaveformJson,
}

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
) -> Result<Processed> {
    let started = Instant::now();
    let mut timings = Timings::default();
    let analysis = analyze(open()?, &mut timings)?;
    let window = analysis.window(profile);
    let mut ceiling = profile.true_peak_dbtp - CODEC_HEADROOM_DB;
    let (predicted, gain_capped) = gain_for(profile, &analysis, ceiling);
    let mut gain_db = predicted;
    // What the prediction missed, learned from each decoded pass.
    let mut correction = 0.0;
    let mut encoded = None;
    for pass in 0..MAX_ENCODE_PASSES {
        let settings = EncodeSettings {
            gain_db,
            ceiling_dbtp: ceiling,
            use_limiter: analysis.mono.true_peak_dbtp + gain_db > ceiling - 0.1,
            window,
        };
        let result = encode(
            open()?,
            outputs,
            profile,
            &analysis,
            &settings,
            &mut timings,
        )?;
        let over_ceiling = result.output.true_peak_dbtp - profile.true_peak_dbtp;
        let off_target = profile.target_lufs - result.output.integrated_lufs;
        let loudness_ok = gain_capped || off_target.abs() <= LOUDNESS_TOLERANCE_LU;
        let last = pass + 1 == MAX_ENCODE_PASSES;
        encoded = Some((result, settings, pass as u32 + 1));
        if (over_ceiling <= 0.0 && loudness_ok) || last {
            break;
        }
        // The codec overshot: leave it more room. Either way, re-aim the
        // gain for the new ceiling plus what the last pass missed.
        if over_ceiling > 0.0 {
            ceiling -= over_ceiling + 0.3;
        }
        if !gain_capped {
            correction += off_target;
            gain_db =
                (gain_for(profile, &analysis, ceiling).0 + correction).min(profile.max_gain_db);
        }
    }
    let (result, settings, passes) =
        encoded.ok_or_else(|| CodecError::Internal("no encode pass ran".into()))?;
    timings.total = millis(started.elapsed());
    Ok(Processed {
        report: build_report(&analysis, &result, &settings, gain_capped, passes, timings),
        waveform: result.waveform,
    })
}

/// The gain to the target, including what the limiter is predicted to take
/// away, capped so near-silence is not raised into noise.
fn gain_for(profile: &Profile, analysis: &Analysis, ceiling: f64) -> (f64, bool) {
    let measured = analysis.mono.integrated_lufs;
    if profile.target_lufs - measured > profile.max_gain_db {
        return (profile.max_gain_db, true);
    }
    // How far true peaks sit above sample peaks (the input's own figures: for
    // multichannel input the mono meter measures no true peak).
    let peak_offset = (analysis.input.true_peak_dbtp - analysis.input.sample_peak_dbfs).max(0.0);
    let gain = analysis.predictor.gain_for(
        measured,
        profile.target_lufs,
        ceiling,
        peak_offset,
        profile.max_gain_db,
    );
    (gain, false)
}

/// Decoder → downmix → resample: mono 48 kHz blocks, one at a time.
struct FrontEnd {
    decoder: Decoder,
    downmix: Downmixer,
    resampler: Resampler,
    mono: Vec<f32>,
    out: Vec<f32>,
    done: bool,
    busy: Duration,
}

impl FrontEnd {
    fn new(decoder: Decoder) -> Result<Self> {
        let info = decoder.info();
        let downmix = Downmixer::new(&info.speakers);
        let resampler = Resampler::new(info.sample_rate)?;
        Ok(Self {
            decoder,
            downmix,
            resampler,
            mono: Vec::new(),
            out: Vec::new(),
            done: false,
            busy: Duration::ZERO,
        })
    }

    /// The next mono 48 kHz block; `tap` sees each decoded block (all
    /// channels, input rate) first. Time spent in `tap` is not counted as decoding.
    fn next(&mut self, tap: &mut dyn FnMut(&[f32]) -> Result<()>) -> Result<Option<&[f32]>> {
        loop {
            if self.done {
                return Ok(None);
            }
            let started = Instant::now();
            let mut tapped = Duration::ZERO;
            self.out.clear();
            match self.decoder.next_block()? {
                Some(block) => {
                    let tap_started = Instant::now();
                    tap(block)?;
                    tapped = tap_started.elapsed();
                    self.downmix.process(block, &mut self.mono);
                    self.resampler.process(&self.mono, &mut self.out)?;
                }
                None => {
                    self.resampler.finish(&mut self.out)?;
                    self.done = true;
                }
            }
            self.busy += started.elapsed().saturating_sub(tapped);
            if !self.out.is_empty() {
                return Ok(Some(&self.out));
            }
        }
    }
}

/// What pass 1 learned.
struct Analysis {
    container: String,
    codec: String,
    sample_rate: u32,
    channels: u16,
    input: Loudness,
    input_dual_mono: bool,
    /// The mono 48 kHz signal, dual mono: what the gain is computed from.
    mono: Loudness,
    samples: u64,
    leading_ms: u64,
    trailing_ms: u64,
    skipped_packets: u64,
    predictor: LossPredictor,
}

impl Analysis {
    /// The span of mono 48 kHz samples to encode: all of it, or without the
    /// leading and trailing silence when the profile trims it.
    fn window(&self, profile: &Profile) -> (u64, u64) {
        if !profile.trim_silence {
            return (0, self.samples);
        }
        let per_ms = u64::from(OUTPUT_RATE) / 1000;
        let start = (self.leading_ms * per_ms).min(self.samples);
        let end = self.samples.saturating_sub(self.trailing_ms * per_ms);
        if end > start {
            (start, end)
        } else {
            (0, self.samples)
        }
    }
}

fn analyze(decoder: Decoder, timings: &mut Timings) -> Result<Analysis> {
    let started = Instant::now();
    let mut decoder = decoder;
    let info = decoder.info().clone();
    let rate = info.sample_rate;
    // Pass 1 measures at the input rate: K-weighting and the 4× true-peak
    // interpolator work at any rate, and skipping the resampler here saves
    // a fifth of the pass.
    let mono_input = info.channels == 1;
    let mut input_meter = if mono_input {
        None
    } else {
        Some(LoudnessMeter::new(info.channels, rate)?)
    };
    // The downmix's true peak never exceeds the input's (a weighted mean of
    // channels), so for multichannel input the mono meter measures loudness
    // only and the input's true peak stands in as the bound.
    let mono_measure = Measure {
        range: mono_input,
        true_peak: mono_input,
    };
    let mut mono_meter = LoudnessMeter::with_measure(1, rate, mono_measure)?;
    let mut silence = SilenceDetector::new(rate);
    let mut predictor = LossPredictor::new(rate);
    let mut downmix = Downmixer::new(&info.speakers);
    let mut mono = Vec::new();
    let mut frames = 0u64;
    let mut analyze_time = Duration::ZERO;
    while let Some(block) = decoder.next_block()? {
        let measuring = Instant::now();
        if let Some(meter) = input_meter.as_mut() {
            meter.add(block)?;
        }
        downmix.process(block, &mut mono);
        mono_meter.add(&mono)?;
        silence.add(&mono);
        predictor.add(&mono);
        frames += mono.len() as u64;
        analyze_time += measuring.elapsed();
    }
    let mut mono_loudness = mono_meter.finish();
    // A mono input is the mono signal: its figures are the mono meter's.
    let (input, input_dual_mono) = match &input_meter {
        Some(meter) => (meter.finish(), meter.is_dual_mono()),
        None => (mono_loudness, true),
    };
    if !mono_input {
        mono_loudness.true_peak_dbtp = input.true_peak_dbtp.max(mono_loudness.sample_peak_dbfs);
    }
    let quiet = silence.finish();
    timings.decode += millis(started.elapsed().saturating_sub(analyze_time));
    timings.analyze += millis(analyze_time);
    Ok(Analysis {
        container: info.container,
        codec: info.codec,
        sample_rate: rate,
        channels: info.channels,
        input,
        input_dual_mono,
        mono: mono_loudness,
        samples: expected_output_len(frames, rate),
        leading_ms: quiet.leading_ms,
        trailing_ms: quiet.trailing_ms,
        skipped_packets: decoder.skipped_packets(),
        predictor,
    })
}

/// The knobs of one encode pass.
#[derive(Debug, Clone, Copy)]
struct EncodeSettings {
    gain_db: f64,
    ceiling_dbtp: f64,
    use_limiter: bool,
    window: (u64, u64),
}

/// What one encode pass produced.
struct Encoded {
    output: Loudness,
    limited: bool,
    packet_bytes: u64,
    file_bytes: u64,
    samples: u64,
    waveform: AudiowaveformJson,
    bars: Vec<u8>,
}

/// Packets queued for the verifying thread before the encoder waits for it:
/// about 5 s of audio, a few hundred KB at most.
const VERIFY_QUEUE: usize = 256;

/// Everything that listens to the encoder's packets: the containers here,
/// and the verifying thread through `verify`.
struct PacketFanOut<'m> {
    muxers: Vec<Box<dyn OpusMuxer + 'm>>,
    verify: SyncSender<Vec<u8>>,
    packet_bytes: u64,
}

impl PacketFanOut<'_> {
    fn packet(&mut self, packet: &[u8], frame_samples: u32) -> Result<()> {
        for muxer in &mut self.muxers {
            muxer.write_packet(packet, frame_samples)?;
        }
        self.packet_bytes += packet.len() as u64;
        // A closed channel means the verifier failed: its error is reported at join.
        let _ = self.verify.send(packet.to_vec());
        Ok(())
    }
}

/// Decodes every packet again and measures it: the figures a listener hears.
/// Runs on its own thread beside the encoder, so a job's latency does not
/// pay for it (its CPU time is still spent; see the benchmarks).
fn verify_output(packets: Receiver<Vec<u8>>, pre_skip: u16, samples: u64) -> Result<Loudness> {
    let mut decoder = OpusDecoder::new(pre_skip)?;
    decoder.set_total_samples(samples);
    let measure = Measure {
        range: false,
        true_peak: true,
    };
    let mut meter = LoudnessMeter::with_measure(1, OUTPUT_RATE, measure)?;
    let mut decoded = Vec::new();
    for packet in packets {
        decoded.clear();
        decoder.decode(&packet, &mut decoded)?;
        meter.add(&decoded)?;
    }
    Ok(meter.finish())
}

/// What the encoding thread produced, before the verifier's figures join it.
struct Produced {
    limited: bool,
    packet_bytes: u64,
    file_bytes: u64,
    samples: u64,
    waveform: AudiowaveformJson,
    bars: Vec<u8>,
}

fn encode<'m>(
    decoder: Decoder,
    outputs: &mut OpenOutputs<'m>,
    profile: &Profile,
    analysis: &Analysis,
    settings: &EncodeSettings,
    timings: &mut Timings,
) -> Result<Encoded> {
    let started = Instant::now();
    let front = FrontEnd::new(decoder)?;
    let encoder = OpusEncoder::new(profile)?;
    let pre_skip = encoder.pre_skip();
    let header = OpusStreamHeader::for_profile(profile, pre_skip, analysis.sample_rate);
    let muxers = outputs(&header, encoder.frame_samples() as u32)?;
    let (start, end) = settings.window;
    let (tx, rx) = sync_channel(VERIFY_QUEUE);
    let fan = PacketFanOut {
        muxers,
        verify: tx,
        packet_bytes: 0,
    };
    let (produced, output) = std::thread::scope(|scope| {
        let verifier = scope.spawn(move || verify_output(rx, pre_skip, end - start));
        let produced = produce(front, encoder, fan, settings);
        let output = verifier
            .join()
            .map_err(|_| CodecError::Internal("output verifier panicked".into()));
        (produced, output)
    });
    let (produced, front_busy) = produced?;
    let output = output??;
    timings.decode += millis(front_busy);
    timings.encode += millis(started.elapsed().saturating_sub(front_busy));
    Ok(Encoded {
        output,
        limited: produced.limited,
        packet_bytes: produced.packet_bytes,
        file_bytes: produced.file_bytes,
        samples: produced.samples,
        waveform: produced.waveform,
        bars: produced.bars,
    })
}

/// The encoding loop: gain, limiter, waveform, Opus, containers. Returns what
/// it made and the time spent decoding.
fn produce(
    mut front: FrontEnd,
    mut encoder: OpusEncoder,
    mut fan: PacketFanOut<'_>,
    settings: &EncodeSettings,
) -> Result<(Produced, Duration)> {
    let (start, end) = settings.window;
    let mut limiter = settings
        .use_limiter
        .then(|| Limiter::new(OUTPUT_RATE, settings.ceiling_dbtp));
    let mut waveform = WaveformBuilder::new(OUTPUT_RATE);
    let gain = 10f64.powf(settings.gain_db / 20.0) as f32;
    let mut gained = Vec::new();
    let mut limited = Vec::new();
    let mut position = 0u64;
    let mut sink = |packet: &[u8], samples: u32| fan.packet(packet, samples);
    while let Some(block) = front.next(&mut |_| Ok(()))? {
        let from = start.saturating_sub(position).min(block.len() as u64) as usize;
        let to = end.saturating_sub(position).min(block.len() as u64) as usize;
        position += block.len() as u64;
        if from >= to {
            continue;
        }
        gained.clear();
        gained.extend(block[from..to].iter().map(|s| s * gain));
        let ready = match limiter.as_mut() {
            Some(l) => {
                limited.clear();
                l.process(&gained, &mut limited);
                &limited
            }
            None => &gained,
        };
        waveform.add(ready);
        encoder.push(ready, &mut sink)?;
    }
    if let Some(l) = limiter.as_mut() {
        limited.clear();
        l.flush(&mut limited);
        waveform.add(&limited);
        encoder.push(&limited, &mut sink)?;
    }
    let samples = encoder.finish(&mut sink)?;
    let mut file_bytes = 0;
    for (i, muxer) in fan.muxers.iter_mut().enumerate() {
        let bytes = muxer.finish(samples)?;
        if i == 0 {
            file_bytes = bytes;
        }
    }
    let (waveform, bars) = waveform.finish();
    let produced = Produced {
        limited: limiter.map(|l| l.stats().limited).unwrap_or(false),
        packet_bytes: fan.packet_bytes,
        file_bytes,
        samples,
        waveform,
        bars,
    };
    Ok((produced, front.busy))
}

fn build_report(
    analysis: &Analysis,
    encoded: &Encoded,
    settings: &EncodeSettings,
    gain_capped: bool,
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
            skipped_packets: analysis.skipped_packets,
            leading_silence_ms: analysis.leading_ms,
            trailing_silence_ms: analysis.trailing_ms,
        },
        gain_db: round2(settings.gain_db),
        gain_capped,
        limited: encoded.limited,
        encode_passes,
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

/// File names [`process_file`] writes in its output directory.
pub const OGG_FILE: &str = "audio.opus";
pub const CAF_FILE: &str = "audio.caf";
pub const WEBM_FILE: &str = "audio.webm";
pub const WAVEFORM_FILE: &str = "waveform.json";

/// Runs the chain on a local file and writes `audio.opus` (Ogg), `audio.caf`,
/// `audio.webm` and `waveform.json` into `out_dir` (created if missing).
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
    std::fs::create_dir_all(out_dir)?;
    let serial = stream_serial(input);
    let part = |name: &str| out_dir.join(format!(".{name}.part"));
    let mut open = || Decoder::open_path(input, limits);
    let mut outputs =
        |header: &OpusStreamHeader, frame_samples: u32| -> Result<Vec<Box<dyn OpusMuxer>>> {
            Ok(vec![
                Box::new(OggOpusWriter::new(
                    create(&part(OGG_FILE))?,
                    header,
                    serial,
                )?),
                Box::new(CafOpusWriter::new(
                    create(&part(CAF_FILE))?,
                    header,
                    frame_samples,
                )?),
                Box::new(WebmOpusWriter::new(create(&part(WEBM_FILE))?, header)?),
            ])
        };
    let processed = process(&mut open, &mut outputs, profile);
    let names = [OGG_FILE, CAF_FILE, WEBM_FILE];
    let processed = match processed {
        Ok(p) => p,
        Err(e) => {
            for name in names {
                let _ = std::fs::remove_file(part(name));
            }
            return Err(e);
        }
    };
    let mut json = create(&part(WAVEFORM_FILE))?;
    serde_json::to_writer(&mut json, &processed.waveform)
        .map_err(|e| CodecError::Internal(format!("waveform json: {e}")))?;
    json.flush()?;
    drop(json);
    for name in names.into_iter().chain([WAVEFORM_FILE]) {
        std::fs::rename(part(name), out_dir.join(name))?;
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
    while let Some(block) = front.next(&mut |_| Ok(()))? {
        encoder.push(block, &mut sink)?;
    }
    encoder.finish(&mut sink)?;
    Ok(bytes)
}
