//! What the browser tests share: the fake microphone's speech, and running
//! one of the `tests/browser/*.mjs` scripts (playwright-core driving
//! Debian's Chromium) to its single JSON line.

use serde_json::Value;
use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `tests/browser`: the scripts and their `node_modules`.
pub fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// The web app page of a browser test, on its own origin
/// `http://127.0.0.1:PORT`: the socket is bound here, before Sori starts
/// (whose CORS settings name the origin), and handed to the script as its
/// standard input, where it serves the page; so no other process can take
/// the port in between.
pub struct AppPage {
    listener: TcpListener,
    pub origin: String,
}

impl AppPage {
    pub fn bind() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        Self { listener, origin }
    }
}

/// A 48 kHz mono WAV of `text` spoken by espeak-ng, for Chromium's fake
/// microphone (which loops it).
pub fn speech_wav(dir: &Path, text: &str) -> PathBuf {
    let spoken = dir.join("spoken.wav");
    let status = Command::new("espeak-ng")
        .args(["-s", "150", "-w"])
        .arg(&spoken)
        .arg(text)
        .status()
        .expect("espeak-ng must be installed (scripts/setup.sh test)");
    assert!(status.success(), "espeak-ng failed");
    let wav = dir.join("mic.wav");
    let status = Command::new("sox")
        .arg(&spoken)
        .args(["-r", "48000", "-c", "1", "-b", "16"])
        .arg(&wav)
        .status()
        .expect("sox must be installed (scripts/setup.sh test)");
    assert!(status.success(), "sox failed");
    wav
}

/// Runs `node tests/browser/SCRIPT ARGS…` and returns the JSON of its last
/// line of output; fails with its stderr when it fails or takes longer than
/// `deadline`.
pub fn run_script(script: &str, args: &[&str], deadline: Duration) -> Value {
    run(script, args, Stdio::null(), deadline)
}

/// [`run_script`] for a script serving `page` (its socket as standard input).
pub fn run_page_script(script: &str, page: AppPage, args: &[&str], deadline: Duration) -> Value {
    let mut all = vec![page.origin.as_str()];
    all.extend_from_slice(args);
    let socket = Stdio::from(OwnedFd::from(page.listener));
    run(script, &all, socket, deadline)
}

fn run(script: &str, args: &[&str], stdin: Stdio, deadline: Duration) -> Value {
    let dir = browser_dir();
    assert!(
        dir.join("node_modules/playwright-core").exists()
            && dir.join("node_modules/axe-core").exists(),
        "playwright-core and axe-core are not installed in {}: run scripts/setup.sh test",
        dir.display()
    );
    let mut child = Command::new("node")
        .arg(dir.join(script))
        .args(args)
        .current_dir(&dir)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node must be installed (Node 20+)");
    let started = Instant::now();
    // Output is read after exit: both scripts print a few kilobytes at most.
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{script} took over {deadline:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script} failed: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"))
}
