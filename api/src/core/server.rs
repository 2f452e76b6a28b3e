//! The HTTP server loop: accepts TCP connections up to a cap and serves
//! each with hyper (HTTP/1.1 with upgrades for WebSockets, and HTTP/2),
//! bounding how long a slow or silent client can hold a socket:
//!
//! - the request head must arrive within [`ServerLimits::header_timeout`]
//!   (hyper's header read timeout; it also runs while an HTTP/1.1
//!   connection waits idle for its next request, so a load balancer's idle
//!   timeout towards Sori must be shorter);
//! - a connection on which no byte moves either way for
//!   [`ServerLimits::idle_timeout`] is closed (a stalled upload or download,
//!   an idle HTTP/2 connection); WebSockets have their own ping deadline;
//! - at most [`ServerLimits::max_connections`] are open (WebSockets
//!   included): past that the server stops accepting and new clients wait
//!   in the kernel's backlog.
//!
//! The time a request may take is bounded per route by
//! [`crate::core::http::time_limit`] and the blob upload's own deadline.

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt;

/// How long clients may take, and how many may be connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Time for a request's head to arrive (`SORI_HEADER_TIMEOUT_SECS`).
    pub header_timeout: Duration,
    /// Time without a byte read or written before a connection is closed
    /// (`SORI_IDLE_TIMEOUT_SECS`).
    pub idle_timeout: Duration,
    /// Connections open at once (`SORI_MAX_CONNECTIONS`).
    pub max_connections: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            max_connections: 10_000,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets the
/// open connections finish their requests (the caller bounds how long).
/// Requests carry the peer's address as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            accepted = accept(&listener, &slots) => accepted,
        };
        let Some((stream, peer, slot)) = accepted else {
            continue;
        };
        tracing::trace!(%peer, "connection accepted");
        let io = TokioIo::new(Watched::new(stream, slot));
        let activity = io.inner().activity.clone();
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(req)
        });
        let connection = builder
            .serve_connection_with_upgrades(io, service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            tokio::select! {
                result = connection => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, %peer, "connection ended with an error");
                    }
                }
                _ = activity.stalled(limits.header_timeout, limits.idle_timeout) => {
                    tracing::debug!(%peer, "idle connection closed");
                }
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// The next connection, once a slot is free. Accept errors (out of file
/// descriptors, a connection reset before it was accepted) are logged and
/// slowed down, never fatal.
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> Option<(TcpStream, SocketAddr, OwnedSemaphorePermit)> {
    let slot = slots.clone().acquire_owned().await.ok()?;
    match listener.accept().await {
        Ok((stream, peer)) => Some((stream, peer, slot)),
        Err(e) => {
            tracing::warn!(error = %e, "cannot accept a connection");
            tokio::time::sleep(Duration::from_millis(50)).await;
            None
        }
    }
}

/// When a connection last moved a byte, in milliseconds since it opened
/// (0: nothing yet).
struct Activity {
    opened: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let ms = (self.opened.elapsed().as_millis() as u64).max(1);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Resolves once no byte has moved for `idle`, or none at all within
    /// `first_byte` of opening: a client that connects and says nothing
    /// never reaches hyper's header timeout, as the protocol detection
    /// (HTTP/1.1 or HTTP/2) waits for its first bytes without one.
    async fn stalled(&self, first_byte: Duration, idle: Duration) {
        loop {
            let last_ms = self.last_ms.load(Ordering::Relaxed);
            let limit = if last_ms == 0 { first_byte } else { idle };
            let deadline = self.opened + Duration::from_millis(last_ms) + limit;
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            // Looked at again within `idle`: the first byte shortens the wait.
            tokio::time::sleep_until(deadline.min(now + idle)).await;
        }
    }
}

/// A TCP stream that records when bytes last moved on it, holding its
/// connection slot until it is dropped (after an upgrade, when the
/// WebSocket closes).
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
    _slot: OwnedSemaphorePermit,
}

impl Watched {
    fn new(stream: TcpStream, slot: OwnedSemaphorePermit) -> Self {
        let activity = Activity {
            opened: Instant::now(),
            last_ms: AtomicU64::new(0),
        };
        Self {
            stream,
            activity: Arc::new(activity),
            _slot: slot,
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
