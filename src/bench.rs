//! `sori bench`: where the time goes and how close the outputs land, over
//! one file or a whole corpus.
//!
//! Per file: the real chain ([`process`], outputs in memory) with the stage
//! timings it measures itself, against the bare floor (decode + resample +
//! the same Opus encode) timed in the same run; optionally ffmpeg doing the
//! same job (`--ffmpeg`: two-pass `loudnorm`, resample, libopus); the
//! output's loudness error and true peak as the chain's decoder measured
//! them; and, on the first [`QUALITY_SECONDS`] of what the encoder received,
//! every requested codec setting with its bitrate, encoder speed and
//! log-spectral distance. Then, over all files: the distribution of encode
//! passes, the worst job/floor and ffmpeg/job ratios, the worst loudness
//! error and true peak.

use crate::cli::BenchArgs;
use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use serde::Serialize;
use sori_codecs::analysis::SpectralDistance;
use sori_codecs::decode::Decoder;
use sori_codecs::encode::{OpusDecoder, OpusEncoder};
use sori_codecs::gain::CapReason;
use sori_codecs::mux::{OpusMuxer, OpusStreamHeader};
use sori_codecs::process::{bare_floor, encoder_input, process};
use sori_codecs::profile::Application;
use sori_codecs::report::Report;
use sori_codecs::{Limits, OutputFormat, Profile, OUTPUT_RATE};
use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Seconds of each file used to compare codec settings (bounds memory and time).
const QUALITY_SECONDS: usize = 30;
/// The summary's speed figures are also given for inputs at least this long
/// (the targets are set on them: short files are dominated by start-up).
const LONG_INPUT_SECONDS: f64 = 60.0;
/// Extensions of the audio files a directory argument contributes.
const AUDIO_EXTENSIONS: [&str; 12] = [
    "wav", "flac", "m4a", "mp4", "mp3", "ogg", "opus", "webm", "caf", "aiff", "aif", "3gp",
];

#[derive(Debug, Serialize)]
struct FileBench {
    file: String,
    duration_s: f64,
    /// Per stage, as the chain timed itself (both passes, all threads).
    stages: Vec<Stage>,
    /// Whole job (both passes, all outputs, in memory), best wall time.
    job_ms: f64,
    floor_ms: f64,
    job_over_floor: f64,
    /// ffmpeg's two-pass job, with `--ffmpeg`.
    ffmpeg_ms: Option<f64>,
    ffmpeg_over_job: Option<f64>,
    encode_passes: u32,
    reencoded_frames: u64,
    gain_db: f64,
    gain_cap_reason: Option<CapReason>,
    /// Output loudness minus the target, LU (decoded output).
    loudness_error_lu: f64,
    /// Output true peak, dBTP (decoded output).
    true_peak_dbtp: f64,
    settings: Vec<Setting>,
}

#[derive(Debug, Serialize)]
struct Stage {
    stage: &'static str,
    ms: u64,
    x_realtime: f64,
}

#[derive(Debug, Serialize)]
struct Setting {
    application: &'static str,
    bitrate_bps: u32,
    complexity: u8,
    actual_bps: u32,
    encode_x_realtime: f64,
    /// Log-spectral distance to the encoder's input, dB (lower is closer).
    lsd_db: f64,
}

/// What the whole run says, worst cases first.
#[derive(Debug, Serialize)]
struct Summary {
    files: usize,
    /// Encode passes → how many files needed that many.
    encode_passes: BTreeMap<u32, usize>,
    worst_job_over_floor: Option<Worst>,
    /// Among inputs of at least [`LONG_INPUT_SECONDS`].
    worst_job_over_floor_long: Option<Worst>,
    /// The smallest ffmpeg/job ratio (how much faster the job is, at worst).
    worst_ffmpeg_over_job: Option<Worst>,
    worst_ffmpeg_over_job_long: Option<Worst>,
    /// Largest |loudness error| among outputs whose gain was not capped.
    worst_loudness_error_lu: Option<Worst>,
    worst_true_peak_dbtp: Option<Worst>,
    /// Inputs refused amplification, by reason.
    capped: BTreeMap<String, usize>,
}

#[derive(Debug, Serialize)]
struct Worst {
    value: f64,
    file: String,
}

#[derive(Debug, Serialize)]
struct BenchRun {
    files: Vec<FileBench>,
    summary: Summary,
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let files = expand(if args.files.is_empty() {
        vec![PathBuf::from("fixtures")]
    } else {
        args.files.clone()
    })?;
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
        .num_threads(args.jobs.unwrap_or(1))
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
    let run = BenchRun {
        summary: summarize(&benches),
        files: benches,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&run)?);
    } else {
        print_tables(&run, args);
    }
    Ok(())
}

/// Files as given, directories replaced by the audio files in them (sorted;
/// in `fixtures`, only the `speech-*` files that are meant to decode).
fn expand(paths: Vec<PathBuf>) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if !path.is_dir() {
            files.push(path);
            continue;
        }
        let mut inside: Vec<PathBuf> = std::fs::read_dir(&path)
            .with_context(|| format!("{}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
                AUDIO_EXTENSIONS.contains(&ext)
                    && !name.starts_with("bad-")
                    && !name.contains("he-aac")
            })
            .collect();
        inside.sort();
        files.extend(inside);
    }
    Ok(files)
}

/// Limits for benchmarking: any size, any duration.
fn open_limits() -> Limits {
    Limits {
        max_duration: Duration::from_secs(24 * 3600),
        max_bytes: u64::MAX,
        ..Limits::default()
    }
}

/// Runs the bare floor on each file in turn and prints its wall time.
fn floor_only(files: &[PathBuf]) -> anyhow::Result<()> {
    for file in files {
        let started = Instant::now();
        let bytes = bare_floor(
            Decoder::open_path(file, &open_limits())?,
            &Profile::default(),
        )
        .with_context(|| format!("{}", file.display()))?;
        println!(
            "{}\t{:.1} ms\t{bytes} bytes",
            file.display(),
            ms(started.elapsed())
        );
    }
    Ok(())
}

fn bench_file(path: &Path, args: &BenchArgs) -> anyhow::Result<FileBench> {
    let profile = Profile::default();
    let limits = open_limits();
    let mut job = Duration::MAX;
    let mut floor = Duration::MAX;
    let mut report = None;
    for _ in 0..args.runs.max(1) {
        let started = Instant::now();
        bare_floor(Decoder::open_path(path, &limits)?, &profile)?;
        floor = floor.min(started.elapsed());
        let started = Instant::now();
        let mut open = || Decoder::open_path(path, &limits);
        let mut outputs = memory_muxers;
        let processed = process(&mut open, &mut outputs, &profile, &mut |_| {})?;
        job = job.min(started.elapsed());
        report = Some(processed.report);
    }
    let report: Report = report.context("no run")?;
    let duration_s = report.duration_ms as f64 / 1000.0;
    let ffmpeg = if args.ffmpeg {
        Some(ffmpeg_job(path, &profile, args.runs.max(1))?)
    } else {
        None
    };
    let settings = if args.no_settings {
        Vec::new()
    } else {
        let keep = QUALITY_SECONDS * OUTPUT_RATE as usize;
        let reference = encoder_input(Decoder::open_path(path, &limits)?, &profile, &report, keep)?;
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
        settings
    };
    Ok(FileBench {
        file: path.display().to_string(),
        duration_s,
        stages: stages(&report, duration_s),
        job_ms: ms(job),
        floor_ms: ms(floor),
        job_over_floor: job.as_secs_f64() / floor.as_secs_f64().max(1e-9),
        ffmpeg_ms: ffmpeg.map(ms),
        ffmpeg_over_job: ffmpeg.map(|f| f.as_secs_f64() / job.as_secs_f64().max(1e-9)),
        encode_passes: report.encode_passes,
        reencoded_frames: report.reencoded_frames,
        gain_db: report.gain_db,
        gain_cap_reason: report.gain_cap_reason,
        loudness_error_lu: report.output.integrated_lufs - profile.target_lufs,
        true_peak_dbtp: report.output.true_peak_dbtp,
        settings,
    })
}

/// The chain's own stage timings.
fn stages(report: &Report, duration_s: f64) -> Vec<Stage> {
    let t = &report.timings_ms;
    [
        ("decode", t.decode),
        ("resample", t.resample),
        ("analyze", t.analyze),
        ("normalize", t.normalize),
        ("encode", t.encode),
        ("verify", t.verify),
        ("mux", t.mux),
        ("waveform", t.waveform),
    ]
    .into_iter()
    .map(|(stage, ms)| Stage {
        stage,
        ms,
        x_realtime: duration_s * 1000.0 / (ms as f64).max(0.5),
    })
    .collect()
}

/// Every audio output of a job, written to memory (benchmarks keep no files).
fn memory_muxers(
    header: &OpusStreamHeader,
    frame_samples: u32,
) -> sori_codecs::error::Result<Vec<Box<dyn OpusMuxer>>> {
    OutputFormat::AUDIO
        .into_iter()
        .map(|audio| audio.opus_muxer(Cursor::new(Vec::new()), header, frame_samples, 1))
        .collect()
}

/// Best wall time of ffmpeg doing the same job as well as it can: downmix,
/// two-pass `loudnorm` (linear), resample to 48 kHz, libopus at the same
/// settings (what `benches/compare-ffmpeg.sh` runs too).
fn ffmpeg_job(path: &Path, profile: &Profile, runs: usize) -> anyhow::Result<Duration> {
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("ffmpeg.opus");
    let target = format!(
        "I={}:TP={}:LRA=11",
        profile.target_lufs, profile.true_peak_dbtp
    );
    let mut best = Duration::MAX;
    for _ in 0..runs {
        let started = Instant::now();
        let measured = Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-i"])
            .arg(path)
            .args(["-ac", "1", "-af"])
            .arg(format!("loudnorm={target}:print_format=json"))
            .args(["-f", "null", "-"])
            .output()
            .context("ffmpeg (needed by --ffmpeg) did not run")?;
        let text = String::from_utf8_lossy(&measured.stderr);
        let json = text
            .rfind('{')
            .map(|at| &text[at..])
            .context("no loudnorm figures from ffmpeg")?;
        let figures: serde_json::Value = serde_json::from_str(json.trim())?;
        let field = |key: &str| figures[key].as_str().unwrap_or("0").to_string();
        let second = format!(
            "loudnorm={target}:measured_I={}:measured_TP={}:measured_LRA={}:measured_thresh={}:offset={}:linear=true,aresample=48000",
            field("input_i"),
            field("input_tp"),
            field("input_lra"),
            field("input_thresh"),
            field("target_offset")
        );
        let status = Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-y", "-i"])
            .arg(path)
            .args(["-ac", "1", "-af", &second, "-c:a", "libopus"])
            .args(["-b:a", &profile.bitrate_bps.to_string()])
            .args(["-application", "voip", "-frame_duration"])
            .arg(profile.frame_ms.to_string())
            .args(["-compression_level", &profile.complexity.to_string()])
            .arg(&out)
            .status()?;
        if !status.success() {
            bail!("ffmpeg's second pass failed");
        }
        best = best.min(started.elapsed());
    }
    Ok(best)
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

fn summarize(benches: &[FileBench]) -> Summary {
    let worst = |value: &dyn Fn(&FileBench) -> Option<f64>, long: bool, most: bool| {
        benches
            .iter()
            .filter(|b| !long || b.duration_s >= LONG_INPUT_SECONDS)
            .filter_map(|b| value(b).map(|v| (v, &b.file)))
            .reduce(|a, b| if (b.0 > a.0) == most { b } else { a })
            .map(|(value, file)| Worst {
                value,
                file: file.clone(),
            })
    };
    let mut encode_passes = BTreeMap::new();
    let mut capped = BTreeMap::new();
    for b in benches {
        *encode_passes.entry(b.encode_passes).or_insert(0) += 1;
        if let Some(reason) = b.gain_cap_reason {
            let name = serde_json::to_value(reason)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            *capped.entry(name).or_insert(0) += 1;
        }
    }
    let uncapped_error = |b: &FileBench| {
        b.gain_cap_reason
            .is_none()
            .then_some(b.loudness_error_lu.abs())
    };
    Summary {
        files: benches.len(),
        encode_passes,
        worst_job_over_floor: worst(&|b| Some(b.job_over_floor), false, true),
        worst_job_over_floor_long: worst(&|b| Some(b.job_over_floor), true, true),
        worst_ffmpeg_over_job: worst(&|b| b.ffmpeg_over_job, false, false),
        worst_ffmpeg_over_job_long: worst(&|b| b.ffmpeg_over_job, true, false),
        worst_loudness_error_lu: worst(&uncapped_error, false, true),
        worst_true_peak_dbtp: worst(&|b| Some(b.true_peak_dbtp), false, true),
        capped,
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 100.0
}

fn print_tables(run: &BenchRun, args: &BenchArgs) {
    println!(
        "{:<44} {:>6} {:>8} {:>7} {:>7} {:>6} {:>7} {:>8} {:>7}",
        "file", "secs", "job ms", "/floor", "ffm/job", "passes", "redone", "err LU", "dBTP"
    );
    for b in &run.files {
        let name = Path::new(&b.file)
            .file_name()
            .map_or(b.file.clone(), |n| n.to_string_lossy().into_owned());
        let ffmpeg = b
            .ffmpeg_over_job
            .map_or("-".to_string(), |r| format!("{r:.2}"));
        println!(
            "{:<44} {:>6.1} {:>8.1} {:>7.2} {:>7} {:>6} {:>7} {:>+8.2} {:>7.2}{}",
            name,
            b.duration_s,
            b.job_ms,
            b.job_over_floor,
            ffmpeg,
            b.encode_passes,
            b.reencoded_frames,
            b.loudness_error_lu,
            b.true_peak_dbtp,
            b.gain_cap_reason
                .map_or(String::new(), |r| format!("  capped: {r:?}")),
        );
    }
    if run.files.len() == 1 || args.stages {
        for b in &run.files {
            println!("\n{}: stages as the chain timed them", b.file);
            for s in &b.stages {
                println!(
                    "  {:<10} {:>8} ms {:>10.0}x realtime",
                    s.stage, s.ms, s.x_realtime
                );
            }
            print_settings(b);
        }
    }
    let s = &run.summary;
    let show = |w: &Option<Worst>| {
        w.as_ref()
            .map_or("-".to_string(), |w| format!("{:.2} ({})", w.value, w.file))
    };
    println!("\n{} files; encode passes: {:?}", s.files, s.encode_passes);
    println!("worst job/floor: {}", show(&s.worst_job_over_floor));
    println!(
        "worst job/floor, ≥ 60 s: {}",
        show(&s.worst_job_over_floor_long)
    );
    println!("least ffmpeg/job: {}", show(&s.worst_ffmpeg_over_job));
    println!(
        "least ffmpeg/job, ≥ 60 s: {}",
        show(&s.worst_ffmpeg_over_job_long)
    );
    println!(
        "worst |loudness error|, LU: {}",
        show(&s.worst_loudness_error_lu)
    );
    println!("highest true peak, dBTP: {}", show(&s.worst_true_peak_dbtp));
    if !s.capped.is_empty() {
        println!("gain capped: {:?}", s.capped);
    }
}

fn print_settings(b: &FileBench) {
    if b.settings.is_empty() {
        return;
    }
    println!(
        "  {:<6} {:>8} {:>4} {:>9} {:>10} {:>8}",
        "app", "bitrate", "cx", "actual", "enc x rt", "LSD dB"
    );
    for s in &b.settings {
        println!(
            "  {:<6} {:>8} {:>4} {:>9} {:>10.0} {:>8.2}",
            s.application, s.bitrate_bps, s.complexity, s.actual_bps, s.encode_x_realtime, s.lsd_db
        );
    }
}
