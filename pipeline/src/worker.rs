//! The worker pool: takes job messages from the queue and runs the media job.
//!
//! At most `concurrency` jobs run at once (a semaphore of job slots), and the
//! CPU work — the audio engine — runs on tokio's blocking pool behind a second
//! semaphore of the same size, held until the engine really returns, so even
//! an abandoned job cannot push the machine past its bound.
//!
//! Each job: parse the message → claim the media (a lease; the loser of a race
//! backs off) → download the original → process → upload the outputs under a
//! new versioned prefix → mark `ready` with the report, bars, duration and
//! prefix, if the lease still holds → delete the message. A heartbeat extends
//! both the message's visibility and the lease while the job runs.
//!
//! The decision to retry or give up is taken where the failure is known:
//! unusable input fails the media at once; store, queue and database trouble,
//! a timeout or a panic in the engine releases the message with exponential
//! backoff and jitter; on the last allowed receive the media is marked
//! `failed` with the last reason and the message goes on to the dead letters.

use crate::clock::now_ms;
use crate::job::{parse_message, JobMessage, Parsed};
use crate::media::{self, Claim, Finished, Lease, MediaEvent, MediaEvents, MediaState};
use crate::metrics::PipelineMetrics;
use crate::queue::{Delivery, Queue, QueueError};
use crate::registry;
use crate::store::{output_prefix, Store, StoreError};
use rand::Rng;
use sori_codecs::process::Processed;
use sori_codecs::CodecError;
use sori_codecs::OutputFormat;
use sori_db::Db;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;

/// Most messages asked for in one receive.
const MAX_BATCH: usize = 10;
/// Pause after the queue itself failed, before receiving again.
const ERROR_PAUSE: Duration = Duration::from_secs(1);
/// Time running jobs get to release their messages once the grace period is over.
const ABANDON_GRACE: Duration = Duration::from_secs(10);
/// Older output versions cleaned after a success (bounded work per job).
const MAX_VERSIONS_CLEANED: i64 = 50;

/// The engine call: `(original, output directory) → outputs written there`.
/// Replaceable so tests can inject panics and delays.
pub type ProcessFn = Arc<dyn Fn(&Path, &Path) -> Result<Processed, CodecError> + Send + Sync>;

/// How the pool runs. [`WorkerConfig::default`] gives production values.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Jobs at once (`SORI_WORKERS`; default: the number of cores).
    pub concurrency: usize,
    /// How long a received message (and a media lease) stays ours without a heartbeat.
    pub visibility: Duration,
    /// How often a running job extends its visibility and lease.
    pub heartbeat: Duration,
    /// A job running longer is abandoned and retried.
    pub job_timeout: Duration,
    /// Receives allowed before the media fails and the message dead-letters
    /// (must match the queue's own limit or redrive policy).
    pub max_receives: u32,
    /// Long-poll wait of one receive.
    pub wait: Duration,
    /// First retry delay; doubles per receive, up to `backoff_max`, with jitter.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// After a stop request, how long running jobs may finish before release.
    pub shutdown_grace: Duration,
    /// Where originals and outputs are staged while a job runs.
    pub work_dir: PathBuf,
    /// How often queue depth is sampled into the metrics.
    pub depth_interval: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            concurrency: default_concurrency(),
            visibility: Duration::from_secs(60),
            heartbeat: Duration::from_secs(15),
            job_timeout: Duration::from_secs(600),
            max_receives: crate::queue::embedded::DEFAULT_MAX_RECEIVES,
            wait: Duration::from_secs(2),
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(300),
            shutdown_grace: Duration::from_secs(20),
            work_dir: std::env::temp_dir().join("sori-work"),
            depth_interval: Duration::from_secs(5),
        }
    }
}

/// The number of cores, the default number of concurrent jobs.
pub fn default_concurrency() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// What became of one media job of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Processed; the outputs are under version `version`.
    Ready { version: i64 },
    /// A duplicate delivery of a finished media: nothing changed.
    AlreadyFinished(MediaState),
    /// No such media (deleted meanwhile).
    Missing,
    /// The input is unusable: the media failed with this reason.
    Failed(String),
    /// Will be retried (or, on the last receive, failed) for this reason.
    Retry { kind: &'static str, reason: String },
    /// Another worker holds the media.
    Busy { remaining_ms: i64 },
    /// Our lease was taken over while we worked; the other worker's result stands.
    Lost,
    /// Stopped by shutdown and given back.
    Abandoned,
    /// The message named no job (an S3 test event, another key) or was unreadable.
    Ignored(String),
}

/// What happens to the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Settle {
    Delete,
    Release(Duration),
}

/// Why a leased job stopped short of `ready`.
enum JobError {
    Input(String),
    Retry { kind: &'static str, reason: String },
    Lost,
    Abandoned,
}

impl From<StoreError> for JobError {
    fn from(e: StoreError) -> Self {
        JobError::Retry {
            kind: "transient",
            reason: e.to_string(),
        }
    }
}

impl From<media::MediaError> for JobError {
    fn from(e: media::MediaError) -> Self {
        JobError::Retry {
            kind: "transient",
            reason: e.to_string(),
        }
    }
}

/// A pool of job slots over one store and one queue. Cheap to clone.
pub struct Worker<S, Q> {
    inner: Arc<Inner<S, Q>>,
    /// Where `ready` / `failed` transitions are announced (see [`MediaEvents`]).
    events: MediaEvents,
}

impl<S, Q> Clone for Worker<S, Q> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            events: self.events.clone(),
        }
    }
}

struct Inner<S, Q> {
    /// This pool's id in the worker registry.
    id: String,
    db: Db,
    store: S,
    queue: Q,
    cfg: WorkerConfig,
    metrics: PipelineMetrics,
    process: ProcessFn,
    cpu: Arc<Semaphore>,
}

impl<S: Store, Q: Queue> Worker<S, Q> {
    /// A pool running the default engine profile and limits.
    pub fn new(db: Db, store: S, queue: Q, cfg: WorkerConfig, metrics: PipelineMetrics) -> Self {
        let profile = sori_codecs::Profile::default();
        let limits = sori_codecs::Limits::default();
        let process: ProcessFn = Arc::new(move |input, out| {
            sori_codecs::process::process_file(input, out, &profile, &limits)
        });
        Self::with_processor(db, store, queue, cfg, metrics, process)
    }

    /// A pool calling `process` instead of the engine's default chain.
    pub fn with_processor(
        db: Db,
        store: S,
        queue: Q,
        cfg: WorkerConfig,
        metrics: PipelineMetrics,
        process: ProcessFn,
    ) -> Self {
        let slots = cfg.concurrency.max(1);
        metrics.worker_slots.set(slots as i64);
        Self {
            inner: Arc::new(Inner {
                id: uuid::Uuid::now_v7().to_string(),
                db,
                store,
                queue,
                cfg: WorkerConfig {
                    concurrency: slots,
                    ..cfg
                },
                metrics,
                process,
                cpu: Arc::new(Semaphore::new(slots)),
            }),
            events: MediaEvents::default(),
        }
    }

    /// Publishes this pool's media events on `events` (e.g. the API's
    /// [`MediaEvents`], when both run in one process) instead of its own.
    pub fn with_events(mut self, events: MediaEvents) -> Self {
        self.events = events;
        self
    }

    /// The channel this pool announces `ready` / `failed` media on, for the
    /// API's WebSocket to forward as `media.ready` events.
    pub fn events(&self) -> &MediaEvents {
        &self.events
    }

    /// Takes and runs jobs until `stop` resolves; then takes no more, lets
    /// running jobs finish within the grace period, releases the rest
    /// (visible again at once) and returns.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        let cfg = &self.inner.cfg;
        let slots = Arc::new(Semaphore::new(cfg.concurrency));
        let (abandon_tx, abandon_rx) = watch::channel(false);
        let mut jobs = JoinSet::new();
        let sampler = tokio::spawn(self.clone().sample_depth());
        let reaper = tokio::spawn(self.clone().reap());
        tokio::pin!(stop);
        tracing::info!(slots = cfg.concurrency, "worker pool started");
        loop {
            while let Some(done) = jobs.try_join_next() {
                log_join(done);
            }
            let first = tokio::select! {
                biased;
                _ = &mut stop => break,
                p = slots.clone().acquire_owned() => p,
            };
            let Ok(first) = first else { break };
            let mut permits = vec![first];
            while permits.len() < MAX_BATCH {
                match slots.clone().try_acquire_owned() {
                    Ok(p) => permits.push(p),
                    Err(_) => break,
                }
            }
            let max = u32::try_from(permits.len()).unwrap_or(1);
            let received = tokio::select! {
                biased;
                _ = &mut stop => break,
                r = self.inner.queue.receive(max, cfg.wait, cfg.visibility) => r,
            };
            match received {
                Ok(deliveries) => {
                    for (delivery, permit) in deliveries.into_iter().zip(permits) {
                        let worker = self.clone();
                        let abandon = abandon_rx.clone();
                        jobs.spawn(async move {
                            worker.handle_until(delivery, abandon).await;
                            drop(permit);
                        });
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot receive jobs; retrying");
                    drop(permits);
                    tokio::select! {
                        _ = &mut stop => break,
                        _ = tokio::time::sleep(ERROR_PAUSE) => {}
                    }
                }
            }
        }
        sampler.abort();
        reaper.abort();
        self.drain(jobs, abandon_tx).await;
        if let Err(e) = registry::leave(&self.inner.db, &self.inner.id).await {
            tracing::warn!(error = %e, "cannot leave the worker registry");
        }
    }

    async fn drain(&self, mut jobs: JoinSet<()>, abandon: watch::Sender<bool>) {
        tracing::info!(
            running = jobs.len(),
            "worker pool stopping: taking no new jobs"
        );
        let all_done = async {
            while let Some(done) = jobs.join_next().await {
                log_join(done);
            }
        };
        if tokio::time::timeout(self.inner.cfg.shutdown_grace, all_done)
            .await
            .is_ok()
        {
            return;
        }
        tracing::warn!(
            running = jobs.len(),
            "grace period over: releasing running jobs"
        );
        let _ = abandon.send(true);
        let released = async {
            while let Some(done) = jobs.join_next().await {
                log_join(done);
            }
        };
        if tokio::time::timeout(ABANDON_GRACE, released).await.is_err() {
            jobs.abort_all();
        }
    }

    /// Handles one delivery to the end (used by the pool; public for tests and
    /// tools): runs its jobs, then deletes or releases the message.
    pub async fn handle(&self, delivery: Delivery) -> Vec<Outcome> {
        let (_never, abandon) = watch::channel(false);
        self.handle_until(delivery, abandon).await
    }

    async fn handle_until(&self, d: Delivery, abandon: watch::Receiver<bool>) -> Vec<Outcome> {
        let jobs = match parse_message(&d.body) {
            Ok(Parsed::Jobs(jobs)) => jobs,
            Ok(Parsed::Ignore(why)) => {
                tracing::debug!(%why, "message ignored");
                self.settle(&d, Settle::Delete).await;
                return vec![Outcome::Ignored(why)];
            }
            Err(e) => {
                tracing::warn!(error = %e, "deleting an unreadable message");
                self.inner.metrics.failed("bad_message", false);
                self.settle(&d, Settle::Delete).await;
                return vec![Outcome::Ignored(e.to_string())];
            }
        };
        let mut outcomes = Vec::with_capacity(jobs.len());
        let mut settle = Settle::Delete;
        for job in &jobs {
            let span =
                tracing::info_span!("job", media_id = %job.media_id, receive = d.receive_count);
            let outcome = self
                .run_one(job, &d, abandon.clone())
                .instrument(span.clone())
                .await;
            settle = settle.max(self.decide(job, &d, &outcome).instrument(span).await);
            outcomes.push(outcome);
        }
        self.settle(&d, settle).await;
        outcomes
    }

    async fn run_one(
        &self,
        job: &JobMessage,
        d: &Delivery,
        abandon: watch::Receiver<bool>,
    ) -> Outcome {
        match media::claim(&self.inner.db, &job.media_id, self.inner.cfg.visibility).await {
            Err(e) => Outcome::Retry {
                kind: "transient",
                reason: e.to_string(),
            },
            Ok(Claim::Missing) => Outcome::Missing,
            Ok(Claim::Finished(state)) => Outcome::AlreadyFinished(state),
            Ok(Claim::Busy { remaining_ms }) => Outcome::Busy { remaining_ms },
            Ok(Claim::Won(lease)) => self.run_leased(job, d, lease, abandon).await,
        }
    }

    async fn run_leased(
        &self,
        job: &JobMessage,
        d: &Delivery,
        lease: Lease,
        mut abandon: watch::Receiver<bool>,
    ) -> Outcome {
        let m = &self.inner.metrics;
        m.jobs_started.inc();
        m.jobs_running.inc();
        tracing::info!(attempt = lease.attempt, "job started");
        let timeout = self.inner.cfg.job_timeout;
        let result = tokio::select! {
            r = tokio::time::timeout(timeout, self.work(job, &lease)) => r.unwrap_or_else(|_| Err(JobError::Retry {
                kind: "timeout",
                reason: format!("timed out after {} s", timeout.as_secs()),
            })),
            _ = self.heartbeat(d, &lease) => Err(JobError::Lost),
            _ = abandon.wait_for(|stop| *stop) => Err(JobError::Abandoned),
        };
        m.jobs_running.dec();
        let (to, reason, outcome) = match result {
            Ok(version) => {
                m.jobs_succeeded.inc();
                tracing::info!(version, "job ready");
                return Outcome::Ready { version };
            }
            Err(JobError::Lost) => return Outcome::Lost,
            Err(JobError::Input(reason)) => {
                m.failed("input", false);
                tracing::info!(%reason, "unusable input: media failed");
                (MediaState::Failed, reason.clone(), Outcome::Failed(reason))
            }
            Err(JobError::Abandoned) => (
                MediaState::Queued,
                "interrupted by shutdown".to_owned(),
                Outcome::Abandoned,
            ),
            Err(JobError::Retry { kind, reason }) => {
                tracing::warn!(kind, %reason, "job attempt failed");
                (
                    MediaState::Queued,
                    reason.clone(),
                    Outcome::Retry { kind, reason },
                )
            }
        };
        match media::release_lease(&self.inner.db, &lease, to, &reason).await {
            Ok(event) => self.announce(event),
            Err(e) => {
                tracing::warn!(error = %e, "cannot record the job's end; its lease will expire")
            }
        }
        outcome
    }

    /// Download → process → upload → record. Returns the output version.
    async fn work(&self, job: &JobMessage, lease: &Lease) -> Result<i64, JobError> {
        let inner = &self.inner;
        let dir = WorkDir::create(&inner.cfg.work_dir).map_err(StoreError::Io)?;
        let input = dir.0.join("original");
        let t = Instant::now();
        match inner.store.get_to_file(&job.key, &input).await {
            Err(StoreError::NotFound(_)) => {
                return Err(JobError::Input("the original upload is missing".to_owned()))
            }
            other => other?,
        };
        inner.metrics.stage("download", t.elapsed().as_secs_f64());
        let out = dir.0.join("out");
        let t = Instant::now();
        let processed = self.process_blocking(input, out.clone()).await?;
        let process_secs = t.elapsed().as_secs_f64();
        inner.metrics.stage("process", process_secs);
        let prefix = output_prefix(&lease.media_id, lease.attempt);
        let t = Instant::now();
        for output in OutputFormat::ALL {
            let file = out.join(output.file_name());
            inner
                .store
                .put_file(&output.key(&prefix), &file, output.content_type())
                .await?;
        }
        inner.metrics.stage("upload", t.elapsed().as_secs_f64());
        self.record(lease, &processed, &prefix).await?;
        let audio_secs = processed.report.duration_ms as f64 / 1000.0;
        if process_secs > 0.0 {
            inner
                .metrics
                .realtime_factor
                .observe(audio_secs / process_secs);
        }
        self.clean_older_versions(lease).await;
        Ok(lease.attempt)
    }

    async fn record(
        &self,
        lease: &Lease,
        processed: &Processed,
        prefix: &str,
    ) -> Result<(), JobError> {
        let encode = |e: serde_json::Error| JobError::Retry {
            kind: "transient",
            reason: format!("report json: {e}"),
        };
        let report = serde_json::to_string(&processed.report).map_err(encode)?;
        let bars = serde_json::to_string(&processed.report.waveform.bars).map_err(encode)?;
        let done = Finished {
            report: &report,
            bars: &bars,
            duration_ms: i64::try_from(processed.report.duration_ms).unwrap_or(i64::MAX),
            output_prefix: prefix,
        };
        if let Some(event) = media::complete(&self.inner.db, lease, &done).await? {
            self.announce(Some(event));
            return Ok(());
        }
        // Another worker took over: its result stands, ours must not linger.
        tracing::warn!("lease lost before recording; discarding this attempt's outputs");
        self.delete_version(&lease.media_id, lease.attempt).await;
        Err(JobError::Lost)
    }

    async fn process_blocking(&self, input: PathBuf, out: PathBuf) -> Result<Processed, JobError> {
        // The CPU permit moves into the blocking task: it is returned only when
        // the engine really stops, even if this job is abandoned meanwhile.
        let cpu = self
            .inner
            .cpu
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| JobError::Abandoned)?;
        let process = self.inner.process.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let result = process(&input, &out);
            drop(cpu);
            result
        })
        .await;
        match joined {
            Ok(Ok(processed)) => Ok(processed),
            Ok(Err(e)) if e.is_input_error() => Err(JobError::Input(e.to_string())),
            Ok(Err(e)) => Err(JobError::Retry {
                kind: "transient",
                reason: e.to_string(),
            }),
            Err(e) if e.is_panic() => Err(JobError::Retry {
                kind: "panic",
                reason: format!(
                    "panic in the audio engine: {}",
                    panic_message(e.into_panic())
                ),
            }),
            Err(e) => Err(JobError::Retry {
                kind: "transient",
                reason: e.to_string(),
            }),
        }
    }

    /// Keeps the message invisible and the lease alive; returns only when the
    /// lease was lost to another worker.
    async fn heartbeat(&self, d: &Delivery, lease: &Lease) {
        let cfg = &self.inner.cfg;
        loop {
            tokio::time::sleep(cfg.heartbeat).await;
            match self.inner.queue.extend(d, cfg.visibility).await {
                Ok(()) | Err(QueueError::StaleReceipt) => {}
                Err(e) => tracing::warn!(error = %e, "cannot extend the message's visibility"),
            }
            match media::renew(&self.inner.db, lease, cfg.visibility).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!("lease taken over by another worker; stopping");
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "cannot renew the lease"),
            }
        }
    }

    /// What to do with the message after one job's outcome.
    async fn decide(&self, job: &JobMessage, d: &Delivery, outcome: &Outcome) -> Settle {
        let cfg = &self.inner.cfg;
        match outcome {
            Outcome::Retry { kind, reason } => {
                if d.receive_count >= cfg.max_receives {
                    self.inner.metrics.failed(kind, false);
                    tracing::warn!(%reason, "last allowed receive: media failed, message dead-letters");
                    match media::fail_unless_ready(&self.inner.db, &job.media_id, reason).await {
                        Ok(event) => self.announce(event),
                        Err(e) => tracing::warn!(error = %e, "cannot mark the media failed"),
                    }
                    Settle::Release(Duration::ZERO)
                } else {
                    self.inner.metrics.failed(kind, true);
                    Settle::Release(backoff(cfg, d.receive_count))
                }
            }
            // A copy of a job another worker is running, on its last allowed
            // receive: that worker settles its own delivery (and the reaper
            // re-queues the media if it dies), so releasing this one again
            // would only send a healthy job to the dead letters.
            Outcome::Busy { .. } if d.receive_count >= cfg.max_receives => Settle::Delete,
            Outcome::Busy { remaining_ms } => {
                let wait = Duration::from_millis(u64::try_from(*remaining_ms).unwrap_or(0));
                Settle::Release(
                    (wait + Duration::from_millis(500))
                        .clamp(Duration::from_secs(1), cfg.visibility),
                )
            }
            Outcome::Abandoned => Settle::Release(Duration::ZERO),
            _ => Settle::Delete,
        }
    }

    /// Publishes a committed final state to in-process listeners.
    fn announce(&self, event: Option<MediaEvent>) {
        if let Some(event) = event {
            self.events.publish(event);
        }
    }

    async fn settle(&self, d: &Delivery, settle: Settle) {
        let result = match settle {
            Settle::Delete => self.inner.queue.delete(d).await,
            Settle::Release(delay) => self.inner.queue.release(d, delay).await,
        };
        match result {
            Ok(()) => {}
            Err(QueueError::StaleReceipt) => tracing::debug!("message was redelivered meanwhile"),
            Err(e) => {
                tracing::warn!(error = %e, ?settle, "cannot settle the message; it will be redelivered")
            }
        }
    }

    async fn clean_older_versions(&self, lease: &Lease) {
        for version in (lease.attempt - MAX_VERSIONS_CLEANED).max(1)..lease.attempt {
            self.delete_version(&lease.media_id, version).await;
        }
    }

    async fn delete_version(&self, media_id: &str, version: i64) {
        let prefix = output_prefix(media_id, version);
        for output in OutputFormat::ALL {
            if let Err(e) = self.inner.store.delete(&output.key(&prefix)).await {
                tracing::warn!(error = %e, %prefix, "cannot delete an abandoned output");
            }
        }
    }

    /// Re-queues or fails media stuck in `processing` until aborted.
    async fn reap(self) {
        let i = &self.inner;
        let cfg = crate::reaper::ReaperConfig::for_worker(&i.cfg);
        crate::reaper::run(&i.db, &i.queue, &cfg, &i.metrics).await;
    }

    /// Refreshes this pool's row in the worker registry and samples the
    /// queue depth and the oldest queued media's wait, every `depth_interval`.
    async fn sample_depth(self) {
        let m = &self.inner.metrics;
        loop {
            let slots = self.inner.cfg.concurrency;
            if let Err(e) = registry::refresh(&self.inner.db, &self.inner.id, slots).await {
                tracing::debug!(error = %e, "cannot refresh the worker registry");
            }
            // At least this process, even if the registry cannot be read.
            let live = registry::live(&self.inner.db)
                .await
                .map(|f| f.workers)
                .unwrap_or(1)
                .max(1);
            m.live_workers.set(i64::try_from(live).unwrap_or(i64::MAX));
            match self.inner.queue.depth().await {
                Ok(depth) => {
                    m.queue_visible
                        .set(i64::try_from(depth.visible).unwrap_or(i64::MAX));
                    m.queue_in_flight
                        .set(i64::try_from(depth.in_flight).unwrap_or(i64::MAX));
                    m.queue_dead
                        .set(i64::try_from(depth.dead).unwrap_or(i64::MAX));
                    let backlog = (depth.visible + depth.in_flight) as f64 / live as f64;
                    m.backlog_per_worker.set(backlog);
                }
                Err(e) => tracing::debug!(error = %e, "cannot sample queue depth"),
            }
            match media::oldest_queued_wait(&self.inner.db, now_ms()).await {
                Ok(waited) => {
                    m.queue_oldest
                        .set(i64::try_from(waited.as_secs()).unwrap_or(i64::MAX));
                }
                Err(e) => tracing::debug!(error = %e, "cannot read the oldest queued media"),
            }
            tokio::time::sleep(self.inner.cfg.depth_interval).await;
        }
    }
}

/// Exponential backoff with jitter: `base · 2^(n−1)` capped at `max`, then a
/// uniform pick in its upper half (so retries of many jobs spread out).
pub fn backoff(cfg: &WorkerConfig, receive_count: u32) -> Duration {
    let exp = receive_count.saturating_sub(1).min(20);
    let full = cfg
        .backoff_base
        .saturating_mul(1 << exp)
        .min(cfg.backoff_max);
    let half = full / 2;
    half + full.mul_f64(rand::thread_rng().gen_range(0.0..0.5))
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

fn log_join(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        if e.is_panic() {
            tracing::error!(error = %e, "a job task panicked outside the engine");
        }
    }
}

/// A job's scratch directory, removed when the job ends however it ends.
struct WorkDir(PathBuf);

impl WorkDir {
    fn create(parent: &Path) -> std::io::Result<Self> {
        let dir = parent.join(uuid::Uuid::new_v4().simple().to_string());
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let cfg = WorkerConfig {
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(60),
            ..WorkerConfig::default()
        };
        for _ in 0..100 {
            let first = backoff(&cfg, 1);
            assert!(
                first >= Duration::from_secs(1) && first <= Duration::from_secs(2),
                "{first:?}"
            );
            let third = backoff(&cfg, 3);
            assert!(
                third >= Duration::from_secs(4) && third <= Duration::from_secs(8),
                "{third:?}"
            );
            let late = backoff(&cfg, 30);
            assert!(
                late >= Duration::from_secs(30) && late <= Duration::from_secs(60),
                "{late:?}"
            );
        }
    }
}
