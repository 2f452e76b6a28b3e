//! A real SMTP server for the mail tests: `aiosmtpd` (installed by
//! `scripts/setup.sh` into `.venv-smtp/`) on a loopback port, keeping what
//! it receives in a maildir the test reads. Shared with the end-to-end
//! tests of the `sori` binary (they include this file).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A local SMTP server that keeps what it receives in a maildir.
pub struct SmtpServer {
    child: Child,
    pub port: u16,
    maildir: tempfile::TempDir,
}

/// A loopback port nothing listens on (for now).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn aiosmtpd_python() -> PathBuf {
    // Both the api crate and the root package include this file.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    [
        root.join(".venv-smtp/bin/python"),
        root.join("../.venv-smtp/bin/python"),
    ]
    .into_iter()
    .find(|p| p.exists())
    .expect("aiosmtpd is not installed: run scripts/setup.sh test")
}

impl SmtpServer {
    pub fn start(port: u16) -> Self {
        let maildir = tempfile::tempdir().unwrap();
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir(maildir.path().join(sub)).unwrap();
        }
        let child = Command::new(aiosmtpd_python())
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "aiosmtpd never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            port,
            maildir,
        }
    }

    /// Every message received so far, as raw text, oldest first.
    pub fn messages(&self) -> Vec<String> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.maildir.path().join("new"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort_by_key(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok());
        files
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap())
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The six-digit code of a message.
pub fn code_in(message: &str) -> String {
    let at = message.find("code is ").expect("a code in the mail") + "code is ".len();
    message[at..at + 6].to_owned()
}

pub fn header<'a>(message: &'a str, name: &str) -> &'a str {
    message
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} in {message}"))
}
