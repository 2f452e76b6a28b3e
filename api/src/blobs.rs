//! The embedded object store's signed upload and download routes:
//! `PUT /v1/blobs/{key}` and `GET|HEAD /v1/blobs/{key}`.
//!
//! No bearer token: the URL's HMAC signature (over method, key, content type,
//! content length and expiry) is the authorization, handed out by the media
//! routes and every answer carrying media ([`crate::core::media_urls`]). Uploads
//! stream to disk and must match the signed type and length exactly.
//! Downloads answer what a player needs: one `Range` (`206`, `416` past the
//! end; with `If-Range`), `Accept-Ranges`, `Content-Length`, the output's
//! `Content-Type` (or the one signed into the URL), a strong `ETag` and
//! `Last-Modified` with `If-None-Match` / `If-Modified-Since` (`304`), `HEAD`,
//! `X-Content-Type-Options: nosniff`, `Content-Disposition` (`inline` for
//! audio and images, else `attachment`), and caching until the URL expires
//! (`Cache-Control: public, max-age, immutable` for versioned outputs); the
//! CORS layer of [`crate::core::http`] lets configured origins `fetch` them too.
//! These routes exist only when the store is the local one; with S3 the
//! client talks to S3 directly.

use crate::core::error::{ApiError, Problem};
use crate::core::state::AppState;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::{StreamExt, TryStreamExt};
use serde::Deserialize;
use sori_codecs::OutputFormat;
use sori_pipeline::store::local::{now_ms, SignatureError, SignedRequest, UploadError};
use sori_pipeline::store::{LocalStore, ObjectStore, StoreError};
use std::io::{self, SeekFrom};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::{ReaderStream, StreamReader};
use utoipa::{IntoParams, OpenApi};
use utoipa_axum::router::OpenApiRouter;

/// The routes, merged by [`crate::app`]. Clients never build these URLs, they
/// receive them signed; they are documented for completeness. The key may
/// contain `/`: axum matches it as a wildcard (`{*key}`), the document names
/// it `{key}` (OpenAPI has no wildcard segments).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(BlobDoc::openapi())
        .route("/v1/blobs/{*key}", get(download).put(upload))
}

/// The blob routes' part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(paths(download, upload))]
struct BlobDoc;

/// The signature parameters every blob URL carries.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct Signature {
    /// Unix milliseconds after which the URL is refused.
    expires: i64,
    /// Downloads: the `Content-Type` to serve (for keys that do not name their type).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    content_type: Option<String>,
    /// HMAC-SHA256 over method, key, content type, content length and expiry.
    sig: String,
}

/// Why serving a stored object failed; rendered through [`ApiError`] except
/// for 416, which needs its `Content-Range` header.
pub(crate) enum BlobError {
    Api(ApiError),
    RangeNotSatisfiable { size: u64 },
}

impl From<ApiError> for BlobError {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

impl IntoResponse for BlobError {
    fn into_response(self) -> Response {
        match self {
            Self::Api(e) => e.into_response(),
            Self::RangeNotSatisfiable { size } => {
                let problem = Problem {
                    kind: "https://sori.dev/problems/range-not-satisfiable".to_owned(),
                    title: "Range not satisfiable".to_owned(),
                    status: StatusCode::RANGE_NOT_SATISFIABLE.as_u16(),
                    detail: Some(format!("the object has {size} bytes")),
                    errors: Vec::new(),
                };
                (
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    [
                        (header::CONTENT_TYPE, "application/problem+json".to_owned()),
                        (header::CONTENT_RANGE, format!("bytes */{size}")),
                    ],
                    serde_json::to_vec(&problem).unwrap_or_default(),
                )
                    .into_response()
            }
        }
    }
}

fn local(state: &AppState) -> Result<&LocalStore, ApiError> {
    match &state.store {
        Some(ObjectStore::Local(store)) => Ok(store),
        _ => Err(ApiError::NotFound),
    }
}

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound(_) => ApiError::NotFound,
        StoreError::Permanent(why) => ApiError::BadRequest(why),
        other => ApiError::Internal(Box::new(other)),
    }
}

fn check(store: &LocalStore, req: &SignedRequest<'_>) -> Result<(), ApiError> {
    store.verify(req, now_ms()).map_err(|e: SignatureError| {
        // Expired or tampered: the same answer, the reason only in the log.
        tracing::info!(key = req.key, reason = %e, "signed URL refused");
        ApiError::SignedUrlRefused
    })
}

fn query(
    q: Result<Query<Signature>, axum::extract::rejection::QueryRejection>,
) -> Result<Signature, ApiError> {
    q.map(|Query(s)| s)
        .map_err(|_| ApiError::BadRequest("a signed URL needs `expires` and `sig`".to_owned()))
}

/// Stores the body under `key` if the URL's signature covers this exact
/// content type and length; 403 otherwise, 413 when the body runs past the
/// signed length, 400 when it stops short. No bearer token: the URL's
/// signature is the authorization.
/// Refuses an upload unless its key is a media's original still awaiting
/// its bytes: a signed URL works once, so a finished clip or image cannot
/// be replaced by other bytes of the same length before the URL expires.
async fn awaits_upload(state: &AppState, key: &str) -> Result<(), ApiError> {
    let id = key.rsplit('/').next().unwrap_or_default();
    let media_state: Option<String> =
        sqlx::query_scalar("SELECT state FROM media WHERE id = $1 AND original_key = $2")
            .bind(id)
            .bind(key)
            .fetch_optional(state.db.pool())
            .await?;
    match media_state.as_deref() {
        Some("awaiting_upload") => Ok(()),
        Some(_) => Err(already_uploaded()),
        None => Err(ApiError::NotFound),
    }
}

fn already_uploaded() -> ApiError {
    ApiError::Conflict("this upload is already done; start a new one (POST /v1/media)".to_owned())
}

/// How long an upload of `bytes` may take: a minute, plus the time the
/// bytes take at [`SLOWEST_UPLOAD`] (a 50 MB clip: about 27 minutes).
fn upload_deadline(bytes: u64) -> Duration {
    Duration::from_secs(60 + bytes / SLOWEST_UPLOAD)
}

/// The slowest upload rate waited for, in bytes per second: a weak mobile
/// uplink. Slower bodies are cut off (408).
const SLOWEST_UPLOAD: u64 = 32 * 1024;

#[utoipa::path(put, path = "/v1/blobs/{key}", tag = "blobs",
    params(("key" = String, Path, description = "Object key as signed (may contain `/`)"), Signature),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "Exactly the signed number of bytes, sent with the signed `Content-Type`"),
    responses(
        (status = 201, description = "Stored"),
        (status = 400, description = "No signature, no `Content-Length`, or the body stopped short", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Signature expired, tampered, or not for this type and length", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No embedded store (S3 mode)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No media awaits this upload", body = Problem, content_type = "application/problem+json"),
        (status = 408, description = "The body did not arrive in time (a minute plus 32 KiB/s)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already uploaded: a signed upload URL works once", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body runs past the signed length", body = Problem, content_type = "application/problem+json"),
        (status = 500, body = Problem, content_type = "application/problem+json"),
    ))]
async fn upload(
    State(state): State<AppState>,
    Path(key): Path<String>,
    q: Result<Query<Signature>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let store = local(&state)?;
    let q = query(q)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let content_length: u64 = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| ApiError::BadRequest("Content-Length is required".to_owned()))?;
    let signed = SignedRequest {
        method: "PUT",
        key: &key,
        content_type,
        content_length,
        expires: q.expires,
        sig: &q.sig,
    };
    check(store, &signed)?;
    awaits_upload(&state, &key).await?;
    // Body errors (a client gone mid-upload) get their own kind, so they read
    // as the client's fault rather than the disk's.
    // The body must arrive by its deadline; past it the stream ends short,
    // the partial file is removed, and the answer says why.
    let deadline = upload_deadline(content_length);
    let cut_off = tokio::time::Instant::now() + deadline;
    let stream = body
        .into_data_stream()
        .map_err(|e| io::Error::new(io::ErrorKind::ConnectionAborted, e))
        .take_until(Box::pin(tokio::time::sleep_until(cut_off)));
    let mut reader = StreamReader::new(stream);
    match store
        .put_new_reader(&key, &mut reader, content_length)
        .await
    {
        Ok(_) => Ok(StatusCode::CREATED),
        Err(UploadError::Exists) => Err(already_uploaded()),
        Err(UploadError::TooShort { .. }) if tokio::time::Instant::now() >= cut_off => {
            Err(ApiError::RequestTimeout {
                secs: deadline.as_secs(),
            })
        }
        Err(UploadError::TooLarge { expected }) => Err(ApiError::PayloadTooLarge {
            limit: usize::try_from(expected).unwrap_or(usize::MAX),
        }),
        Err(UploadError::TooShort { expected, got }) => Err(ApiError::BadRequest(format!(
            "the body has {got} bytes, the signed length is {expected}"
        ))),
        Err(UploadError::Store(StoreError::Io(e)))
            if e.kind() == io::ErrorKind::ConnectionAborted =>
        {
            Err(ApiError::BadRequest(
                "the upload was interrupted".to_owned(),
            ))
        }
        Err(UploadError::Store(e)) => Err(store_error(e)),
        Err(e) => Err(ApiError::Internal(Box::new(e))),
    }
}

/// Streams the object, or the one byte range asked for; `HEAD` answers the
/// same headers without the body. No bearer token: the URL's signature is
/// the authorization, and a download signature allows `GET` and `HEAD` only.
#[utoipa::path(get, path = "/v1/blobs/{key}", tag = "blobs",
    params(
        ("key" = String, Path, description = "Object key as signed (may contain `/`)"),
        Signature,
        ("Range" = Option<String>, Header, description = "One range: `bytes=a-b`, `bytes=a-` or `bytes=-n`"),
        ("If-Range" = Option<String>, Header, description = "The range only if the object still has this `ETag` or `Last-Modified`, else all of it"),
        ("If-None-Match" = Option<String>, Header, description = "`304` when the object has one of these tags"),
        ("If-Modified-Since" = Option<String>, Header, description = "`304` when unchanged since (ignored with `If-None-Match`)"),
    ),
    responses(
        (status = 200, description = "The whole object, as `audio/ogg; codecs=opus`, `audio/x-caf`, `audio/webm`, `application/json` or the signed image type",
            content((Vec<u8> = "audio/ogg; codecs=opus"), (Vec<u8> = "audio/x-caf"), (Vec<u8> = "audio/webm"), (Object = "application/json"), (Vec<u8> = "image/jpeg")),
            headers(("ETag" = String), ("Last-Modified" = String), ("Accept-Ranges" = String), ("Cache-Control" = String, description = "`public, max-age=<seconds until the URL expires>` (`, immutable` for processed outputs)"), ("Expires" = String))),
        (status = 206, description = "The range asked for", content_type = "application/octet-stream",
            headers(("Content-Range" = String))),
        (status = 304, description = "Not modified (`If-None-Match` or `If-Modified-Since`)"),
        (status = 400, description = "No signature", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Signature expired, tampered, or for another key, type or method", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such object, or no embedded store", body = Problem, content_type = "application/problem+json"),
        (status = 416, description = "The range starts past the end", body = Problem, content_type = "application/problem+json",
            headers(("Content-Range" = String, description = "`bytes */size`"))),
    ))]
async fn download(
    State(state): State<AppState>,
    Path(key): Path<String>,
    q: Result<Query<Signature>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, BlobError> {
    let store = local(&state)?;
    let q = query(q)?;
    let signed_type = q.content_type.as_deref().unwrap_or("");
    let signed = SignedRequest {
        method: "GET",
        key: &key,
        content_type: signed_type,
        content_length: 0,
        expires: q.expires,
        sig: &q.sig,
    };
    check(store, &signed)?;
    let output = OutputFormat::of_key(&key);
    let object = Served {
        key: &key,
        content_type: Some(signed_type)
            .filter(|t| !t.is_empty())
            .or(output.map(OutputFormat::content_type))
            .unwrap_or("application/octet-stream"),
        expires_at: q.expires,
        // Outputs are immutable per version; other keys (images) are not
        // rewritten either, but nothing guarantees it.
        immutable: output.is_some(),
    };
    serve_object(store, &object, &headers).await
}

/// What a download serves, as its URL named it.
struct Served<'a> {
    key: &'a str,
    content_type: &'a str,
    /// Unix ms the URL expires at: caches keep the answer until then.
    expires_at: i64,
    immutable: bool,
}

/// The validators of a stored file: a strong `ETag` from its size and
/// modification time (every write replaces the file), and `Last-Modified`.
struct Validators {
    etag: String,
    modified: SystemTime,
}

impl Validators {
    fn of(meta: &std::fs::Metadata) -> Self {
        let modified = meta.modified().unwrap_or(UNIX_EPOCH);
        let nanos = modified
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        Self {
            etag: format!("\"{:x}-{nanos:x}\"", meta.len()),
            modified,
        }
    }

    /// `If-None-Match` (weak comparison, RFC 9110 §13.1.2), else
    /// `If-Modified-Since` (to the second): the client's copy is current.
    fn not_modified(&self, headers: &HeaderMap) -> bool {
        if let Some(list) = header_str(headers, header::IF_NONE_MATCH) {
            let ours = self.etag.as_str();
            return list
                .split(',')
                .map(|t| t.trim().trim_start_matches("W/"))
                .any(|t| t == "*" || t == ours);
        }
        header_str(headers, header::IF_MODIFIED_SINCE)
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .is_some_and(|since| whole_seconds(self.modified) <= since)
    }

    /// `If-Range`: the range applies only to the copy the client has, named
    /// by its strong `ETag` or its exact `Last-Modified`.
    fn range_applies(&self, headers: &HeaderMap) -> bool {
        let Some(value) = header_str(headers, header::IF_RANGE) else {
            return true;
        };
        if value.starts_with('"') {
            return value == self.etag;
        }
        httpdate::parse_http_date(value).is_ok_and(|at| at == whole_seconds(self.modified))
    }
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// HTTP dates have whole seconds.
fn whole_seconds(t: SystemTime) -> SystemTime {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// Streams a stored object, or the one byte range asked for (`206`, or
/// `416` past the end), or `304` when the client's copy is current, with the
/// validators and the caching the URL allows.
async fn serve_object(
    store: &LocalStore,
    object: &Served<'_>,
    headers: &HeaderMap,
) -> Result<Response, BlobError> {
    let (mut file, size) = store.open_read(object.key).await.map_err(store_error)?;
    let meta = file
        .metadata()
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    let validators = Validators::of(&meta);
    if validators.not_modified(headers) {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        cache_headers(response.headers_mut(), object, &validators);
        return Ok(response);
    }
    let range = match header_str(headers, header::RANGE) {
        Some(v) if validators.range_applies(headers) => parse_range(v, size),
        _ => Range::Full,
    };
    let (status, start, len) = match range {
        Range::Full => (StatusCode::OK, 0, size),
        Range::Partial { start, end } => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        Range::Unsatisfiable => return Err(BlobError::RangeNotSatisfiable { size }),
    };
    if start > 0 {
        file.seek(SeekFrom::Start(start))
            .await
            .map_err(|e| ApiError::Internal(Box::new(e)))?;
    }
    let mut response = Response::new(Body::from_stream(ReaderStream::new(file.take(len))));
    *response.status_mut() = status;
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(object.content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static(disposition(object.content_type)),
    );
    cache_headers(h, object, &validators);
    if status == StatusCode::PARTIAL_CONTENT {
        let value = format!("bytes {start}-{}/{size}", start + len - 1);
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(response)
}

/// `inline` for audio and images, which players and `<img>` show in place;
/// anything else is downloaded (`attachment`), never rendered as a page of
/// this origin, whatever bytes it holds.
fn disposition(content_type: &str) -> &'static str {
    let shown = ["audio/", "image/"]
        .iter()
        .any(|kind| content_type.starts_with(kind));
    if shown {
        "inline"
    } else {
        "attachment"
    }
}

/// `ETag`, `Last-Modified`, and freshness until the URL expires: any cache
/// may keep the answer (the URL is the authorization, so a cache keyed on
/// it serves only those who hold it), never past the URL's expiry.
fn cache_headers(h: &mut HeaderMap, object: &Served<'_>, validators: &Validators) {
    let left_ms = (object.expires_at - now_ms()).max(0);
    let immutable = if object.immutable { ", immutable" } else { "" };
    let cache_control = format!("public, max-age={}{immutable}", left_ms / 1000);
    let expires = UNIX_EPOCH + Duration::from_millis(u64::try_from(object.expires_at).unwrap_or(0));
    let values = [
        (header::ETAG, validators.etag.clone()),
        (
            header::LAST_MODIFIED,
            httpdate::fmt_http_date(validators.modified),
        ),
        (header::CACHE_CONTROL, cache_control),
        (header::EXPIRES, httpdate::fmt_http_date(expires)),
    ];
    for (name, value) in values {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
}

/// What a `Range` header asks of an object of a known size.
#[derive(Debug, PartialEq, Eq)]
enum Range {
    /// No usable single range (absent, malformed or multiple): send it all.
    Full,
    /// Bytes `start..=end`.
    Partial {
        start: u64,
        end: u64,
    },
    Unsatisfiable,
}

/// Parses one `bytes=a-b`, `bytes=a-` or `bytes=-n` range (RFC 9110 §14.1.2);
/// anything else is ignored, as the RFC allows.
fn parse_range(value: &str, size: u64) -> Range {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Range::Full;
    };
    if spec.contains(',') {
        return Range::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Range::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    let parsed = match (first.parse::<u64>(), last.parse::<u64>()) {
        (Ok(start), Ok(end)) if start <= end => Some((start, end.min(size.saturating_sub(1)))),
        (Ok(start), Err(_)) if last.is_empty() => Some((start, size.saturating_sub(1))),
        (Err(_), Ok(suffix)) if first.is_empty() => {
            if suffix == 0 {
                return Range::Unsatisfiable;
            }
            Some((size.saturating_sub(suffix), size.saturating_sub(1)))
        }
        _ => None,
    };
    match parsed {
        None => Range::Full,
        Some((start, _)) if start >= size => Range::Unsatisfiable,
        Some((start, end)) => Range::Partial { start, end },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_audio_and_images_are_shown_in_place() {
        assert_eq!(disposition("audio/ogg; codecs=opus"), "inline");
        assert_eq!(disposition("image/webp"), "inline");
        for other in [
            "text/html",
            "application/json",
            "application/octet-stream",
            "",
        ] {
            assert_eq!(disposition(other), "attachment", "{other}");
        }
    }

    #[test]
    fn ranges() {
        assert_eq!(
            parse_range("bytes=0-9", 100),
            Range::Partial { start: 0, end: 9 }
        );
        assert_eq!(
            parse_range("bytes=90-", 100),
            Range::Partial { start: 90, end: 99 }
        );
        assert_eq!(
            parse_range("bytes=-10", 100),
            Range::Partial { start: 90, end: 99 }
        );
        assert_eq!(
            parse_range("bytes=-500", 100),
            Range::Partial { start: 0, end: 99 }
        );
        assert_eq!(
            parse_range("bytes=50-500", 100),
            Range::Partial { start: 50, end: 99 }
        );
        assert_eq!(parse_range("bytes=100-", 100), Range::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Range::Unsatisfiable);
        assert_eq!(parse_range("bytes=5-1", 100), Range::Full);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Range::Full);
        assert_eq!(parse_range("items=0-1", 100), Range::Full);
        assert_eq!(parse_range("bytes=x-y", 100), Range::Full);
    }
}

#[cfg(test)]
mod route_tests {
    use super::*;
    use axum::http::Request;
    use axum::Router;
    use http_body_util::BodyExt;
    use sori_db::testing::fresh_db;
    use sori_pipeline::queue::{EmbeddedQueue, JobQueue};
    use std::time::Duration;
    use tower::ServiceExt;

    struct Fixture {
        app: Router,
        store: LocalStore,
        _dir: tempfile::TempDir,
        db: sori_db::testing::TestDb,
    }

    async fn fixture() -> Fixture {
        let t = fresh_db().await;
        let dir = tempfile::tempdir().unwrap();
        let store =
            LocalStore::new(dir.path().join("blobs"), &[9u8; 32], "http://sori.test").unwrap();
        let queue = JobQueue::Embedded(EmbeddedQueue::new(t.db.clone(), "media", 5));
        let state =
            AppState::new(t.db.clone()).with_media(ObjectStore::Local(store.clone()), queue);
        Fixture {
            app: crate::app(state),
            store,
            _dir: dir,
            db: t,
        }
    }

    fn path_of(url: &str) -> &str {
        url.strip_prefix("http://sori.test").unwrap()
    }

    /// A media row awaiting the upload of `originals/{id}`, as `POST /v1/media` writes.
    async fn awaiting(f: &Fixture, id: &str) {
        let db = f.db.db.pool();
        sqlx::query(
            "INSERT INTO users (id, handle, handle_lower, display_name, password_hash, \
             created_at, handle_fold, name_fold) VALUES ($1, $1, $1, $1, 'x', 0, $1, $1)",
        )
        .bind(format!("u_{id}"))
        .execute(db)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO media (id, owner_id, kind, state, content_type, size_bytes, \
             original_key, created_at, updated_at) \
             VALUES ($1, $2, 'audio', 'awaiting_upload', 'audio/mp4', 10, $3, 0, 0)",
        )
        .bind(id)
        .bind(format!("u_{id}"))
        .bind(format!("originals/{id}"))
        .execute(db)
        .await
        .unwrap();
    }

    async fn send(app: &Router, req: Request<Body>) -> (StatusCode, HeaderMap, Vec<u8>) {
        let res = app.clone().oneshot(req).await.unwrap();
        let (parts, body) = res.into_parts();
        (
            parts.status,
            parts.headers,
            body.collect().await.unwrap().to_bytes().to_vec(),
        )
    }

    fn put(url: &str, content_type: &str, length: usize, body: &'static [u8]) -> Request<Body> {
        Request::put(path_of(url))
            .header(header::CONTENT_TYPE, content_type)
            .header(header::CONTENT_LENGTH, length)
            .body(Body::from(body))
            .unwrap()
    }

    fn problem_status(headers: &HeaderMap, body: &[u8]) -> u64 {
        assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
        let v: serde_json::Value = serde_json::from_slice(body).unwrap();
        v["status"].as_u64().unwrap()
    }

    #[tokio::test]
    async fn signed_upload_is_enforced() {
        let f = fixture().await;
        awaiting(&f, "m1").await;
        let p = f
            .store
            .presign_put("originals/m1", "audio/mp4", 10, Duration::from_secs(60))
            .await
            .unwrap();
        // Wrong content type, wrong declared length: the signature does not cover them.
        let (s, h, b) = send(&f.app, put(&p.url, "audio/mpeg", 10, b"0123456789")).await;
        assert_eq!((s, problem_status(&h, &b)), (StatusCode::FORBIDDEN, 403));
        let (s, _, _) = send(&f.app, put(&p.url, "audio/mp4", 11, b"0123456789a")).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        // A body longer or shorter than signed (and declared).
        let (s, h, b) = send(&f.app, put(&p.url, "audio/mp4", 10, b"0123456789-and-more")).await;
        assert_eq!(
            (s, problem_status(&h, &b)),
            (StatusCode::PAYLOAD_TOO_LARGE, 413)
        );
        let (s, h, b) = send(&f.app, put(&p.url, "audio/mp4", 10, b"01234")).await;
        assert_eq!((s, problem_status(&h, &b)), (StatusCode::BAD_REQUEST, 400));
        assert!(f.store.head("originals/m1").await.unwrap().is_none());
        // Tampered signature, missing signature, expired URL.
        let tampered = p.url.replace("sig=", "sig=00");
        let (s, _, _) = send(&f.app, put(&tampered, "audio/mp4", 10, b"0123456789")).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let unsigned = p.url.split('?').next().unwrap().to_owned();
        let (s, _, _) = send(&f.app, put(&unsigned, "audio/mp4", 10, b"0123456789")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let old = f
            .store
            .presign(
                "PUT",
                "originals/m1",
                "audio/mp4",
                10,
                Duration::from_secs(1),
                now_ms() - 5000,
            )
            .unwrap();
        let (s, _, _) = send(&f.app, put(&old.url, "audio/mp4", 10, b"0123456789")).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        // The right request.
        let (s, _, _) = send(&f.app, put(&p.url, "audio/mp4", 10, b"0123456789")).await;
        assert_eq!(s, StatusCode::CREATED);
        assert_eq!(
            f.store.head("originals/m1").await.unwrap().unwrap().size,
            10
        );
        // The URL works once: the same length of other bytes is refused,
        // before and after the upload is completed.
        let (s, h, b) = send(&f.app, put(&p.url, "audio/mp4", 10, b"replaced!!")).await;
        assert_eq!((s, problem_status(&h, &b)), (StatusCode::CONFLICT, 409));
        sqlx::query("UPDATE media SET state = 'queued' WHERE id = 'm1'")
            .execute(f.db.db.pool())
            .await
            .unwrap();
        let (s, _, _) = send(&f.app, put(&p.url, "audio/mp4", 10, b"replaced!!")).await;
        assert_eq!(s, StatusCode::CONFLICT);
        let path = f.store.path_of("originals/m1").unwrap();
        assert_eq!(std::fs::read(path).unwrap(), b"0123456789");
        // A key no media awaits.
        let stray = f
            .store
            .presign_put("originals/m9", "audio/mp4", 10, Duration::from_secs(60))
            .await
            .unwrap();
        let (s, _, _) = send(&f.app, put(&stray.url, "audio/mp4", 10, b"0123456789")).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        // A PUT signature does not allow a GET.
        let (s, _, _) = send(
            &f.app,
            Request::get(path_of(&p.url)).body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }

    /// `url` with query parameter `name` set to `value`.
    fn with_param(url: &str, name: &str, value: &str) -> String {
        let (base, query) = url.split_once('?').unwrap();
        let params: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key == name => format!("{key}={value}"),
                _ => pair.to_owned(),
            })
            .collect();
        format!("{base}?{}", params.join("&"))
    }

    /// Asserts a 403 `forbidden` problem saying the signed URL was refused.
    fn assert_refused(status: StatusCode, headers: &HeaderMap, body: &[u8], what: &str) {
        assert_eq!(status, StatusCode::FORBIDDEN, "{what}");
        assert_eq!(problem_status(headers, body), 403, "{what}");
        let v: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v["type"], "https://sori.dev/problems/forbidden", "{what}");
        let detail = v["detail"].as_str().unwrap();
        assert!(detail.contains("signed URL"), "{what}: {detail}");
    }

    #[tokio::test]
    async fn tampered_and_expired_urls_are_refused_with_a_problem() {
        let f = fixture().await;
        awaiting(&f, "m2").await;
        awaiting(&f, "m3").await;
        let p = f
            .store
            .presign_put("originals/m2", "audio/mp4", 10, Duration::from_secs(60))
            .await
            .unwrap();
        let sig = p.url.split("sig=").nth(1).unwrap().to_owned();
        let flipped = format!(
            "{}{}",
            if sig.starts_with('0') { "1" } else { "0" },
            &sig[1..]
        );
        let later = (now_ms() + 3_600_000).to_string();
        let cases = [
            ("signature changed", with_param(&p.url, "sig", &flipped)),
            ("expiry stretched", with_param(&p.url, "expires", &later)),
            ("key changed", p.url.replace("originals/m2", "originals/m3")),
        ];
        for (what, url) in &cases {
            let (s, h, b) = send(&f.app, put(url, "audio/mp4", 10, b"0123456789")).await;
            assert_refused(s, &h, &b, what);
        }
        let (s, h, b) = send(&f.app, put(&p.url, "audio/webm", 10, b"0123456789")).await;
        assert_refused(s, &h, &b, "another content type");
        assert!(f.store.head("originals/m2").await.unwrap().is_none());
        assert!(f.store.head("originals/m3").await.unwrap().is_none());

        // Downloads: expired, or the expiry stretched.
        let mut body: &[u8] = b"0123456789";
        f.store
            .put_reader("media/m/v1/audio.opus", &mut body, 10)
            .await
            .unwrap();
        let old = f
            .store
            .presign(
                "GET",
                "media/m/v1/audio.opus",
                "",
                0,
                Duration::from_secs(1),
                now_ms() - 5000,
            )
            .unwrap();
        for (what, url) in [
            ("expired download", old.url.clone()),
            (
                "download expiry stretched",
                with_param(&old.url, "expires", &later),
            ),
        ] {
            let req = Request::get(path_of(&url)).body(Body::empty()).unwrap();
            let (s, h, b) = send(&f.app, req).await;
            assert_refused(s, &h, &b, what);
        }
    }

    #[tokio::test]
    async fn signed_download_with_ranges() {
        let f = fixture().await;
        let mut body: &[u8] = b"0123456789";
        f.store
            .put_reader("media/m/v1/audio.opus", &mut body, 10)
            .await
            .unwrap();
        let url = f
            .store
            .sign_get("media/m/v1/audio.opus", None, now_ms() + 60_000)
            .unwrap();
        let get = |range: Option<&str>| {
            let mut r = Request::get(path_of(&url));
            if let Some(range) = range {
                r = r.header(header::RANGE, range);
            }
            r.body(Body::empty()).unwrap()
        };
        let (s, h, b) = send(&f.app, get(None)).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(h[header::CONTENT_TYPE], "audio/ogg; codecs=opus");
        assert_eq!(h[header::ACCEPT_RANGES], "bytes");
        assert_eq!(b, b"0123456789");
        let (s, h, b) = send(&f.app, get(Some("bytes=2-5"))).await;
        assert_eq!(s, StatusCode::PARTIAL_CONTENT);
        assert_eq!(h[header::CONTENT_RANGE], "bytes 2-5/10");
        assert_eq!(h[header::CONTENT_LENGTH], "4");
        assert_eq!(b, b"2345");
        let (s, h, b) = send(&f.app, get(Some("bytes=-3"))).await;
        assert_eq!(
            (s, b.as_slice()),
            (StatusCode::PARTIAL_CONTENT, b"789".as_slice())
        );
        assert_eq!(h[header::CONTENT_RANGE], "bytes 7-9/10");
        let (s, h, b) = send(&f.app, get(Some("bytes=10-"))).await;
        assert_eq!(s, StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(h[header::CONTENT_RANGE], "bytes */10");
        assert_eq!(problem_status(&h, &b), 416);
        // Another key with this signature, a missing object, an escape attempt.
        let other = url.replace("audio.opus", "audio.caf");
        let (s, _, _) = send(
            &f.app,
            Request::get(path_of(&other)).body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let missing = f
            .store
            .sign_get("media/m/v1/audio.webm", None, now_ms() + 60_000)
            .unwrap();
        let (s, _, _) = send(
            &f.app,
            Request::get(path_of(&missing)).body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let escape = url.replace("media/m/v1/audio.opus", "media/%2e%2e/%2e%2e/secret");
        let (s, _, _) = send(
            &f.app,
            Request::get(path_of(&escape)).body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
}
