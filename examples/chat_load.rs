//! Chat load generator for `benches/chat-load.sh`: signs up users in pairs,
//! opens one WebSocket per user, sends text messages over REST at a steady
//! rate and measures, on the recipient's socket, how long each message took
//! from the start of its `POST` to its `message.new` event.
//!
//! ```text
//! cargo run --release --example chat_load -- --base http://127.0.0.1:18095 \
//!     --users 2000 --rate 1000 --seconds 20 [--server-pid PID]
//! ```
//! With `--server-pid`, the server's resident memory is read from `/proc`
//! before and after the sockets open, giving memory per connection.
//! Prints one `RESULT key=value …` line for the script to parse.

use futures_util::StreamExt;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

/// Requests in flight at once while signing up.
const CONCURRENCY: usize = 64;
/// Sends in flight at once; a send due while this many are pending is
/// skipped and counted as `behind`.
const MAX_SENDS_IN_FLIGHT: usize = 256;
/// How long after the last send a message may still arrive before it counts as lost.
const DRAIN: Duration = Duration::from_secs(5);

struct Args {
    base: String,
    users: usize,
    rate: u64,
    seconds: u64,
    server_pid: Option<u32>,
}

fn args() -> Args {
    let mut a = Args {
        base: "http://127.0.0.1:18095".into(),
        users: 2000,
        rate: 1000,
        seconds: 20,
        server_pid: None,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let value = pair.get(1).cloned().unwrap_or_default();
        match pair[0].as_str() {
            "--base" => a.base = value,
            "--users" => a.users = value.parse().expect("--users N"),
            "--rate" => a.rate = value.parse().expect("--rate N"),
            "--seconds" => a.seconds = value.parse().expect("--seconds N"),
            "--server-pid" => a.server_pid = Some(value.parse().expect("--server-pid PID")),
            other => panic!("unknown argument {other}"),
        }
    }
    a.users -= a.users % 2;
    a
}

/// A signed-up user and the room shared with their partner.
#[derive(Clone)]
struct Member {
    id: String,
    token: String,
    room: String,
}

/// What the sockets observed.
#[derive(Default)]
struct Observed {
    /// Send-to-delivery latencies in microseconds.
    latencies: Mutex<Vec<u64>>,
    delivered: AtomicU64,
    sockets_closed: AtomicU64,
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

async fn post(http: &reqwest::Client, url: String, token: Option<&str>, body: Value) -> Value {
    let mut req = http.post(url).json(&body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{status}: {body}");
    body
}

/// Signs up `n` users (bounded concurrency) and pairs them into rooms.
async fn sign_up(http: &reqwest::Client, base: &str, n: usize) -> Vec<Member> {
    let run = uuid::Uuid::new_v4().simple().to_string()[..6].to_owned();
    let gate = Arc::new(Semaphore::new(CONCURRENCY));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (http, gate, url) = (http.clone(), gate.clone(), format!("{base}/v1/auth/signup"));
            let handle = format!("load{run}{i}");
            tokio::spawn(async move {
                let _permit = gate.acquire().await.unwrap();
                let body =
                    json!({"handle": handle, "password": "load test pass", "display_name": handle});
                let r = post(&http, url, None, body).await;
                (
                    r["user_id"].as_str().unwrap().to_owned(),
                    r["token"].as_str().unwrap().to_owned(),
                )
            })
        })
        .collect();
    let mut users = Vec::with_capacity(n);
    for t in tasks {
        users.push(t.await.unwrap());
    }
    let mut members = Vec::with_capacity(n);
    for pair in users.chunks(2) {
        let ((a_id, a_token), (b_id, b_token)) = (&pair[0], &pair[1]);
        let room = post(
            http,
            format!("{base}/v1/chats"),
            Some(a_token),
            json!({"user_id": b_id}),
        )
        .await;
        let room = room["id"].as_str().unwrap().to_owned();
        members.push(Member {
            id: a_id.clone(),
            token: a_token.clone(),
            room: room.clone(),
        });
        members.push(Member {
            id: b_id.clone(),
            token: b_token.clone(),
            room,
        });
    }
    members
}

/// Opens a socket for `member`, recording the latency of every message
/// addressed to them (sent by the partner) until the socket closes.
async fn listen(base: &str, member: Member, start: Instant, seen: Arc<Observed>) {
    let url = format!(
        "{}/v1/ws?token={}",
        base.replacen("http", "ws", 1),
        member.token
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket");
    tokio::spawn(async move {
        while let Some(Ok(frame)) = socket.next().await {
            let Message::Text(text) = frame else { continue };
            let Ok(event) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            if event["type"] != "message.new" || event["data"]["sender_id"] == member.id.as_str() {
                continue;
            }
            let body = event["data"]["text"].as_str().unwrap_or_default();
            if let Some(sent) = body.strip_prefix("t=").and_then(|t| t.parse::<u64>().ok()) {
                let now = start.elapsed().as_micros() as u64;
                seen.latencies
                    .lock()
                    .unwrap()
                    .push(now.saturating_sub(sent));
                seen.delivered.fetch_add(1, Ordering::Relaxed);
            }
        }
        seen.sockets_closed.fetch_add(1, Ordering::Relaxed);
    });
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

#[tokio::main]
async fn main() {
    let a = args();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(MAX_SENDS_IN_FLIGHT)
        .build()
        .unwrap();
    let t0 = Instant::now();
    let members = sign_up(&http, &a.base, a.users).await;
    eprintln!(
        "{} users in {} rooms ready in {:.1} s",
        a.users,
        a.users / 2,
        t0.elapsed().as_secs_f64()
    );

    let start = Instant::now();
    let seen = Arc::new(Observed::default());
    let rss_before = a.server_pid.and_then(rss_kib);
    for m in &members {
        listen(&a.base, m.clone(), start, seen.clone()).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_after = a.server_pid.and_then(rss_kib);
    eprintln!("{} sockets open", members.len());

    // Steady rate: message i is due at `start + i / rate` (a schedule, not an
    // interval timer, whose 1 ms ticks drift late), senders in round robin.
    let gate = Arc::new(Semaphore::new(MAX_SENDS_IN_FLIGHT));
    let (sent, failed, behind) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        AtomicU64::new(0),
    );
    let sending = tokio::time::Instant::now();
    let total = a.rate * a.seconds;
    for i in 0..total {
        let due = Duration::from_secs_f64(i as f64 / a.rate.max(1) as f64);
        tokio::time::sleep_until(sending + due).await;
        let Ok(permit) = gate.clone().try_acquire_owned() else {
            behind.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let m = members[i as usize % members.len()].clone();
        let (http, sent, failed) = (http.clone(), sent.clone(), failed.clone());
        let url = format!("{}/v1/chats/{}/messages", a.base, m.room);
        tokio::spawn(async move {
            let _permit = permit;
            let text = format!("t={}", start.elapsed().as_micros());
            let resp = http
                .post(url)
                .bearer_auth(&m.token)
                .json(&json!({"kind": "text", "text": text}))
                .send()
                .await;
            match resp {
                Ok(r) if r.status().is_success() => sent.fetch_add(1, Ordering::Relaxed),
                _ => failed.fetch_add(1, Ordering::Relaxed),
            };
        });
    }
    let send_secs = sending.elapsed().as_secs_f64();
    let _ = gate.acquire_many(MAX_SENDS_IN_FLIGHT as u32).await;
    let deadline = Instant::now() + DRAIN;
    while seen.delivered.load(Ordering::Relaxed) < sent.load(Ordering::Relaxed)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut lat = seen.latencies.lock().unwrap().clone();
    lat.sort_unstable();
    let (sent, delivered) = (
        sent.load(Ordering::Relaxed),
        seen.delivered.load(Ordering::Relaxed),
    );
    let per_conn = match (rss_before, rss_after) {
        (Some(b), Some(a2)) => format!(
            "{:.1}",
            (a2.saturating_sub(b)) as f64 / members.len() as f64
        ),
        _ => "na".into(),
    };
    println!(
        "RESULT sockets={} rate={} seconds={} sent={} failed={} behind={} delivered={} lost={} \
         send_rate={:.0} p50_ms={:.1} p90_ms={:.1} p99_ms={:.1} max_ms={:.1} rss_kib_before={} rss_kib_after={} kib_per_socket={} sockets_closed={}",
        members.len(),
        a.rate,
        a.seconds,
        sent,
        failed.load(Ordering::Relaxed),
        behind.load(Ordering::Relaxed),
        delivered,
        sent.saturating_sub(delivered),
        sent as f64 / send_secs,
        percentile(&lat, 0.50),
        percentile(&lat, 0.90),
        percentile(&lat, 0.99),
        percentile(&lat, 1.0),
        rss_before.map_or("na".into(), |v| v.to_string()),
        rss_after.map_or("na".into(), |v| v.to_string()),
        per_conn,
        seen.sockets_closed.load(Ordering::Relaxed),
    );
}
