//! Starting the server roles and shutting them down cleanly.

use crate::cli::Settings;
use crate::cli::{QueueKind, StoreKind};
use anyhow::Context;
use sori_api::core::cache::CacheConfig;
use sori_api::core::http::HttpConfig;
use sori_api::core::limits::CreationLimits;
use sori_api::core::mail::Mailer;
use sori_api::core::proxies::TrustedProxies;
use sori_api::core::realtime::{Fanout, Realtime, WsConfig};
use sori_api::core::server::ServerLimits;
use sori_api::core::state::TimelineConfig;
use sori_api::push::{DispatchConfig, Dispatcher, WebhookSender};
use sori_api::AppState;
use sori_db::redact;
use sori_db::{Backend, Db};
use sori_pipeline::metrics::PipelineMetrics;
use sori_pipeline::queue::sqs::SqsQueue;
use sori_pipeline::queue::{relay_outbox, EmbeddedQueue, JobQueue};
use sori_pipeline::store::local::load_or_create_secret;
use sori_pipeline::store::s3::S3Store;
use sori_pipeline::store::{LocalStore, ObjectStore};
use sori_pipeline::worker::{default_concurrency, Worker, WorkerConfig};
use std::sync::Arc;
use std::time::Duration;

/// The name of the media job queue in the embedded queue table.
const MEDIA_QUEUE: &str = "media";

/// Which halves of the service this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// API and worker pool together (`sori serve`).
    All,
    /// API only (`sori api`).
    Api,
    /// Worker pool only, with the operations endpoints (`sori worker`).
    Worker,
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Connects to `DATABASE_URL` and, unless `SORI_MIGRATE_ON_START=false`
/// (production runs `sori migrate` once per release instead), migrates it.
pub(crate) async fn open_db(settings: &Settings) -> anyhow::Result<Db> {
    let db = connect(settings).await?;
    if settings.migrate_on_start {
        apply_migrations(settings, &db).await?;
    }
    Ok(db)
}

async fn connect(settings: &Settings) -> anyhow::Result<Db> {
    let url = settings.database_url()?;
    Db::connect(&url, 10)
        .await
        .with_context(|| format!("DATABASE_URL={}", redact(&url)))
}

async fn apply_migrations(settings: &Settings, db: &Db) -> anyhow::Result<()> {
    let url = settings.database_url()?;
    db.migrate()
        .await
        .with_context(|| format!("DATABASE_URL={}: migrations", redact(&url)))
}

/// `sori migrate`: always, whatever `SORI_MIGRATE_ON_START` says.
pub fn migrate(settings: &Settings) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let db = connect(settings).await?;
        apply_migrations(settings, &db).await?;
        db.close().await;
        tracing::info!("migrations applied");
        Ok(())
    })
}

/// `sori serve`, `sori api` and `sori worker`: run until SIGTERM/SIGINT, then
/// drain: the HTTP server finishes in-flight requests, the worker pool takes
/// no new jobs and finishes or releases the running ones, and the process exits.
pub fn run(settings: &Settings, role: Role) -> anyhow::Result<()> {
    settings.check_backends()?;
    let rt = runtime()?;
    let result = rt.block_on(run_role(settings, role));
    // An engine call abandoned at shutdown cannot be interrupted (its job was
    // already released); do not wait for it.
    rt.shutdown_timeout(Duration::from_secs(1));
    result
}

/// The URL to open: the public URL, with a wildcard listen address
/// (`0.0.0.0`, `[::]`) shown as this machine's loopback.
fn browser_url(public_url: &str) -> String {
    public_url
        .trim_end_matches('/')
        .replace("://0.0.0.0", "://127.0.0.1")
        .replace("://[::]", "://[::1]")
}

async fn run_role(settings: &Settings, role: Role) -> anyhow::Result<()> {
    let http_config = HttpConfig::with_cors_origins(&settings.cors_origins)
        .context("SORI_CORS_ORIGINS")?
        .with_request_timeout(Duration::from_secs(settings.request_timeout_secs.max(1)));
    let trusted_proxies =
        TrustedProxies::parse(&settings.trusted_proxies).context("SORI_TRUSTED_PROXIES")?;
    let db = open_db(settings).await?;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("SORI_LISTEN={}: cannot listen", settings.listen))?;
    // The address bound: with port 0 in SORI_LISTEN, the one the system chose.
    let listen = listener.local_addr().context("SORI_LISTEN")?;
    tracing::info!(%listen, ?role, "sori is serving");
    let public_url = settings
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{listen}"));
    let store = open_store(settings, &public_url).await?;
    if let (ObjectStore::S3(s3), Role::All | Role::Api) = (&store, role) {
        let origins =
            crate::bucket_cors::browser_origins(&http_config, settings.public_url.as_deref());
        crate::bucket_cors::check(s3, &origins).await;
    }
    let queue = open_queue(settings, &db).await?;
    let metrics = PipelineMetrics::default();
    let fanout = open_fanout(settings, &db)?;
    let mailer = mailer(settings)?;
    let mut state = AppState::new(db.clone())
        .with_public_url(&public_url)
        .with_metrics_token(settings.metrics_token.as_deref())
        .with_trusted_proxies(trusted_proxies)
        .with_media(store.clone(), queue.clone())
        .with_media_url_ttl(Duration::from_secs(settings.media_url_ttl_secs))
        .with_pipeline_metrics(&metrics)
        .with_realtime(Realtime::new(fanout.clone(), ws_config(settings)))
        .with_creation_limits(
            CreationLimits::per_hour(settings.signups_per_hour, settings.media_per_hour)
                .with_messages_per_minute(settings.messages_per_minute),
        )
        .with_caches(CacheConfig {
            session_ttl: Duration::from_millis(settings.session_cache_ms),
            feed_ttl: Duration::from_millis(settings.feed_cache_ms),
            ..CacheConfig::default()
        })
        .with_timelines(TimelineConfig {
            length: settings.timeline_length,
            max_fan_out: settings.fanout_max_followers,
        });
    if let Some(mailer) = &mailer {
        state = state.with_mailer(mailer.clone());
    }

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let pool = (role != Role::Api).then(|| {
        let worker = Worker::new(
            db.clone(),
            store.clone(),
            queue.clone(),
            worker_config(settings),
            metrics,
        )
        .with_events(state.media_events.clone());
        tokio::spawn(worker.run(stopped()))
    });
    // A worker process tells the API processes' sockets through the fanout;
    // `sori serve` hands its events to its own sockets directly.
    if role == Role::Worker && matches!(fanout, Fanout::Postgres { .. }) {
        let events = state.media_events.subscribe();
        tokio::spawn(sori_api::core::realtime::relay_media_events(events, fanout));
    }
    if role == Role::All {
        let events = state.media_events.subscribe();
        tokio::spawn(sori_api::core::cache::forget_processed(
            events,
            state.feed_pages.clone(),
        ));
    }
    // The API role cleans up uploads never attached to a post.
    let cleanup = (role != Role::Worker).then(|| {
        let ttl = Duration::from_secs(settings.media_ttl_secs);
        tokio::spawn(sori_api::cleanup::run(
            db.clone(),
            store.clone(),
            ttl,
            settings.timeline_length,
            stopped(),
        ))
    });
    // The API role writes its sessions' last uses together, once a second.
    let last_uses = (role != Role::Worker).then(|| {
        tokio::spawn(sori_api::accounts::sessions::flush_last_uses(
            state.sessions.last_uses.clone(),
            db.clone(),
            stopped(),
        ))
    });
    // The API role delivers the push outbox, when a push gateway is configured.
    let push = match role {
        Role::Worker => None,
        Role::All | Role::Api => push_dispatcher(settings, &db, &state)?,
    }
    .map(|dispatcher| tokio::spawn(dispatcher.run(stopped())));
    // The API role sends the mail outbox, when SMTP is configured.
    let mail = match (role, mailer) {
        (Role::All | Role::Api, Some(mailer)) => Some(tokio::spawn(sori_api::mail::run(
            db.clone(),
            mailer,
            stopped(),
        ))),
        _ => None,
    };
    let relay = queue
        .needs_relay()
        .then(|| tokio::spawn(relay_outbox(db.clone(), queue.clone(), stopped())));
    let draining = state.draining.clone();
    let router = match role {
        Role::Worker => sori_api::ops_app(state),
        Role::All | Role::Api => sori_api::app_with(state, &http_config),
    };
    if role != Role::Worker {
        let url = format!("{}/", browser_url(&public_url));
        tracing::info!(%url, "the web app is served here");
        // For a person at a terminal; JSON output stays JSON lines only.
        if settings.log_format == crate::logging::LogFormat::Text {
            println!("Sori is ready: open {url} in a browser");
        }
    }
    let grace = Duration::from_secs(settings.shutdown_grace_secs);
    // At the signal readiness turns off; the listener closes `drain` later.
    let drain = Duration::from_secs(settings.drain_secs);
    let signalled = stopped();
    let listener_closes = async move {
        signalled.await;
        draining.store(true, std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(drain).await;
    };
    let server = sori_api::serve_router(listener, router, server_limits(settings), listener_closes);
    // After the drain, in-flight requests get `grace` to finish.
    let grace_over = stopped();
    tokio::select! {
        result = server => result.context("HTTP server")?,
        _ = async { grace_over.await; tokio::time::sleep(drain + grace).await } => {
            tracing::warn!("grace period over; closing remaining connections");
        }
    }
    if let Some(pool) = pool {
        // The pool applies the same grace period to running jobs.
        if let Err(e) = pool.await {
            tracing::error!(error = %e, "worker pool ended abnormally");
        }
    }
    if let Some(relay) = relay {
        let _ = relay.await;
    }
    if let Some(cleanup) = cleanup {
        let _ = cleanup.await;
    }
    if let Some(last_uses) = last_uses {
        let _ = last_uses.await;
    }
    if let Some(push) = push {
        let _ = push.await;
    }
    if let Some(mail) = mail {
        let _ = mail.await;
    }
    db.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// How socket events reach every API process: PostgreSQL's LISTEN/NOTIFY
/// when the database is PostgreSQL (several processes), else an in-process
/// broadcast (SQLite: one embedded process).
fn open_fanout(settings: &Settings, db: &Db) -> anyhow::Result<Fanout> {
    Ok(match db.backend() {
        Backend::Postgres => Fanout::postgres(db.clone(), &settings.database_url()?),
        Backend::Sqlite => Fanout::local(),
    })
}

fn server_limits(settings: &Settings) -> ServerLimits {
    ServerLimits {
        header_timeout: Duration::from_secs(settings.header_timeout_secs.max(1)),
        idle_timeout: Duration::from_secs(settings.idle_timeout_secs.max(1)),
        max_connections: settings.max_connections.max(1),
    }
}

fn ws_config(settings: &Settings) -> WsConfig {
    WsConfig {
        ping_interval: Duration::from_secs(settings.ws_ping_secs.max(1)),
        pong_timeout: Duration::from_secs(settings.ws_pong_timeout_secs.max(1)),
        queue: settings.ws_queue.max(1),
    }
}

/// The mailer of `SORI_SMTP_URL` and `SORI_MAIL_FROM`; none without them.
fn mailer(settings: &Settings) -> anyhow::Result<Option<Arc<Mailer>>> {
    match (&settings.smtp_url, &settings.mail_from) {
        (None, _) => {
            tracing::info!("no SORI_SMTP_URL: email and password recovery are off");
            Ok(None)
        }
        (Some(_), None) => anyhow::bail!("SORI_SMTP_URL needs SORI_MAIL_FROM"),
        (Some(url), Some(from)) => Ok(Some(Arc::new(Mailer::new(url, from)?))),
    }
}

/// The push dispatcher posting to `SORI_PUSH_WEBHOOK_URL`; none without
/// it, and pushes then wait in the outbox until one is configured.
fn push_dispatcher(
    settings: &Settings,
    db: &Db,
    state: &AppState,
) -> anyhow::Result<Option<Dispatcher<WebhookSender>>> {
    let Some(url) = &settings.push_webhook_url else {
        tracing::info!("no SORI_PUSH_WEBHOOK_URL: pushes stay queued");
        return Ok(None);
    };
    let secret = settings.push_webhook_secret.as_deref().unwrap_or_default();
    let timeout = Duration::from_secs(settings.push_timeout_secs.max(1));
    let sender = WebhookSender::new(url, secret.as_bytes(), timeout)
        .with_context(|| format!("SORI_PUSH_WEBHOOK_URL={url}"))?;
    let config = DispatchConfig {
        // Longer than any send, so another process never repeats one in flight.
        lease: timeout * 2 + Duration::from_secs(30),
        max_attempts: settings.push_max_attempts.max(1),
        retention: Duration::from_secs(settings.push_retention_secs),
        message_text: settings.push_message_text,
        collapse_window: Duration::from_secs(settings.push_collapse_secs),
        ..DispatchConfig::default()
    };
    let dispatcher = Dispatcher::new(db.clone(), sender, config).with_metrics(&state.metrics);
    Ok(Some(dispatcher))
}

/// The job queue: a table in the database, or SQS.
async fn open_queue(settings: &Settings, db: &Db) -> anyhow::Result<JobQueue> {
    match (settings.queue, &settings.sqs_queue_url) {
        (QueueKind::Sqs, Some(url)) => {
            let queue = SqsQueue::from_env(url)
                .await
                .with_context(|| format!("SORI_SQS_QUEUE_URL={url}"))?;
            // Fail at start, naming the setting, rather than at the first job.
            queue
                .depth()
                .await
                .with_context(|| format!("SORI_SQS_QUEUE_URL={url}: queue unreachable"))?;
            Ok(JobQueue::Sqs(queue))
        }
        _ => Ok(JobQueue::Embedded(EmbeddedQueue::new(
            db.clone(),
            MEDIA_QUEUE,
            settings.max_receives,
        ))),
    }
}

/// The object store: S3 (`SORI_STORE=s3`), or the local one under
/// `DATA_DIR/blobs` with URLs signed by `SORI_BLOB_SECRET` or the secret kept
/// in `DATA_DIR/secret`.
async fn open_store(settings: &Settings, public_url: &str) -> anyhow::Result<ObjectStore> {
    if let (StoreKind::S3, Some(bucket)) = (settings.store, &settings.s3_bucket) {
        let store = S3Store::from_env(bucket)
            .await
            .with_context(|| format!("SORI_S3_BUCKET={bucket}"))?;
        return Ok(ObjectStore::S3(store));
    }
    let secret = match &settings.blob_secret {
        Some(hex_secret) => decode_hex(hex_secret.trim())
            .filter(|s| s.len() >= 16)
            .context("SORI_BLOB_SECRET: expected at least 32 hex digits")?,
        None => {
            let path = settings.data_dir.join("secret");
            load_or_create_secret(&path).with_context(|| {
                format!(
                    "SORI_DATA_DIR={}: cannot read or create the secret",
                    settings.data_dir.display()
                )
            })?
        }
    };
    let root = settings.data_dir.join("blobs");
    let store = LocalStore::new(&root, &secret, public_url).with_context(|| {
        format!(
            "SORI_DATA_DIR={}: cannot open the blob directory",
            settings.data_dir.display()
        )
    })?;
    Ok(ObjectStore::Local(store))
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

fn worker_config(settings: &Settings) -> WorkerConfig {
    let visibility = Duration::from_secs(settings.job_visibility_secs.max(2));
    WorkerConfig {
        concurrency: settings.workers.unwrap_or_else(default_concurrency).max(1),
        visibility,
        heartbeat: visibility / 4,
        job_timeout: Duration::from_secs(settings.job_timeout_secs.max(1)),
        max_receives: settings.max_receives.max(1),
        shutdown_grace: Duration::from_secs(settings.shutdown_grace_secs),
        work_dir: settings.data_dir.join("work"),
        ..WorkerConfig::default()
    }
}

/// Resolves on the first SIGTERM or SIGINT.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received; draining");
}
