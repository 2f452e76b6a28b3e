//! The signed URLs an answer carries for the media it shows: every variant
//! of a clip, its waveform, a chat image. A player fetches them as they are,
//! with no `Authorization` header (an `<audio>` element, `AVPlayer` and
//! ExoPlayer cannot send one): from S3 through presigned GETs, in embedded
//! mode from the API's own signed blob routes ([`crate::blobs`]).
//!
//! Whether a caller may have a URL is decided when the answer is built, by
//! the same rules as everything else in it (the owner, a member of the
//! room, a ready post the caller can see: not removed, no block); the URL
//! itself grants only `GET` and `HEAD` of that one object (the media id,
//! output version and variant are in its path and under its signature)
//! until it expires. Signing is local computation ([`GetSigner`]): an answer
//! of fifty clips costs no database or network round trip for its URLs.
//!
//! Every URL of an answer shares one expiry, rounded to windows of a quarter
//! of the lifetime (`SORI_MEDIA_URL_TTL_SECS`), so the same object gets the
//! same URL for a while and caches keyed on the URL hit; see
//! [`UrlExpiry::windowed`].

use crate::core::error::ApiError;
use crate::core::images::{avatar_key, AVATAR_URL_SIZE, DISPLAY_FILE, THUMB_FILE};
use serde::Serialize;
use sori_codecs::OutputFormat;
use sori_pipeline::clock::now_ms;
use sori_pipeline::store::{GetSigner, ObjectStore, UrlExpiry};
use std::time::Duration;
use utoipa::ToSchema;

/// Default lifetime of a media URL (`SORI_MEDIA_URL_TTL_SECS`).
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

/// Where answers get their URLs from: the object store and the lifetime.
#[derive(Debug, Clone)]
pub struct MediaUrls {
    store: Option<ObjectStore>,
    ttl: Duration,
}

impl MediaUrls {
    pub fn new(store: Option<ObjectStore>, ttl: Duration) -> Self {
        Self { store, ttl }
    }

    /// The lifetime of the URLs handed out.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The signer of one answer's URLs. With S3 this may resolve
    /// credentials (cached until near their expiry); 503 when it cannot.
    /// Without a store (tests that need no media) every URL is `null`.
    pub async fn signer(&self) -> Result<UrlSigner, ApiError> {
        let expiry = UrlExpiry::windowed(now_ms(), self.ttl);
        let Some(store) = &self.store else {
            return Ok(UrlSigner {
                inner: None,
                expiry,
            });
        };
        let inner = store.get_signer().await.map_err(|e| {
            tracing::warn!(error = %e, "cannot sign media URLs");
            ApiError::Unavailable("media URLs cannot be signed now; retry")
        })?;
        Ok(UrlSigner {
            inner: Some(inner),
            expiry,
        })
    }
}

/// Signs the URLs of one answer, all with the same expiry.
#[derive(Debug, Clone)]
pub struct UrlSigner {
    inner: Option<GetSigner>,
    expiry: UrlExpiry,
}

impl UrlSigner {
    /// Unix ms after which this answer's URLs are refused.
    pub fn expires_at(&self) -> i64 {
        self.expiry.expires_ms
    }

    /// One object's URL; `None` (logged) if its key cannot be signed, so a
    /// bad row shows as "no URL" rather than failing a whole page.
    fn sign(&self, key: &str, content_type: Option<&str>) -> Option<String> {
        let signed = self.inner.as_ref()?.sign(key, content_type, &self.expiry);
        signed
            .inspect_err(|e| tracing::warn!(error = %e, key, "cannot sign a media URL"))
            .ok()
    }

    /// The URLs of a processed clip whose outputs are under `prefix`: all
    /// `null` unless `ready` (a clip still processing has nothing to play).
    pub fn clip(&self, ready: bool, prefix: Option<&str>) -> ClipUrls {
        let Some(prefix) = prefix.filter(|_| ready) else {
            return ClipUrls::default();
        };
        let url = |output: OutputFormat| self.sign(&output.key(prefix), None);
        let audio_urls = match (
            url(OutputFormat::Opus),
            url(OutputFormat::Caf),
            url(OutputFormat::Webm),
        ) {
            (Some(opus), Some(caf), Some(webm)) => Some(AudioUrls { opus, caf, webm }),
            _ => None,
        };
        ClipUrls {
            audio_url: audio_urls.as_ref().map(|u| u.opus.clone()),
            audio_urls,
            waveform_url: url(OutputFormat::Waveform),
        }
    }

    /// The URL of an uploaded image, served as `content_type` (its key does
    /// not name its type).
    pub fn image(&self, key: &str, content_type: &str) -> Option<String> {
        self.sign(key, Some(content_type))
    }

    /// The URL of an uploaded picture: the shown version under
    /// `output_prefix` when it was made, else the upload itself (pictures
    /// from before shown versions existed).
    pub fn picture(
        &self,
        original_key: &str,
        content_type: &str,
        output_prefix: Option<&str>,
    ) -> Option<String> {
        match output_prefix {
            Some(prefix) => self.sign(&format!("{prefix}{DISPLAY_FILE}"), Some("image/jpeg")),
            None => self.image(original_key, content_type),
        }
    }

    /// The URL of an uploaded picture's thumbnail, when it was made.
    pub fn thumbnail(&self, output_prefix: Option<&str>) -> Option<String> {
        let prefix = output_prefix?;
        self.sign(&format!("{prefix}{THUMB_FILE}"), Some("image/jpeg"))
    }

    /// The URL of a user's avatar ([`AVATAR_URL_SIZE`] px square) at
    /// `version`; `None` without one.
    pub fn avatar(&self, user_id: &str, version: Option<i64>) -> Option<String> {
        let key = avatar_key(user_id, version?, AVATAR_URL_SIZE);
        self.sign(&key, Some("image/jpeg"))
    }

    /// The URL of one output of a ready media (the `/v1/media/{id}/audio`
    /// redirect).
    pub fn output(&self, prefix: &str, output: OutputFormat) -> Option<String> {
        self.sign(&output.key(prefix), None)
    }
}

/// Every variant of a clip: the same Opus packets in three containers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AudioUrls {
    /// Ogg Opus (`audio/ogg; codecs=opus`): browsers, Android, iOS 18.4+.
    pub opus: String,
    /// Opus in CAF (`audio/x-caf`): iOS 11+ before Ogg support.
    pub caf: String,
    /// Opus in WebM (`audio/webm`): Safari 17.5+.
    pub webm: String,
}

/// Where to fetch a clip and its waveform, with no `Authorization` header.
///
/// Each URL is signed: it allows `GET` and `HEAD` (with `Range`) of that one
/// object until it expires, `SORI_MEDIA_URL_TTL_SECS` (default 3600 s) to
/// 1.25 times that after the answer was made; then 403, and the client asks
/// for the item again. URLs handed out within the same quarter of that time
/// are identical, and their answers may be cached (`Cache-Control: public`,
/// `immutable`) until they expire. All `null` until the clip is `ready`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct ClipUrls {
    /// The Ogg Opus variant (`audio_urls.opus`): plays in an `<audio>` element as given.
    pub audio_url: Option<String>,
    /// Every variant; choose what the player supports.
    pub audio_urls: Option<AudioUrls>,
    /// The waveform (audiowaveform JSON, version 2: `data` as min/max pairs).
    pub waveform_url: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use sori_pipeline::store::LocalStore;

    #[tokio::test]
    async fn a_ready_clip_gets_every_variant_and_the_waveform() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path(), &[3u8; 32], "http://sori.test").unwrap();
        let urls = MediaUrls::new(Some(ObjectStore::Local(store)), DEFAULT_TTL);
        let signer = urls.signer().await.unwrap();
        assert_eq!(signer.clip(false, Some("media/m/v1/")), ClipUrls::default());
        assert_eq!(signer.clip(true, None), ClipUrls::default());
        let clip = signer.clip(true, Some("media/m/v1/"));
        let all = clip.audio_urls.clone().unwrap();
        assert_eq!(clip.audio_url.as_deref(), Some(all.opus.as_str()));
        assert!(all
            .opus
            .starts_with("http://sori.test/v1/blobs/media/m/v1/audio.opus?expires="));
        assert!(all.caf.contains("/media/m/v1/audio.caf?"), "{}", all.caf);
        assert!(all.webm.contains("/media/m/v1/audio.webm?"), "{}", all.webm);
        let waveform = clip.waveform_url.unwrap();
        assert!(
            waveform.contains("/media/m/v1/waveform.json?"),
            "{waveform}"
        );
        // The same answer a moment later: the same URLs (one expiry per window).
        let again = urls.signer().await.unwrap().clip(true, Some("media/m/v1/"));
        assert_eq!(again.audio_urls.unwrap(), all);
        // Without a store: no URLs.
        let none = MediaUrls::new(None, DEFAULT_TTL).signer().await.unwrap();
        assert_eq!(none.clip(true, Some("media/m/v1/")), ClipUrls::default());
    }
}
