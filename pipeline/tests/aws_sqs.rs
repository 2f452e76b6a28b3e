//! The SQS job queue against a real SQS-speaking server (moto on loopback;
//! see `aws_support`), and S3 → SQS event notifications. Each test has its
//! own queue, whose redrive policy sends a message to its own dead-letter
//! queue after two receives.

mod aws_support;

use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_s3::types::{Event, NotificationConfiguration, QueueConfiguration};
use sori_pipeline::queue::sqs::SqsQueue;
use sori_pipeline::queue::{Delivery, QueueDepth, QueueError};
use sori_pipeline::store::s3::S3Store;

const MAX_RECEIVES: u32 = 2;
const LONG: Duration = Duration::from_secs(60);
const SHORT: Duration = Duration::from_secs(1);
const NO_WAIT: Duration = Duration::ZERO;

async fn queue() -> (SqsQueue, aws_support::TestQueue) {
    aws_support::init().await;
    let test_queue = aws_support::new_queue(MAX_RECEIVES).await;
    let queue = SqsQueue::from_env(&test_queue.url)
        .await
        .expect("queue from env");
    (queue, test_queue)
}

/// Receives exactly one message, waiting up to 5 s for it.
async fn receive_one(queue: &SqsQueue, visibility: Duration) -> Delivery {
    let mut got = queue
        .receive(10, Duration::from_secs(5), visibility)
        .await
        .unwrap();
    assert_eq!(got.len(), 1, "expected one message, got {got:?}");
    got.remove(0)
}

async fn assert_empty(queue: &SqsQueue) {
    let got = queue.receive(10, NO_WAIT, LONG).await.unwrap();
    assert!(got.is_empty(), "expected nothing visible, got {got:?}");
}

#[tokio::test]
async fn send_receive_delete() {
    let (queue, _) = queue().await;
    queue
        .send(r#"{"media_id":"m1"}"#, Duration::ZERO)
        .await
        .unwrap();
    queue
        .send(r#"{"media_id":"m2"}"#, Duration::ZERO)
        .await
        .unwrap();

    let mut got = Vec::new();
    for _ in 0..5 {
        got.extend(queue.receive(10, SHORT, LONG).await.unwrap());
        if got.len() == 2 {
            break;
        }
    }
    let mut bodies: Vec<&str> = got.iter().map(|d| d.body.as_str()).collect();
    bodies.sort_unstable();
    assert_eq!(bodies, [r#"{"media_id":"m1"}"#, r#"{"media_id":"m2"}"#]);
    assert!(got.iter().all(|d| d.receive_count == 1), "{got:?}");
    assert_eq!(
        queue.depth().await.unwrap(),
        QueueDepth {
            visible: 0,
            in_flight: 2,
            dead: 0
        }
    );

    for d in &got {
        queue.delete(d).await.unwrap();
    }
    assert_empty(&queue).await;
    assert_eq!(queue.depth().await.unwrap(), QueueDepth::default());
}

#[tokio::test]
async fn depth_counts_visible_and_in_flight() {
    let (queue, _) = queue().await;
    for i in 0..3 {
        queue
            .send(&format!("job {i}"), Duration::ZERO)
            .await
            .unwrap();
    }
    let got = queue.receive(1, SHORT, LONG).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        queue.depth().await.unwrap(),
        QueueDepth {
            visible: 2,
            in_flight: 1,
            dead: 0
        }
    );
}

#[tokio::test]
async fn visibility_expiry_redelivers() {
    let (queue, _) = queue().await;
    queue.send("job", Duration::ZERO).await.unwrap();
    let first = receive_one(&queue, SHORT).await;
    assert_eq!(first.receive_count, 1);

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = receive_one(&queue, LONG).await;
    assert_eq!(second.body, "job");
    assert_eq!(second.receive_count, 2);
    assert_ne!(
        second.receipt, first.receipt,
        "each receive has its own receipt"
    );
}

#[tokio::test]
async fn extend_keeps_a_message_invisible() {
    let (queue, _) = queue().await;
    queue.send("job", Duration::ZERO).await.unwrap();
    let d = receive_one(&queue, SHORT).await;
    queue.extend(&d, LONG).await.unwrap();

    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_empty(&queue).await;
    assert_eq!(queue.depth().await.unwrap().in_flight, 1);
    queue.delete(&d).await.unwrap();
    assert_eq!(queue.depth().await.unwrap(), QueueDepth::default());
}

#[tokio::test]
async fn release_makes_a_message_visible_now() {
    let (queue, _) = queue().await;
    queue.send("job", Duration::ZERO).await.unwrap();
    let d = receive_one(&queue, LONG).await;
    queue.release(&d, Duration::ZERO).await.unwrap();

    let again = receive_one(&queue, LONG).await;
    assert_eq!(again.body, "job");
    assert_eq!(again.receive_count, 2);
}

#[tokio::test]
async fn release_with_delay_hides_until_then() {
    let (queue, _) = queue().await;
    queue.send("job", Duration::ZERO).await.unwrap();
    let d = receive_one(&queue, LONG).await;
    queue.release(&d, Duration::from_secs(2)).await.unwrap();
    assert_empty(&queue).await;
    let again = receive_one(&queue, LONG).await;
    assert_eq!(again.receive_count, 2);
}

#[tokio::test]
async fn delayed_send_becomes_visible_later() {
    let (queue, _) = queue().await;
    queue.send("later", Duration::from_secs(2)).await.unwrap();
    // Counted while it waits, as the embedded queue counts it (the autoscaler
    // and the reaper's "is the queue empty?" read this).
    assert_eq!(queue.depth().await.unwrap().in_flight, 1);
    assert_empty(&queue).await;
    let d = receive_one(&queue, LONG).await;
    assert_eq!(d.body, "later");
}

#[tokio::test]
async fn max_receives_move_a_message_to_the_dead_letter_queue() {
    let (queue, test_queue) = queue().await;
    queue.send("poison", Duration::ZERO).await.unwrap();
    for n in 1..=MAX_RECEIVES {
        let d = receive_one(&queue, SHORT).await;
        assert_eq!(d.receive_count, n);
        queue.release(&d, Duration::ZERO).await.unwrap();
    }
    // The next receive finds the count exhausted and moves it instead.
    assert_empty(&queue).await;
    let depth = queue.depth().await.unwrap();
    assert_eq!(
        depth,
        QueueDepth {
            visible: 0,
            in_flight: 0,
            dead: 1
        }
    );

    let dead = SqsQueue::from_env(&test_queue.dead_letter_url)
        .await
        .unwrap();
    let d = receive_one(&dead, LONG).await;
    assert_eq!(d.body, "poison");
}

#[tokio::test]
async fn stale_receipts_are_reported_as_such() {
    let (queue, _) = queue().await;
    queue.send("job", Duration::ZERO).await.unwrap();
    let d = receive_one(&queue, LONG).await;
    queue.delete(&d).await.unwrap();
    let forged = Delivery {
        receipt: "not-a-receipt".into(),
        ..d
    };
    let err = queue.extend(&forged, LONG).await.unwrap_err();
    assert!(matches!(err, QueueError::StaleReceipt), "got {err:?}");
}

#[tokio::test]
async fn long_poll_on_an_empty_queue_returns_within_wait() {
    let (queue, _) = queue().await;
    let wait = Duration::from_secs(2);
    let started = Instant::now();
    let got = queue.receive(10, wait, LONG).await.unwrap();
    let elapsed = started.elapsed();
    assert!(got.is_empty());
    // It really waited (a short poll returns at once), and not much longer.
    assert!(
        elapsed >= wait - Duration::from_millis(200),
        "took {elapsed:?}"
    );
    assert!(elapsed < wait + Duration::from_secs(2), "took {elapsed:?}");
    println!("empty long poll of {wait:?} returned after {elapsed:?}");
}

#[tokio::test]
async fn long_poll_returns_as_soon_as_a_message_arrives() {
    let (queue, _) = queue().await;
    let sender = queue.clone();
    let send = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        sender.send("wake up", Duration::ZERO).await.unwrap();
    });
    let started = Instant::now();
    let got = queue
        .receive(10, Duration::from_secs(10), LONG)
        .await
        .unwrap();
    let elapsed = started.elapsed();
    send.await.unwrap();
    assert_eq!(got.len(), 1);
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
}

#[tokio::test]
async fn missing_queue_is_permanent() {
    aws_support::init().await;
    let url = format!(
        "{}/123456789012/{}",
        aws_support::endpoint(),
        aws_support::unique("gone")
    );
    let queue = SqsQueue::from_env(&url).await.unwrap();
    let err = queue.send("x", Duration::ZERO).await.unwrap_err();
    assert!(matches!(err, QueueError::Permanent(_)), "got {err:?}");
}

/// S3 announces a new object on the queue with its key URL-encoded (a space
/// as `+`, a `+` as `%2B`): the worker's event parser must decode it.
#[tokio::test]
async fn s3_object_created_events_arrive_on_the_queue() {
    let (queue, test_queue) = queue().await;
    let bucket = aws_support::new_bucket().await;
    let s3 = aws_support::s3_client().await;
    let target = QueueConfiguration::builder()
        .queue_arn(&test_queue.arn)
        .events(Event::from("s3:ObjectCreated:*"))
        .build()
        .unwrap();
    s3.put_bucket_notification_configuration()
        .bucket(&bucket)
        .notification_configuration(
            NotificationConfiguration::builder()
                .queue_configurations(target)
                .build(),
        )
        .send()
        .await
        .unwrap();

    let store = S3Store::from_env(&bucket).await.unwrap();
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/speech-mono-16k.m4a"
    );
    store
        .put_file(
            "originals/voice memo+1.m4a",
            Path::new(fixture),
            "audio/mp4",
        )
        .await
        .unwrap();

    let event = object_created_event(&queue).await;
    if std::env::var_os("SORI_CAPTURE_S3_EVENT").is_some() {
        println!("{}", serde_json::to_string_pretty(&event).unwrap());
    }
    let record = &event["Records"][0];
    assert_eq!(record["eventSource"], "aws:s3");
    assert!(record["eventName"]
        .as_str()
        .unwrap()
        .starts_with("ObjectCreated:"));
    assert_eq!(record["s3"]["bucket"]["name"], bucket.as_str());
    // Form-encoded: a space as `+`, a `+` as `%2B`. S3 keeps `/` as is and
    // moto writes `%2F`; both decode to the key.
    let raw_key = record["s3"]["object"]["key"].as_str().unwrap();
    assert!(
        raw_key.ends_with("voice+memo%2B1.m4a"),
        "raw key {raw_key:?}"
    );
    assert_eq!(form_decode(raw_key), "originals/voice memo+1.m4a");
    assert_eq!(
        record["s3"]["object"]["size"],
        std::fs::metadata(fixture).unwrap().len()
    );

    // The committed sample has the same shape, for the job parser's tests.
    let sample: serde_json::Value =
        serde_json::from_str(include_str!("data/s3-event.json")).unwrap();
    let sample = &sample["Records"][0];
    for field in ["eventSource", "eventName", "awsRegion"] {
        assert_eq!(sample[field], record[field], "{field}");
    }
    assert_eq!(sample["s3"]["object"]["key"], record["s3"]["object"]["key"]);
}

/// `application/x-www-form-urlencoded` decoding, as the job parser must do.
fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// Receives until an `ObjectCreated` record arrives, skipping (and deleting)
/// the `s3:TestEvent` that configuring a notification may send first.
async fn object_created_event(queue: &SqsQueue) -> serde_json::Value {
    for _ in 0..5 {
        for d in queue
            .receive(10, Duration::from_secs(2), LONG)
            .await
            .unwrap()
        {
            queue.delete(&d).await.unwrap();
            let event: serde_json::Value = serde_json::from_str(&d.body).unwrap();
            if event.get("Records").is_some() {
                return event;
            }
            assert_eq!(
                event["Event"], "s3:TestEvent",
                "unexpected message {}",
                d.body
            );
        }
    }
    panic!("no ObjectCreated event on the queue");
}
