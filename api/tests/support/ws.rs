//! Reading the event socket as a client does: the next event of a type,
//! or the server closing the socket. Shared with the end-to-end tests of
//! the `sori` binary (they include this file), so both read events alike.

use futures_util::StreamExt;
use serde_json::Value;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A client's end of the event socket.
pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a test waits for an event that should come.
pub const EVENT_PATIENCE: Duration = Duration::from_secs(15);

/// The `data` of the next event of type `kind` (others are skipped); fails
/// after [`EVENT_PATIENCE`] or when the socket ends.
pub async fn next_event(socket: &mut Socket, kind: &str) -> Value {
    let wait = async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => {
                    let event: Value = serde_json::from_str(text.as_str()).unwrap();
                    if event["type"] == kind {
                        return event["data"].clone();
                    }
                }
                Some(Ok(_)) => {}
                other => panic!("socket ended waiting for {kind}: {other:?}"),
            }
        }
    };
    tokio::time::timeout(EVENT_PATIENCE, wait)
        .await
        .unwrap_or_else(|_| panic!("no {kind} event"))
}

/// Reads until the server closes the socket; fails after [`EVENT_PATIENCE`].
pub async fn closed_by_server(socket: &mut Socket) {
    let wait = async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            }
        }
    };
    tokio::time::timeout(EVENT_PATIENCE, wait)
        .await
        .expect("the server never closed the socket");
}
