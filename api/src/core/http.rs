//! Cross-cutting HTTP behaviour applied around every route by [`crate::app`]:
//! CORS (configured origins only), gzip compression of JSON, weak ETags with
//! `304 Not Modified` on `/v1` GETs, `Cache-Control` on authenticated
//! answers, and a request body limit on every route but the blob uploads.
//!
//! Layer order matters: CORS answers preflights before anything else runs;
//! compression sits outside the ETag so the ETag is computed on the
//! uncompressed JSON (hence weak: one tag for the plain and gzip encodings).

use crate::core::error::ApiError;
use crate::core::validation::JSON_LIMIT;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http_body_util::{BodyExt, Limited};
use sha2::{Digest, Sha256};
use std::time::Duration;
use tower_http::compression::predicate::{Predicate, SizeAbove};
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Largest JSON body the ETag middleware buffers and hashes; larger answers go out without one.
pub const ETAG_MAX_BODY: usize = 1024 * 1024;
/// JSON answers shorter than this are not worth compressing.
const COMPRESS_MIN_BYTES: u16 = 1024;
/// The embedded store's signed routes: they stream, enforce their own signed
/// length and are never buffered, hashed or limited here.
const BLOB_PREFIX: &str = "/v1/blobs/";

/// Which cross-origin callers may use the API, and how long a request may take.
///
/// The default allows no cross-origin caller (browsers then only call the
/// API from its own origin) and [`DEFAULT_REQUEST_TIMEOUT`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    cors: CorsOrigins,
    request_timeout: Duration,
}

/// How long a request may take, reading its body included, by default.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            cors: CorsOrigins::default(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum CorsOrigins {
    #[default]
    SameOrigin,
    Any,
    List(Vec<HeaderValue>),
}

/// A setting that cannot be used. Not recoverable: fix the configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpConfigError {
    /// An entry of the CORS origin list is not `scheme://host[:port]` (or `*`).
    #[error("not a CORS origin (expected scheme://host[:port] or *): {0:?}")]
    BadOrigin(String),
}

impl HttpConfig {
    /// Parses `SORI_CORS_ORIGINS`: comma-separated origins, or `*` for any;
    /// empty means same-origin only.
    pub fn with_cors_origins(list: &str) -> Result<Self, HttpConfigError> {
        let entries: Vec<&str> = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let cors = if entries.is_empty() {
            CorsOrigins::SameOrigin
        } else if entries.contains(&"*") {
            CorsOrigins::Any
        } else {
            CorsOrigins::List(entries.into_iter().map(origin).collect::<Result<_, _>>()?)
        };
        Ok(Self {
            cors,
            ..Self::default()
        })
    }

    /// Sets how long a request may take, reading its body included
    /// (`SORI_REQUEST_TIMEOUT_SECS`); blob uploads have their own, by size.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// The allowed origins as configured: empty for same-origin only,
    /// `["*"]` for any. The bucket's CORS rules are made from these.
    pub fn origins(&self) -> Vec<String> {
        match &self.cors {
            CorsOrigins::SameOrigin => Vec::new(),
            CorsOrigins::Any => vec!["*".to_owned()],
            CorsOrigins::List(list) => list
                .iter()
                .filter_map(|v| v.to_str().ok().map(str::to_owned))
                .collect(),
        }
    }
}

/// One origin, as a browser sends it: scheme, host, optional port, no path.
fn origin(text: &str) -> Result<HeaderValue, HttpConfigError> {
    let bad = || HttpConfigError::BadOrigin(text.to_owned());
    let trimmed = text.trim_end_matches('/');
    let (scheme, host) = trimmed.split_once("://").ok_or_else(bad)?;
    let scheme_ok = !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric());
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c));
    if !scheme_ok || !host_ok {
        return Err(bad());
    }
    HeaderValue::from_str(&trimmed.to_ascii_lowercase()).map_err(|_| bad())
}

/// The CORS layer, or `None` when no cross-origin caller is allowed (a
/// preflight then gets no `Access-Control-Allow-Origin`, and the browser refuses).
pub fn cors_layer(config: &HttpConfig) -> Option<CorsLayer> {
    let allow = match &config.cors {
        CorsOrigins::SameOrigin => return None,
        CorsOrigins::Any => AllowOrigin::any(),
        CorsOrigins::List(list) => AllowOrigin::list(list.iter().cloned()),
    };
    let layer = CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_NONE_MATCH,
            header::IF_MODIFIED_SINCE,
            header::IF_RANGE,
            header::RANGE,
            HeaderName::from_static("idempotency-key"),
        ])
        // What a web app reads of answers, the signed media downloads'
        // ranges included (Content-Length, Content-Type, Last-Modified and
        // Expires are always readable).
        .expose_headers([
            header::ETAG,
            header::LOCATION,
            header::RETRY_AFTER,
            header::ACCEPT_RANGES,
            header::CONTENT_RANGE,
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("idempotent-replayed"),
        ])
        .max_age(Duration::from_secs(3600));
    Some(layer)
}

/// Gzip for JSON answers of at least 1 KiB when the client accepts it; never
/// for audio, ranges or anything else (the blob routes stream files as they are).
pub fn compression_layer() -> CompressionLayer<impl Predicate> {
    let json_only = |_: StatusCode, _: axum::http::Version, headers: &HeaderMap, _: &_| {
        is_json(headers) && !headers.contains_key(header::CONTENT_RANGE)
    };
    CompressionLayer::new()
        .no_br()
        .no_deflate()
        .no_zstd()
        .compress_when(SizeAbove::new(COMPRESS_MIN_BYTES).and(json_only))
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json")
}

fn is_blob(path: &str) -> bool {
    path.starts_with(BLOB_PREFIX)
}

/// Refuses bodies over [`JSON_LIMIT`] on every route but the blob uploads:
/// at once (problem+json 413) when `Content-Length` says so, else by capping
/// the stream, so no handler can read more whatever extractor it uses.
pub async fn limit_body(req: Request, next: Next) -> Response {
    if is_blob(req.uri().path()) {
        return next.run(req).await;
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > JSON_LIMIT as u64) {
        return ApiError::PayloadTooLarge { limit: JSON_LIMIT }.into_response();
    }
    let req = req.map(|body| Body::new(Limited::new(body, JSON_LIMIT)));
    next.run(req).await
}

/// Answers 408 (problem+json) when a request takes longer than `limit`,
/// reading its body included, so a client trickling a body cannot hold a
/// handler. Blob uploads are exempt: they have a deadline by their size
/// ([`crate::blobs`]). A WebSocket is timed only until its upgrade answer.
pub async fn time_limit(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    if is_blob(req.uri().path()) {
        return next.run(req).await;
    }
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::RequestTimeout {
            secs: limit.as_secs(),
        }
        .into_response(),
    }
}

/// Answers 404 (problem+json) when the percent-decoded path is not UTF-8 or
/// holds a control character: no route or resource has such a name, and
/// letting it through would reach the extractors (axum's `Path` answers
/// plain-text 400s) or the database (PostgreSQL refuses NUL in text).
pub async fn refuse_unreadable_paths(req: Request, next: Next) -> Response {
    if readable_path(req.uri().path()) {
        next.run(req).await
    } else {
        ApiError::NotFound.into_response()
    }
}

/// Whether the percent-decoded `path` is UTF-8 without control characters.
fn readable_path(path: &str) -> bool {
    percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .is_ok_and(|text| !text.chars().any(char::is_control))
}

/// Weak ETags and `304 Not Modified` for `200` JSON answers to `/v1` GETs
/// (not the streamed blob routes), and `Cache-Control: private, no-cache` on
/// answers to authenticated requests that set none: a shared cache must not
/// keep them, the client may keep them but must revalidate.
///
/// The tag is `W/"…"`: the base64url of the first 128 bits of the body's
/// SHA-256. Bodies over [`ETAG_MAX_BODY`] (or of unknown length) get no tag.
pub async fn etag(req: Request, next: Next) -> Response {
    let authenticated = req.headers().contains_key(header::AUTHORIZATION);
    let cacheable = req.method() == Method::GET
        && req.uri().path().starts_with("/v1/")
        && !is_blob(req.uri().path());
    let if_none_match = req.headers().get(header::IF_NONE_MATCH).cloned();
    let mut response = next.run(req).await;
    if authenticated && !response.headers().contains_key(header::CACHE_CONTROL) {
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-cache"),
        );
    }
    if !cacheable {
        return response;
    }
    if let Some(tag) = response.headers().get(header::ETAG).cloned() {
        // Tagged by the handler (a cached page): only the comparison is left.
        if response.status() == StatusCode::OK
            && if_none_match.is_some_and(|v| matches_any(&v, &tag))
        {
            return not_modified(response.into_parts().0.headers, tag);
        }
        return response;
    }
    if !taggable(&response) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return ApiError::Internal(Box::new(e)).into_response(),
    };
    let tag = etag_of(&bytes);
    if if_none_match.is_some_and(|v| matches_any(&v, &tag)) {
        return not_modified(parts.headers, tag);
    }
    parts.headers.insert(header::ETAG, tag);
    Response::from_parts(parts, Body::from(bytes))
}

/// A 200 JSON answer without a tag of its own, of known length within the bound.
fn taggable(response: &Response) -> bool {
    use axum::body::HttpBody as _;
    response.status() == StatusCode::OK
        && is_json(response.headers())
        && !response.headers().contains_key(header::ETAG)
        && response
            .body()
            .size_hint()
            .exact()
            .is_some_and(|n| n <= ETAG_MAX_BODY as u64)
}

/// The weak ETag of a body.
pub fn etag_of(body: &Bytes) -> HeaderValue {
    let digest = Sha256::digest(body);
    let tag = format!("W/\"{}\"", URL_SAFE_NO_PAD.encode(&digest[..16]));
    HeaderValue::from_str(&tag).unwrap_or_else(|_| HeaderValue::from_static("W/\"\""))
}

/// Weak comparison (RFC 9110 §13.1.2): `*`, or any listed tag equal to ours
/// once the `W/` prefixes are ignored.
fn matches_any(if_none_match: &HeaderValue, tag: &HeaderValue) -> bool {
    let Ok(list) = if_none_match.to_str() else {
        return false;
    };
    let ours = tag.to_str().unwrap_or_default();
    let opaque = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    list.split(',')
        .any(|t| t.trim() == "*" || opaque(t) == opaque(ours))
}

/// A `304` keeping the headers a cache needs (RFC 9110 §15.4.5), no body.
fn not_modified(headers: HeaderMap, tag: HeaderValue) -> Response {
    let mut response = StatusCode::NOT_MODIFIED.into_response();
    let out = response.headers_mut();
    for name in [header::CACHE_CONTROL, header::VARY, header::EXPIRES] {
        if let Some(v) = headers.get(&name) {
            out.insert(name, v.clone());
        }
    }
    out.insert(header::ETAG, tag);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_parsed_and_checked() {
        assert_eq!(
            HttpConfig::with_cors_origins("").unwrap(),
            HttpConfig::default()
        );
        let c = HttpConfig::with_cors_origins(" https://app.sori.example , http://localhost:3000/")
            .unwrap();
        assert_eq!(
            c.cors,
            CorsOrigins::List(vec![
                HeaderValue::from_static("https://app.sori.example"),
                HeaderValue::from_static("http://localhost:3000"),
            ])
        );
        assert_eq!(
            HttpConfig::with_cors_origins("*").unwrap().cors,
            CorsOrigins::Any
        );
        assert_eq!(
            c.origins(),
            ["https://app.sori.example", "http://localhost:3000"]
        );
        assert_eq!(HttpConfig::with_cors_origins("*").unwrap().origins(), ["*"]);
        assert!(HttpConfig::default().origins().is_empty());
        assert!(HttpConfig::with_cors_origins("app.sori.example").is_err());
        assert!(HttpConfig::with_cors_origins("https://a.example/path").is_err());
    }

    #[test]
    fn unreadable_paths_are_recognized() {
        assert!(readable_path(
            "/v1/users/0190a0b0-0000-7000-8000-000000000001"
        ));
        assert!(readable_path("/v1/me/devices/%F0%9F%8E%99%20x%25"));
        assert!(readable_path("/v1/me/devices/100%"));
        for bad in [
            "/v1/users/%00",
            "/v1/users/a%0Ab",
            "/v1/users/%FF",
            "/v1/users/%C3%28",
        ] {
            assert!(!readable_path(bad), "{bad}");
        }
    }

    #[test]
    fn weak_comparison_ignores_the_prefix() {
        let tag = etag_of(&Bytes::from_static(b"{}"));
        assert!(tag.to_str().unwrap().starts_with("W/\""));
        let strong = tag.to_str().unwrap().trim_start_matches("W/").to_owned();
        let list = HeaderValue::from_str(&format!("\"other\", {strong}")).unwrap();
        assert!(matches_any(&list, &tag));
        assert!(matches_any(&HeaderValue::from_static("*"), &tag));
        assert!(!matches_any(&HeaderValue::from_static("\"other\""), &tag));
    }
}
