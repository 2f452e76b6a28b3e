//! Voice uploads: the client asks for an upload URL, PUTs the bytes straight
//! to the object store (S3, or the API's own signed blob routes in embedded
//! mode), then says "complete" to queue processing; afterwards it reads the
//! state and, once ready, the signed URLs of every variant and the waveform
//! ([`crate::core::media_urls`]). `GET /v1/media/{id}/audio` stays for clients that
//! prefer a fixed address: it redirects to the signed URL of one variant. The
//! waveform JSON is small and is also answered directly.
//!
//! Images (chat pictures: JPEG, PNG, WebP, HEIC) take the same upload path
//! with kind `image`: "complete" reads their pixel size from the first bytes
//! and marks them ready without processing; `GET /v1/media/{id}/original`
//! redirects the owner and the members of a room they were sent in to a
//! signed URL of them.
//!
//! The API never proxies media bytes: it signs, checks and queues.

use crate::core::error::{ApiError, Problem};
use crate::core::extractors::AuthUser;
use crate::core::images;
use crate::core::media_urls::ClipUrls;
use crate::core::media_urls::UrlSigner;
use crate::core::state::AppState;
use crate::core::time;
use crate::core::validation::{JsonBody, QueryParams};
use crate::model::media::UPLOAD_URL_TTL;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use sori_codecs::OutputFormat;
use sori_db::Db;
use sori_pipeline::media::{mark_queued, MediaError};
use sori_pipeline::queue::JobQueue;
use sori_pipeline::store::{
    original_key, outputs_prefix, ObjectStore, PresignedRequest, StoreError,
};
use std::collections::BTreeMap;
use tokio::io::AsyncReadExt;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Upload, status and playback routes, merged by [`crate::app`].
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_media))
        .routes(routes!(complete_media))
        .routes(routes!(get_media))
        .routes(routes!(media_audio))
        .routes(routes!(media_waveform))
        .routes(routes!(media_original))
}

/// Largest accepted image upload.
pub const MAX_IMAGE_BYTES: i64 = 10 * 1024 * 1024;

/// The image types a chat message may carry.
/// HEIC is not among them: [`crate::core::images`] says why.
const IMAGE_TYPES: &[&str] = &["image/jpeg", "image/png", "image/webp"];

/// Largest accepted upload: 50 MiB holds far more than the engine's
/// duration limit at any bitrate a phone records.
pub const MAX_UPLOAD_BYTES: i64 = 50 * 1024 * 1024;
/// Largest waveform JSON answered; the engine writes far less (a few KiB a minute).
const MAX_WAVEFORM_BYTES: u64 = 2 * 1024 * 1024;

/// The types phones and browsers record (what the engine decodes), without
/// parameters.
const ACCEPTED_TYPES: &[&str] = &[
    "audio/mp4",
    "audio/m4a",
    "audio/x-m4a",
    "audio/aac",
    "audio/mpeg",
    "audio/mp3",
    "audio/ogg",
    "audio/opus",
    "audio/webm",
    "video/webm",
    "audio/flac",
    "audio/x-flac",
    "audio/wav",
    "audio/x-wav",
    "audio/wave",
    "audio/x-caf",
    "audio/aiff",
    "audio/x-aiff",
];

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateMedia {
    /// The recording's type, e.g. `audio/mp4` or `audio/webm;codecs=opus`;
    /// or an image's (`image/jpeg`, `image/png`, `image/webp`).
    pub content_type: String,
    /// Exact length of the upload, bytes (at most 50 MiB; 10 MiB for images).
    pub size_bytes: i64,
}

/// How to upload: send `method` to `url` with exactly these `headers`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Upload {
    pub url: String,
    pub method: String,
    pub headers: BTreeMap<String, String>,
    /// Unix milliseconds after which the URL is refused.
    pub expires_at: i64,
}

impl From<PresignedRequest> for Upload {
    fn from(p: PresignedRequest) -> Self {
        Self {
            url: p.url,
            method: p.method,
            headers: p.headers.into_iter().collect(),
            expires_at: p.expires_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedMedia {
    pub id: String,
    pub upload: Upload,
}

/// Where a media is in processing, and what came out.
#[derive(Debug, Serialize, ToSchema)]
pub struct MediaStatus {
    pub id: String,
    /// `audio` or `image`.
    pub kind: String,
    /// An image's pixel size, once complete (when its header gives it).
    pub width: Option<i64>,
    pub height: Option<i64>,
    /// `awaiting_upload`, `queued`, `processing`, `ready` or `failed`.
    pub state: String,
    /// Why processing failed (or why the last attempt did).
    pub reason: Option<String>,
    pub content_type: String,
    pub size_bytes: i64,
    pub duration_ms: Option<i64>,
    /// Up to 100 values 0–31; empty until ready.
    pub bars: Vec<u8>,
    /// The processing report once ready: duration, input format, measured and
    /// output loudness and true peak, the gain applied, encode passes.
    #[schema(value_type = Option<Object>)]
    pub report: Option<serde_json::Value>,
    /// Signed URLs of a ready clip and its waveform; `null` otherwise.
    #[serde(flatten)]
    pub urls: ClipUrls,
    /// A signed URL of a ready image (`GET` and `HEAD` of it only, no
    /// `Authorization` header, until it expires: `SORI_MEDIA_URL_TTL_SECS`,
    /// default 3600 s, to 1.25 times that after the answer); `null` otherwise.
    pub image_url: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, sqlx::FromRow)]
struct MediaRow {
    id: String,
    owner_id: String,
    kind: String,
    width: Option<i64>,
    height: Option<i64>,
    state: String,
    content_type: String,
    size_bytes: i64,
    original_key: String,
    output_prefix: Option<String>,
    duration_ms: Option<i64>,
    bars: Option<String>,
    report: Option<String>,
    failure: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl MediaRow {
    /// The answer shape, with the URLs of a ready media signed by `urls`.
    fn status(self, urls: &UrlSigner) -> MediaStatus {
        let bars = self.bars.as_deref().map(crate::model::media::parse_bars);
        let ready = self.state == "ready";
        let (clip, image_url) = match self.kind.as_str() {
            "image" if ready => (
                ClipUrls::default(),
                urls.picture(
                    &self.original_key,
                    &self.content_type,
                    self.output_prefix.as_deref(),
                ),
            ),
            _ => (urls.clip(ready, self.output_prefix.as_deref()), None),
        };
        MediaStatus {
            urls: clip,
            image_url,
            report: self.report.and_then(|r| serde_json::from_str(&r).ok()),
            bars: bars.unwrap_or_default(),
            id: self.id,
            kind: self.kind,
            width: self.width,
            height: self.height,
            state: self.state,
            reason: self.failure,
            content_type: self.content_type,
            size_bytes: self.size_bytes,
            duration_ms: self.duration_ms,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }

    /// The prefix of the processed outputs; 409 with the state until ready.
    fn ready_prefix(&self) -> Result<&str, ApiError> {
        match (&self.output_prefix, self.state.as_str()) {
            (Some(prefix), "ready") => Ok(prefix),
            _ => Err(ApiError::Conflict(format!("media is {}", self.state))),
        }
    }
}

fn backends(state: &AppState) -> Result<(&ObjectStore, &JobQueue), ApiError> {
    match (&state.store, &state.queue) {
        (Some(store), Some(queue)) => Ok((store, queue)),
        _ => Err(ApiError::Unavailable("media storage is not configured")),
    }
}

fn store_error(e: StoreError) -> ApiError {
    if e.is_transient() {
        tracing::warn!(error = %e, "object store unavailable");
        ApiError::Unavailable("object store unavailable; retry")
    } else {
        ApiError::Internal(Box::new(e))
    }
}

fn media_error(e: MediaError) -> ApiError {
    match e {
        MediaError::NotFound => ApiError::NotFound,
        other => ApiError::Internal(Box::new(other)),
    }
}

async fn load(db: &Db, id: &str) -> Result<MediaRow, ApiError> {
    sqlx::query_as(
        "SELECT id, owner_id, kind, width, height, state, content_type, size_bytes, original_key, output_prefix, \
         duration_ms, bars, report, failure, created_at, updated_at FROM media WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db.pool())
    .await?
    .ok_or(ApiError::NotFound)
}

/// The owner's media, else 404 (unknown) or 403 (someone else's).
async fn load_own(db: &Db, id: &str, user: &AuthUser) -> Result<MediaRow, ApiError> {
    let media = load(db, id).await?;
    if media.owner_id != user.id {
        return Err(ApiError::Forbidden);
    }
    Ok(media)
}

/// Media the caller may play: their own; chat media to the members of a
/// room it was sent in; else the ready clip of a post or a voice comment the
/// caller can see (neither removed, nor its author, no block between the
/// caller and either author), so a clip hidden from someone — still
/// processing, removed, or behind a block — does not play or reveal its
/// state to them either. The same rules decide which answers carry its URLs.
async fn load_playable(db: &Db, id: &str, user: &AuthUser) -> Result<MediaRow, ApiError> {
    let media = load(db, id).await?;
    if media.owner_id == user.id || crate::model::rules::can_see_media(db, id, &user.id).await? {
        return Ok(media);
    }
    let sql = format!(
        "SELECT p.id FROM posts p JOIN users u ON u.id = p.author_id \
         WHERE p.media_id = $2 AND {visible} \
         UNION ALL \
         SELECT c.id FROM comments c JOIN users cu ON cu.id = c.author_id \
         JOIN posts p ON p.id = c.post_id JOIN users u ON u.id = p.author_id \
         WHERE c.media_id = $2 AND c.hidden_at IS NULL AND {commenter} AND {visible}",
        visible = crate::model::rules::visible(),
        commenter = crate::model::rules::user_visible("cu", "$1"),
    );
    let shown: Option<String> = sqlx::query_scalar(&sql)
        .bind(&user.id)
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    match shown {
        Some(_) if media.state == "ready" => Ok(media),
        _ => Err(ApiError::Forbidden),
    }
}

/// The declared type without parameters, lowercased, if it is one we decode.
fn accepted_type(declared: &str) -> Option<String> {
    let essence = declared.split(';').next()?.trim().to_ascii_lowercase();
    ACCEPTED_TYPES
        .contains(&essence.as_str())
        .then_some(essence)
}

/// The declared image type without parameters, lowercased, if accepted.
fn image_type(declared: &str) -> Option<String> {
    let essence = declared.split(';').next()?.trim().to_ascii_lowercase();
    IMAGE_TYPES.contains(&essence.as_str()).then_some(essence)
}

/// Starts an upload: checks type and size, creates the media
/// (`awaiting_upload`) and returns where to PUT the bytes. Uploads started by
/// one user are limited per hour (`SORI_MEDIA_PER_HOUR`; 429 past it).
#[utoipa::path(post, path = "/v1/media", tag = "media",
    security(("bearer" = [])),
    request_body = CreateMedia,
    responses(
        (status = 201, body = CreatedMedia),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Declared size over the limit", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unsupported type or bad size", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many uploads by this user; see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
async fn create_media(
    State(state): State<AppState>,
    user: AuthUser,
    JsonBody(req): JsonBody<CreateMedia>,
) -> Result<(StatusCode, Json<CreatedMedia>), ApiError> {
    let image = image_type(&req.content_type);
    let (content_type, kind, limit) = match (image, accepted_type(&req.content_type)) {
        (Some(t), _) => (t, "image", MAX_IMAGE_BYTES),
        (None, Some(t)) => (t, "audio", MAX_UPLOAD_BYTES),
        (None, None)
            if req
                .content_type
                .to_ascii_lowercase()
                .starts_with("image/hei") =>
        {
            let why = "HEIC images are not supported: send a JPEG, PNG or WebP";
            return Err(ApiError::invalid("content_type", why));
        }
        (None, None) => {
            let why = "not an audio type Sori can decode, nor a JPEG, PNG or WebP image";
            return Err(ApiError::invalid("content_type", why));
        }
    };
    if req.size_bytes <= 0 {
        return Err(ApiError::invalid("size_bytes", "must be positive"));
    }
    if req.size_bytes > limit {
        return Err(ApiError::PayloadTooLarge {
            limit: limit as usize,
        });
    }
    let (store, _) = backends(&state)?;
    state.creation_limits.media.take(&user.id)?;
    let id = uuid::Uuid::now_v7().to_string();
    // Images live outside `originals/`, whose storage events queue audio processing.
    let key = match kind {
        "image" => format!("images/{id}"),
        _ => original_key(&id),
    };
    let upload = store
        .presign_put(&key, &content_type, req.size_bytes as u64, UPLOAD_URL_TTL)
        .await
        .map_err(store_error)?;
    let now = time::now_ms();
    sqlx::query(
        "INSERT INTO media (id, owner_id, kind, state, content_type, size_bytes, original_key, created_at, updated_at) \
         VALUES ($1, $2, $7, 'awaiting_upload', $3, $4, $5, $6, $6)",
    )
    .bind(&id)
    .bind(&user.id)
    .bind(&content_type)
    .bind(req.size_bytes)
    .bind(&key)
    .bind(now)
    .bind(kind)
    .execute(state.db.pool())
    .await?;
    let created = CreatedMedia {
        id,
        upload: upload.into(),
    };
    Ok((StatusCode::CREATED, Json(created)))
}

/// Says the upload is done: checks the object is there with the declared
/// size and queues processing; an image instead gets its pixel size read and
/// is ready at once. Idempotent: a repeat changes nothing.
#[utoipa::path(post, path = "/v1/media/{id}/complete", tag = "media",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Media id")),
    responses(
        (status = 202, description = "Queued (or already past the upload)", body = MediaStatus),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Someone else's media", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Nothing uploaded, or not the declared size", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An image whose bytes are not of its declared type", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
async fn complete_media(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<MediaStatus>), ApiError> {
    let (store, queue) = backends(&state)?;
    let media = load_own(&state.db, &id, &user).await?;
    if media.state == "awaiting_upload" {
        let meta = store.head(&media.original_key).await.map_err(store_error)?;
        match meta {
            None => return Err(ApiError::Conflict("nothing uploaded yet".to_owned())),
            Some(m) if m.size != media.size_bytes as u64 => {
                return Err(ApiError::Conflict(format!(
                    "uploaded {} bytes, declared {}",
                    m.size, media.size_bytes
                )));
            }
            Some(_) => {}
        }
        if media.kind == "image" {
            complete_image(&state.db, store, &media).await?;
        } else {
            mark_queued(&state.db, &queue.staging(), &id)
                .await
                .map_err(media_error)?;
        }
    }
    let media = load(&state.db, &id).await?;
    let urls = state.media_urls.signer().await?;
    Ok((StatusCode::ACCEPTED, Json(media.status(&urls))))
}

/// The media's state, failure reason, duration, bars and report, and once
/// ready the signed URLs of its variants and waveform, or of the image
/// (owner only).
#[utoipa::path(get, path = "/v1/media/{id}", tag = "media",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Media id")),
    responses(
        (status = 200, body = MediaStatus),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_media(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<MediaStatus>, ApiError> {
    let media = load_own(&state.db, &id, &user).await?;
    let urls = state.media_urls.signer().await?;
    Ok(Json(media.status(&urls)))
}

/// `?format=` of the audio route.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AudioQuery {
    /// `opus` (Ogg), `caf` (older iOS) or `webm` (Safari 17.5+); by `Accept` when absent, else `opus`.
    pub format: Option<String>,
}

/// The variant `format` names, or the first one `Accept` lists; else Ogg Opus.
fn audio_variant(format: Option<&str>, accept: Option<&str>) -> Result<OutputFormat, ApiError> {
    if let Some(format) = format {
        return OutputFormat::audio_by_name(format)
            .ok_or_else(|| ApiError::invalid("format", "one of opus, caf, webm"));
    }
    let chosen = accept
        .into_iter()
        .flat_map(|a| a.split(','))
        .find_map(|item| OutputFormat::audio_by_media_type(item.split(';').next()?.trim()));
    Ok(chosen.unwrap_or(OutputFormat::Opus))
}

/// A `302` to a signed URL. The URL expires, so no cache keeps the redirect.
fn redirect(url: Option<String>) -> Result<Response, ApiError> {
    let url = url.ok_or_else(|| internal("a stored object could not be signed".to_owned()))?;
    let location = HeaderValue::try_from(url).map_err(|e| ApiError::Internal(Box::new(e)))?;
    let headers = [
        (header::LOCATION, location),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        // The variant may depend on `Accept`: caches must key on it.
        (header::VARY, HeaderValue::from_static("accept")),
    ];
    Ok((StatusCode::FOUND, headers).into_response())
}

/// A redirect to the signed URL of one variant of the processed audio, for
/// clients that prefer a fixed address to the URLs in the answers; the same
/// URL `audio_urls` carries, with the same lifetime.
#[utoipa::path(get, path = "/v1/media/{id}/audio", tag = "media",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "Media id"),
        AudioQuery,
        ("Accept" = Option<String>, Header, description = "Chooses the variant when `format` is absent: `audio/ogg`, `audio/x-caf` or `audio/webm`"),
    ),
    responses(
        (status = 302, description = "To a signed URL of the variant (`GET`/`HEAD` with `Range`, no `Authorization` header, until it expires)", headers(("Location" = String))),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Neither the caller's, nor sent to them, nor a ready post or comment they can see", body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not ready; the detail says its state", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown format", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
async fn media_audio(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
    QueryParams(query): QueryParams<AudioQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let variant = audio_variant(query.format.as_deref(), accept)?;
    backends(&state)?;
    let media = load_playable(&state.db, &id, &user).await?;
    let prefix = media.ready_prefix()?;
    let urls = state.media_urls.signer().await?;
    redirect(urls.output(prefix, variant))
}

/// The waveform JSON (audiowaveform format, version 2), in both modes.
#[utoipa::path(get, path = "/v1/media/{id}/waveform", tag = "media",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Media id")),
    responses(
        (status = 200, description = "audiowaveform JSON: `version`, `channels`, `sample_rate`, `samples_per_pixel`, `bits`, `length`, `data` (min/max pairs)",
            body = Object, content_type = "application/json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not ready; the detail says its state", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
async fn media_waveform(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (store, _) = backends(&state)?;
    let media = load_playable(&state.db, &id, &user).await?;
    let bytes = read_small(store, &OutputFormat::Waveform.key(media.ready_prefix()?)).await?;
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static(OutputFormat::Waveform.content_type()),
        ),
        // A version's outputs never change; access may, so only briefly and privately.
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, max-age=300"),
        ),
    ];
    Ok((headers, bytes).into_response())
}

/// Checks an uploaded image ([`images::header`]: of the declared type,
/// within the pixel limit), then makes what members are shown
/// ([`images::chat_picture`]: upright, at most 2048 px, no metadata, and a
/// thumbnail) under `media/{id}/`; the media becomes `ready` with the shown
/// size.
async fn complete_image(db: &Db, store: &ObjectStore, media: &MediaRow) -> Result<(), ApiError> {
    let bytes = read_head(store, &media.original_key, MAX_IMAGE_BYTES as u64).await?;
    let refused = |e: images::ImageError| ApiError::invalid("content_type", e.to_string());
    let header = images::header(&bytes).map_err(refused)?;
    if header.content_type != media.content_type {
        let why = format!("the uploaded bytes are not a {} image", media.content_type);
        return Err(ApiError::invalid("content_type", why));
    }
    let picture = tokio::task::spawn_blocking(move || images::chat_picture(&bytes))
        .await
        .map_err(|e| internal(e.to_string()))?
        .map_err(refused)?;
    let prefix = outputs_prefix(&media.id);
    for (name, jpeg) in [
        (images::DISPLAY_FILE, picture.display),
        (images::THUMB_FILE, picture.thumbnail),
    ] {
        store
            .put_bytes(&format!("{prefix}{name}"), &jpeg, "image/jpeg")
            .await
            .map_err(store_error)?;
    }
    sqlx::query(
        "UPDATE media SET state = 'ready', width = $1, height = $2, output_prefix = $3, \
         updated_at = $4 WHERE id = $5 AND state = 'awaiting_upload'",
    )
    .bind(i64::from(picture.width))
    .bind(i64::from(picture.height))
    .bind(&prefix)
    .bind(time::now_ms())
    .bind(&media.id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Up to `limit` bytes from the start of a stored object.
async fn read_head(store: &ObjectStore, key: &str, limit: u64) -> Result<Vec<u8>, ApiError> {
    let mut bytes = Vec::new();
    match store {
        ObjectStore::Local(local) => {
            let (file, _) = local.open_read(key).await.map_err(store_error)?;
            file.take(limit)
                .read_to_end(&mut bytes)
                .await
                .map_err(|e| internal(e.to_string()))?;
        }
        // The whole object (images are at most MAX_IMAGE_BYTES), then its start.
        _ => {
            bytes = store.get_bytes(key).await.map_err(store_error)?;
            bytes.truncate(limit as usize);
        }
    }
    Ok(bytes)
}

/// A redirect to the signed URL of an uploaded image (owner, or members of
/// a room it was sent in): the same URL `image_url` carries.
#[utoipa::path(get, path = "/v1/media/{id}/original", tag = "media",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Media id")),
    responses(
        (status = 302, description = "To a signed URL of the image (`GET`/`HEAD`, no `Authorization` header, until it expires)", headers(("Location" = String))),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Neither the caller's nor sent to them", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such image", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not uploaded yet", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json"),
    ))]
async fn media_original(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    backends(&state)?;
    let media = load(&state.db, &id).await?;
    if media.kind != "image" {
        return Err(ApiError::NotFound);
    }
    let media = load_playable(&state.db, &id, &user).await?;
    if media.state != "ready" {
        return Err(ApiError::Conflict(format!("media is {}", media.state)));
    }
    let urls = state.media_urls.signer().await?;
    redirect(urls.picture(
        &media.original_key,
        &media.content_type,
        media.output_prefix.as_deref(),
    ))
}

/// A small stored object (at most [`MAX_WAVEFORM_BYTES`]) read into memory.
/// A ready media's output that is missing or too large is a server fault.
async fn read_small(store: &ObjectStore, key: &str) -> Result<Vec<u8>, ApiError> {
    let size = match store.head(key).await.map_err(store_error)? {
        Some(meta) => meta.size,
        None => return Err(internal(format!("output {key} is missing"))),
    };
    if size > MAX_WAVEFORM_BYTES {
        return Err(internal(format!("output {key} has {size} bytes")));
    }
    let bytes = match store {
        ObjectStore::Local(local) => {
            let (file, _) = local.open_read(key).await.map_err(store_error)?;
            let mut bytes = Vec::new();
            file.take(MAX_WAVEFORM_BYTES + 1)
                .read_to_end(&mut bytes)
                .await
                .map_err(|e| internal(e.to_string()))?;
            bytes
        }
        _ => store.get_bytes(key).await.map_err(store_error)?,
    };
    if bytes.len() as u64 > MAX_WAVEFORM_BYTES {
        return Err(internal(format!("output {key} grew past the limit")));
    }
    Ok(bytes)
}

fn internal(message: String) -> ApiError {
    ApiError::Internal(message.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types_are_checked_without_parameters() {
        assert_eq!(
            accepted_type("audio/webm;codecs=opus").as_deref(),
            Some("audio/webm")
        );
        assert_eq!(accepted_type("Audio/MP4").as_deref(), Some("audio/mp4"));
        assert!(accepted_type("image/png").is_none());
        assert!(accepted_type("").is_none());
    }

    #[test]
    fn the_format_comes_from_the_query_then_accept() {
        let chosen = |format, accept| audio_variant(format, accept).unwrap();
        assert_eq!(chosen(Some("caf"), Some("audio/webm")), OutputFormat::Caf);
        assert!(audio_variant(Some("mp3"), None).is_err());
        assert_eq!(
            chosen(None, Some("audio/x-caf, audio/ogg")),
            OutputFormat::Caf
        );
        assert_eq!(
            chosen(None, Some("text/html, audio/webm;q=0.9")),
            OutputFormat::Webm
        );
        assert_eq!(chosen(None, Some("*/*")), OutputFormat::Opus);
        assert_eq!(chosen(None, None), OutputFormat::Opus);
    }
}
