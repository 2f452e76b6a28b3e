//! `sori process` and `sori bench` as a user runs them.

mod common;

use common::{fixture, sori_command};
use std::process::Command;

#[test]
fn process_writes_the_outputs_and_prints_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = sori_command()
        .arg("process")
        .arg(fixture("speech-stereo-44k.mp3"))
        .arg("--out")
        .arg(dir.path())
        .args(["--target-lufs", "-18", "--bitrate", "24000"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // Every field of the report: clients and the API read these names.
    for key in [
        "duration_ms",
        "input",
        "gain_db",
        "gain_capped",
        "limited",
        "output",
        "waveform",
        "timings_ms",
    ] {
        assert!(!report[key].is_null(), "report lacks {key}");
    }
    for key in [
        "container",
        "codec",
        "sample_rate",
        "channels",
        "integrated_lufs",
        "true_peak_dbtp",
        "loudness_range_lu",
    ] {
        assert!(!report["input"][key].is_null(), "report lacks input.{key}");
    }
    for key in ["decode", "analyze", "encode", "total"] {
        assert!(
            report["timings_ms"][key].is_u64(),
            "report lacks timings_ms.{key}"
        );
    }
    assert_eq!(report["input"]["channels"], 2);
    assert_eq!(report["waveform"]["bars"].as_array().unwrap().len(), 100);
    let lufs = report["output"]["integrated_lufs"].as_f64().unwrap();
    assert!((lufs + 18.0).abs() < 0.5, "{lufs}");
    let bitrate = report["output"]["bitrate_bps"].as_u64().unwrap();
    assert!((18_000..30_000).contains(&bitrate), "{bitrate}");
    for file in ["audio.opus", "audio.caf", "audio.webm", "waveform.json"] {
        assert!(
            dir.path().join(file).metadata().unwrap().len() > 0,
            "{file}"
        );
    }
}

#[test]
fn unusable_input_exits_non_zero_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "bad-garbage.m4a",
        "speech-mono-22k-he-aac.m4a",
        "bad-empty.wav",
    ] {
        let out = sori_command()
            .arg("process")
            .arg(fixture(name))
            .arg("--out")
            .arg(dir.path().join(name))
            .output()
            .unwrap();
        assert!(!out.status.success(), "{name}");
        assert!(out.stdout.is_empty(), "{name}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{name}: {stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
    }
}

#[test]
fn duration_limit_is_a_flag() {
    let dir = tempfile::tempdir().unwrap();
    let out = sori_command()
        .arg("process")
        .arg(fixture("speech-mono-16k.m4a"))
        .arg("--out")
        .arg(dir.path())
        .args(["--max-duration-secs", "2"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("exceeds the limit"), "{stderr}");
}

#[test]
fn bench_prints_stages_and_settings_as_json() {
    let out = sori_command()
        .args([
            "bench",
            "--json",
            "--jobs",
            "1",
            "--bitrates",
            "16000,32000",
            "--complexities",
            "5",
        ])
        .arg(fixture("speech-mono-16k.m4a"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bench: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let run = &bench["files"][0];
    let stages: Vec<&str> = run["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(
        stages,
        [
            "decode",
            "resample",
            "analyze",
            "normalize",
            "encode",
            "verify",
            "mux",
            "waveform"
        ]
    );
    // The stages are the chain's own timings: the encoder's is the largest.
    let ms = |stage: &str| {
        run["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["stage"] == stage)
            .unwrap()["ms"]
            .as_u64()
            .unwrap()
    };
    assert!(ms("encode") >= ms("decode"));
    assert_eq!(bench["summary"]["files"], 1);
    assert_eq!(bench["summary"]["encode_passes"]["1"], 1);
    assert!(run["loudness_error_lu"].as_f64().unwrap().abs() < 0.5);
    // voip and audio × two bitrates × one complexity.
    assert_eq!(run["settings"].as_array().unwrap().len(), 4);
    assert!(run["job_over_floor"].as_f64().unwrap() > 0.0);
    // More bits sound closer to the input.
    let lsd = |bps: u64| {
        run["settings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["application"] == "voip" && s["bitrate_bps"] == bps)
            .unwrap()["lsd_db"]
            .as_f64()
            .unwrap()
    };
    assert!(lsd(32_000) < lsd(16_000));
}

#[test]
fn process_shows_progress_on_a_terminal_and_nothing_when_piped() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture("speech-stereo-44k.mp3");
    let sori = env!("CARGO_BIN_EXE_sori");
    // Piped: the report on stdout, nothing on stderr.
    let piped = sori_command()
        .arg("process")
        .arg(&input)
        .arg("--out")
        .arg(dir.path().join("piped"))
        .output()
        .unwrap();
    assert!(piped.status.success());
    assert!(
        piped.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );
    // On a terminal (util-linux `script` gives the command a pty): the bar.
    let command = format!(
        "{sori} process {} --out {}",
        input.display(),
        dir.path().join("tty").display()
    );
    let tty = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .output()
        .expect("script (util-linux) runs a command on a pty");
    assert!(tty.status.success());
    let screen = String::from_utf8_lossy(&tty.stdout);
    assert!(screen.contains("s of audio"), "no progress bar: {screen}");
    assert!(
        screen.contains("\"integrated_lufs\""),
        "no report: {screen}"
    );
}
