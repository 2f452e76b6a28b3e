//! Two real `sori api` processes on one PostgreSQL database: a message sent
//! through one reaches the recipient's socket on the other (LISTEN/NOTIFY),
//! also when it is too large for a notification; presence is shared, and its
//! changes reach a partner's socket on the other process.
//!
//! Needs `SORI_TEST_DB=postgres` (and `SORI_TEST_DATABASE_URL`); on SQLite
//! there is only ever one process, so the test says so and returns.

mod common;

use common::spawn;
use futures_util::StreamExt;
use serde_json::{json, Value};
use sori_pipeline::db::testing::{backend_name, fresh_db};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const PATIENCE: Duration = Duration::from_secs(15);

struct Person {
    id: String,
    token: String,
}

async fn call(base: &str, method: &str, path: &str, token: Option<&str>, body: Value) -> Value {
    let client = reqwest::Client::new();
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = client.request(method, format!("{base}{path}"));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if !body.is_null() {
        req = req.json(&body);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let json: Value = resp.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{path}: {status} {json}");
    json
}

async fn sign_up(base: &str, handle: &str) -> Person {
    let body = json!({"handle": handle, "password": "correct horse", "display_name": handle});
    let r = call(base, "POST", "/v1/auth/signup", None, body).await;
    Person {
        id: r["user_id"].as_str().unwrap().to_owned(),
        token: r["token"].as_str().unwrap().to_owned(),
    }
}

async fn connect(base: &str, who: &Person) -> Socket {
    let url = format!(
        "{}/v1/ws?token={}",
        base.replace("http://", "ws://"),
        who.token
    );
    tokio_tungstenite::connect_async(url).await.unwrap().0
}

async fn next_event(socket: &mut Socket, kind: &str) -> Value {
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
    tokio::time::timeout(PATIENCE, wait)
        .await
        .unwrap_or_else(|_| panic!("no {kind} event"))
}

#[tokio::test]
async fn a_message_sent_to_one_process_reaches_a_socket_on_another() {
    if backend_name() != "postgres" {
        eprintln!(
            "chat_two_process: skipped, it needs SORI_TEST_DB=postgres (SQLite runs one process)"
        );
        return;
    }
    let t = fresh_db().await;
    let dir = tempfile::tempdir().unwrap();
    let envs = |name: &str| {
        let data = dir.path().join(name).display().to_string();
        vec![
            ("DATABASE_URL".to_owned(), t.url.clone()),
            ("SORI_DATA_DIR".to_owned(), data),
            ("SORI_WS_PING_SECS".to_owned(), "1".to_owned()),
            ("SORI_WS_PONG_TIMEOUT_SECS".to_owned(), "2".to_owned()),
        ]
    };
    let mut one = spawn(dir.path(), &["api"], &envs("one"));
    let mut two = spawn(dir.path(), &["api"], &envs("two"));
    one.wait_ready().await;
    two.wait_ready().await;

    let alice = sign_up(&one.base, "alice").await;
    let bob = sign_up(&one.base, "bob").await;
    let room = call(
        &one.base,
        "POST",
        "/v1/chats",
        Some(&alice.token),
        json!({"user_id": bob.id}),
    )
    .await;
    let room = room["id"].as_str().unwrap().to_owned();
    let mut alices = connect(&one.base, &alice).await;
    let mut bobs = connect(&two.base, &bob).await;

    // Bob's connection on process two is seen by process one: presence is
    // shared, and its change reached alice's socket on process one.
    let online = next_event(&mut alices, "presence").await;
    assert_eq!(online["user_id"], bob.id.as_str());
    assert_eq!(online["online"], true);
    let presence = format!("/v1/users/{}/presence", bob.id);
    assert_eq!(
        call(&one.base, "GET", &presence, Some(&alice.token), Value::Null).await["online"],
        true
    );

    let path = format!("/v1/chats/{room}/messages");
    let body = json!({"kind": "text", "text": "across processes"});
    let sent = call(&one.base, "POST", &path, Some(&alice.token), body).await;
    let got = next_event(&mut bobs, "message.new").await;
    assert_eq!(got["id"], sent["id"]);
    assert_eq!(got["text"], "across processes");

    // 8000 bytes of text: too large for a notification, read back by id.
    let long = "é".repeat(4000);
    let body = json!({"kind": "text", "text": long});
    let sent = call(&one.base, "POST", &path, Some(&alice.token), body).await;
    let got = next_event(&mut bobs, "message.new").await;
    assert_eq!(got["id"], sent["id"]);
    assert_eq!(got["text"].as_str().unwrap(), long);

    // Bob leaves process two: alice hears it on process one.
    bobs.close(None).await.unwrap();
    let offline = next_event(&mut alices, "presence").await;
    assert_eq!(
        (offline["user_id"].as_str(), offline["online"].as_bool()),
        (Some(bob.id.as_str()), Some(false))
    );
    alices.close(None).await.unwrap();
    one.stop();
    two.stop();
}
