//! The pipeline's faults end to end in production mode: `sori migrate`, one
//! `sori api` and `sori worker` processes on PostgreSQL (a fresh schema), S3
//! (a fresh bucket) and SQS (a fresh queue with a dead-letter queue) served
//! by the local moto server; uploads through the API's signed URL with a
//! plain HTTP client.
//!
//! - a duplicate delivery, while the job runs and after it is ready, changes
//!   nothing;
//! - the worker holding a job is killed (SIGKILL): another one finishes it,
//!   one output set remains;
//! - a poison file fails once, with its reason, and is not retried;
//! - S3 refusing the original a few times (a fault-injecting proxy in front
//!   of moto, for the worker only): retried, then `ready`;
//! - SIGTERM while a job runs: the worker exits 0 within its grace period and
//!   gives the job back at once; another worker finishes it.
//!
//! See `common/aws.rs` for where PostgreSQL and moto are found.

mod common;

use common::aws::{Backends, Moto, PgSchema, QueueCounts, TestQueue};
use common::client::{check_outputs, ffprobe, Client, Person};
use common::fault_proxy::FaultProxy;
use common::{
    command, eventually, fixture, long_wav, media_notifications, media_row, metric, spawn,
    MediaRow, Sori,
};
use sori_db::Db;
use sori_pipeline::job::JobMessage;
use std::path::Path;
use std::time::{Duration, Instant};

const SMALL: &str = "speech-mono-16k.m4a";
/// Ten minutes of tone: several seconds of processing, so a job can be
/// caught while it runs.
const LONG_SECS: u32 = 600;
/// Upload to a final state of the long input, on a busy machine.
const LONG_DEADLINE: Duration = Duration::from_secs(120);
const DEADLINE: Duration = Duration::from_secs(60);

/// One production deployment of the test: backends, `sori api`, a client.
struct Production {
    aws: Moto,
    bucket: String,
    queue: TestQueue,
    envs: Vec<(String, String)>,
    _api: Sori,
    client: Client,
    db: Db,
    dir: tempfile::TempDir,
    // Dropped last: the processes and the pool end before the schema goes.
    _schema: PgSchema,
}

impl Production {
    async fn start() -> Self {
        let Backends {
            aws,
            bucket,
            queue,
            dir,
            envs,
            schema,
        } = Backends::new().await;
        let out = command(dir.path(), &["migrate"], &envs).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "sori migrate: {stderr}");
        let mut api = spawn(dir.path(), &["api"], &envs);
        api.wait_ready().await;
        let client = Client::new(&api.base);
        let db = Db::connect(&schema.url, 2).await.unwrap();
        Self {
            aws,
            bucket,
            queue,
            envs,
            _api: api,
            client,
            db,
            dir,
            _schema: schema,
        }
    }

    /// A ready `sori worker` with the deployment's settings, `extra` winning.
    async fn worker(&self, extra: &[(&str, &str)]) -> Sori {
        let mut envs = self.envs.clone();
        envs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut worker = spawn(self.dir.path(), &["worker"], &envs);
        worker.wait_ready().await;
        worker
    }

    /// Signs up, uploads `file` through the signed URL and says it is done.
    async fn upload(&self, handle: &str, file: &Path, content_type: &str) -> (Person, String) {
        let who = self.client.sign_up(handle).await;
        let id = self.client.upload_file(&who, file, content_type).await;
        (who, id)
    }

    async fn row(&self, id: &str) -> MediaRow {
        media_row(&self.db, id).await
    }

    /// The output versions under `media/{id}/` that hold objects.
    async fn output_sets(&self, id: &str) -> Vec<String> {
        let prefix = format!("media/{id}/");
        let mut sets: Vec<String> = self
            .aws
            .keys(&self.bucket, &prefix)
            .await
            .iter()
            .filter_map(|k| Some(k.strip_prefix(&prefix)?.split_once('/')?.0.to_owned()))
            .collect();
        sets.dedup();
        sets
    }

    /// Exactly one output set, the one the media row names, whose audio
    /// ffprobe reads as the original's length.
    async fn check_single_output_set(&self, id: &str, original: &Path) {
        let row = self.row(id).await;
        assert_eq!(row.state, "ready", "{row:?}");
        let sets = self.output_sets(id).await;
        assert_eq!(sets.len(), 1, "output sets of {id}: {sets:?}");
        let prefix = row.output_prefix.expect("an output prefix");
        assert_eq!(prefix, format!("media/{id}/{}/", sets[0]));
        let local = self.dir.path().join(format!("outputs-{id}"));
        std::fs::create_dir_all(&local).unwrap();
        for name in ["audio.opus", "audio.caf", "audio.webm", "waveform.json"] {
            let bytes = self
                .aws
                .object(&self.bucket, &format!("{prefix}{name}"))
                .await;
            std::fs::write(local.join(name), bytes).unwrap();
        }
        check_outputs(&local, ffprobe(original).seconds);
    }

    /// Waits until the job queue holds no message at all, then checks the
    /// dead letters are empty too.
    async fn wait_queue_empty(&self) {
        let empty = QueueCounts {
            visible: 0,
            in_flight: 0,
        };
        eventually("the job queue empties", DEADLINE, || async {
            (self.aws.queue_counts(&self.queue.url).await == empty).then_some(())
        })
        .await;
        let dead = self.aws.queue_counts(&self.queue.dead_letter_url).await;
        assert_eq!(dead, empty, "dead letters");
    }
}

/// The worker of `workers` running a job, once one is (by its metrics).
async fn running_job(workers: &[&Sori]) -> usize {
    eventually("a worker runs the job", LONG_DEADLINE, || async {
        for (i, w) in workers.iter().enumerate() {
            if metric(w, "sori_jobs_running").await.unwrap_or(0.0) >= 1.0 {
                return Some(i);
            }
        }
        None
    })
    .await
}

#[tokio::test]
async fn production_duplicate_deliveries_change_nothing() {
    let p = Production::start().await;
    // A copy that finds the job running waits out the lease: keep it short.
    let short = [("SORI_JOB_VISIBILITY_SECS", "5")];
    let one = p.worker(&short).await;
    let two = p.worker(&short).await;
    let original = fixture(SMALL);
    let (alice, id) = p.upload("alice", &original, "audio/mp4").await;
    // A second copy while the first may be running: one of them waits.
    let body = JobMessage::for_media(&id).to_body();
    p.aws.send(&p.queue.url, &body).await;
    p.client.wait_ready(&alice, &id).await;
    p.wait_queue_empty().await;
    let before = p.row(&id).await;
    assert_eq!(
        before.attempts, 1,
        "one claim for two deliveries: {before:?}"
    );

    // And two more once it is ready.
    p.aws.send(&p.queue.url, &body).await;
    p.aws.send(&p.queue.url, &body).await;
    p.wait_queue_empty().await;
    let after = p.row(&id).await;
    assert_eq!(after, before, "a delivery after ready changed the media");
    assert_eq!(media_notifications(&p.db, &id, "media.ready").await, 1);
    p.check_single_output_set(&id, &original).await;
    one.stop();
    two.stop();
}

#[tokio::test]
async fn production_worker_killed_mid_job_is_replaced_and_one_output_set_remains() {
    let p = Production::start().await;
    // A dead worker's job comes back after 4 s.
    let fast = [("SORI_JOB_VISIBILITY_SECS", "4")];
    let mut workers = vec![p.worker(&fast).await, p.worker(&fast).await];
    let original = long_wav(p.dir.path(), LONG_SECS);
    let (alice, id) = p.upload("alice", &original, "audio/wav").await;
    let busy = running_job(&workers.iter().collect::<Vec<_>>()).await;
    let mut killed = workers.remove(busy);
    assert_eq!(killed.signal("-KILL"), None, "killed by the signal");
    let media = p
        .client
        .wait_state(&alice, &id, &["ready", "failed"], LONG_DEADLINE)
        .await;
    assert_eq!(media["state"], "ready", "{media}");
    let row = p.row(&id).await;
    assert_eq!(
        row.attempts, 2,
        "the killed attempt, then the other worker's"
    );
    p.check_single_output_set(&id, &original).await;
    p.wait_queue_empty().await;
    assert_eq!(media_notifications(&p.db, &id, "media.ready").await, 1);
    workers.pop().unwrap().stop();
}

#[tokio::test]
async fn production_poison_file_fails_once_with_its_reason() {
    let p = Production::start().await;
    let worker = p.worker(&[]).await;
    let (alice, id) = p
        .upload("alice", &fixture("bad-garbage.m4a"), "audio/mp4")
        .await;
    let media = p
        .client
        .wait_state(&alice, &id, &["ready", "failed"], DEADLINE)
        .await;
    assert_eq!(media["state"], "failed", "{media}");
    let reason = media["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("not an audio format"),
        "the user sees why: {reason:?}"
    );
    // The message is gone, not retried nor dead-lettered.
    p.wait_queue_empty().await;
    let row = p.row(&id).await;
    assert_eq!(row.attempts, 1, "one receive, no retry: {row:?}");
    assert_eq!(p.output_sets(&id).await, Vec::<String>::new());
    let failed = media_notifications(&p.db, &id, "media.failed").await;
    assert_eq!(failed, 1);
    worker.stop();
}

#[tokio::test]
async fn production_transient_store_failure_is_retried_then_ready() {
    let p = Production::start().await;
    // The SDK tries each request three times: four refusals make the first
    // attempt of the job fail, and the first try of the second.
    let refusals = 4;
    let originals = format!("/{}/originals/", p.bucket);
    let proxy = FaultProxy::start(&p.aws.endpoint, "GET", &originals, refusals);
    let worker = p.worker(&[("AWS_ENDPOINT_URL", proxy.url.as_str())]).await;
    let original = fixture(SMALL);
    let (alice, id) = p.upload("alice", &original, "audio/mp4").await;
    p.client.wait_ready(&alice, &id).await;
    assert_eq!(proxy.refused(), refusals, "every refusal was met");
    let row = p.row(&id).await;
    assert_eq!(row.attempts, 2, "retried once: {row:?}");
    assert_eq!(row.failure, None, "{row:?}");
    p.check_single_output_set(&id, &original).await;
    p.wait_queue_empty().await;
    worker.stop();
}

#[tokio::test]
async fn production_sigterm_mid_job_exits_0_and_gives_the_job_back() {
    let p = Production::start().await;
    // The default 60 s visibility: only an explicit release brings the job
    // back sooner. One second of grace, so the running job is released.
    let grace = [("SORI_SHUTDOWN_GRACE_SECS", "1")];
    let mut workers = vec![p.worker(&grace).await, p.worker(&grace).await];
    let original = long_wav(p.dir.path(), LONG_SECS);
    let (alice, id) = p.upload("alice", &original, "audio/wav").await;
    let busy = running_job(&workers.iter().collect::<Vec<_>>()).await;
    let mut stopping = workers.remove(busy);
    let signalled = Instant::now();
    assert_eq!(
        stopping.signal("-TERM"),
        Some(0),
        "exit status after SIGTERM"
    );
    let took = signalled.elapsed();
    // Grace, then at most 10 s for the job to let go, then the runtime's 1 s.
    assert!(took < Duration::from_secs(15), "took {took:?} to stop");

    // Released, not left to time out: the other worker claims it well
    // before the 60 s visibility would have run out.
    eventually(
        "the other worker claims the job",
        Duration::from_secs(30),
        || async { (p.row(&id).await.attempts >= 2).then_some(()) },
    )
    .await;
    let media = p
        .client
        .wait_state(&alice, &id, &["ready", "failed"], LONG_DEADLINE)
        .await;
    assert_eq!(media["state"], "ready", "{media}");
    assert_eq!(p.row(&id).await.attempts, 2);
    p.check_single_output_set(&id, &original).await;
    p.wait_queue_empty().await;
    workers.pop().unwrap().stop();
}
