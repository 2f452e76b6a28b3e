//! The application state every handler can reach.

use crate::core::cache::{CacheConfig, FeedPages};
use crate::core::limits::{CreationLimits, LoginLimiter};
use crate::core::mail::Mailer;
use crate::core::media_urls::{self, MediaUrls};
use crate::core::metrics::Metrics;
use crate::core::proxies::TrustedProxies;
use crate::core::realtime::Realtime;
use crate::core::sessions::{Ending, Sessions};
use axum::extract::FromRef;
use sori_db::Db;
use sori_pipeline::media::MediaEvents;
use sori_pipeline::metrics::{MetricSink, PipelineMetrics};
use sori_pipeline::queue::JobQueue;
use sori_pipeline::store::ObjectStore;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// How long timelines get and which authors are written out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimelineConfig {
    /// Rows kept per user (`SORI_TIMELINE_LENGTH`); older posts are read
    /// by the merge over followed authors.
    pub length: i64,
    /// Followers above which an author's posts are read at feed time
    /// instead of written into each follower's timeline (`SORI_FANOUT_MAX_FOLLOWERS`).
    pub max_fan_out: i64,
}

impl Default for TimelineConfig {
    fn default() -> Self {
        Self {
            length: 800,
            max_fan_out: 5000,
        }
    }
}

/// Cheap to clone: every field is a handle.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub metrics: Arc<Metrics>,
    /// Absolute base of the URLs the API hands out (`SORI_PUBLIC_URL`), without a trailing slash.
    pub public_url: String,
    /// Failed-login counts per account and client address.
    pub login_limiter: Arc<LoginLimiter>,
    /// Sign-ups per client address, uploads and chat messages per user.
    pub creation_limits: Arc<CreationLimits>,
    /// The proxies whose `X-Forwarded-For` names the client (`SORI_TRUSTED_PROXIES`).
    pub trusted_proxies: Arc<TrustedProxies>,
    /// Where uploads and processed audio live; `None` in a state built for
    /// tests that need no media (the media routes then answer 503).
    pub store: Option<ObjectStore>,
    /// Where processing jobs go; `None` as for `store`.
    pub queue: Option<JobQueue>,
    /// Signs the media URLs answers carry (from `store`, with their lifetime).
    pub media_urls: MediaUrls,
    /// Media that became `ready` or `failed`, from a worker pool in this
    /// process: the source of the WebSocket's `media.ready` events.
    pub media_events: MediaEvents,
    /// Live sockets of this process, and the fanout between processes.
    pub realtime: Realtime,
    /// Token hash → session, for a few seconds ([`crate::core::cache`]).
    pub sessions: Sessions,
    /// Viewer → their recently served feed pages ([`crate::core::cache`]).
    pub feed_pages: Arc<FeedPages>,
    /// The bearer token `/metrics` asks for (`SORI_METRICS_TOKEN`); `None`: open.
    pub metrics_token: Option<Arc<str>>,
    /// Sends the mail outbox (`SORI_SMTP_URL`); `None`: email and password
    /// recovery answer 503, everything else works.
    pub mailer: Option<Arc<Mailer>>,
    /// Home timeline length and fan-out limit (see `effects::timelines`).
    pub timelines: TimelineConfig,
    /// Set at SIGTERM: `/readyz` answers 503 from then on, while the
    /// listener still serves (`SORI_DRAIN_SECS`), so load balancers stop
    /// sending here before it closes.
    pub draining: Arc<AtomicBool>,
}

impl AppState {
    pub fn new(db: Db) -> Self {
        let caches = CacheConfig::off();
        Self {
            db,
            metrics: Arc::new(Metrics::default()),
            public_url: "http://127.0.0.1:8080".to_owned(),
            login_limiter: Arc::new(LoginLimiter::default()),
            creation_limits: Arc::new(CreationLimits::default()),
            trusted_proxies: Arc::default(),
            store: None,
            queue: None,
            media_urls: MediaUrls::new(None, media_urls::DEFAULT_TTL),
            media_events: MediaEvents::default(),
            realtime: Realtime::default(),
            sessions: Sessions::new(caches.session_ttl, caches.capacity),
            feed_pages: Arc::new(FeedPages::new(caches.feed_ttl, caches.capacity)),
            metrics_token: None,
            mailer: None,
            timelines: TimelineConfig::default(),
            draining: Arc::default(),
        }
    }

    /// Turns on the session and feed caches (off in [`AppState::new`], so a
    /// test that changes rows behind the API's back reads them at once); sets
    /// their lifetimes and size (`SORI_SESSION_CACHE_MS`, `SORI_FEED_CACHE_MS`).
    pub fn with_caches(mut self, config: CacheConfig) -> Self {
        self.sessions = Sessions::new(config.session_ttl, config.capacity);
        self.feed_pages = Arc::new(FeedPages::new(config.feed_ttl, config.capacity));
        self
    }

    /// Sets the home timelines' length and fan-out limit
    /// (`SORI_TIMELINE_LENGTH`, `SORI_FANOUT_MAX_FOLLOWERS`).
    pub fn with_timelines(mut self, config: TimelineConfig) -> Self {
        self.timelines = config;
        self
    }

    /// Shares a worker pool's event channel (`Worker::events`) when the pool
    /// runs in this process (`sori serve`).
    pub fn with_media_events(mut self, events: MediaEvents) -> Self {
        self.media_events = events;
        self
    }

    /// Sets how events reach sockets on other processes, and socket timing.
    pub fn with_realtime(mut self, realtime: Realtime) -> Self {
        self.realtime = realtime;
        self
    }

    /// Connects the media routes to the object store and the job queue.
    pub fn with_media(mut self, store: ObjectStore, queue: JobQueue) -> Self {
        self.media_urls = MediaUrls::new(Some(store.clone()), self.media_urls.ttl());
        self.store = Some(store);
        self.queue = Some(queue);
        self
    }

    /// Sets how long the media URLs in answers work (`SORI_MEDIA_URL_TTL_SECS`).
    pub fn with_media_url_ttl(mut self, ttl: Duration) -> Self {
        self.media_urls = MediaUrls::new(self.store.clone(), ttl);
        self
    }

    /// Shows the worker pool's metrics on this process's `/metrics`.
    pub fn with_pipeline_metrics(self, pipeline: &PipelineMetrics) -> Self {
        pipeline.register(&mut MetricsSink(&self.metrics));
        self
    }

    /// Replaces the default sign-up, upload and message limits
    /// (`SORI_SIGNUPS_PER_HOUR`, `SORI_MEDIA_PER_HOUR`, `SORI_MESSAGES_PER_MINUTE`).
    pub fn with_creation_limits(mut self, limits: CreationLimits) -> Self {
        self.creation_limits = Arc::new(limits);
        self
    }

    /// Believes `X-Forwarded-For` from these proxies (`SORI_TRUSTED_PROXIES`).
    pub fn with_trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.trusted_proxies = Arc::new(proxies);
        self
    }

    /// Requires `token` as the bearer of `/metrics` requests (an empty one
    /// counts as none).
    pub fn with_metrics_token(mut self, token: Option<&str>) -> Self {
        self.metrics_token = token.filter(|t| !t.is_empty()).map(Arc::from);
        self
    }

    /// Turns on email and password recovery, mail going through `mailer`
    /// (the relay that sends it runs separately: [`crate::mail::run`]).
    pub fn with_mailer(mut self, mailer: Arc<Mailer>) -> Self {
        self.mailer = Some(mailer);
        self
    }

    /// Sets the base of the URLs handed out (audio URLs in feeds, upload URLs).
    pub fn with_public_url(mut self, url: &str) -> Self {
        self.public_url = url.trim_end_matches('/').to_owned();
        self
    }
}

impl FromRef<AppState> for TimelineConfig {
    fn from_ref(state: &AppState) -> Self {
        state.timelines
    }
}

impl FromRef<AppState> for Realtime {
    fn from_ref(state: &AppState) -> Self {
        state.realtime.clone()
    }
}

impl FromRef<AppState> for Sessions {
    fn from_ref(state: &AppState) -> Self {
        state.sessions.clone()
    }
}

impl FromRef<AppState> for Arc<FeedPages> {
    fn from_ref(state: &AppState) -> Self {
        state.feed_pages.clone()
    }
}

impl FromRef<AppState> for Db {
    fn from_ref(state: &AppState) -> Self {
        state.db.clone()
    }
}

impl FromRef<AppState> for Arc<Metrics> {
    fn from_ref(state: &AppState) -> Self {
        state.metrics.clone()
    }
}

impl FromRef<AppState> for Arc<LoginLimiter> {
    fn from_ref(state: &AppState) -> Self {
        state.login_limiter.clone()
    }
}

impl FromRef<AppState> for Arc<CreationLimits> {
    fn from_ref(state: &AppState) -> Self {
        state.creation_limits.clone()
    }
}

/// Lets the pipeline register its metrics into the API's registry.
struct MetricsSink<'a>(&'a Metrics);

impl MetricSink for MetricsSink<'_> {
    fn add(&mut self, name: &str, help: &str, metric: impl prometheus_client::registry::Metric) {
        self.0.register(name, help, metric);
    }
}

impl AppState {
    /// What ending a session touches ([`crate::core::sessions::ended`]).
    pub fn ending(&self) -> Ending<'_> {
        Ending {
            db: &self.db,
            sessions: &self.sessions,
            realtime: &self.realtime,
        }
    }
}

impl FromRef<AppState> for Arc<TrustedProxies> {
    fn from_ref(state: &AppState) -> Self {
        state.trusted_proxies.clone()
    }
}
