//! The worker's Prometheus metrics: queue depth, job outcomes, durations,
//! realtime factor and the backlog per worker an autoscaler scales on.
//!
//! They are registered into whatever registry the process renders at
//! `/metrics` through [`MetricSink`].

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Metric, Registry};
use std::sync::atomic::AtomicU64;

/// Why an attempt did not succeed, and whether it will be retried.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// `input`, `transient`, `panic`, `timeout`, `bad_message`.
    pub reason: String,
    /// `true` when the job goes back to the queue.
    pub retry: bool,
}

/// A processing stage of a job.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabels {
    /// `download`, `process`, `upload`.
    pub stage: String,
}

/// Anything metrics can be registered into (the API's registry, a bare [`Registry`]).
pub trait MetricSink {
    fn add(&mut self, name: &str, help: &str, metric: impl Metric);
}

impl MetricSink for Registry {
    fn add(&mut self, name: &str, help: &str, metric: impl Metric) {
        self.register(name, help, metric);
    }
}

/// Handles to the worker's metrics; clones share the same series.
#[derive(Debug, Clone)]
pub struct PipelineMetrics {
    pub jobs_started: Counter,
    pub jobs_succeeded: Counter,
    pub jobs_failed: Family<FailureLabels, Counter>,
    pub jobs_running: Gauge,
    pub job_duration: Histogram,
    pub stage_duration: Family<StageLabels, Histogram>,
    /// Seconds of audio per second of processing.
    pub realtime_factor: Histogram,
    pub queue_visible: Gauge,
    pub queue_in_flight: Gauge,
    pub queue_dead: Gauge,
    /// Seconds the longest-waiting queued media has waited.
    pub queue_oldest: Gauge,
    /// (visible + in flight) ÷ live worker processes (the registry).
    pub backlog_per_worker: Gauge<f64, AtomicU64>,
    /// Worker processes seen alive in the registry.
    pub live_workers: Gauge,
    pub worker_slots: Gauge,
}

impl Default for PipelineMetrics {
    fn default() -> Self {
        Self {
            jobs_started: Counter::default(),
            jobs_succeeded: Counter::default(),
            jobs_failed: Family::default(),
            jobs_running: Gauge::default(),
            job_duration: Histogram::new(exponential_buckets(0.05, 2.0, 14)),
            stage_duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.005, 2.0, 16))
            }),
            realtime_factor: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            queue_visible: Gauge::default(),
            queue_in_flight: Gauge::default(),
            queue_dead: Gauge::default(),
            queue_oldest: Gauge::default(),
            backlog_per_worker: Gauge::default(),
            live_workers: Gauge::default(),
            worker_slots: Gauge::default(),
        }
    }
}

impl PipelineMetrics {
    /// Adds every metric to `sink` (names get the sink's prefix, e.g. `sori_`).
    pub fn register(&self, sink: &mut impl MetricSink) {
        sink.add(
            "jobs_started",
            "Media jobs started",
            self.jobs_started.clone(),
        );
        sink.add(
            "jobs_succeeded",
            "Media jobs that ended ready",
            self.jobs_succeeded.clone(),
        );
        sink.add(
            "jobs_failed",
            "Media job attempts that failed, by reason and whether retried",
            self.jobs_failed.clone(),
        );
        sink.add(
            "jobs_running",
            "Media jobs running in this process",
            self.jobs_running.clone(),
        );
        sink.add(
            "job_duration_seconds",
            "Wall time of successful media jobs",
            self.job_duration.clone(),
        );
        sink.add(
            "job_stage_duration_seconds",
            "Wall time of job stages",
            self.stage_duration.clone(),
        );
        sink.add(
            "job_realtime_factor",
            "Seconds of audio processed per second of job time",
            self.realtime_factor.clone(),
        );
        sink.add(
            "queue_visible_messages",
            "Job messages ready to be received",
            self.queue_visible.clone(),
        );
        sink.add(
            "queue_in_flight_messages",
            "Job messages received and not yet deleted, or delayed",
            self.queue_in_flight.clone(),
        );
        sink.add(
            "queue_dead_messages",
            "Job messages in the dead letters",
            self.queue_dead.clone(),
        );
        sink.add(
            "queue_oldest_seconds",
            "Seconds the longest-waiting queued media has waited for a worker",
            self.queue_oldest.clone(),
        );
        sink.add(
            "queue_backlog_per_worker",
            "Queued and running jobs per live worker process",
            self.backlog_per_worker.clone(),
        );
        sink.add(
            "workers_live",
            "Worker processes alive in the registry",
            self.live_workers.clone(),
        );
        sink.add(
            "worker_slots",
            "Concurrent job slots of this process",
            self.worker_slots.clone(),
        );
    }

    pub(crate) fn failed(&self, reason: &str, retry: bool) {
        self.jobs_failed
            .get_or_create(&FailureLabels {
                reason: reason.to_owned(),
                retry,
            })
            .inc();
    }

    pub(crate) fn stage(&self, stage: &str, seconds: f64) {
        self.stage_duration
            .get_or_create(&StageLabels {
                stage: stage.to_owned(),
            })
            .observe(seconds);
    }
}
