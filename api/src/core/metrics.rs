//! Prometheus metrics: one registry per process, rendered at `/metrics`.

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteOnly {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheResult {
    /// `hit`, `stale` or `miss`.
    pub result: &'static str,
}

/// The registry and the metrics the HTTP layer owns. Other parts (the worker)
/// register theirs into the same registry through [`Metrics::register`].
pub struct Metrics {
    registry: Mutex<Registry>,
    pub http_requests: Family<RouteLabels, Counter>,
    pub http_duration: Family<RouteOnly, Histogram>,
    /// Feed pages served from memory or read from the database ([`crate::core::cache`]).
    pub feed_cache: Family<CacheResult, Counter>,
    /// Open WebSocket connections of this process.
    pub ws_connections: Gauge,
    /// From an event's publication (by any process) to its hand-off to this
    /// process's sockets.
    pub ws_delivery: Histogram,
    /// 1 when the last `/readyz` answered 200, else 0.
    ready: Gauge,
    /// How often `/readyz`'s answer changed: a count survives between
    /// scrapes, where a flip and back of the gauge would not show.
    readiness_changes: Counter,
    /// The last `/readyz` answer: [`UNPROBED`], 0 or 1.
    last_readiness: AtomicU8,
}

/// No `/readyz` answered yet: the first answer is not a change.
const UNPROBED: u8 = 2;

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("sori");
        let http_requests = Family::<RouteLabels, Counter>::default();
        let http_duration = Family::<RouteOnly, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            http_duration.clone(),
        );
        let feed_cache = Family::<CacheResult, Counter>::default();
        registry.register(
            "feed_cache_lookups",
            "Feed pages served from the in-memory cache (hit; stale: past its lifetime, \
             refreshed in the background) or the database (miss)",
            feed_cache.clone(),
        );
        let ws_connections = Gauge::default();
        registry.register(
            "ws_connections",
            "Open WebSocket connections of this process",
            ws_connections.clone(),
        );
        let ws_delivery = Histogram::new(exponential_buckets(0.000_5, 2.0, 14));
        registry.register(
            "ws_delivery_seconds",
            "From an event's publication to its hand-off to this process's sockets",
            ws_delivery.clone(),
        );
        let ready = Gauge::default();
        registry.register(
            "ready",
            "1 when the last /readyz answered 200, else 0",
            ready.clone(),
        );
        let readiness_changes = Counter::default();
        registry.register(
            "readiness_changes",
            "Times the /readyz answer changed (ready to unready or back)",
            readiness_changes.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            http_requests,
            http_duration,
            feed_cache,
            ws_connections,
            ws_delivery,
            ready,
            readiness_changes,
            last_readiness: AtomicU8::new(UNPROBED),
        }
    }
}

impl Metrics {
    /// Counts one feed cache lookup: `"hit"`, `"stale"` or `"miss"`.
    pub fn feed_cache_lookup(&self, result: &'static str) {
        self.feed_cache.get_or_create(&CacheResult { result }).inc();
    }

    /// Records a `/readyz` answer, counting it as a change when it differs
    /// from the previous one.
    pub fn readiness(&self, ready: bool) {
        self.ready.set(i64::from(ready));
        let previous = self.last_readiness.swap(u8::from(ready), Ordering::Relaxed);
        if previous != UNPROBED && previous != u8::from(ready) {
            self.readiness_changes.inc();
        }
    }

    /// Adds a metric owned elsewhere (worker, queue) to the `/metrics` page.
    pub fn register(
        &self,
        name: &str,
        help: &str,
        metric: impl prometheus_client::registry::Metric,
    ) {
        if let Ok(mut registry) = self.registry.lock() {
            registry.register(name, help, metric);
        }
    }

    /// The OpenMetrics text exposition ([`CONTENT_TYPE`]): Sori's metrics,
    /// then the standard `process_*` ones, then `# EOF`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Ok(registry) = self.registry.lock() {
            // Writing into a String cannot fail.
            let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        }
        let body = out.strip_suffix("# EOF\n").unwrap_or(&out);
        format!("{body}{}# EOF\n", process_metrics())
    }
}

/// What `/metrics` is served as: the format prometheus-client writes.
/// Served as the classic `text/plain; version=0.0.4` instead, a counter's
/// `# TYPE` line (named without `_total`) would not match its sample for
/// scrapers parsing the classic format.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Linux's clock ticks per second in `/proc` (`USER_HZ`, fixed at 100 on
/// every architecture Sori is built for).
const USER_HZ: f64 = 100.0;

/// The standard process metrics (CPU time, resident memory, open file
/// descriptors and their limit, start time) from `/proc/self`, in OpenMetrics text; empty
/// where `/proc` is absent.
fn process_metrics() -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, sample: &str, value: f64| {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{sample} {value}\n"
        ));
    };
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name, which may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<f64>().ok());
    if let (Some(utime), Some(stime)) = (field(14), field(15)) {
        let help = "Total user and system CPU time spent in seconds.";
        let cpu = (utime + stime) / USER_HZ;
        family(
            "process_cpu_seconds",
            "counter",
            help,
            "process_cpu_seconds_total",
            cpu,
        );
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok());
    if let Some(kib) = rss_kib {
        let (name, help) = (
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
        );
        family(name, "gauge", help, name, kib * 1024.0);
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        let (name, help) = ("process_open_fds", "Number of open file descriptors.");
        family(name, "gauge", help, name, fds.count() as f64);
    }
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let max_fds = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|soft| soft.parse::<f64>().ok());
    if let Some(max) = max_fds {
        let (name, help) = (
            "process_max_fds",
            "Maximum number of open file descriptors.",
        );
        family(name, "gauge", help, name, max);
    }
    let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<f64>().ok())
    });
    if let (Some(boot), Some(start_ticks)) = (boot, field(22)) {
        let name = "process_start_time_seconds";
        let help = "Start time of the process since unix epoch in seconds.";
        family(name, "gauge", help, name, boot + start_ticks / USER_HZ);
    }
    out
}

/// The `method` label: the standard methods by name, any other token
/// (HTTP accepts arbitrary ones) as `other`, so a client cannot create
/// counters without end.
fn method_label(method: &Method) -> &'static str {
    const KNOWN: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    KNOWN
        .iter()
        .find(|known| *known == method)
        .map_or("other", Method::as_str)
}

/// Middleware counting requests and timing them by matched route (not raw path,
/// so ids do not explode the label set).
pub async fn track_requests(
    State(metrics): State<Arc<Metrics>>,
    req: Request,
    next: Next,
) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = method_label(req.method()).to_owned();
    let started = Instant::now();
    let response = next.run(req).await;
    metrics
        .http_duration
        .get_or_create(&RouteOnly {
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    metrics
        .http_requests
        .get_or_create(&RouteLabels {
            method,
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}
