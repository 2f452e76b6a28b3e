//! The object store: where originals and processed outputs live.
//!
//! Two backends share one set of methods: [`LocalStore`] (files under the data
//! directory, URLs signed by the API itself) and S3. [`ObjectStore`] dispatches
//! between them; the [`Store`] trait lets job logic be tested against a double.
//!
//! Layout: originals at `originals/{media_id}` (kept, so media can be
//! re-processed); outputs under `media/{media_id}/v{n}/`, a new `n` per
//! processing attempt, so a retry never overwrites a good set.
//!
//! Download URLs are signed in bulk by a [`GetSigner`]: local computation
//! (HMAC for the local store, SigV4 in the query string for S3), so an
//! answer listing fifty clips costs no network or database round trip for
//! its URLs. All URLs signed within one window of time share one
//! [`UrlExpiry`], so the same object gets the same URL for a while and
//! browser and CDN caches keyed on the URL hit.

pub mod local;
/// The S3 backend (wired into [`ObjectStore`] by the integration step).
pub mod s3;

pub use local::LocalStore;

use crate::clock::{millis, now_ms};
use std::future::Future;
use std::path::Path;
use std::time::Duration;

/// A URL a client can use without credentials, with the headers it must send.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PresignedRequest {
    pub url: String,
    pub method: String,
    /// Headers bound into the signature (content type and length for uploads).
    pub headers: Vec<(String, String)>,
    /// When the URL stops working, Unix milliseconds.
    pub expires_at: i64,
}

/// What [`ObjectStore::head`] knows about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub size: u64,
    pub content_type: Option<String>,
}

/// Why a store operation failed.
///
/// Recoverability: [`StoreError::Transient`] and [`StoreError::Io`] may
/// succeed on retry (network, throttling, a full or unavailable disk);
/// [`StoreError::NotFound`] and [`StoreError::Permanent`] (bad key, access
/// denied, misconfiguration) will not.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("object not found: {0}")]
    NotFound(String),
    #[error("object store unavailable: {0}")]
    Transient(String),
    #[error("object store refused: {0}")]
    Permanent(String),
    #[error("object store i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl StoreError {
    /// True when retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient(_) | Self::Io(_))
    }
}

/// The operations job logic needs, so it can run against [`ObjectStore`] or a
/// test double. Each method has the meaning of the inherent method of the same
/// name on [`ObjectStore`].
pub trait Store: Send + Sync + 'static {
    fn put_file(
        &self,
        key: &str,
        path: &Path,
        content_type: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn get_to_file(
        &self,
        key: &str,
        path: &Path,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
    fn head(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<ObjectMeta>, StoreError>> + Send;
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The configured object store.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ObjectStore {
    Local(LocalStore),
    S3(s3::S3Store),
}

impl ObjectStore {
    /// Streams a local file into the store under `key`.
    pub async fn put_file(
        &self,
        key: &str,
        path: &Path,
        content_type: &str,
    ) -> Result<(), StoreError> {
        match self {
            Self::Local(s) => s.put_file(key, path, content_type).await,
            Self::S3(s) => s.put_file(key, path, content_type).await,
        }
    }

    /// Streams an object into a local file; returns its size.
    pub async fn get_to_file(&self, key: &str, path: &Path) -> Result<u64, StoreError> {
        match self {
            Self::Local(s) => s.get_to_file(key, path).await,
            Self::S3(s) => s.get_to_file(key, path).await,
        }
    }

    /// A small object's bytes (an image, a waveform; callers bound the size
    /// first), through a temporary file removed afterwards.
    pub async fn get_bytes(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("object");
        self.get_to_file(key, &path).await?;
        Ok(tokio::fs::read(&path).await?)
    }

    /// Stores bytes made in memory (image variants) as `key`, through a
    /// temporary file removed afterwards.
    pub async fn put_bytes(
        &self,
        key: &str,
        bytes: &[u8],
        content_type: &str,
    ) -> Result<(), StoreError> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("object");
        tokio::fs::write(&path, bytes).await?;
        self.put_file(key, &path, content_type).await
    }

    /// The object's size and type, or `None` when it does not exist.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        match self {
            Self::Local(s) => s.head(key).await,
            Self::S3(s) => s.head(key).await,
        }
    }

    /// Removes an object; removing a missing one succeeds (as on S3).
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self {
            Self::Local(s) => s.delete(key).await,
            Self::S3(s) => s.delete(key).await,
        }
    }

    /// Removes every object whose key starts with `prefix` (a folder, ending
    /// in `/`): all output versions of a media, whatever their number.
    /// Removing an empty folder succeeds.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<(), StoreError> {
        if !prefix.ends_with('/') {
            return Err(StoreError::Permanent(format!(
                "delete_prefix: {prefix:?} does not end in '/'"
            )));
        }
        match self {
            Self::Local(s) => s.delete_prefix(prefix).await,
            Self::S3(s) => s.delete_prefix(prefix).await,
        }
    }

    /// An upload URL bound to one content type and one exact length.
    pub async fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        content_length: u64,
        expires_in: Duration,
    ) -> Result<PresignedRequest, StoreError> {
        match self {
            Self::Local(s) => {
                s.presign_put(key, content_type, content_length, expires_in)
                    .await
            }
            Self::S3(s) => {
                s.presign_put(key, content_type, content_length, expires_in)
                    .await
            }
        }
    }

    /// A download URL valid for `expires_in` from now (GET and HEAD), for
    /// one object. Answers listing many objects use [`ObjectStore::get_signer`].
    pub async fn presign_get(
        &self,
        key: &str,
        expires_in: Duration,
    ) -> Result<PresignedRequest, StoreError> {
        let expiry = UrlExpiry::from_now(now_ms(), expires_in);
        let url = self.get_signer().await?.sign(key, None, &expiry)?;
        Ok(PresignedRequest {
            url,
            method: "GET".to_owned(),
            headers: Vec::new(),
            expires_at: expiry.expires_ms,
        })
    }

    /// What signs download URLs without further I/O. For S3 this may
    /// resolve credentials (cached until they near their expiry); for the
    /// local store it is immediate.
    pub async fn get_signer(&self) -> Result<GetSigner, StoreError> {
        match self {
            Self::Local(s) => Ok(GetSigner::Local(s.clone())),
            Self::S3(s) => Ok(GetSigner::S3(s.get_signer().await?)),
        }
    }
}

impl Store for ObjectStore {
    async fn put_file(&self, key: &str, path: &Path, content_type: &str) -> Result<(), StoreError> {
        ObjectStore::put_file(self, key, path, content_type).await
    }
    async fn get_to_file(&self, key: &str, path: &Path) -> Result<u64, StoreError> {
        ObjectStore::get_to_file(self, key, path).await
    }
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        ObjectStore::head(self, key).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        ObjectStore::delete(self, key).await
    }
}

/// When a signed download URL stops working, and when its validity began.
///
/// [`UrlExpiry::windowed`] rounds to windows of a quarter of the lifetime:
/// every URL signed within one window is valid from the window's start to
/// the same end (`start + window + ttl`), so signing an object twice in a
/// window gives the same URL, and a URL lives between `ttl` and `1.25 × ttl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UrlExpiry {
    /// Unix ms the signature counts from (S3's `X-Amz-Date`); at or before now.
    pub start_ms: i64,
    /// Unix ms after which the URL is refused.
    pub expires_ms: i64,
}

impl UrlExpiry {
    /// Longest lifetime a signed URL may have: SigV4's limit (7 days).
    pub const MAX_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

    /// The shared expiry of URLs signed at `now_ms` with lifetime `ttl`
    /// (at least 4 s, at most [`UrlExpiry::MAX_TTL`] less its window).
    pub fn windowed(now_ms: i64, ttl: Duration) -> Self {
        let ttl = millis(ttl.clamp(Duration::from_secs(4), Self::MAX_TTL * 4 / 5));
        // Whole seconds: S3's dates have no milliseconds.
        let window = (ttl / 4 / 1000).max(1) * 1000;
        let start_ms = now_ms.div_euclid(window) * window;
        Self {
            start_ms,
            expires_ms: start_ms + window + ttl,
        }
    }

    /// At least `ttl` from `now_ms` (at most a second more: S3 counts whole
    /// seconds from a whole-second start), for a single URL.
    pub fn from_now(now_ms: i64, ttl: Duration) -> Self {
        let ttl = millis(ttl.clamp(
            Duration::from_secs(1),
            Self::MAX_TTL - Duration::from_secs(1),
        ));
        Self {
            start_ms: now_ms.div_euclid(1000) * 1000,
            expires_ms: (now_ms + ttl + 999).div_euclid(1000) * 1000,
        }
    }

    /// Seconds the URL is valid for from its start (S3's `X-Amz-Expires`).
    pub fn lifetime(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.expires_ms - self.start_ms).unwrap_or(0))
    }
}

/// Signs download URLs (GET and HEAD) for many objects at once, without I/O.
/// Got from [`ObjectStore::get_signer`] per answer.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum GetSigner {
    Local(LocalStore),
    S3(s3::S3GetSigner),
}

impl GetSigner {
    /// A URL that fetches `key` until `expiry`. `content_type`, when given,
    /// is the `Content-Type` the answer carries instead of the stored one
    /// (the local store stores none for keys without an output's name).
    pub fn sign(
        &self,
        key: &str,
        content_type: Option<&str>,
        expiry: &UrlExpiry,
    ) -> Result<String, StoreError> {
        match self {
            Self::Local(s) => s.sign_get(key, content_type, expiry.expires_ms),
            Self::S3(s) => s.sign(key, content_type, expiry),
        }
    }
}

/// Where the original upload of a media lives.
pub fn original_key(media_id: &str) -> String {
    format!("originals/{media_id}")
}

/// The prefix (ending in `/`) of one processing attempt's outputs.
pub fn output_prefix(media_id: &str, version: i64) -> String {
    format!("{}v{version}/", outputs_prefix(media_id))
}

/// The folder (ending in `/`) holding every processing attempt's outputs.
pub fn outputs_prefix(media_id: &str) -> String {
    format!("media/{media_id}/")
}

/// The media id an original's key names, if the key follows the layout.
pub fn media_id_of_original(key: &str) -> Option<&str> {
    let id = key.strip_prefix("originals/")?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_round_trips() {
        let id = "0190f0a0-0000-7000-8000-000000000000";
        assert_eq!(media_id_of_original(&original_key(id)), Some(id));
        assert_eq!(media_id_of_original("originals/"), None);
        assert_eq!(media_id_of_original("originals/a/b"), None);
        assert_eq!(media_id_of_original("media/x"), None);
        assert_eq!(output_prefix("m", 3), "media/m/v3/");
    }

    #[test]
    fn url_expiry_is_shared_within_a_window() {
        let ttl = Duration::from_secs(3600);
        let a = UrlExpiry::windowed(1_700_000_000_123, ttl);
        assert_eq!(a.start_ms % 900_000, 0);
        assert!(a.start_ms <= 1_700_000_000_123);
        assert_eq!(a.expires_ms - a.start_ms, 900_000 + 3_600_000);
        // Anywhere in the same quarter: the same expiry; the next: another.
        let b = UrlExpiry::windowed(a.start_ms + 899_999, ttl);
        assert_eq!(a, b);
        let c = UrlExpiry::windowed(a.start_ms + 900_000, ttl);
        assert_eq!(c.start_ms, a.start_ms + 900_000);
        // A URL lives between ttl and 1.25 ttl from the moment it is signed.
        for now in [a.start_ms, a.start_ms + 1, a.start_ms + 899_999] {
            let left = UrlExpiry::windowed(now, ttl).expires_ms - now;
            assert!((3_600_000..=4_500_000).contains(&left), "{left}");
        }
        let once = UrlExpiry::from_now(1_700_000_000_123, Duration::from_secs(60));
        assert_eq!(once.start_ms, 1_700_000_000_000);
        assert_eq!(once.expires_ms, 1_700_000_061_000);
    }
}
