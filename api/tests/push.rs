//! Push to offline users: the device routes, and the dispatcher delivering
//! the outbox to a real webhook receiver on 127.0.0.1 that fails, hangs,
//! refuses and recovers.

mod support;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use serde_json::{json, Value};
use sori_api::effects::push::enqueue;
use sori_api::push::dispatch::Pass;
use sori_api::push::{DispatchConfig, Dispatcher, WebhookSender};
use sori_db::Db;
use sori_pipeline::clock::now_ms;
use sqlx::Row;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{assert_problem, Api, User};

/// A Standard Webhooks secret, as its libraries generate them.
const SECRET: &str = "whsec_dGVzdCB3ZWJob29rIHNlY3JldCBieXRlcw==";
const TIMEOUT: Duration = Duration::from_millis(300);

// ---------------------------------------------------------------- devices

async fn put_device(api: &Api, who: &User, id: &str, body: Value) -> support::Reply {
    let path = format!("/v1/me/devices/{id}");
    api.call(Method::PUT, &path, Some(&who.token), body).await
}

async fn device_tokens(api: &Api, who: &User) -> Vec<(String, String, String)> {
    let r = api.get("/v1/me/devices", who).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    r.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let s = |k: &str| d[k].as_str().unwrap().to_owned();
            (s("device_id"), s("platform"), s("push_token"))
        })
        .collect()
}

#[tokio::test]
async fn device_routes_need_a_token() {
    let api = Api::new().await;
    let body = json!({"platform": "fcm", "push_token": "t"});
    let r = api.call(Method::PUT, "/v1/me/devices/d1", None, body).await;
    assert_problem(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    let r = api
        .call(Method::DELETE, "/v1/me/devices/d1", None, Value::Null)
        .await;
    assert_problem(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    let r = api
        .call(Method::GET, "/v1/me/devices", None, Value::Null)
        .await;
    assert_problem(&r, StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn bad_device_fields_are_named() {
    let api = Api::new().await;
    let mina = api.user("mina").await;
    let cases = [
        (
            "d1",
            json!({"platform": "apns", "push_token": "t"}),
            "platform",
        ),
        (
            "d1",
            json!({"platform": "fcm", "push_token": ""}),
            "push_token",
        ),
        (
            "d1",
            json!({"platform": "fcm", "push_token": "a b"}),
            "push_token",
        ),
        ("d1", json!({"platform": "fcm"}), "push_token"),
        (
            "d1",
            json!({"platform": "fcm", "push_token": "t", "x": 1}),
            "x",
        ),
        (
            &*"d".repeat(65),
            json!({"platform": "fcm", "push_token": "t"}),
            "device_id",
        ),
        (
            "bad!id",
            json!({"platform": "fcm", "push_token": "t"}),
            "device_id",
        ),
    ];
    for (id, body, field) in cases {
        let r = put_device(&api, &mina, id, body.clone()).await;
        assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
        assert_eq!(r.json["errors"][0]["field"], field, "{id} {body}");
    }
    assert!(device_tokens(&api, &mina).await.is_empty());
}

#[tokio::test]
async fn a_device_is_upserted_listed_and_deleted() {
    let api = Api::new().await;
    let mina = api.user("mina").await;
    let joon = api.user("joon").await;
    let r = put_device(
        &api,
        &mina,
        "phone",
        json!({"platform": "fcm", "push_token": "t1"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["device_id"], "phone");
    assert_eq!(r.json["platform"], "fcm");
    let again = json!({"platform": "webhook", "push_token": "t2"});
    assert_eq!(
        put_device(&api, &mina, "phone", again).await.status,
        StatusCode::OK
    );
    let tablet = json!({"platform": "fcm", "push_token": "t3"});
    assert_eq!(
        put_device(&api, &mina, "tablet", tablet).await.status,
        StatusCode::OK
    );
    let mut devices = device_tokens(&api, &mina).await;
    devices.sort();
    let own = |d: &str, p: &str, t: &str| (d.to_owned(), p.to_owned(), t.to_owned());
    assert_eq!(
        devices,
        [own("phone", "webhook", "t2"), own("tablet", "fcm", "t3")]
    );
    // Another user's device of the same id is another device.
    let joons = json!({"platform": "fcm", "push_token": "j1"});
    assert_eq!(
        put_device(&api, &joon, "phone", joons).await.status,
        StatusCode::OK
    );
    let r = api
        .call(
            Method::DELETE,
            "/v1/me/devices/phone",
            Some(&mina.token),
            Value::Null,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        device_tokens(&api, &mina).await,
        [own("tablet", "fcm", "t3")]
    );
    assert_eq!(
        device_tokens(&api, &joon).await,
        [own("phone", "fcm", "j1")]
    );
    // Deleting again is no error.
    let r = api
        .call(
            Method::DELETE,
            "/v1/me/devices/phone",
            Some(&mina.token),
            Value::Null,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn a_token_belongs_to_the_last_account_that_registered_it() {
    let api = Api::new().await;
    let mina = api.user("mina").await;
    let joon = api.user("joon").await;
    let shared = json!({"platform": "fcm", "push_token": "same-phone"});
    put_device(&api, &mina, "p", shared.clone()).await;
    put_device(&api, &joon, "p", shared).await;
    assert!(device_tokens(&api, &mina).await.is_empty());
    assert_eq!(device_tokens(&api, &joon).await.len(), 1);
}

#[tokio::test]
async fn an_expired_session_is_purged_with_the_devices_it_registered() {
    let api = Api::new().await;
    let mina = api.user("mina").await;
    // A second session of Mina's, which will expire.
    let old = sori_api::core::sessions::issue_token(&api.t.db, &mina.id, &Default::default())
        .await
        .unwrap();
    let old = User {
        id: mina.id.clone(),
        handle: mina.handle.clone(),
        token: old.token,
    };
    let device = |t: &str| json!({"platform": "fcm", "push_token": t});
    put_device(&api, &old, "old-phone", device("o1")).await;
    put_device(&api, &mina, "phone", device("p1")).await;
    let expire = "UPDATE auth_tokens SET expires_at = 1 WHERE token_hash = $1";
    sqlx::query(expire)
        .bind(sori_api::core::sessions::token_hash(&old.token))
        .execute(api.t.db.pool())
        .await
        .unwrap();
    let now = sori_pipeline::clock::now_ms();
    let purged = sori_api::core::sessions::purge_expired(&api.t.db, now)
        .await
        .unwrap();
    assert_eq!(purged, 1);
    assert_eq!(
        device_tokens(&api, &mina).await,
        [("phone".to_owned(), "fcm".to_owned(), "p1".to_owned())]
    );
    let tokens: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM auth_tokens WHERE user_id = $1")
        .bind(&mina.id)
        .fetch_one(api.t.db.pool())
        .await
        .unwrap();
    assert_eq!(tokens, 1, "the live session stays");
}

#[tokio::test]
async fn a_user_keeps_the_twenty_latest_devices() {
    let api = Api::new().await;
    let mina = api.user("mina").await;
    for i in 0..22 {
        let body = json!({"platform": "fcm", "push_token": format!("t{i}")});
        let r = put_device(&api, &mina, &format!("d{i:02}"), body).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let ids: Vec<String> = device_tokens(&api, &mina)
        .await
        .into_iter()
        .map(|d| d.0)
        .collect();
    assert_eq!(ids.len(), 20);
    assert!(ids.contains(&"d21".to_owned()), "{ids:?}");
}

// ------------------------------------------------------- webhook receiver

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Accept,
    Fail500,
    /// Never answers within the sender's timeout.
    Hang,
    Refuse410,
    /// 429 with `Retry-After: 2`.
    Busy429,
}

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
struct Seen {
    delivery: String,
    at: Instant,
    signature_ok: bool,
    body: Value,
}

/// A webhook receiver on 127.0.0.1: every request is recorded; accepted ones
/// (answered 2xx) separately, as a real receiver would act on them.
#[derive(Default)]
struct Receiver {
    mode: Mutex<Option<Mode>>,
    requests: Mutex<Vec<Seen>>,
    accepted: Mutex<Vec<Seen>>,
}

impl Receiver {
    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = Some(mode);
    }

    fn requests(&self) -> Vec<Seen> {
        self.requests.lock().unwrap().clone()
    }

    /// How many times each delivery id was accepted.
    fn accepted_counts(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for seen in self.accepted.lock().unwrap().iter() {
            *counts.entry(seen.delivery.clone()).or_default() += 1;
        }
        counts
    }
}

async fn receive(
    State(rx): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let header = |name: &str| {
        headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    // Verified as a receiver would, with the scheme's own library (which also
    // refuses a timestamp more than five minutes off: a replay).
    let verifier = standardwebhooks::Webhook::new(SECRET).unwrap();
    let seen = Seen {
        delivery: header("webhook-id"),
        at: Instant::now(),
        signature_ok: verifier.verify(&body, &headers).is_ok(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    };
    rx.requests.lock().unwrap().push(seen.clone());
    let mode = rx.mode.lock().unwrap().unwrap_or(Mode::Accept);
    match mode {
        Mode::Accept => {
            rx.accepted.lock().unwrap().push(seen);
            StatusCode::NO_CONTENT.into_response()
        }
        Mode::Fail500 => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Mode::Hang => {
            tokio::time::sleep(TIMEOUT * 10).await;
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
        Mode::Refuse410 => StatusCode::GONE.into_response(),
        Mode::Busy429 => (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "2")]).into_response(),
    }
}

/// Starts a receiver answering in `mode`; returns it and its URL.
async fn receiver(mode: Mode) -> (Arc<Receiver>, String) {
    let rx = Arc::new(Receiver::default());
    rx.set(mode);
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(rx.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (rx, url)
}

// ------------------------------------------------------------- dispatcher

/// Fast pacing for tests: backoff of 300 ms doubling to 600 ms.
fn config() -> DispatchConfig {
    DispatchConfig {
        lease: Duration::from_secs(3),
        poll: Duration::from_millis(20),
        backoff_base: Duration::from_millis(300),
        backoff_max: Duration::from_millis(600),
        max_attempts: 10,
        ..DispatchConfig::default()
    }
}

fn dispatcher(db: &Db, url: &str, config: DispatchConfig) -> Dispatcher<WebhookSender> {
    let sender = WebhookSender::new(url, SECRET.as_bytes(), TIMEOUT).unwrap();
    Dispatcher::new(db.clone(), sender, config)
}

/// Enqueues `n` chat pushes for `to`, as the message transaction does.
async fn enqueue_messages(db: &Db, to: &User, from: &User, n: usize) {
    let mut conn = db.pool().acquire().await.unwrap();
    for i in 0..n {
        let payload = json!({
            "chat_id": "c1", "message_id": format!("m{i}"), "sender_id": from.id,
            "message_kind": "text", "text": format!("hello {i}"),
        });
        enqueue(&mut conn, &to.id, "message.new", &payload)
            .await
            .unwrap();
    }
}

/// One outbox row.
#[derive(Debug)]
struct Entry {
    id: String,
    attempts: i64,
    next_attempt_at: i64,
    last_error: Option<String>,
    delivered: bool,
    dead: bool,
}

async fn outbox(db: &Db) -> Vec<Entry> {
    let rows = sqlx::query(
        "SELECT id, CAST(attempts AS BIGINT) AS attempts, next_attempt_at, last_error, \
         delivered_at, dead_at FROM push_outbox ORDER BY id",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    rows.iter()
        .map(|r| Entry {
            id: r.get("id"),
            attempts: r.get("attempts"),
            next_attempt_at: r.get("next_attempt_at"),
            last_error: r.get("last_error"),
            delivered: r.get::<Option<i64>, _>("delivered_at").is_some(),
            dead: r.get::<Option<i64>, _>("dead_at").is_some(),
        })
        .collect()
}

/// Runs passes until every entry is delivered or dead (failing after 20 s).
async fn drain(d: &Dispatcher<WebhookSender>, db: &Db) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while outbox(db).await.iter().any(|e| !e.delivered && !e.dead) {
        assert!(
            Instant::now() < deadline,
            "outbox not drained: {:?}",
            outbox(db).await
        );
        d.run_once().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Two users: the recipient (with a phone and a webhook device) and the sender.
async fn people(api: &Api) -> (User, User) {
    let mina = api.user("mina").await;
    let joon = api.user("joon").await;
    put_device(
        api,
        &mina,
        "phone",
        json!({"platform": "fcm", "push_token": "fcm-tok"}),
    )
    .await;
    put_device(
        api,
        &mina,
        "gw",
        json!({"platform": "webhook", "push_token": "gw-tok"}),
    )
    .await;
    (mina, joon)
}

#[tokio::test]
async fn every_entry_arrives_once_after_the_receiver_recovers() {
    let api = Api::new().await;
    let db = api.t.db.clone();
    let (mina, joon) = people(&api).await;
    enqueue_messages(&db, &mina, &joon, 5).await;
    let (rx, url) = receiver(Mode::Fail500).await;
    let d = dispatcher(&db, &url, config());

    // Down with 500s: every entry is kept, its error and next attempt recorded.
    let before = now_ms();
    let pass = d.run_once().await.unwrap();
    assert_eq!(
        pass,
        Pass {
            claimed: 5,
            retried: 5,
            ..Pass::default()
        }
    );
    for e in outbox(&db).await {
        assert!(!e.delivered && !e.dead, "{e:?}");
        assert_eq!(e.attempts, 1);
        assert_eq!(e.last_error.as_deref(), Some("HTTP 500"));
        assert!(
            e.next_attempt_at >= before + 150,
            "backoff of at least half the base: {e:?}"
        );
    }

    // Then hanging past the sender's timeout: a transient failure too.
    rx.set(Mode::Hang);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let pass = d.run_once().await.unwrap();
    assert_eq!(
        pass,
        Pass {
            claimed: 5,
            retried: 5,
            ..Pass::default()
        }
    );
    for e in outbox(&db).await {
        assert_eq!(e.attempts, 2);
        assert!(
            e.last_error.as_deref().unwrap().contains("timed out"),
            "{e:?}"
        );
    }

    // Recovered: each entry is accepted exactly once.
    rx.set(Mode::Accept);
    drain(&d, &db).await;
    for _ in 0..3 {
        assert_eq!(
            d.run_once().await.unwrap().claimed,
            0,
            "nothing is sent twice"
        );
    }
    let entries = outbox(&db).await;
    assert!(entries
        .iter()
        .all(|e| e.delivered && e.last_error.is_none()));
    let counts = rx.accepted_counts();
    assert_eq!(counts.len(), 5);
    for e in &entries {
        assert_eq!(counts.get(&e.id), Some(&1), "{}", e.id);
        assert_eq!(e.attempts, 3);
    }

    let requests = rx.requests();
    assert_eq!(requests.len(), 15, "three attempts per entry");
    assert!(
        requests.iter().all(|s| s.signature_ok),
        "every request is signed"
    );
    // Attempts of one entry are spaced by at least half the backoff.
    for e in &entries {
        let times: Vec<Instant> = requests
            .iter()
            .filter(|s| s.delivery == e.id)
            .map(|s| s.at)
            .collect();
        for pair in times.windows(2) {
            assert!(
                pair[1] - pair[0] >= Duration::from_millis(150),
                "{:?}",
                pair[1] - pair[0]
            );
        }
    }

    // The body names the entry, its event and both devices with their FCM messages.
    let body = &requests.last().unwrap().body;
    assert_eq!(body["user_id"], mina.id.as_str());
    assert_eq!(body["kind"], "message.new");
    assert_eq!(body["data"]["chat_id"], "c1");
    let devices = body["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 2);
    let phone = devices.iter().find(|d| d["device_id"] == "phone").unwrap();
    assert_eq!(phone["platform"], "fcm");
    let message = &phone["fcm"]["message"];
    assert_eq!(message["token"], "fcm-tok");
    // The title is the sender's display name, looked up from sender_id; the
    // message's text stays out of the push unless the operator opts in.
    assert_eq!(message["notification"]["title"], "joon");
    assert_eq!(message["notification"]["body"], "New message");
    assert!(body["data"].get("text").is_none(), "{body}");
    assert!(!body.to_string().contains("hello"), "{body}");
    assert_eq!(message["android"]["priority"], "high");
}

#[tokio::test]
async fn two_dispatchers_deliver_each_entry_once() {
    let api = Api::new().await;
    let db = api.t.db.clone();
    let (mina, joon) = people(&api).await;
    enqueue_messages(&db, &mina, &joon, 40).await;
    let (rx, url) = receiver(Mode::Accept).await;
    let small = DispatchConfig {
        batch: 5,
        concurrency: 2,
        ..config()
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stop = || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let a = tokio::spawn(dispatcher(&db, &url, small.clone()).run(stop()));
    let b = tokio::spawn(dispatcher(&db, &url, small).run(stop()));
    let deadline = Instant::now() + Duration::from_secs(20);
    while outbox(&db).await.iter().any(|e| !e.delivered) {
        assert!(Instant::now() < deadline, "not drained");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop_tx.send(true).unwrap();
    a.await.unwrap();
    b.await.unwrap();
    let counts = rx.accepted_counts();
    assert_eq!(counts.len(), 40);
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
    assert_eq!(rx.requests().len(), 40);
    assert!(outbox(&db).await.iter().all(|e| e.attempts == 1));
}

#[tokio::test]
async fn a_refused_entry_is_marked_dead_and_kept() {
    let api = Api::new().await;
    let db = api.t.db.clone();
    let (mina, joon) = people(&api).await;
    enqueue_messages(&db, &mina, &joon, 1).await;
    let (rx, url) = receiver(Mode::Refuse410).await;
    let d = dispatcher(&db, &url, config());
    let pass = d.run_once().await.unwrap();
    assert_eq!(
        pass,
        Pass {
            claimed: 1,
            dead: 1,
            ..Pass::default()
        }
    );
    let entries = outbox(&db).await;
    assert_eq!(entries.len(), 1, "kept");
    assert!(entries[0].dead && !entries[0].delivered);
    assert_eq!(
        entries[0].last_error.as_deref(),
        Some("permanent: HTTP 410")
    );
    rx.set(Mode::Accept);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(d.run_once().await.unwrap().claimed, 0, "never sent again");
    assert_eq!(rx.requests().len(), 1);
    assert_eq!(
        d.purge(now_ms() + 365 * 86_400_000).await.unwrap(),
        0,
        "dead entries are not purged"
    );
}

#[tokio::test]
async fn the_next_attempt_waits_for_the_receivers_retry_after() {
    let api = Api::new().await;
    let db = api.t.db.clone();
    let (mina, joon) = people(&api).await;
    enqueue_messages(&db, &mina, &joon, 1).await;
    let (rx, url) = receiver(Mode::Busy429).await;
    // Our own backoff would retry within 600 ms.
    let d = dispatcher(&db, &url, config());
    assert_eq!(d.run_once().await.unwrap().retried, 1);
    rx.set(Mode::Accept);
    drain(&d, &db).await;
    let seen = rx.requests();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let waited = seen[1].at - seen[0].at;
    assert!(
        waited >= Duration::from_millis(1_900),
        "retried after {waited:?}, though the receiver said 2 s"
    );
    assert!(seen.iter().all(|s| s.signature_ok));
}

#[tokio::test]
async fn an_entry_dies_when_its_attempts_run_out() {
    let api = Api::new().await;
    let db = api.t.db.clone();
    let (mina, joon) = people(&api).await;
    enqueue_messages(&db, &mina, &joon, 1).await;
    let (rx, url) = receiver(Mode::Fail500).await;
    let d = dispatcher(
        &db,
        &url,
        DispatchConfig {
            max_attempts: 3,
            ..config()
        },
    );
    drain(&d, &db).await;
    let entries = outbox(&db).await;
    assert!(entries[0].dead, "{entries:?}");
    assert_eq!(entries[0].attempts, 3);
    assert_eq!(
        entries[0].last_error.as_deref(),
        Some("transient: HTTP 500")
    );
    assert_eq!(rx.requests().len(), 3);
}

#[tokio::test]
async fn message_text_is_pushed_only_when_the_operator_opts_in() {
    let api = Api::new().await;
    let db = api.t.db.clone();
    let (mina, joon) = people(&api).await;
    enqueue_messages(&db, &mina, &joon, 1).await;
    let (rx, url) = receiver(Mode::Accept).await;
    let opted_in = DispatchConfig {
        message_text: true,
        ..config()
    };
    let pass = dispatcher(&db, &url, opted_in).run_once().await.unwrap();
    assert_eq!(pass.delivered, 1);
    let body = &rx.requests()[0].body;
    assert_eq!(body["data"]["text"], "hello 0");
    let devices = body["devices"].as_array().unwrap();
    let phone = devices.iter().find(|d| d["device_id"] == "phone").unwrap();
    assert_eq!(phone["fcm"]["message"]["notification"]["body"], "hello 0");
}

#[tokio::test]
async fn a_user_without_devices_is_not_sent_to() {
    let api = Api::new().await;
    let db = api.t.db.clone();
    let mina = api.user("mina").await;
    let joon = api.user("joon").await;
    enqueue_messages(&db, &mina, &joon, 1).await;
    let (rx, url) = receiver(Mode::Accept).await;
    let pass = dispatcher(&db, &url, config()).run_once().await.unwrap();
    assert_eq!(pass.delivered, 1);
    let entries = outbox(&db).await;
    assert!(entries[0].delivered);
    assert_eq!(
        entries[0].last_error.as_deref(),
        Some("no registered device")
    );
    assert!(rx.requests().is_empty());
}

#[tokio::test]
async fn delivered_entries_are_purged_after_the_retention() {
    let api = Api::new().await;
    let db = api.t.db.clone();
    let (mina, joon) = people(&api).await;
    enqueue_messages(&db, &mina, &joon, 3).await;
    let (_rx, url) = receiver(Mode::Accept).await;
    let d = dispatcher(&db, &url, config());
    d.run_once().await.unwrap();
    enqueue_messages(&db, &mina, &joon, 1).await;
    let week = config().retention.as_millis() as i64;
    assert_eq!(d.purge(now_ms()).await.unwrap(), 0, "within the retention");
    assert_eq!(d.purge(now_ms() + week + 1000).await.unwrap(), 3);
    let left = outbox(&db).await;
    assert_eq!(left.len(), 1, "the undelivered entry stays");
    assert!(!left[0].delivered);
}

/// While the receiver is down the running dispatcher shows its waiting
/// entries and retries on `/metrics`; once it recovers, the outbox empties.
#[tokio::test]
async fn the_outbox_depth_and_outcomes_are_metrics() {
    let api = Api::new().await;
    let db = api.t.db.clone();
    let (mina, joon) = people(&api).await;
    enqueue_messages(&db, &mina, &joon, 3).await;
    let (rx, url) = receiver(Mode::Fail500).await;
    let counted = DispatchConfig {
        count_every: Duration::from_millis(20),
        ..config()
    };
    let d = dispatcher(&db, &url, counted).with_metrics(&api.state.metrics);
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let running = tokio::spawn(d.run(async move {
        let _ = stop_rx.wait_for(|s| *s).await;
    }));
    api.metric_until("sori_push_retried_total", |v| v >= 3.0)
        .await;
    assert_eq!(api.metric("sori_push_outbox_pending"), 3.0);
    rx.set(Mode::Accept);
    api.metric_until("sori_push_outbox_pending", |v| v == 0.0)
        .await;
    api.metric_until("sori_push_delivered_total", |v| v == 3.0)
        .await;
    assert_eq!(api.metric("sori_push_dead_total"), 0.0);
    stop_tx.send(true).unwrap();
    running.await.unwrap();
}

// ---------------------------------------------------------- social pushes

/// The outbox's entries for `who` as (kind, collapsed), oldest first.
async fn pushes_for(db: &Db, who: &User) -> Vec<(String, i64)> {
    sqlx::query(
        "SELECT kind, CAST(collapsed AS BIGINT) AS collapsed FROM push_outbox \
         WHERE user_id = $1 ORDER BY created_at, id",
    )
    .bind(&who.id)
    .fetch_all(db.pool())
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get("kind"), r.get("collapsed")))
    .collect()
}

fn kinds(list: &[(&str, i64)]) -> Vec<(String, i64)> {
    list.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect()
}

/// What the phone of the request shows: (title, body).
fn shown(request: &Seen) -> (String, String) {
    let devices = request.body["devices"].as_array().unwrap();
    let phone = devices.iter().find(|d| d["device_id"] == "phone").unwrap();
    let n = &phone["fcm"]["message"]["notification"];
    (
        n["title"].as_str().unwrap().to_owned(),
        n["body"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn a_burst_of_likes_is_one_push_naming_the_last_and_counting_the_others() {
    let api = Api::new().await;
    let db = api.t.db.clone();
    let (mina, _) = people(&api).await;
    let post = api.ready_post(&mina).await;
    let mut fans = Vec::new();
    for (handle, name) in [
        ("ara", "Ara"),
        ("boram", "Bo Kim"),
        ("cyan", "Cy"),
        ("dae", "Dae"),
    ] {
        let fan = api.user_named(handle, name).await;
        let r = api.put(&format!("/v1/posts/{post}/like"), &fan).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.json);
        fans.push(fan);
    }
    // Unliking and liking again is not a new event.
    api.delete(&format!("/v1/posts/{post}/like"), &fans[0])
        .await;
    api.put(&format!("/v1/posts/{post}/like"), &fans[0]).await;
    assert_eq!(pushes_for(&db, &mina).await, kinds(&[("like", 4)]));

    // Within the collapse window nothing is sent; after it, one push.
    let (rx, url) = receiver(Mode::Accept).await;
    let waiting = DispatchConfig {
        collapse_window: Duration::from_secs(60),
        ..config()
    };
    assert_eq!(
        dispatcher(&db, &url, waiting)
            .run_once()
            .await
            .unwrap()
            .claimed,
        0
    );
    let now = DispatchConfig {
        collapse_window: Duration::ZERO,
        ..config()
    };
    let d = dispatcher(&db, &url, now);
    assert_eq!(d.run_once().await.unwrap().delivered, 1);
    let requests = rx.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        shown(&requests[0]),
        ("Dae and 3 others".to_owned(), "liked your post".to_owned())
    );
    assert_eq!(requests[0].body["kind"], "like");
    assert_eq!(requests[0].body["data"]["post_id"], post.as_str());
    assert_eq!(requests[0].body["data"]["actor_id"], fans[3].id.as_str());
    assert_eq!(requests[0].body["data"]["count"], 4);

    // A like after the push went out is a push of its own.
    let late = api.user_named("eun", "Eun").await;
    api.put(&format!("/v1/posts/{post}/like"), &late).await;
    assert_eq!(
        pushes_for(&db, &mina).await,
        kinds(&[("like", 4), ("like", 1)])
    );
    drain(&d, &db).await;
    assert_eq!(
        shown(&rx.requests()[1]),
        ("Eun".to_owned(), "liked your post".to_owned())
    );
}

#[tokio::test]
async fn a_collapsing_push_waits_for_its_window_and_a_chat_message_does_not() {
    let api = Api::new().await;
    let db = api.t.db.clone();
    let (mina, joon) = people(&api).await;
    api.follow(&joon, &mina).await;
    let room = api.room(&joon, &mina).await;
    api.text_message(&joon, &room, "hi").await;
    assert_eq!(
        pushes_for(&db, &mina).await,
        kinds(&[("follow", 1), ("message.new", 1)])
    );
    let (rx, url) = receiver(Mode::Accept).await;
    let pass = dispatcher(&db, &url, config()).run_once().await.unwrap();
    assert_eq!(pass.delivered, 1, "the message only");
    assert_eq!(rx.requests()[0].body["kind"], "message.new");
}

#[tokio::test]
async fn settings_mutes_blocks_and_an_open_app_decide_what_is_pushed() {
    let api = Api::new().await;
    let db = api.t.db.clone();
    let (mina, joon) = people(&api).await;
    let ara = api.user("ara").await;
    let post = api.ready_post(&mina).await;
    let r = api
        .notification_settings(
            &mina,
            json!({"like": {"push": false}, "message": {"push": false}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);

    // Likes and chat messages: off. A comment: on.
    api.put(&format!("/v1/posts/{post}/like"), &joon).await;
    let room = api.room(&joon, &mina).await;
    api.text_message(&joon, &room, "hi").await;
    let comment = json!({"text": "lovely"});
    api.post(
        &format!("/v1/posts/{post}/comments"),
        &joon,
        comment.clone(),
    )
    .await;
    assert_eq!(pushes_for(&db, &mina).await, kinds(&[("comment", 1)]));
    // The like is still in her list: only its push is off.
    let r = api.get("/v1/notifications", &mina).await;
    let listed: Vec<&str> = r.json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["comment", "like"]);

    // Someone she mutes is not pushed; a block withdraws a waiting push.
    api.mute(&mina, &ara).await;
    api.follow(&ara, &mina).await;
    let bo = api.user("bomi").await;
    api.follow(&bo, &mina).await;
    assert_eq!(
        pushes_for(&db, &mina).await,
        kinds(&[("comment", 1), ("follow", 1)])
    );
    api.block(&bo, &mina).await;
    assert_eq!(pushes_for(&db, &mina).await, kinds(&[("comment", 1)]));

    // While an app of hers is connected she is told live, not pushed.
    api.online(&mina).await;
    api.post(&format!("/v1/posts/{post}/comments"), &joon, comment)
        .await;
    assert_eq!(pushes_for(&db, &mina).await, kinds(&[("comment", 1)]));
}
