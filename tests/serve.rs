//! End to end: the real `sori` binary, started the way a user starts it.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `sori` process that is killed if the test fails before stopping it.
struct Sori {
    child: Child,
    base: String,
}

impl Drop for Sori {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `sori ARGS` in `dir` with an empty environment of Sori settings.
fn start(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Sori {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sori"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env("SORI_LISTEN", &listen)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    Sori {
        child: cmd.spawn().unwrap(),
        base: format!("http://{listen}"),
    }
}

async fn wait_until_up(sori: &Sori) -> reqwest::Client {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(format!("{}/healthz", sori.base)).send().await {
            if r.status().is_success() {
                return client;
            }
        }
        assert!(Instant::now() < deadline, "sori did not come up in 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn terminate(sori: &mut Sori) -> std::process::ExitStatus {
    let pid = sori.child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = sori.child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "sori did not stop within 10 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn serve_runs_on_embedded_defaults_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut sori = start(dir.path(), &["serve"], &[]);
    let client = wait_until_up(&sori).await;
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json", "/docs/"] {
        let r = client
            .get(format!("{}{path}", sori.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    // The embedded database lives in ./data by default.
    assert!(dir.path().join("data/sori.db").exists());
    let status = terminate(&mut sori);
    assert_eq!(status.code(), Some(0));
}

#[test]
fn a_bad_setting_ends_with_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sori"))
        .arg("migrate")
        .current_dir(dir.path())
        .env("DATABASE_URL", "postgres://sori@127.0.0.1:1/none")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: DATABASE_URL=postgres://sori@127.0.0.1:1/none"));
    assert!(stderr.contains("Connection refused"), "{stderr}");

    let out = Command::new(env!("CARGO_BIN_EXE_sori"))
        .arg("serve")
        .current_dir(dir.path())
        .env("SORI_STORE", "floppy")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.lines().next().unwrap().contains("--store"),
        "{stderr}"
    );
}

#[test]
fn help_lists_every_command_and_setting() {
    let out = Command::new(env!("CARGO_BIN_EXE_sori"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for word in [
        "serve",
        "api",
        "worker",
        "migrate",
        "process",
        "bench",
        "DATABASE_URL",
        "SORI_LISTEN",
        "SORI_PUBLIC_URL",
        "SORI_DATA_DIR",
        "SORI_STORE",
        "SORI_S3_BUCKET",
        "SORI_QUEUE",
        "SORI_SQS_QUEUE_URL",
        "SORI_WORKERS",
        "SORI_LOG_FORMAT",
        "AWS_ENDPOINT_URL",
    ] {
        assert!(help.contains(word), "sori --help does not mention {word}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_sori"))
        .args(["process", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in ["--out", "--target-lufs", "--true-peak", "--bitrate"] {
        assert!(help.contains(flag), "sori process --help lacks {flag}");
    }
}
