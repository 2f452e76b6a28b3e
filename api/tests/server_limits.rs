//! The server's bounds on slow and silent clients, over real TCP: a
//! half-sent request head, a silent connection, a trickled body, a stalled
//! connection, and the connection cap. Timings are generous multiples of
//! the configured limits (these machines are shared), and each bound is
//! also checked from below so a test cannot pass by dropping everything.

mod support;

use axum::http::Method;
use sori_api::core::http::HttpConfig;
use sori_api::core::server::ServerLimits;
use sori_api::serve_router;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::Api;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The app served on a loopback port with `limits` and a `request_timeout`.
async fn serve(limits: ServerLimits, request_timeout: Duration) -> (Api, SocketAddr) {
    let config = HttpConfig::default().with_request_timeout(request_timeout);
    let api = Api::with_http(&config, |s| s).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = api.app.clone();
    tokio::spawn(serve_router(listener, app, limits, std::future::pending()));
    (api, addr)
}

fn limits(header: u64, idle: u64, max_connections: usize) -> ServerLimits {
    ServerLimits {
        header_timeout: Duration::from_secs(header),
        idle_timeout: Duration::from_secs(idle),
        max_connections,
    }
}

/// Reads until the server closes the connection (or 10 s pass); what it
/// sent and how long it took.
async fn until_closed(stream: &mut TcpStream) -> (String, Duration) {
    let started = Instant::now();
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the server kept the connection open");
    (
        String::from_utf8_lossy(&got).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test]
async fn a_half_sent_head_is_dropped_within_the_header_timeout() {
    let (_api, addr) = serve(limits(1, 60, 100), Duration::from_secs(30)).await;
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: sori\r\nX-Slow: ")
        .await
        .unwrap();
    let (answer, took) = until_closed(&mut half).await;
    assert!(!answer.contains("200 OK"), "{answer}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    // A client that says nothing at all goes the same way.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let (_, took) = until_closed(&mut silent).await;
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    // A prompt client is served.
    let mut ok = TcpStream::connect(addr).await.unwrap();
    ok.write_all(b"GET /healthz HTTP/1.1\r\nHost: sori\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (answer, _) = until_closed(&mut ok).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn a_trickled_body_gets_408_after_the_request_timeout() {
    let (_api, addr) = serve(limits(30, 60, 100), Duration::from_secs(1)).await;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    let head = "POST /v1/auth/login HTTP/1.1\r\nHost: sori\r\nContent-Type: application/json\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{\"handle\":";
    slow.write_all(head.as_bytes()).await.unwrap();
    let (answer, took) = until_closed(&mut slow).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request-timeout"), "{answer}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[tokio::test]
async fn a_connection_where_nothing_moves_is_closed_after_the_idle_timeout() {
    // The request timeout is long; the idle timeout ends the stalled body first.
    let (_api, addr) = serve(limits(30, 1, 100), Duration::from_secs(30)).await;
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    let head = "POST /v1/auth/login HTTP/1.1\r\nHost: sori\r\nContent-Type: application/json\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{";
    stalled.write_all(head.as_bytes()).await.unwrap();
    let (answer, took) = until_closed(&mut stalled).await;
    assert!(answer.is_empty(), "{answer}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[tokio::test]
async fn past_the_connection_cap_clients_wait_for_a_free_slot() {
    let (api, addr) = serve(limits(30, 60, 2), Duration::from_secs(30)).await;
    let first = TcpStream::connect(addr).await.unwrap();
    let second = TcpStream::connect(addr).await.unwrap();
    // Let the server accept both before the third arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = TcpStream::connect(addr).await.unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: sori\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(700), third.read(&mut buf)).await;
    assert!(early.is_err(), "answered past the cap");
    drop(first);
    let (answer, _) = until_closed(&mut third).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(second);
    // The router behind it is the usual one.
    let r = api
        .call(Method::GET, "/healthz", None, serde_json::Value::Null)
        .await;
    assert!(r.status.is_success());
}
