//! A fault-injecting HTTP/1.1 proxy in front of one upstream server: it
//! answers `503 SlowDown` (what S3 says when overloaded) to the first N
//! requests that match a method and a path prefix, and forwards everything
//! else unchanged. One request per connection (`Connection: close` both
//! ways), so no HTTP parsing beyond the request and response heads is needed.
//! It runs on a thread of its own, so a test blocked in a synchronous call
//! (waiting for a process to exit, running ffprobe) never stalls it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// Which requests are refused, and how many times.
struct Rule {
    method: String,
    path_prefix: String,
    times: usize,
    refused: AtomicUsize,
}

impl Rule {
    /// True (and counted) when this request is one of the first `times` matches.
    fn refuses(&self, head: &str) -> bool {
        let mut request_line = head.split(' ');
        let (Some(method), Some(target)) = (request_line.next(), request_line.next()) else {
            return false;
        };
        if method != self.method || !target.starts_with(&self.path_prefix) {
            return false;
        }
        self.refused
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.times).then_some(n + 1)
            })
            .is_ok()
    }
}

/// The running proxy; stops when dropped.
pub struct FaultProxy {
    /// `http://127.0.0.1:PORT`, to use instead of the upstream's URL.
    pub url: String,
    rule: Arc<Rule>,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // Ends the proxy's runtime, and with it every open connection.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

const SLOW_DOWN_BODY: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
    <Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";

impl FaultProxy {
    /// Proxies to `upstream` (`http://HOST:PORT`), refusing the first `times`
    /// `method` requests whose path starts with `path_prefix`.
    pub fn start(upstream: &str, method: &str, path_prefix: &str, times: usize) -> Self {
        let upstream = upstream
            .strip_prefix("http://")
            .expect("a plain http:// upstream")
            .trim_end_matches('/')
            .to_owned();
        let rule = Arc::new(Rule {
            method: method.to_owned(),
            path_prefix: path_prefix.to_owned(),
            times,
            refused: AtomicUsize::new(0),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel();
        let serving = rule.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).unwrap();
                tokio::select! {
                    _ = accept(listener, upstream, serving) => {}
                    _ = stopped => {}
                }
            });
        });
        Self {
            url,
            rule,
            stop: Some(stop),
        }
    }

    /// How many requests were refused so far.
    pub fn refused(&self) -> usize {
        self.rule.refused.load(Ordering::SeqCst)
    }
}

async fn accept(listener: TcpListener, upstream: String, rule: Arc<Rule>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        let (upstream, rule) = (upstream.clone(), rule.clone());
        tokio::spawn(async move {
            // A broken connection is the client's or the upstream's to notice.
            let _ = relay(client, &upstream, &rule).await;
        });
    }
}

/// Handles one request on `client`: refuses it, or forwards it to `upstream`
/// and the answer back.
async fn relay(mut client: TcpStream, upstream: &str, rule: &Rule) -> std::io::Result<()> {
    let Some((head, early_body)) = read_head(&mut client).await? else {
        return Ok(());
    };
    if rule.refuses(&head) {
        let answer = format!(
            "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{SLOW_DOWN_BODY}",
            SLOW_DOWN_BODY.len()
        );
        client.write_all(answer.as_bytes()).await?;
        return client.shutdown().await;
    }
    let server = TcpStream::connect(upstream).await?;
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    to_server.write_all(close_after(&head).as_bytes()).await?;
    to_server.write_all(&early_body).await?;
    // The rest of the request body streams while the answer comes back.
    let upload = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut from_client, &mut to_server).await;
    });
    let answer = async {
        let Some((head, early_body)) = read_head(&mut from_server).await? else {
            return Ok(());
        };
        to_client.write_all(close_after(&head).as_bytes()).await?;
        to_client.write_all(&early_body).await?;
        tokio::io::copy(&mut from_server, &mut to_client).await?;
        to_client.shutdown().await
    };
    let result = answer.await;
    upload.abort();
    result
}

/// Reads an HTTP head (up to the blank line): the head without its final
/// blank line, and whatever body bytes came with it. `None` on a connection
/// closed before a request.
async fn read_head(
    stream: &mut (impl AsyncRead + Unpin),
) -> std::io::Result<Option<(String, Vec<u8>)>> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            return Ok(Some((head, buf[end + 4..].to_vec())));
        }
        if buf.len() > 64 * 1024 {
            return Err(std::io::Error::other("HTTP head over 64 KiB"));
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(std::io::ErrorKind::UnexpectedEof.into())
            };
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The head with `Connection: close` instead of any connection management
/// (and without `Expect: 100-continue`, so every answer has a single head).
fn close_after(head: &str) -> String {
    let mut out: String = head
        .split("\r\n")
        .filter(|line| {
            let name = line
                .split(':')
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            !matches!(
                name.trim(),
                "connection" | "keep-alive" | "proxy-connection" | "expect"
            )
        })
        .map(|line| format!("{line}\r\n"))
        .collect();
    out.push_str("Connection: close\r\n\r\n");
    out
}
