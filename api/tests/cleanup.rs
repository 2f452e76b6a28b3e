//! The media cleanup (`sori_api::cleanup`) on the backend `SORI_TEST_DB`
//! names, with the local object store in a temporary directory: only old,
//! unattached, unleased media goes, with its original and every output.

mod support;

use sori_api::cleanup::{Swept, BATCH};
use sori_codecs::OutputFormat;
use sori_pipeline::store::{original_key, output_prefix};
use std::path::Path;
use std::time::Duration;
use support::{Api, NewMedia};

const DAY: Duration = Duration::from_secs(86_400);
const DAY_MS: i64 = 86_400_000;
/// "Now" of the tests: a fixed time, so created times are exact.
const NOW: i64 = 1_800_000_000_000;

/// The app's database and store, and the user whose media the tests make.
struct Fixture {
    api: Api,
    user: String,
}

impl Fixture {
    async fn new() -> Self {
        let api = Api::new().await;
        let user = api.user_row("owner", "x").await;
        Self { api, user }
    }

    /// A media created `age_ms` before [`NOW`] after `attempts` processing
    /// attempts, with its original and each attempt's outputs in the store.
    async fn media(&self, age_ms: i64, attempts: i64) -> String {
        let state = if attempts > 0 {
            "ready"
        } else {
            "awaiting_upload"
        };
        let row = NewMedia {
            size_bytes: 4,
            version: (attempts > 0).then_some(attempts),
            attempts: attempts as i32,
            created_at: NOW - age_ms,
            ..NewMedia::bare(state)
        };
        let id = self.api.media_with(&self.user, row).await;
        for key in keys_of(&id, attempts) {
            self.api.put_object(&key, b"data").await;
        }
        id
    }

    async fn post(&self, media: &str) {
        self.api.post_on(&self.user, media, "", &[], 0).await;
    }

    async fn exists(&self, media: &str) -> bool {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM media WHERE id = $1")
            .bind(media)
            .fetch_one(self.api.t.db.pool())
            .await
            .unwrap();
        n == 1
    }

    async fn objects_present(&self, keys: &[String]) -> usize {
        let store = self.api.store();
        let mut n = 0;
        for key in keys {
            if store.head(key).await.unwrap().is_some() {
                n += 1;
            }
        }
        n
    }

    async fn sweep(&self) -> Swept {
        self.api.sweep(DAY, NOW).await
    }

    /// How many files the store holds.
    fn files(&self) -> usize {
        files_under(self.api.blobs.path())
    }
}

fn keys_of(id: &str, attempts: i64) -> Vec<String> {
    let mut keys = vec![original_key(id)];
    for v in 1..=attempts {
        let prefix = output_prefix(id, v);
        keys.extend(OutputFormat::ALL.map(|output| output.key(&prefix)));
    }
    keys
}

fn files_under(root: &Path) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(root).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            n += files_under(&entry.path());
        } else {
            n += 1;
        }
    }
    n
}

#[tokio::test]
async fn only_old_unattached_media_and_its_objects_are_deleted() {
    let f = Fixture::new().await;
    let old_ready = f.media(DAY_MS + 1, 2).await;
    let old_never_uploaded = f.media(2 * DAY_MS, 0).await;
    let old_posted = f.media(3 * DAY_MS, 1).await;
    f.post(&old_posted).await;
    let young = f.media(DAY_MS - 60_000, 1).await;
    let leased = f.media(2 * DAY_MS, 1).await;
    sqlx::query("UPDATE media SET state = 'processing', lease_until = $1 WHERE id = $2")
        .bind(NOW + 30_000)
        .bind(&leased)
        .execute(f.api.t.db.pool())
        .await
        .unwrap();
    // An object of someone else's media under a similar prefix stays.
    f.api
        .put_object("media/unrelated/v1/audio.opus", b"data")
        .await;
    let before = f.files();

    let swept = f.sweep().await;
    assert_eq!(
        swept,
        Swept {
            media: 2,
            objects_failed: 0
        }
    );
    assert!(!f.exists(&old_ready).await);
    assert!(!f.exists(&old_never_uploaded).await);
    assert_eq!(f.objects_present(&keys_of(&old_ready, 2)).await, 0);
    for kept in [&old_posted, &young, &leased] {
        assert!(f.exists(kept).await, "{kept} was deleted");
    }
    assert_eq!(f.objects_present(&keys_of(&old_posted, 1)).await, 5);
    assert_eq!(f.objects_present(&keys_of(&young, 1)).await, 5);
    assert_eq!(f.objects_present(&keys_of(&leased, 1)).await, 5);
    // Exactly the two media's objects are gone: 1 + 2×4 and 1.
    assert_eq!(f.files(), before - 10);

    // Idempotent: nothing left to do.
    assert_eq!(f.sweep().await, Swept::default());
}

#[tokio::test]
async fn a_pass_goes_through_every_batch() {
    let f = Fixture::new().await;
    let n = BATCH as usize * 2 + 7;
    // Interleave kept (posted) media so batches hold both kinds.
    let mut kept = Vec::new();
    for i in 0..n {
        let id = f.media(2 * DAY_MS, 0).await;
        if i % 10 == 0 {
            f.post(&id).await;
            kept.push(id);
        }
    }
    let swept = f.sweep().await;
    assert_eq!(swept.media as usize, n - kept.len());
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM media")
        .fetch_one(f.api.t.db.pool())
        .await
        .unwrap();
    assert_eq!(left as usize, kept.len());
    for id in &kept {
        assert!(f.exists(id).await);
    }
}
