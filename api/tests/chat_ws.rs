//! The event socket over real connections (the router served on a loopback
//! port, clients speaking WebSocket), on the backend `SORI_TEST_DB` names:
//! delivery to every device, read receipts, presence on connect, close and
//! missed pongs, slow consumers dropped, `media.ready`, and authentication.

mod support;

use axum::http::StatusCode;
use futures_util::StreamExt;
use serde_json::{json, Value};
use sori_api::core::realtime::{Event, Realtime, WsConfig};
use sori_pipeline::media::{MediaEvent, MediaState};
use std::time::Duration;
use support::ws::{closed_by_server, next_event, Socket};
use support::{Api, User};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// How long a test waits for something that should happen.
const PATIENCE: Duration = Duration::from_secs(10);

struct Server {
    api: Api,
    addr: std::net::SocketAddr,
}

impl Server {
    /// The app on a loopback port, with `config` for its sockets.
    async fn start(config: WsConfig) -> Self {
        let realtime = Realtime::new(sori_api::core::realtime::Fanout::local(), config);
        let api = Api::with(|state| state.with_realtime(realtime)).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = api.app.clone();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { api, addr }
    }

    async fn quick() -> Self {
        Self::start(WsConfig {
            ping_interval: Duration::from_millis(300),
            pong_timeout: Duration::from_millis(700),
            queue: 256,
        })
        .await
    }

    /// A socket authenticated by the Authorization header.
    async fn connect(&self, who: &User) -> Socket {
        let mut req = format!("ws://{}/v1/ws", self.addr)
            .into_client_request()
            .unwrap();
        let value = format!("Bearer {}", who.token).parse().unwrap();
        req.headers_mut().insert("authorization", value);
        let before = self.live_connections(who).await;
        let (socket, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while self.live_connections(who).await == before {
            assert!(
                tokio::time::Instant::now() < deadline,
                "connection never recorded"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        socket
    }

    /// The user's connections as the presence table records them.
    async fn live_connections(&self, who: &User) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM ws_connections WHERE user_id = $1")
            .bind(&who.id)
            .fetch_one(self.api.t.db.pool())
            .await
            .unwrap()
    }

    /// The upgrade's HTTP status for a URL.
    async fn refused(&self, path_and_query: &str) -> u16 {
        let url = format!("ws://{}{path_and_query}", self.addr);
        match tokio_tungstenite::connect_async(url).await {
            Ok(_) => 101,
            Err(tungstenite::Error::Http(resp)) => resp.status().as_u16(),
            Err(e) => panic!("{e}"),
        }
    }

    async fn presence(&self, of: &User, asked_by: &User) -> Value {
        let r = self
            .api
            .get(&format!("/v1/users/{}/presence", of.id), asked_by)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        r.json
    }

    /// Waits until the presence route says `who` is (not) online.
    async fn wait_online(&self, who: &User, online: bool) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if self.presence(who, who).await["online"] == online {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} never became online={online}",
                who.handle
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn a_message_reaches_every_device_of_both_members() {
    let s = Server::quick().await;
    let (alice, bob, carol) = (
        s.api.user("alice").await,
        s.api.user("bob").await,
        s.api.user("carol").await,
    );
    let room = s.api.room(&alice, &bob).await;
    let mut phone = s.connect(&bob).await;
    let mut laptop = s.connect(&bob).await;
    let mut alices_other_device = s.connect(&alice).await;
    let mut carols = s.connect(&carol).await;
    let id = s.api.text_message(&alice, &room, "hello bob").await;
    for socket in [&mut phone, &mut laptop, &mut alices_other_device] {
        let message = next_event(socket, "message.new").await;
        assert_eq!(message["id"], id.as_str());
        assert_eq!(message["text"], "hello bob");
        assert_eq!(message["room_id"], room.as_str());
    }
    // Bob was online: no push was queued.
    let pushes: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM push_outbox")
        .fetch_one(s.api.t.db.pool())
        .await
        .unwrap();
    assert_eq!(pushes, 0);
    // Carol is not in the room: her next message event is her own room's.
    let carol_room = s.api.room(&carol, &bob).await;
    let own = s.api.text_message(&bob, &carol_room, "hi carol").await;
    assert_eq!(
        next_event(&mut carols, "message.new").await["id"],
        own.as_str()
    );
}

#[tokio::test]
async fn read_receipts_reach_the_sender() {
    let s = Server::quick().await;
    let (alice, bob) = (s.api.user("alice").await, s.api.user("bob").await);
    let room = s.api.room(&alice, &bob).await;
    let mut alices = s.connect(&alice).await;
    let id = s.api.text_message(&alice, &room, "read me").await;
    next_event(&mut alices, "message.new").await;
    let r = s
        .api
        .post(
            &format!("/v1/chats/{room}/read"),
            &bob,
            json!({"message_id": id}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let read = next_event(&mut alices, "message.read").await;
    assert_eq!(read["message_id"], id.as_str());
    assert_eq!(read["user_id"], bob.id.as_str());
    assert_eq!(read["room_id"], room.as_str());
}

#[tokio::test]
async fn presence_follows_the_last_connection_of_a_user() {
    let s = Server::quick().await;
    let (alice, bob) = (s.api.user("alice").await, s.api.user("bob").await);
    s.api.room(&alice, &bob).await;
    assert_eq!(s.presence(&bob, &alice).await["online"], false);
    let mut alices = s.connect(&alice).await;
    let mut phone = s.connect(&bob).await;
    let online = next_event(&mut alices, "presence").await;
    assert_eq!(
        (online["user_id"].as_str(), online["online"].as_bool()),
        (Some(bob.id.as_str()), Some(true))
    );
    let laptop = s.connect(&bob).await;
    phone.close(None).await.unwrap();
    // Still online on the laptop.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.presence(&bob, &alice).await["online"], true);
    drop(laptop);
    let offline = next_event(&mut alices, "presence").await;
    assert_eq!(
        (offline["user_id"].as_str(), offline["online"].as_bool()),
        (Some(bob.id.as_str()), Some(false))
    );
    let now = s.presence(&bob, &alice).await;
    assert_eq!(now["online"], false);
    assert!(now["last_seen"].as_i64().unwrap() > 0);
}

/// Heartbeats are written in batches, off the socket's path: a client that
/// keeps answering pings must stay online for several times its row's
/// expiry, and its user's `last_seen` must move with the heartbeats.
#[tokio::test]
async fn a_client_that_answers_pings_stays_online_past_its_expiry() {
    let s = Server::quick().await;
    let alice = s.api.user("alice").await;
    let mut socket = s.connect(&alice).await;
    s.wait_online(&alice, true).await;
    let first_seen = s.presence(&alice, &alice).await["last_seen"].as_i64();
    let ttl = s.api.state.realtime.config.presence_ttl();
    // Reading answers the server's pings.
    let reader = tokio::spawn(async move { while let Some(Ok(_)) = socket.next().await {} });
    for _ in 0..3 {
        tokio::time::sleep(ttl).await;
        assert_eq!(s.presence(&alice, &alice).await["online"], true);
    }
    let last_seen = s.presence(&alice, &alice).await["last_seen"].as_i64();
    assert!(last_seen > first_seen, "{last_seen:?} after {first_seen:?}");
    reader.abort();
}

#[tokio::test]
async fn a_client_that_stops_answering_pings_goes_offline() {
    let s = Server::quick().await;
    let (alice, bob) = (s.api.user("alice").await, s.api.user("bob").await);
    s.api.room(&alice, &bob).await;
    let mut alices = s.connect(&alice).await;
    // Bob's socket is never read, so his client never answers a ping.
    let mut silent = s.connect(&bob).await;
    let offline = next_event(&mut alices, "presence").await;
    let offline = if offline["online"] == true {
        next_event(&mut alices, "presence").await
    } else {
        offline
    };
    assert_eq!(
        (offline["user_id"].as_str(), offline["online"].as_bool()),
        (Some(bob.id.as_str()), Some(false))
    );
    s.wait_online(&bob, false).await;
    // Alice kept answering (her reads answer pings) over several intervals.
    assert_eq!(s.presence(&alice, &bob).await["online"], true);
    closed_by_server(&mut silent).await;
}

#[tokio::test]
async fn a_client_that_does_not_read_is_dropped_when_its_queue_fills() {
    let s = Server::start(WsConfig {
        ping_interval: Duration::from_secs(60),
        pong_timeout: Duration::from_secs(60),
        queue: 8,
    })
    .await;
    let bob = s.api.user("bob").await;
    let mut slow = s.connect(&bob).await;
    let hub = &s.api.state.realtime.hub;
    assert_eq!(hub.connections(&bob.id), 1);
    let big = Event::new("test.big", json!("x".repeat(256 * 1024)));
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while hub.connections(&bob.id) > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slow client was never dropped"
        );
        hub.deliver(std::slice::from_ref(&bob.id), &big);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    s.wait_online(&bob, false).await;
    closed_by_server(&mut slow).await;
}

#[tokio::test]
async fn the_owner_hears_when_media_is_ready() {
    let s = Server::quick().await;
    let alice = s.api.user("alice").await;
    let mut socket = s.connect(&alice).await;
    let media = s.api.media(&alice, "ready").await;
    s.api.state.media_events.publish(MediaEvent {
        media_id: media.clone(),
        owner_id: alice.id.clone(),
        state: MediaState::Ready,
    });
    let ready = next_event(&mut socket, "media.ready").await;
    assert_eq!(ready["media_id"], media.as_str());
    assert_eq!(ready["state"], "ready");
}

#[tokio::test]
async fn follows_likes_comments_and_mentions_arrive_as_notifications() {
    let s = Server::quick().await;
    let alice = s.api.user("alice").await;
    let bob = s.api.user("bob").await;
    let post = s.api.ready_post(&alice).await;
    let mut socket = s.connect(&alice).await;

    s.api.follow(&bob, &alice).await;
    let follow = next_event(&mut socket, "notification").await;
    assert_eq!(
        (follow["kind"].as_str(), follow["actor_id"].as_str()),
        (Some("follow"), Some(bob.id.as_str()))
    );

    s.api.put(&format!("/v1/posts/{post}/like"), &bob).await;
    let like = next_event(&mut socket, "notification").await;
    assert_eq!(
        (like["kind"].as_str(), like["post_id"].as_str()),
        (Some("like"), Some(post.as_str()))
    );

    let carol = s.api.user("carol").await;
    let mut carols = s.connect(&carol).await;
    let path = format!("/v1/posts/{post}/comments");
    s.api
        .post(&path, &bob, json!({"text": "nice, @carol"}))
        .await;
    let comment = next_event(&mut socket, "notification").await;
    assert_eq!(comment["kind"], "comment");
    let mention = next_event(&mut carols, "notification").await;
    assert_eq!(mention["kind"], "mention");
    assert_eq!(mention["comment_id"], comment["comment_id"]);

    // The same list the REST route gives, newest first.
    let listed = s.api.get("/v1/notifications", &alice).await.json;
    assert_eq!(listed["items"][2]["id"], follow["id"]);
    assert_eq!(listed["unread_count"], 3);
}

#[tokio::test]
async fn the_token_may_come_in_the_query_and_a_bad_one_is_refused() {
    let s = Server::quick().await;
    let alice = s.api.user("alice").await;
    assert_eq!(s.refused("/v1/ws").await, 401);
    assert_eq!(s.refused("/v1/ws?token=not-a-token").await, 401);
    let fake = "A".repeat(43);
    assert_eq!(s.refused(&format!("/v1/ws?token={fake}")).await, 401);
    let url = format!("ws://{}/v1/ws?token={}", s.addr, alice.token);
    let (_socket, resp) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(resp.status().as_u16(), 101);
    s.wait_online(&alice, true).await;
}
