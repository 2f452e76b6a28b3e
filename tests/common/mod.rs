//! What the end-to-end tests share: starting the real `sori` binary with a
//! clean environment, waiting for it, signalling it, and the fixtures.
// Each test binary compiles this module and uses a different part of it.
#![allow(dead_code)]

pub mod aws;
pub mod browser;
pub mod client;
pub mod fault_proxy;
/// The local SMTP server of the router tests' mail tests.
#[path = "../../api/tests/support/smtp.rs"]
pub mod smtp;
/// The event socket read as the router tests read it: one reader for both.
#[path = "../../api/tests/support/ws.rs"]
pub mod ws;

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `sori` process, killed if the test ends before stopping it.
pub struct Sori {
    pub child: Child,
    /// `http://127.0.0.1:PORT` of its HTTP listener.
    pub base: String,
    /// The thread passing its log on; done once the process has exited.
    log: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Sori {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sori {
    /// Sends `sig` (e.g. `-TERM`, `-KILL`) and returns the exit code once it
    /// has exited (None when killed by a signal); fails after 30 s.
    pub fn signal(&mut self, sig: &str) -> Option<i32> {
        self.send(sig);
        self.wait_exit(Duration::from_secs(30))
    }

    /// Sends `sig` without waiting for the process to exit.
    pub fn send(&self, sig: &str) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args([sig, &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill {sig} {pid}");
    }

    /// The exit code once the process has exited (None when killed by a
    /// signal); fails after `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Every line it wrote is passed on (and in its log file) now.
                if let Some(log) = self.log.take() {
                    let _ = log.join();
                }
                return status.code();
            }
            assert!(Instant::now() < deadline, "sori did not exit in {within:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, expecting a clean exit 0.
    pub fn stop(mut self) {
        assert_eq!(
            self.signal("-TERM"),
            Some(0),
            "sori exit status after SIGTERM"
        );
    }

    /// Waits for `/readyz`; fails at once if the process exits.
    pub async fn wait_ready(&mut self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = client.get(format!("{}/readyz", self.base)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("sori exited before it was ready: {status}");
            }
            assert!(Instant::now() < deadline, "sori not ready in 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// `sori ARGS` in `dir`, with none of the caller's Sori, database or AWS
/// settings: only `envs`.
pub fn command<K: AsRef<OsStr>, V: AsRef<OsStr>>(
    dir: &Path,
    args: &[&str],
    envs: &[(K, V)],
) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sori"));
    cmd.args(args).current_dir(dir);
    for (key, _) in std::env::vars() {
        if key == "DATABASE_URL" || key.starts_with("SORI_") || key.starts_with("AWS_") {
            cmd.env_remove(key);
        }
    }
    cmd.envs(envs.iter().map(|(k, v)| (k, v)));
    cmd
}

/// `sori` in the package's folder, with none of the caller's settings:
/// add the arguments.
pub fn sori_command() -> Command {
    command::<&str, &str>(Path::new(env!("CARGO_MANIFEST_DIR")), &[], &[])
}

/// Starts `sori ARGS` on a loopback port the system picks (`SORI_LISTEN`
/// port 0), learnt from its "sori is serving" log line: a port chosen here
/// and handed over could be taken by another process in between. Its log
/// goes on to this test's output.
pub fn spawn<K: AsRef<OsStr>, V: AsRef<OsStr>>(dir: &Path, args: &[&str], envs: &[(K, V)]) -> Sori {
    start(command(dir, args, envs), Stdio::null(), None, args)
}

/// [`spawn`], keeping what it prints: standard output in the file
/// `stdout`, its log in the file `stderr` (as well as on this test's output).
pub fn spawn_logged<K: AsRef<OsStr>, V: AsRef<OsStr>>(
    dir: &Path,
    args: &[&str],
    envs: &[(K, V)],
    stdout: &Path,
    stderr: &Path,
) -> Sori {
    let out = Stdio::from(std::fs::File::create(stdout).unwrap());
    let copy = std::fs::File::create(stderr).unwrap();
    start(command(dir, args, envs), out, Some(copy), args)
}

fn start(mut cmd: Command, stdout: Stdio, mut copy: Option<std::fs::File>, args: &[&str]) -> Sori {
    let mut child = cmd
        .env("SORI_LISTEN", "127.0.0.1:0")
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = child.stderr.take().unwrap();
    let (found, listen) = std::sync::mpsc::channel();
    let log = std::thread::spawn(move || {
        for line in BufReader::new(output).lines().map_while(Result::ok) {
            eprintln!("{line}");
            if let Some(file) = copy.as_mut() {
                let _ = writeln!(file, "{line}");
            }
            if let Some(addr) = serving_address(&line) {
                let _ = found.send(addr);
            }
        }
    });
    // On failure the process's own message (already on stderr) says why.
    let listen = listen
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("sori {args:?} did not start serving"));
    Sori {
        child,
        base: format!("http://{listen}"),
        log: Some(log),
    }
}

/// The address in sori's "sori is serving" line, in the text or JSON log format.
fn serving_address(line: &str) -> Option<String> {
    if !line.contains("sori is serving") {
        return None;
    }
    let rest = line
        .split_once("listen=")
        .or_else(|| line.split_once("\"listen\":\""))?
        .1;
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '"')
        .unwrap_or(rest.len());
    Some(rest[..end].to_owned())
}

/// The production roles on `envs`: `sori migrate` once, then `sori api`
/// and `sori worker`, both ready.
pub async fn api_and_worker(dir: &Path, envs: &[(String, String)]) -> (Sori, Sori) {
    let out = command(dir, &["migrate"], envs).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "sori migrate: {stderr}");
    let mut api = spawn(dir, &["api"], envs);
    let mut worker = spawn(dir, &["worker"], envs);
    api.wait_ready().await;
    worker.wait_ready().await;
    (api, worker)
}

/// A committed audio fixture (see `fixtures/README.md`).
pub fn fixture(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    assert!(path.exists(), "missing fixture {name}");
    path
}

/// A mono WAV of `seconds` of a quiet tone at 16 kHz, made with ffmpeg in
/// `dir`: long enough inputs to catch a job while it runs (about 32 kB a
/// second; ten minutes take several seconds to process).
pub fn long_wav(dir: &Path, seconds: u32) -> PathBuf {
    let path = dir.join(format!("tone-{seconds}s.wav"));
    let made = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("sine=frequency=220:duration={seconds},volume=0.3"))
        .args(["-ac", "1", "-ar", "16000"])
        .arg(&path)
        .status()
        .expect("ffmpeg must be installed (scripts/setup.sh test)");
    assert!(made.success(), "ffmpeg could not make {}", path.display());
    path
}

/// Polls `check` every 100 ms until it answers `Some`; fails after `within`
/// with `what`.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The value of an unlabelled metric on `sori`'s `/metrics`, if present.
pub async fn metric(sori: &Sori, name: &str) -> Option<f64> {
    let text = reqwest::get(format!("{}/metrics", sori.base))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .filter_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .find_map(|value| value.trim().parse().ok())
}

/// A media row as the workers left it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct MediaRow {
    pub state: String,
    pub failure: Option<String>,
    pub attempts: i64,
    pub output_prefix: Option<String>,
    pub report: Option<String>,
    pub updated_at: i64,
}

pub async fn media_row(db: &sori_db::Db, id: &str) -> MediaRow {
    sqlx::query_as(
        "SELECT state, failure, CAST(attempts AS BIGINT) AS attempts, output_prefix, report, \
         updated_at FROM media WHERE id = $1",
    )
    .bind(id)
    .fetch_one(db.pool())
    .await
    .unwrap()
}

/// How many `kind` notifications (`media.ready`, `media.failed`) name the media.
pub async fn media_notifications(db: &sori_db::Db, id: &str, kind: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM notifications WHERE media_id = $1 AND kind = $2")
        .bind(id)
        .bind(kind)
        .fetch_one(db.pool())
        .await
        .unwrap()
}
