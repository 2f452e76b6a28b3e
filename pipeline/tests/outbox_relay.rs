//! The outbox relay: every row reaches the queue; with several relays on one
//! PostgreSQL database (every API and worker process runs one) each row
//! reaches it once; a queue failure mid-batch keeps only the unsent rows.

use sori_db::testing::fresh_db;
use sori_db::{Backend, Db};
use sori_pipeline::queue::{relay_outbox_once, Delivery, Queue, QueueDepth, QueueError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A queue that counts the sends of each body, each send taking a little
/// while (as a network call does), and refuses every send after `accept`.
#[derive(Clone)]
struct CountingQueue {
    sends: Arc<Mutex<HashMap<String, u32>>>,
    accept: usize,
}

impl CountingQueue {
    fn new(accept: usize) -> Self {
        Self {
            sends: Arc::default(),
            accept,
        }
    }

    fn counts(&self) -> HashMap<String, u32> {
        self.sends.lock().unwrap().clone()
    }
}

impl Queue for CountingQueue {
    async fn send(&self, body: &str, _delay: Duration) -> Result<(), QueueError> {
        tokio::time::sleep(Duration::from_millis(2)).await;
        let mut sends = self.sends.lock().unwrap();
        if sends.values().sum::<u32>() as usize >= self.accept {
            return Err(QueueError::Transient("injected: connection refused".into()));
        }
        *sends.entry(body.to_owned()).or_default() += 1;
        Ok(())
    }
    async fn receive(&self, _: u32, _: Duration, _: Duration) -> Result<Vec<Delivery>, QueueError> {
        Ok(Vec::new())
    }
    async fn extend(&self, _: &Delivery, _: Duration) -> Result<(), QueueError> {
        Ok(())
    }
    async fn delete(&self, _: &Delivery) -> Result<(), QueueError> {
        Ok(())
    }
    async fn release(&self, _: &Delivery, _: Duration) -> Result<(), QueueError> {
        Ok(())
    }
    async fn depth(&self) -> Result<QueueDepth, QueueError> {
        Ok(QueueDepth::default())
    }
}

async fn fill_outbox(db: &Db, rows: usize) {
    for i in 0..rows {
        sqlx::query("INSERT INTO outbox (id, body, created_at) VALUES ($1, $2, 0)")
            .bind(format!("{i:05}"))
            .bind(format!("job-{i}"))
            .execute(db.pool())
            .await
            .unwrap();
    }
}

async fn outbox_len(db: &Db) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
        .fetch_one(db.pool())
        .await
        .unwrap()
}

/// Relays until the outbox is empty; errors (a busy SQLite file) are retried.
async fn drain(db: Db, queue: CountingQueue) {
    for _ in 0..1000 {
        if let Ok(0) = relay_outbox_once(&db, &queue).await {
            if outbox_len(&db).await == 0 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the outbox did not drain");
}

#[tokio::test]
async fn concurrent_relays_send_every_row_and_on_postgres_each_once() {
    let t = fresh_db().await;
    fill_outbox(&t.db, 150).await;
    let queue = CountingQueue::new(usize::MAX);
    let relays: Vec<_> = (0..3)
        .map(|_| tokio::spawn(drain(t.db.clone(), queue.clone())))
        .collect();
    for relay in relays {
        relay.await.unwrap();
    }
    let counts = queue.counts();
    assert_eq!(counts.len(), 150, "every row reached the queue");
    assert_eq!(outbox_len(&t.db).await, 0);
    if t.db.backend() == Backend::Postgres {
        let repeated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            repeated.is_empty(),
            "{} rows sent more than once by concurrent relays, e.g. {:?}",
            repeated.len(),
            repeated.first()
        );
    }
}

#[tokio::test]
async fn a_queue_failure_mid_batch_keeps_only_the_unsent_rows() {
    let t = fresh_db().await;
    fill_outbox(&t.db, 10).await;
    let queue = CountingQueue::new(4);
    let relayed = relay_outbox_once(&t.db, &queue).await;
    assert!(
        matches!(relayed, Err(QueueError::Transient(_))),
        "{relayed:?}"
    );
    assert_eq!(queue.counts().len(), 4);
    assert_eq!(outbox_len(&t.db).await, 6, "the 4 rows sent are gone");
    let healthy = CountingQueue::new(usize::MAX);
    assert_eq!(relay_outbox_once(&t.db, &healthy).await.unwrap(), 6);
    let mut resent: Vec<_> = healthy.counts().into_keys().collect();
    resent.sort();
    assert_eq!(
        resent,
        ["job-4", "job-5", "job-6", "job-7", "job-8", "job-9"]
    );
}
