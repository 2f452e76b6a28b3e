//! The event socket over real connections (the router served on a loopback
//! port, clients speaking WebSocket), on the backend `SORI_TEST_DB` names:
//! delivery to every device, read receipts, presence on connect, close and
//! missed pongs, slow consumers dropped, `media.ready`, notifications (not
//! of a kind kept out of the inbox) and announcements, and authentication.

mod support;

use axum::http::{Method, StatusCode};
use futures_util::StreamExt;
use serde_json::{json, Value};
use sori_api::core::realtime::{Event, Fanout, Realtime, WsConfig};
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
        Self::serve(|_| Realtime::new(Fanout::local(), config)).await
    }

    /// The app on a loopback port, with the real-time plumbing `realtime`
    /// makes for its database.
    async fn serve(realtime: impl FnOnce(&sori_db::Db) -> Realtime) -> Self {
        let api = Api::with(|state| {
            let realtime = realtime(&state.db);
            state.with_realtime(realtime)
        })
        .await;
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

/// `/metrics` counts this process's open sockets and times each event from
/// its publication to its hand-off to them.
#[tokio::test]
async fn open_sockets_and_delivery_latency_are_metrics() {
    let s = Server::quick().await;
    let (alice, bob) = (s.api.user("alice").await, s.api.user("bob").await);
    let room = s.api.room(&alice, &bob).await;
    assert_eq!(s.api.metric("sori_ws_connections"), 0.0);
    let mut phone = s.connect(&bob).await;
    let laptop = s.connect(&bob).await;
    assert_eq!(s.api.metric("sori_ws_connections"), 2.0);
    let before = s.api.metric("sori_ws_delivery_seconds_count");
    s.api.text_message(&alice, &room, "hello").await;
    next_event(&mut phone, "message.new").await;
    s.api
        .metric_until("sori_ws_delivery_seconds_count", |n| n >= before + 1.0)
        .await;
    let seconds = s.api.metric("sori_ws_delivery_seconds_sum");
    assert!((0.0..5.0).contains(&seconds), "{seconds}");
    drop(laptop);
    s.api
        .metric_until("sori_ws_connections", |n| n == 1.0)
        .await;
}

/// An edit and an unsend reach every device of both members.
#[tokio::test]
async fn edits_and_unsends_reach_every_device_of_both_members() {
    let s = Server::quick().await;
    let (alice, bob) = (s.api.user("alice").await, s.api.user("bob").await);
    let room = s.api.room(&alice, &bob).await;
    let mut sockets = [
        s.connect(&bob).await,
        s.connect(&bob).await,
        s.connect(&alice).await,
    ];
    let id = s.api.text_message(&alice, &room, "helo").await;
    let path = format!("/v1/chats/{room}/messages/{id}");
    let body = json!({"text": "hello"});
    let r = s
        .api
        .call(Method::PATCH, &path, Some(&alice.token), body)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    for socket in &mut sockets {
        let edited = next_event(socket, "message.edited").await;
        assert_eq!(edited["id"], id.as_str());
        assert_eq!(edited["text"], "hello");
        assert!(edited["edited_at"].as_i64().is_some());
    }
    let r = s.api.delete(&path, &alice).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.json);
    for socket in &mut sockets {
        let deleted = next_event(socket, "message.deleted").await;
        assert_eq!(deleted, json!({"room_id": room, "id": id}));
    }
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
async fn hiding_presence_tells_partners_offline_and_showing_it_tells_the_truth() {
    let s = Server::quick().await;
    let (alice, bob) = (s.api.user("alice").await, s.api.user("bob").await);
    s.api.room(&alice, &bob).await;
    let mut alices = s.connect(&alice).await;
    let _bobs = s.connect(&bob).await;
    let online = next_event(&mut alices, "presence").await;
    assert_eq!(online["online"], true);

    let r = s
        .api
        .patch("/v1/me", &bob, json!({"show_presence": false}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let hidden = next_event(&mut alices, "presence").await;
    assert_eq!(
        (&hidden["user_id"], &hidden["online"], &hidden["last_seen"]),
        (&json!(bob.id), &json!(false), &Value::Null)
    );
    s.api
        .patch("/v1/me", &bob, json!({"show_presence": true}))
        .await;
    let shown = next_event(&mut alices, "presence").await;
    assert_eq!(
        (&shown["user_id"], &shown["online"]),
        (&json!(bob.id), &json!(true))
    );
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

/// The next event on `socket` (`type` and `data`), whatever it is.
async fn next_any(socket: &mut Socket) -> Value {
    let wait = async {
        loop {
            match socket.next().await {
                Some(Ok(tungstenite::Message::Text(text))) => {
                    return serde_json::from_str(text.as_str()).unwrap();
                }
                Some(Ok(_)) => {}
                other => panic!("socket ended waiting for an event: {other:?}"),
            }
        }
    };
    tokio::time::timeout(PATIENCE, wait)
        .await
        .expect("no event")
}

#[tokio::test]
async fn presence_is_not_told_across_a_block() {
    let s = Server::quick().await;
    let (alice, bob, carol) = (
        s.api.user("alice").await,
        s.api.user("bob").await,
        s.api.user("carol").await,
    );
    s.api.room(&alice, &bob).await;
    s.api.room(&alice, &carol).await;
    let bob_carol = s.api.room(&bob, &carol).await;
    s.api.block(&bob, &alice).await;
    let mut carols = s.connect(&carol).await;
    let mut bobs = s.connect(&bob).await;
    // Carol hears of Bob's connection; drain it so Alice's is next.
    next_event(&mut carols, "presence").await;
    let _alices = s.connect(&alice).await;
    let told = next_event(&mut carols, "presence").await;
    assert_eq!(told["user_id"], alice.id.as_str());
    // Bob blocked Alice: up to Carol's message his socket carries no presence
    // of Alice (Carol's own may arrive, her connection raced his).
    s.api.text_message(&carol, &bob_carol, "hi bob").await;
    loop {
        let event = next_any(&mut bobs).await;
        if event["type"] == "message.new" {
            break;
        }
        assert_ne!(event["data"]["user_id"], alice.id.as_str(), "{event}");
    }
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
async fn a_kind_kept_out_of_the_inbox_is_not_told_and_an_announcement_is() {
    let s = Server::quick().await;
    let alice = s.api.user("alice").await;
    let bob = s.api.user("bob").await;
    let admin = s.api.user("root").await;
    s.api.make_admin(&admin).await;
    let post = s.api.ready_post(&alice).await;
    let off = json!({"like": {"inbox": false}});
    assert_eq!(
        s.api.notification_settings(&alice, off).await.status,
        StatusCode::OK
    );
    let mut socket = s.connect(&alice).await;

    // Her like switch is off: the follow after the like is the first event.
    s.api.put(&format!("/v1/posts/{post}/like"), &bob).await;
    s.api.follow(&bob, &alice).await;
    let first = next_event(&mut socket, "notification").await;
    assert_eq!(first["kind"], "follow");

    let r = s
        .api
        .post(
            "/v1/admin/announcements",
            &admin,
            json!({"text": "Maintenance at 3"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let told = next_event(&mut socket, "notification").await;
    assert_eq!(told["kind"], "announcement");
    let listed = s.api.get("/v1/notifications", &alice).await.json;
    assert_eq!(listed["items"][0]["id"], told["id"]);
    assert_eq!(listed["items"][0]["body"]["text"], "Maintenance at 3");
    // Connected, she is told live and not pushed.
    let pushed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM push_outbox WHERE user_id = $1")
        .bind(&alice.id)
        .fetch_one(s.api.t.db.pool())
        .await
        .unwrap();
    assert_eq!(pushed, 0);
}

/// A ticket for `who` from `POST /v1/ws/ticket`.
async fn ticket(s: &Server, who: &User) -> String {
    let r = s.api.post("/v1/ws/ticket", who, Value::Null).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    r.json["ticket"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn browsers_open_the_socket_with_a_single_use_ticket_not_the_token() {
    let s = Server::quick().await;
    let alice = s.api.user("alice").await;
    assert_eq!(s.refused("/v1/ws").await, 401);
    // The bearer token is not accepted in the URL.
    assert_eq!(
        s.refused(&format!("/v1/ws?token={}", alice.token)).await,
        401
    );
    assert_eq!(s.refused("/v1/ws?ticket=not-a-ticket").await, 401);
    let first = ticket(&s, &alice).await;
    let url = format!("ws://{}/v1/ws?ticket={first}", s.addr);
    let (_socket, resp) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(resp.status().as_u16(), 101);
    s.wait_online(&alice, true).await;
    // Used once: refused the second time.
    assert_eq!(s.refused(&format!("/v1/ws?ticket={first}")).await, 401);
    // Expired.
    let old = ticket(&s, &alice).await;
    sqlx::query("UPDATE ws_tickets SET expires_at = 1")
        .execute(s.api.t.db.pool())
        .await
        .unwrap();
    assert_eq!(s.refused(&format!("/v1/ws?ticket={old}")).await, 401);
    // Issued to a session that has since ended.
    let orphan = ticket(&s, &alice).await;
    let r = s.api.post("/v1/auth/logout", &alice, Value::Null).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(s.refused(&format!("/v1/ws?ticket={orphan}")).await, 401);
}

#[tokio::test]
async fn ending_a_session_by_id_or_deleting_the_account_closes_its_sockets() {
    let s = Server::quick().await;
    let alice = s.api.user("alice").await;
    let login = json!({"handle": "alice", "password": "correct horse"});
    let other = s
        .api
        .call(Method::POST, "/v1/auth/login", None, login)
        .await;
    let phone = User {
        id: alice.id.clone(),
        handle: alice.handle.clone(),
        token: other.json["token"].as_str().unwrap().to_owned(),
    };
    let mut tablet_socket = s.connect(&alice).await;
    let mut phone_socket = s.connect(&phone).await;
    // The phone's session, ended from the tablet's "where you're logged in".
    let sessions = s.api.get("/v1/me/sessions", &alice).await;
    let phone_session = sessions.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["current"] == false)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = s
        .api
        .delete(&format!("/v1/me/sessions/{phone_session}"), &alice)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    closed_by_server(&mut phone_socket).await;
    // Deleting the account closes the rest.
    let r = s.api.delete_account(&alice).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json);
    closed_by_server(&mut tablet_socket).await;
}

#[tokio::test]
async fn ending_a_session_closes_its_sockets_and_unregisters_its_devices() {
    let s = Server::quick().await;
    let alice = s.api.user("alice").await;
    // A second session of the same person, on another phone.
    let login = json!({"handle": "alice", "password": "correct horse"});
    let other = s
        .api
        .call(Method::POST, "/v1/auth/login", None, login)
        .await;
    let other_token = other.json["token"].as_str().unwrap().to_owned();
    let phone = User {
        id: alice.id.clone(),
        handle: alice.handle.clone(),
        token: other_token,
    };
    let device = json!({"platform": "webhook", "push_token": "tok-a"});
    let r = s
        .api
        .call(
            Method::PUT,
            "/v1/me/devices/tablet",
            Some(&alice.token),
            device,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let device = json!({"platform": "webhook", "push_token": "tok-b"});
    let r = s
        .api
        .call(
            Method::PUT,
            "/v1/me/devices/phone",
            Some(&phone.token),
            device,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let mut tablet_socket = s.connect(&alice).await;
    let mut phone_socket = s.connect(&phone).await;

    let r = s.api.post("/v1/auth/logout", &alice, Value::Null).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    closed_by_server(&mut tablet_socket).await;
    // The other session's socket and device stay.
    let devices = s.api.get("/v1/me/devices", &phone).await;
    let ids: Vec<&str> = devices.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["phone"]);
    let bob = s.api.user("bob").await;
    let room = s.api.room(&bob, &phone).await;
    s.api.text_message(&bob, &room, "still here?").await;
    let event = next_event(&mut phone_socket, "message.new").await;
    assert_eq!(event["text"], "still here?");
}

#[tokio::test]
async fn a_socket_refused_for_a_down_event_listener_does_not_echo_the_database_error() {
    // Events between processes through a PostgreSQL server that is not there.
    let url = "postgres://sori:hunter2hunter2@127.0.0.1:9/events";
    let s =
        Server::serve(|db| Realtime::new(Fanout::postgres(db.clone(), url), WsConfig::default()))
            .await;
    let alice = s.api.user("alice").await;
    let ticket = ticket(&s, &alice).await;
    let url = format!("ws://{}/v1/ws?ticket={ticket}", s.addr);
    let Err(tungstenite::Error::Http(resp)) = tokio_tungstenite::connect_async(url).await else {
        panic!("the socket opened without its event listener");
    };
    assert_eq!(resp.status().as_u16(), 503);
    let body = String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).into_owned();
    assert!(body.contains("real-time events are unavailable"), "{body}");
    for leak in ["127.0.0.1", "hunter2", "refused", "error"] {
        assert!(!body.to_lowercase().contains(leak), "{leak} in {body}");
    }
}

#[tokio::test]
async fn an_oversized_frame_is_refused_at_its_header_not_buffered() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Default pings (20 s): only the frame limit can end this socket soon.
    let s = Server::start(WsConfig::default()).await;
    let alice = s.api.user("alice").await;
    let mut socket = s.connect(&alice).await;
    let tokio_tungstenite::MaybeTlsStream::Plain(tcp) = socket.get_mut() else {
        panic!("a plain connection");
    };
    // A masked binary frame announcing 10 MiB, then only its first bytes.
    let mut frame = vec![0x82, 0xFF];
    frame.extend_from_slice(&(10u64 << 20).to_be_bytes());
    frame.extend_from_slice(&[1, 2, 3, 4]);
    frame.extend_from_slice(&[0; 1024]);
    tcp.write_all(&frame).await.unwrap();
    let drained = async {
        let mut buf = [0u8; 4096];
        while matches!(tcp.read(&mut buf).await, Ok(n) if n > 0) {}
    };
    tokio::time::timeout(Duration::from_secs(3), drained)
        .await
        .expect("the server waited for the 10 MiB frame instead of refusing it");
}

#[tokio::test]
async fn a_user_holds_at_most_the_socket_cap_across_processes() {
    use sori_api::core::limits::MAX_SOCKETS_PER_USER;
    let s = Server::quick().await;
    let (alice, bob) = (s.api.user("alice").await, s.api.user("bob").await);
    // Alice's live sockets on other processes, as their rows record them.
    let until = sori_pipeline::clock::now_ms() + 60_000;
    for n in 0..MAX_SOCKETS_PER_USER {
        sqlx::query(
            "INSERT INTO ws_connections (id, user_id, expires_at, created_at) VALUES ($1, $2, $3, 0)",
        )
        .bind(format!("elsewhere-{n}"))
        .bind(&alice.id)
        .bind(until)
        .execute(s.api.t.db.pool())
        .await
        .unwrap();
    }
    let alices = format!("/v1/ws?ticket={}", ticket(&s, &alice).await);
    assert_eq!(s.refused(&alices).await, 429);
    // Bob is not affected.
    let bobs = format!("/v1/ws?ticket={}", ticket(&s, &bob).await);
    assert_eq!(s.refused(&bobs).await, 101);
}
