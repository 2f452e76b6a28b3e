//! Two real `sori api` processes on one PostgreSQL database: a message sent
//! through one reaches the recipient's socket on the other (LISTEN/NOTIFY),
//! also when it is too large for a notification; presence is shared, and its
//! changes reach a partner's socket on the other process; a socket opened
//! with a ticket from one process closes when its session is revoked
//! through the other.
//!
//! Needs `SORI_TEST_DB=postgres` (and `SORI_TEST_DATABASE_URL`); on SQLite
//! there is only ever one process, so the test says so and returns.

mod common;

use common::client::{Client, Person};
use common::spawn;
use common::ws::{closed_by_server, next_event, Socket};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sori_db::testing::{backend_name, fresh_db};

/// `who`'s event socket on the process at `base`, opened as a browser does:
/// with a ticket asked for on the process at `ticket_from`.
async fn connect(base: &str, ticket_from: &Client, who: &Person) -> Socket {
    let token = Some(who.token.as_str());
    let ticket = ticket_from
        .expect(
            StatusCode::CREATED,
            Method::POST,
            "/v1/ws/ticket",
            token,
            None,
        )
        .await;
    let url = format!(
        "{}/v1/ws?ticket={}",
        base.replace("http://", "ws://"),
        ticket["ticket"].as_str().unwrap()
    );
    tokio_tungstenite::connect_async(url).await.unwrap().0
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

    let api = Client::new(&one.base);
    let alice = api.sign_up("alice").await;
    let bob = api.sign_up("bob").await;
    let body = json!({"user_id": bob.id});
    let token = Some(alice.token.as_str());
    let room = api
        .expect(
            StatusCode::CREATED,
            Method::POST,
            "/v1/chats",
            token,
            Some(body),
        )
        .await;
    let room = room["id"].as_str().unwrap().to_owned();
    let mut alices = connect(&one.base, &api, &alice).await;
    // The ticket is asked for on process one and redeemed on process two.
    let mut bobs = connect(&two.base, &api, &bob).await;

    // Bob's connection on process two is seen by process one: presence is
    // shared, and its change reached alice's socket on process one.
    let online = next_event(&mut alices, "presence").await;
    assert_eq!(online["user_id"], bob.id.as_str());
    assert_eq!(online["online"], true);
    let presence = format!("/v1/users/{}/presence", bob.id);
    let seen = api
        .expect(StatusCode::OK, Method::GET, &presence, token, None)
        .await;
    assert_eq!(seen["online"], true);

    let path = format!("/v1/chats/{room}/messages");
    let send = |body| api.expect(StatusCode::CREATED, Method::POST, &path, token, Some(body));
    let sent = send(json!({"kind": "text", "text": "across processes"})).await;
    let got = next_event(&mut bobs, "message.new").await;
    assert_eq!(got["id"], sent["id"]);
    assert_eq!(got["text"], "across processes");

    // 8000 bytes of text: too large for a notification, read back by id.
    let long = "é".repeat(4000);
    let sent = send(json!({"kind": "text", "text": long})).await;
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
    // Bob logs out through process one: his socket on process two closes.
    let mut bobs = connect(&two.base, &api, &bob).await;
    let bob_token = Some(bob.token.as_str());
    api.expect(
        StatusCode::NO_CONTENT,
        Method::POST,
        "/v1/auth/logout",
        bob_token,
        None,
    )
    .await;
    closed_by_server(&mut bobs).await;
    alices.close(None).await.unwrap();
    one.stop();
    two.stop();
}
