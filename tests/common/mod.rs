//! What the end-to-end tests share: starting the real `sori` binary with a
//! clean environment, waiting for it, signalling it, and the fixtures.
// Each test binary compiles this module and uses a different part of it.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `sori` process, killed if the test ends before stopping it.
pub struct Sori {
    pub child: Child,
    /// `http://127.0.0.1:PORT` of its HTTP listener.
    pub base: String,
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
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args([sig, &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill {sig} {pid}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "sori did not exit after {sig}");
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

/// Starts `sori ARGS` on a free loopback port.
pub fn spawn<K: AsRef<OsStr>, V: AsRef<OsStr>>(dir: &Path, args: &[&str], envs: &[(K, V)]) -> Sori {
    let listen = format!("127.0.0.1:{}", free_port());
    let child = command(dir, args, envs)
        .env("SORI_LISTEN", &listen)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    Sori {
        child,
        base: format!("http://{listen}"),
    }
}

/// A committed audio fixture (see `fixtures/README.md`).
pub fn fixture(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name);
    assert!(path.exists(), "missing fixture {name}");
    path
}
