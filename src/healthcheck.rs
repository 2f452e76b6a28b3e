//! `sori healthcheck`: the container's `HEALTHCHECK` (the runtime image has
//! no curl). Asks `/readyz` on the listen address (`SORI_LISTEN`; an
//! unspecified address means this host's loopback) and succeeds on 200.

use crate::cli::Settings;
use anyhow::{bail, Context};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpStream};
use std::time::Duration;

/// How long the check may take in all: connecting, then the answer.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes of the answer read: the status line and headers fit.
const MAX_ANSWER: u64 = 16 * 1024;

pub fn run(settings: &Settings) -> anyhow::Result<()> {
    let mut addr = settings.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)
        .with_context(|| format!("healthcheck: cannot connect to {addr}"))?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let request = format!("GET /readyz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .context("healthcheck: sending the request")?;
    let mut answer = String::new();
    stream
        .take(MAX_ANSWER)
        .read_to_string(&mut answer)
        .context("healthcheck: reading the answer")?;
    let status = answer.lines().next().unwrap_or_default();
    match status.split_whitespace().nth(1) {
        Some("200") => Ok(()),
        _ => bail!("healthcheck: /readyz on {addr} answered {status:?}"),
    }
}
