//! Prometheus metrics: one registry per process, rendered at `/metrics`.

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
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
}

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
        Self {
            registry: Mutex::new(registry),
            http_requests,
            http_duration,
            feed_cache,
        }
    }
}

impl Metrics {
    /// Counts one feed cache lookup: `"hit"`, `"stale"` or `"miss"`.
    pub fn feed_cache_lookup(&self, result: &'static str) {
        self.feed_cache.get_or_create(&CacheResult { result }).inc();
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

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Ok(registry) = self.registry.lock() {
            // Writing into a String cannot fail.
            let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        }
        out
    }
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
