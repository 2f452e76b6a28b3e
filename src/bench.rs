//! `sori bench`: where the time goes, stage by stage, and what each codec
//! setting costs and sounds like.
//!
//! Per file: one analysis pass and one encode pass, each stage timed on its
//! own (decode, resample, measure, normalize, encode, mux, waveform) and
//! reported as time and realtime factor; the whole job against the bare floor
//! (decode + resample + the same Opus encode); and, on the first
//! [`QUALITY_SECONDS`] of the normalized signal, every requested codec setting
//! with its bitrate, encoder speed and log-spectral distance to the input.

use crate::cli::BenchArgs;
use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use serde::Serialize;
use sori_codecs::analysis::SpectralDistance;
use sori_codecs::caf::CafOpusWriter;
use sori_codecs::decode::Decoder;
use sori_codecs::downmix::Downmixer;
use sori_codecs::encode::{OpusDecoder, OpusEncoder};
use sori_codecs::limiter::Limiter;
use sori_codecs::loudness::LoudnessMeter;
use sori_codecs::mux::{OpusMuxer, OpusStreamHeader};
use sori_codecs::ogg::OggOpusWriter;
use sori_codecs::process::{bare_floor, process, Processed, CODEC_HEADROOM_DB};
use sori_codecs::profile::Application;
use sori_codecs::resample::Resampler;
use sori_codecs::waveform::WaveformBuilder;
use sori_codecs::webm::WebmOpusWriter;
use sori_codecs::{Limits, Profile, OUTPUT_RATE};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Seconds of each file used to compare codec settings (bounds memory and time).
const QUALITY_SECONDS: usize = 30;

#[derive(Debug, Serialize)]
struct FileBench {
    file: String,
    duration_s: f64,
    stages: Vec<Stage>,
    /// Whole job (both passes, all outputs) over the bare floor.
    job_ms: f64,
    floor_ms: f64,
    job_over_floor: f64,
    settings: Vec<Setting>,
}

#[derive(Debug, Serialize)]
struct Stage {
    stage: &'static str,
    ms: f64,
    x_realtime: f64,
}

#[derive(Debug, Serialize)]
struct Setting {
    application: &'static str,
    bitrate_bps: u32,
    complexity: u8,
    actual_bps: u32,
    encode_x_realtime: f64,
    /// Log-spectral distance to the normalized input, dB (lower is closer).
    lsd_db: f64,
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let files = if args.files.is_empty() {
        default_files()?
    } else {
        args.files.clone()
    };
    if args.floor_only {
        return floor_only(&files);
    }
    let progress = if args.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(files.len() as u64)
    };
    progress.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} files {elapsed} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.jobs.unwrap_or(0))
        .build()?;
    let results: Vec<anyhow::Result<FileBench>> = pool.install(|| {
        files
            .par_iter()
            .map(|file| {
                let result = bench_file(file, args).with_context(|| format!("{}", file.display()));
                progress.inc(1);
                result
            })
            .collect()
    });
    progress.finish_and_clear();
    let mut benches = Vec::new();
    for result in results {
        match result {
            Ok(b) => benches.push(b),
            Err(e) => eprintln!("skipped: {e:#}"),
        }
    }
    if benches.is_empty() {
        bail!("no file could be benchmarked");
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&benches)?);
    } else {
        print_tables(&benches);
    }
    Ok(())
}

/// Runs the bare floor on each file in turn and prints its wall time.
fn floor_only(files: &[PathBuf]) -> anyhow::Result<()> {
    let limits = Limits {
        max_duration: Duration::from_secs(24 * 3600),
        max_bytes: u64::MAX,
        ..Limits::default()
    };
    for file in files {
        let started = Instant::now();
        let bytes = bare_floor(Decoder::open_path(file, &limits)?, &Profile::default())
            .with_context(|| format!("{}", file.display()))?;
        println!(
            "{}\t{:.1} ms\t{bytes} bytes",
            file.display(),
            ms(started.elapsed())
        );
    }
    Ok(())
}

/// The fixtures that are meant to decode (not the `bad-*` ones).
fn default_files() -> anyhow::Result<Vec<PathBuf>> {
    let dir = Path::new("fixtures");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| "no FILES given and no ./fixtures directory")?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.starts_with("speech-") && !name.contains("he-aac")
        })
        .collect();
    files.sort();
    Ok(files)
}

fn bench_file(path: &Path, args: &BenchArgs) -> anyhow::Result<FileBench> {
    let profile = Profile::default();
    let limits = Limits::default();
    let open = || Decoder::open_path(path, &limits);
    let mut t = StageTimes::default();
    let (samples, gain, peak) = analysis_pass(open()?, &mut t)?;
    let duration_s = samples as f64 / f64::from(OUTPUT_RATE);
    let reference = encode_pass(open()?, &profile, gain, peak, &mut t)?;
    let (job, floor) = job_and_floor(path, &profile, &limits)?;
    let mut settings = Vec::new();
    for application in [Application::Voip, Application::Audio] {
        for &bitrate in &args.bitrates {
            for &complexity in &args.complexities {
                settings.push(compare_setting(
                    &reference,
                    application,
                    bitrate,
                    complexity,
                )?);
            }
        }
    }
    Ok(FileBench {
        file: path.display().to_string(),
        duration_s,
        stages: t.stages(duration_s),
        job_ms: ms(job),
        floor_ms: ms(floor),
        job_over_floor: job.as_secs_f64() / floor.as_secs_f64().max(1e-9),
        settings,
    })
}

#[derive(Default)]
struct StageTimes {
    decode: Duration,
    resample: Duration,
    measure: Duration,
    normalize: Duration,
    encode: Duration,
    mux: Duration,
    waveform: Duration,
}

impl StageTimes {
    fn stages(&self, duration_s: f64) -> Vec<Stage> {
        [
            ("decode", self.decode),
            ("resample", self.resample),
            ("measure", self.measure),
            ("normalize", self.normalize),
            ("encode", self.encode),
            ("mux", self.mux),
            ("waveform", self.waveform),
        ]
        .into_iter()
        .map(|(stage, d)| Stage {
            stage,
            ms: ms(d),
            x_realtime: duration_s / d.as_secs_f64().max(1e-9),
        })
        .collect()
    }
}

/// Runs `f`, adding its duration to `acc`.
fn timed<T>(acc: &mut Duration, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    *acc += started.elapsed();
    out
}

/// Mono 48 kHz blocks with decode and resample timed separately.
struct TimedFront {
    decoder: Decoder,
    downmix: Downmixer,
    resampler: Resampler,
    mono: Vec<f32>,
    out: Vec<f32>,
    done: bool,
}

impl TimedFront {
    fn new(decoder: Decoder) -> anyhow::Result<Self> {
        let info = decoder.info().clone();
        Ok(Self {
            decoder,
            downmix: Downmixer::new(&info.speakers),
            resampler: Resampler::new(info.sample_rate)?,
            mono: Vec::new(),
            out: Vec::new(),
            done: false,
        })
    }

    fn next(&mut self, t: &mut StageTimes) -> anyhow::Result<Option<&[f32]>> {
        while !self.done {
            self.out.clear();
            let started = Instant::now();
            let block = self.decoder.next_block()?;
            t.decode += started.elapsed();
            let started = Instant::now();
            match block {
                Some(b) => {
                    self.downmix.process(b, &mut self.mono);
                    self.resampler.process(&self.mono, &mut self.out)?;
                }
                None => {
                    self.resampler.finish(&mut self.out)?;
                    self.done = true;
                }
            }
            t.resample += started.elapsed();
            if !self.out.is_empty() {
                return Ok(Some(&self.out));
            }
        }
        Ok(None)
    }
}

/// Pass 1: returns (samples, gain to −16 LUFS, true peak after that gain).
fn analysis_pass(decoder: Decoder, t: &mut StageTimes) -> anyhow::Result<(u64, f64, f64)> {
    let mut front = TimedFront::new(decoder)?;
    let mut meter = LoudnessMeter::new(1, OUTPUT_RATE)?;
    let mut samples = 0u64;
    while let Some(block) = front.next(t)? {
        samples += block.len() as u64;
        timed(&mut t.measure, || meter.add(block))?;
    }
    let loudness = meter.finish();
    let profile = Profile::default();
    let gain = (profile.target_lufs - loudness.integrated_lufs).min(profile.max_gain_db);
    Ok((samples, gain, loudness.true_peak_dbtp + gain))
}

/// Pass 2: gain + limiter, Opus, the three containers in memory, waveform.
/// Returns the normalized signal's first [`QUALITY_SECONDS`] for the codec comparison.
fn encode_pass(
    decoder: Decoder,
    profile: &Profile,
    gain_db: f64,
    gained_peak: f64,
    t: &mut StageTimes,
) -> anyhow::Result<Vec<f32>> {
    let mut front = TimedFront::new(decoder)?;
    let mut encoder = OpusEncoder::new(profile)?;
    let header = OpusStreamHeader::for_profile(profile, encoder.pre_skip(), OUTPUT_RATE);
    let frame = encoder.frame_samples() as u32;
    let mut muxers = memory_muxers(&header, frame)?;
    let ceiling = profile.true_peak_dbtp - CODEC_HEADROOM_DB;
    let mut limiter = (gained_peak > ceiling - 0.1).then(|| Limiter::new(OUTPUT_RATE, ceiling));
    let mut waveform = WaveformBuilder::new(OUTPUT_RATE);
    let gain = 10f64.powf(gain_db / 20.0) as f32;
    let (mut gained, mut limited) = (Vec::new(), Vec::new());
    let mut reference = Vec::new();
    let keep = QUALITY_SECONDS * OUTPUT_RATE as usize;
    let mut packets: Vec<(Vec<u8>, u32)> = Vec::new();
    let mut collect = |p: &[u8], n: u32| {
        packets.push((p.to_vec(), n));
        Ok(())
    };
    let mut flush_tail = false;
    loop {
        let block = match front.next(t)? {
            Some(b) => b,
            None if !flush_tail => {
                flush_tail = true;
                &[][..]
            }
            None => break,
        };
        let ready: &[f32] = timed(&mut t.normalize, || {
            gained.clear();
            gained.extend(block.iter().map(|s| s * gain));
            match limiter.as_mut() {
                Some(l) => {
                    limited.clear();
                    if flush_tail {
                        l.flush(&mut limited);
                    } else {
                        l.process(&gained, &mut limited);
                    }
                    &limited[..]
                }
                None => &gained[..],
            }
        });
        let room = keep.saturating_sub(reference.len()).min(ready.len());
        reference.extend_from_slice(&ready[..room]);
        timed(&mut t.waveform, || waveform.add(ready));
        timed(&mut t.encode, || encoder.push(ready, &mut collect))?;
    }
    let total = timed(&mut t.encode, || encoder.finish(&mut collect))?;
    timed(&mut t.mux, || -> anyhow::Result<()> {
        for muxer in &mut muxers {
            for (p, n) in &packets {
                muxer.write_packet(p, *n)?;
            }
            muxer.finish(total)?;
        }
        Ok(())
    })?;
    timed(&mut t.waveform, || drop(waveform.finish()));
    Ok(reference)
}

/// The three containers of a job, written to memory (benchmarks keep no files).
fn memory_muxers(
    header: &OpusStreamHeader,
    frame_samples: u32,
) -> sori_codecs::error::Result<Vec<Box<dyn OpusMuxer>>> {
    Ok(vec![
        Box::new(OggOpusWriter::new(Cursor::new(Vec::new()), header, 1)?),
        Box::new(CafOpusWriter::new(
            Cursor::new(Vec::new()),
            header,
            frame_samples,
        )?),
        Box::new(WebmOpusWriter::new(Cursor::new(Vec::new()), header)?),
    ])
}

/// Wall time of the whole job (in-memory outputs) and of the bare floor, same file.
fn job_and_floor(
    path: &Path,
    profile: &Profile,
    limits: &Limits,
) -> anyhow::Result<(Duration, Duration)> {
    let started = Instant::now();
    bare_floor(Decoder::open_path(path, limits)?, profile)?;
    let floor = started.elapsed();
    let started = Instant::now();
    let mut open = || Decoder::open_path(path, limits);
    let mut outputs = memory_muxers;
    let _: Processed = process(&mut open, &mut outputs, profile)?;
    Ok((started.elapsed(), floor))
}

/// Encodes the reference with one setting, decodes it, and compares spectra.
fn compare_setting(
    reference: &[f32],
    application: Application,
    bitrate_bps: u32,
    complexity: u8,
) -> anyhow::Result<Setting> {
    let profile = Profile {
        application,
        bitrate_bps,
        complexity,
        ..Profile::default()
    };
    let mut encoder = OpusEncoder::new(&profile)?;
    let mut decoder = OpusDecoder::new(encoder.pre_skip())?;
    decoder.set_total_samples(reference.len() as u64);
    let mut decoded = Vec::with_capacity(reference.len());
    let mut bytes = 0u64;
    let mut packets = Vec::new();
    let started = Instant::now();
    {
        let mut sink = |p: &[u8], _n: u32| {
            bytes += p.len() as u64;
            packets.push(p.to_vec());
            Ok(())
        };
        encoder.push(reference, &mut sink)?;
        encoder.finish(&mut sink)?;
    }
    let encode_time = started.elapsed();
    for p in &packets {
        decoder.decode(p, &mut decoded)?;
    }
    let mut distance = SpectralDistance::new(OUTPUT_RATE);
    distance.add(reference, &decoded);
    let seconds = reference.len() as f64 / f64::from(OUTPUT_RATE);
    Ok(Setting {
        application: match application {
            Application::Voip => "voip",
            Application::Audio => "audio",
        },
        bitrate_bps,
        complexity,
        actual_bps: (bytes as f64 * 8.0 / seconds.max(1e-9)) as u32,
        encode_x_realtime: seconds / encode_time.as_secs_f64().max(1e-9),
        lsd_db: distance.finish(),
    })
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}

fn print_tables(benches: &[FileBench]) {
    for b in benches {
        println!("\n{}  ({:.1} s)", b.file, b.duration_s);
        println!("  {:<10} {:>10} {:>12}", "stage", "ms", "x realtime");
        for s in &b.stages {
            println!("  {:<10} {:>10.2} {:>12.0}", s.stage, s.ms, s.x_realtime);
        }
        println!(
            "  whole job {:.1} ms, bare floor {:.1} ms: job/floor = {:.2}",
            b.job_ms, b.floor_ms, b.job_over_floor
        );
        println!(
            "  {:<6} {:>8} {:>4} {:>9} {:>10} {:>8}",
            "app", "bitrate", "cx", "actual", "enc x rt", "LSD dB"
        );
        for s in &b.settings {
            println!(
                "  {:<6} {:>8} {:>4} {:>9} {:>10.0} {:>8.2}",
                s.application,
                s.bitrate_bps,
                s.complexity,
                s.actual_bps,
                s.encode_x_realtime,
                s.lsd_db
            );
        }
    }
}
