//! The command line: every setting is a flag and an environment variable,
//! flags winning, so a container is configured by its environment alone.

use crate::logging::LogFormat;
use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use sori_codecs::Profile;
use std::net::SocketAddr;
use std::path::PathBuf;

const AFTER_HELP: &str = "\
Every setting can also come from the environment variable shown in [env: …]; a flag wins.
The AWS SDK reads the standard variables for the S3 and SQS backends: AWS_ENDPOINT_URL
(any S3/SQS-compatible server), AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY.
RUST_LOG refines log levels (default: info).";

/// Sori: the backend of a voice social network.
#[derive(Debug, Parser)]
#[command(name = "sori", version, about, after_help = AFTER_HELP, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Everything in one process (API + worker pool) on embedded defaults:
    /// SQLite, blobs on disk and the queue in the database, under the data directory.
    Serve,
    /// The HTTP API only (production role; scale separately from workers).
    Api,
    /// The worker pool only: takes media jobs from the queue (production role).
    Worker,
    /// Applies the database migrations and exits.
    Migrate,
    /// Runs the whole processing chain on one local file and prints the report as JSON.
    Process(ProcessArgs),
    /// Stage-by-stage timings, realtime factors and quality per codec setting.
    Bench(BenchArgs),
    /// Copies an embedded installation (SQLite database, blobs) while it runs.
    Backup(BackupArgs),
    /// Sets SORI_S3_BUCKET's CORS rules so browsers on SORI_CORS_ORIGINS can
    /// upload (PUT with Content-Type) and play (GET/HEAD with Range), then
    /// reads them back; replaces the bucket's existing CORS configuration.
    BucketCors,
    /// Grants or revokes the admin role (moderation of reports) on DATABASE_URL.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Exits 0 when the server on SORI_LISTEN answers /readyz with 200 (a
    /// container HEALTHCHECK without curl).
    Healthcheck,
}

/// `sori admin grant|revoke HANDLE`.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Makes the user an admin.
    Grant {
        /// The user's handle (any case).
        handle: String,
    },
    /// Makes the admin a plain user again.
    Revoke {
        /// The user's handle (any case).
        handle: String,
    },
}

/// Settings shared by the server commands.
#[derive(Debug, Args)]
pub struct Settings {
    /// Database: sqlite://FILE or postgres://USER@HOST/DB [default: sqlite://DATA_DIR/sori.db]
    #[arg(long, env = "DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Address the HTTP server listens on.
    #[arg(
        long,
        env = "SORI_LISTEN",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub listen: SocketAddr,
    /// Absolute base of the URLs the API hands out [default: http://LISTEN]
    #[arg(long, env = "SORI_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,
    /// Directory of the embedded database and blobs.
    #[arg(long, env = "SORI_DATA_DIR", default_value = "data", global = true)]
    pub data_dir: PathBuf,
    /// Object store backend.
    #[arg(long, env = "SORI_STORE", value_enum, default_value_t = StoreKind::Local, global = true)]
    pub store: StoreKind,
    /// S3 bucket (with --store s3).
    #[arg(long, env = "SORI_S3_BUCKET", global = true)]
    pub s3_bucket: Option<String>,
    /// Queue backend.
    #[arg(long, env = "SORI_QUEUE", value_enum, default_value_t = QueueKind::Embedded, global = true)]
    pub queue: QueueKind,
    /// SQS queue URL (with --queue sqs).
    #[arg(long, env = "SORI_SQS_QUEUE_URL", global = true)]
    pub sqs_queue_url: Option<String>,
    /// Concurrent jobs per worker process [default: number of cores]
    #[arg(long, env = "SORI_WORKERS", global = true)]
    pub workers: Option<usize>,
    /// Deliveries of a job before its media fails and the message goes to the dead letters.
    #[arg(long, env = "SORI_MAX_RECEIVES", default_value_t = 5, global = true)]
    pub max_receives: u32,
    /// Seconds a received job stays invisible to other workers without a heartbeat
    /// (a crashed worker's job is retried this late).
    #[arg(
        long,
        env = "SORI_JOB_VISIBILITY_SECS",
        default_value_t = 60,
        global = true
    )]
    pub job_visibility_secs: u64,
    /// Seconds a job may run before it is abandoned and retried.
    #[arg(
        long,
        env = "SORI_JOB_TIMEOUT_SECS",
        default_value_t = 600,
        global = true
    )]
    pub job_timeout_secs: u64,
    /// Secret signing the local store's upload/download URLs (hex, 32+ digits)
    /// [default: DATA_DIR/secret, created on first start]
    #[arg(long, env = "SORI_BLOB_SECRET", global = true, hide_env_values = true)]
    pub blob_secret: Option<String>,
    /// Origins allowed to call the API from a browser: comma-separated
    /// `scheme://host[:port]`, or `*` for any [default: none, same-origin only]
    #[arg(long, env = "SORI_CORS_ORIGINS", default_value = "", global = true)]
    pub cors_origins: String,
    /// The load balancers and proxies in front of the API: comma-separated
    /// addresses or CIDR networks (e.g. `10.0.0.0/8`). From these peers the
    /// client address in `X-Forwarded-For` is believed, for the per-address
    /// limits; IPv6 clients are keyed by their /64 [default: none, the TCP peer]
    #[arg(long, env = "SORI_TRUSTED_PROXIES", default_value = "", global = true)]
    pub trusted_proxies: String,
    /// Seconds the signed media URLs in answers work (audio variants,
    /// waveforms, images); URLs handed out within a quarter of this are
    /// identical, so each lives this to 1.25 times this (at most 5 days).
    #[arg(
        long,
        env = "SORI_MEDIA_URL_TTL_SECS",
        default_value_t = 3600,
        value_parser = clap::value_parser!(u64).range(60..=432_000),
        global = true
    )]
    pub media_url_ttl_secs: u64,
    /// Seconds an upload may stay unattached to a post before the API role
    /// deletes it with its stored objects (checked every 24th of this, at most every 10 minutes).
    #[arg(
        long,
        env = "SORI_MEDIA_TTL_SECS",
        default_value_t = 86_400,
        global = true
    )]
    pub media_ttl_secs: u64,
    /// Seconds between the server's pings on each WebSocket.
    #[arg(long, env = "SORI_WS_PING_SECS", default_value_t = 20, global = true)]
    pub ws_ping_secs: u64,
    /// Seconds a WebSocket may leave a ping unanswered (or not read what it is
    /// sent) before it is dropped and its user may go offline.
    #[arg(
        long,
        env = "SORI_WS_PONG_TIMEOUT_SECS",
        default_value_t = 10,
        global = true
    )]
    pub ws_pong_timeout_secs: u64,
    /// Events queued per WebSocket before its client counts as too slow and is dropped.
    #[arg(long, env = "SORI_WS_QUEUE", default_value_t = 256, global = true)]
    pub ws_queue: usize,
    /// SMTP server for account mail (email verification, password reset):
    /// `smtp://host:port`, `smtp://host:587?tls=required` (STARTTLS) or
    /// `smtps://user:password@host:465` [default: none; email and password
    /// recovery answer 503]
    #[arg(long, env = "SORI_SMTP_URL", global = true, hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// Sender of account mail, e.g. `Sori <no-reply@example.com>`; required
    /// with --smtp-url.
    #[arg(long, env = "SORI_MAIL_FROM", global = true)]
    pub mail_from: Option<String>,
    /// Push gateway receiving pushes to offline users as signed JSON POSTs
    /// (http:// or https://) [default: none; pushes wait in the outbox]
    #[arg(long, env = "SORI_PUSH_WEBHOOK_URL", global = true)]
    pub push_webhook_url: Option<String>,
    /// Key of the pushes' Standard Webhooks signature (`webhook-signature`):
    /// 16+ characters, or `whsec_<base64>`; required with --push-webhook-url.
    #[arg(
        long,
        env = "SORI_PUSH_WEBHOOK_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub push_webhook_secret: Option<String>,
    /// Seconds a push request may take before it is abandoned and retried.
    #[arg(
        long,
        env = "SORI_PUSH_TIMEOUT_SECS",
        default_value_t = 10,
        global = true
    )]
    pub push_timeout_secs: u64,
    /// Attempts to send a push before it is marked dead (kept, not sent again).
    #[arg(
        long,
        env = "SORI_PUSH_MAX_ATTEMPTS",
        default_value_t = 12,
        global = true
    )]
    pub push_max_attempts: u32,
    /// Seconds delivered pushes are kept in the outbox before they are purged.
    #[arg(
        long,
        env = "SORI_PUSH_RETENTION_SECS",
        default_value_t = 604_800,
        global = true
    )]
    pub push_retention_secs: u64,
    /// Put chat messages' text in pushes (FCM, the webhook), so it shows on
    /// lock screens and passes through the push gateway; off, a push says
    /// who wrote, not what.
    #[arg(
        long,
        env = "SORI_PUSH_MESSAGE_TEXT",
        default_value_t = false,
        global = true
    )]
    pub push_message_text: bool,
    /// Seconds a social push (a like, a comment, a follow…) waits after its
    /// first event, so a burst on one post becomes one push ("Mina and 3
    /// others liked your post"); chat pushes never wait.
    #[arg(
        long,
        env = "SORI_PUSH_COLLAPSE_SECS",
        default_value_t = 30,
        global = true
    )]
    pub push_collapse_secs: u64,
    /// Sign-ups accepted from one client address per hour (0: no limit).
    #[arg(
        long,
        env = "SORI_SIGNUPS_PER_HOUR",
        default_value_t = 20,
        global = true
    )]
    pub signups_per_hour: u32,
    /// Uploads (`POST /v1/media`) one user may start per hour (0: no limit).
    #[arg(long, env = "SORI_MEDIA_PER_HOUR", default_value_t = 60, global = true)]
    pub media_per_hour: u32,
    /// How long a process trusts a token it has checked, in ms: a token
    /// revoked through another API process keeps working here that long (0: check every request).
    #[arg(
        long,
        env = "SORI_SESSION_CACHE_MS",
        default_value_t = 5000,
        global = true
    )]
    pub session_cache_ms: u64,
    /// How long a served feed page is reused for the same viewer, in ms,
    /// before it is read again in the background; never served past twice
    /// this, so others' new posts, likes and comments appear within that.
    /// The viewer's own writes show at once (0: no cache).
    #[arg(
        long,
        env = "SORI_FEED_CACHE_MS",
        default_value_t = 2000,
        global = true
    )]
    pub feed_cache_ms: u64,
    /// Posts kept in each user's home timeline (written on post); the feed
    /// reads older ones by merging followed authors' posts.
    #[arg(
        long,
        env = "SORI_TIMELINE_LENGTH",
        default_value_t = 800,
        value_parser = clap::value_parser!(i64).range(1..),
        global = true
    )]
    pub timeline_length: i64,
    /// Followers above which an author's posts are not written into each
    /// follower's timeline but read when the feed is (fan-in).
    #[arg(
        long,
        env = "SORI_FANOUT_MAX_FOLLOWERS",
        default_value_t = 5000,
        value_parser = clap::value_parser!(i64).range(0..),
        global = true
    )]
    pub fanout_max_followers: i64,
    /// When set, `GET /metrics` answers only requests carrying
    /// `Authorization: Bearer <this token>` (the scraper's); unset, it is open,
    /// for a port only the cluster reaches.
    #[arg(
        long,
        env = "SORI_METRICS_TOKEN",
        global = true,
        hide_env_values = true
    )]
    pub metrics_token: Option<String>,
    /// Chat messages one user may send per minute (0: no limit).
    #[arg(
        long,
        env = "SORI_MESSAGES_PER_MINUTE",
        default_value_t = 120,
        global = true
    )]
    pub messages_per_minute: u32,
    /// Seconds a client has to send a request's head; also how long an idle
    /// HTTP/1.1 keep-alive connection is kept (a load balancer's idle
    /// timeout towards Sori must be shorter).
    #[arg(
        long,
        env = "SORI_HEADER_TIMEOUT_SECS",
        default_value_t = 30,
        global = true
    )]
    pub header_timeout_secs: u64,
    /// Seconds a request may take, its body included (408 past it); blob
    /// uploads get a minute plus their size at 32 KiB/s.
    #[arg(
        long,
        env = "SORI_REQUEST_TIMEOUT_SECS",
        default_value_t = 30,
        global = true
    )]
    pub request_timeout_secs: u64,
    /// Seconds without a byte moving either way before a connection is closed.
    #[arg(
        long,
        env = "SORI_IDLE_TIMEOUT_SECS",
        default_value_t = 120,
        global = true
    )]
    pub idle_timeout_secs: u64,
    /// Connections open at once, WebSockets included; past it new clients
    /// wait to be accepted.
    #[arg(
        long,
        env = "SORI_MAX_CONNECTIONS",
        default_value_t = 10_000,
        global = true
    )]
    pub max_connections: usize,
    /// Log line format.
    #[arg(long, env = "SORI_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// Apply pending migrations when a role starts; set false where
    /// `sori migrate` runs once per release (a Kubernetes Job).
    #[arg(
        long,
        env = "SORI_MIGRATE_ON_START",
        default_value_t = true,
        action = clap::ArgAction::Set,
        global = true
    )]
    pub migrate_on_start: bool,
    /// Seconds after SIGTERM/SIGINT during which /readyz answers 503 while
    /// requests are still served, so load balancers stop sending before the
    /// listener closes (0 where a preStop hook already waits).
    #[arg(long, env = "SORI_DRAIN_SECS", default_value_t = 0, global = true)]
    pub drain_secs: u64,
    /// Seconds to let in-flight requests and jobs finish after SIGTERM/SIGINT.
    #[arg(
        long,
        env = "SORI_SHUTDOWN_GRACE_SECS",
        default_value_t = 20,
        global = true
    )]
    pub shutdown_grace_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    /// Files under DATA_DIR/blobs; the API signs its own upload and download URLs.
    Local,
    /// Amazon S3 or any S3-compatible server (AWS_ENDPOINT_URL).
    S3,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QueueKind {
    /// A durable queue table in the database.
    Embedded,
    /// Amazon SQS or any SQS-compatible server (AWS_ENDPOINT_URL).
    Sqs,
}

/// `sori process IN --out DIR`.
#[derive(Debug, Args)]
pub struct ProcessArgs {
    /// The audio file to process.
    pub input: PathBuf,
    /// Output directory (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Integrated loudness target, LUFS.
    #[arg(long, default_value_t = Profile::default().target_lufs, allow_negative_numbers = true)]
    pub target_lufs: f64,
    /// True-peak ceiling, dBTP.
    #[arg(long, default_value_t = Profile::default().true_peak_dbtp, allow_negative_numbers = true)]
    pub true_peak: f64,
    /// Opus bitrate, bits per second.
    #[arg(long, default_value_t = Profile::default().bitrate_bps)]
    pub bitrate: u32,
    /// Opus complexity, 0–10.
    #[arg(long, default_value_t = Profile::default().complexity)]
    pub complexity: u8,
    /// Opus frame duration, milliseconds (10, 20, 40 or 60).
    #[arg(long, default_value_t = Profile::default().frame_ms)]
    pub frame_ms: u32,
    /// Constant bitrate instead of VBR.
    #[arg(long)]
    pub cbr: bool,
    /// Opus application mode.
    #[arg(long, value_enum, default_value_t = AppMode::Voip)]
    pub application: AppMode,
    /// Largest gain applied to quiet input, dB: a backstop. Noise and
    /// near-silence are not raised whatever this says; quiet, clean speech
    /// is raised to the target.
    #[arg(long, default_value_t = Profile::default().max_gain_db)]
    pub max_gain: f64,
    /// Trim leading and trailing silence.
    #[arg(long)]
    pub trim_silence: bool,
    /// Longest accepted input, seconds.
    #[arg(long, default_value_t = 15 * 60)]
    pub max_duration_secs: u64,
    /// Largest accepted input, bytes.
    #[arg(long, default_value_t = 50 * 1024 * 1024)]
    pub max_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AppMode {
    Voip,
    Audio,
}

/// `sori bench [FILES…]`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Audio files or directories of them (a corpus from
    /// benches/make-corpus.sh) [default: ./fixtures]
    pub files: Vec<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Times each job and floor this many times and keeps the best.
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// Also time ffmpeg doing the same job (two-pass loudnorm, libopus).
    #[arg(long)]
    pub ffmpeg: bool,
    /// Print every file's stages and settings, not only for a single file.
    #[arg(long)]
    pub stages: bool,
    /// Skip the codec-settings comparison (it dominates the run on a corpus).
    #[arg(long)]
    pub no_settings: bool,
    /// Opus bitrates to compare, bits per second.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "16000,24000,32000,48000,64000"
    )]
    pub bitrates: Vec<u32>,
    /// Opus complexities to compare.
    #[arg(long, value_delimiter = ',', default_value = "5,10")]
    pub complexities: Vec<u8>,
    /// Files measured at once [default: 1, the cleanest timings]; the job
    /// itself uses two threads.
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Only run the bare floor (decode + resample + Opus encode, nothing kept)
    /// on each file: what `benches/compare-ffmpeg.sh` times the job against.
    #[arg(long)]
    pub floor_only: bool,
}

/// `sori backup --out DIR`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// New or empty directory receiving the copy; it is laid out like a data
    /// directory, so `SORI_DATA_DIR=DIR sori serve` runs on it.
    #[arg(long)]
    pub out: PathBuf,
}

impl Settings {
    /// The database URL, defaulting to a SQLite file in the data directory.
    pub fn database_url(&self) -> anyhow::Result<String> {
        if let Some(url) = &self.database_url {
            return Ok(url.clone());
        }
        std::fs::create_dir_all(&self.data_dir).with_context(|| {
            format!(
                "SORI_DATA_DIR={}: cannot create the data directory",
                self.data_dir.display()
            )
        })?;
        Ok(format!("sqlite://{}/sori.db", self.data_dir.display()))
    }

    /// Refuses incomplete backend settings up front, naming the setting.
    pub fn check_backends(&self) -> anyhow::Result<()> {
        if self.store == StoreKind::S3 && self.s3_bucket.is_none() {
            bail!("SORI_STORE=s3 needs SORI_S3_BUCKET");
        }
        if self.queue == QueueKind::Sqs && self.sqs_queue_url.is_none() {
            bail!("SORI_QUEUE=sqs needs SORI_SQS_QUEUE_URL");
        }
        if self.push_webhook_url.is_some()
            && self
                .push_webhook_secret
                .as_ref()
                .is_none_or(|s| s.len() < 16)
        {
            bail!("SORI_PUSH_WEBHOOK_URL needs SORI_PUSH_WEBHOOK_SECRET of 16 or more characters");
        }
        Ok(())
    }
}

/// Runs one command to completion.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve => crate::serve::run(&cli.settings, crate::serve::Role::All),
        Command::Api => crate::serve::run(&cli.settings, crate::serve::Role::Api),
        Command::Worker => crate::serve::run(&cli.settings, crate::serve::Role::Worker),
        Command::Migrate => crate::serve::migrate(&cli.settings),
        Command::Process(args) => crate::process::run(&args),
        Command::Bench(args) => crate::bench::run(&args),
        Command::Admin(command) => crate::admin::run(&cli.settings, &command),
        Command::Backup(args) => crate::backup::run(&cli.settings, &args),
        Command::BucketCors => crate::bucket_cors::run(&cli.settings),
        Command::Healthcheck => crate::healthcheck::run(&cli.settings),
    }
}
