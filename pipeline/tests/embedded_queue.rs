//! The embedded queue's SQS semantics, on the backend named by `SORI_TEST_DB`.

use sori_db::testing::{fresh_db, TestDb};
use sori_pipeline::queue::{EmbeddedQueue, QueueDepth, QueueError};
use std::collections::HashSet;
use std::time::Duration;

const NO_WAIT: Duration = Duration::ZERO;
const LONG: Duration = Duration::from_secs(60);

async fn queue(max_receives: u32) -> (TestDb, EmbeddedQueue) {
    let t = fresh_db().await;
    let q = EmbeddedQueue::new(t.db.clone(), "media", max_receives)
        .with_poll_step(Duration::from_millis(20));
    (t, q)
}

#[tokio::test]
async fn send_receive_delete() {
    let (_t, q) = queue(5).await;
    q.send("one", NO_WAIT).await.unwrap();
    let got = q.receive(10, NO_WAIT, LONG).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, "one");
    assert_eq!(got[0].receive_count, 1);
    assert_eq!(
        q.depth().await.unwrap(),
        QueueDepth {
            visible: 0,
            in_flight: 1,
            dead: 0
        }
    );
    assert!(
        q.receive(10, NO_WAIT, LONG).await.unwrap().is_empty(),
        "in flight, not visible"
    );
    q.delete(&got[0]).await.unwrap();
    assert_eq!(q.depth().await.unwrap(), QueueDepth::default());
}

#[tokio::test]
async fn visibility_expiry_redelivers_with_a_new_receipt() {
    let (_t, q) = queue(5).await;
    q.send("job", NO_WAIT).await.unwrap();
    let first = q
        .receive(1, NO_WAIT, Duration::from_millis(150))
        .await
        .unwrap()
        .remove(0);
    tokio::time::sleep(Duration::from_millis(250)).await;
    let second = q.receive(1, NO_WAIT, LONG).await.unwrap().remove(0);
    assert_eq!(second.body, "job");
    assert_eq!(second.receive_count, 2);
    assert_ne!(first.receipt, second.receipt);
    // The first holder's receipt is stale: it cannot delete, extend or release
    // the message now owned by the second.
    assert!(matches!(
        q.delete(&first).await,
        Err(QueueError::StaleReceipt)
    ));
    assert!(matches!(
        q.extend(&first, LONG).await,
        Err(QueueError::StaleReceipt)
    ));
    assert!(matches!(
        q.release(&first, NO_WAIT).await,
        Err(QueueError::StaleReceipt)
    ));
    assert_eq!(q.depth().await.unwrap().in_flight, 1);
    q.delete(&second).await.unwrap();
    assert_eq!(q.depth().await.unwrap(), QueueDepth::default());
}

#[tokio::test]
async fn extend_keeps_a_message_invisible() {
    let (_t, q) = queue(5).await;
    q.send("job", NO_WAIT).await.unwrap();
    let d = q
        .receive(1, NO_WAIT, Duration::from_millis(200))
        .await
        .unwrap()
        .remove(0);
    q.extend(&d, Duration::from_secs(30)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(q.receive(1, NO_WAIT, LONG).await.unwrap().is_empty());
    q.delete(&d).await.unwrap();
}

#[tokio::test]
async fn release_with_delay_then_visible_again() {
    let (_t, q) = queue(5).await;
    q.send("job", NO_WAIT).await.unwrap();
    let d = q.receive(1, NO_WAIT, LONG).await.unwrap().remove(0);
    q.release(&d, Duration::from_millis(300)).await.unwrap();
    assert!(
        matches!(q.delete(&d).await, Err(QueueError::StaleReceipt)),
        "release voids the receipt"
    );
    assert!(
        q.receive(1, NO_WAIT, LONG).await.unwrap().is_empty(),
        "still delayed"
    );
    let again = q.receive(1, Duration::from_secs(2), LONG).await.unwrap();
    assert_eq!(
        again.len(),
        1,
        "long poll picks it up once the delay passed"
    );
    assert_eq!(again[0].receive_count, 2);
}

#[tokio::test]
async fn delayed_send_and_long_poll_timeout() {
    let (_t, q) = queue(5).await;
    let started = std::time::Instant::now();
    assert!(q
        .receive(1, Duration::from_millis(300), LONG)
        .await
        .unwrap()
        .is_empty());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(290) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    q.send("later", Duration::from_millis(200)).await.unwrap();
    assert!(q.receive(1, NO_WAIT, LONG).await.unwrap().is_empty());
    assert_eq!(
        q.receive(1, Duration::from_secs(2), LONG)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn long_poll_wakes_on_a_send_in_this_process() {
    let (_t, q) = queue(5).await;
    let q = q.with_poll_step(Duration::from_secs(10));
    let receiver = {
        let q = q.clone();
        tokio::spawn(async move { q.receive(1, Duration::from_secs(5), LONG).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    q.send("now", NO_WAIT).await.unwrap();
    let got = receiver.await.unwrap().unwrap();
    assert_eq!(got.len(), 1);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "woken by the send, not the 10 s poll"
    );
}

#[tokio::test]
async fn max_receives_then_dead_letter() {
    let (_t, q) = queue(2).await;
    q.send("poison", NO_WAIT).await.unwrap();
    for n in 1..=2 {
        let d = q.receive(1, NO_WAIT, LONG).await.unwrap().remove(0);
        assert_eq!(d.receive_count, n);
        q.release(&d, NO_WAIT).await.unwrap();
    }
    assert!(
        q.receive(1, NO_WAIT, LONG).await.unwrap().is_empty(),
        "third receive is refused"
    );
    assert_eq!(
        q.depth().await.unwrap(),
        QueueDepth {
            visible: 0,
            in_flight: 0,
            dead: 1
        }
    );
    let dead = q.dead_letters(None, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].1, "poison");
    assert!(q
        .dead_letters(Some(&dead[0].0), 10)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn queues_are_separate() {
    let (t, q) = queue(5).await;
    let other = EmbeddedQueue::new(t.db.clone(), "push", 5);
    other.send("elsewhere", NO_WAIT).await.unwrap();
    assert!(q.receive(1, NO_WAIT, LONG).await.unwrap().is_empty());
    assert_eq!(other.receive(1, NO_WAIT, LONG).await.unwrap().len(), 1);
}

#[tokio::test]
async fn concurrent_receivers_never_share_a_message() {
    let (_t, q) = queue(5).await;
    const N: usize = 60;
    for i in 0..N {
        q.send(&format!("m{i}"), NO_WAIT).await.unwrap();
    }
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let q = q.clone();
        tasks.push(tokio::spawn(async move {
            let mut bodies = Vec::new();
            loop {
                let got = q.receive(3, NO_WAIT, LONG).await.unwrap();
                if got.is_empty() {
                    return bodies;
                }
                for d in got {
                    q.delete(&d).await.unwrap();
                    bodies.push(d.body);
                }
            }
        }));
    }
    let mut seen = HashSet::new();
    let mut total = 0;
    for t in tasks {
        for body in t.await.unwrap() {
            total += 1;
            assert!(seen.insert(body.clone()), "{body} delivered twice");
        }
    }
    assert_eq!(total, N);
    assert_eq!(q.depth().await.unwrap(), QueueDepth::default());
}

/// A message released while another receive is under way (between its
/// dead-letter and claim statements) must still dead-letter, never reach a
/// worker a surplus time: that worker would find the job finished and delete
/// the message, so it would vanish from the dead letters.
#[tokio::test]
async fn releases_racing_receives_never_exceed_max_receives() {
    let (_t, q) = queue(1).await;
    const N: usize = 100;
    for i in 0..N {
        q.send(&format!("m{i}"), NO_WAIT).await.unwrap();
    }
    let mut held = Vec::new();
    while held.len() < N {
        held.extend(q.receive(10, NO_WAIT, LONG).await.unwrap());
    }
    let releaser = {
        let q = q.clone();
        tokio::spawn(async move {
            for d in held {
                q.release(&d, NO_WAIT).await.unwrap();
                tokio::task::yield_now().await;
            }
        })
    };
    let mut surplus = Vec::new();
    while !releaser.is_finished() {
        surplus.extend(q.receive(10, NO_WAIT, LONG).await.unwrap());
    }
    releaser.await.unwrap();
    surplus.extend(q.receive(10, NO_WAIT, LONG).await.unwrap());
    let counts: Vec<u32> = surplus.iter().map(|d| d.receive_count).collect();
    assert!(counts.is_empty(), "received past the maximum: {counts:?}");
    assert_eq!(
        q.depth().await.unwrap(),
        QueueDepth {
            visible: 0,
            in_flight: 0,
            dead: N as u64
        }
    );
}
