//! The object store: where originals and processed outputs live.
//!
//! Two backends share one set of methods: [`LocalStore`] (files under the data
//! directory, URLs signed by the API itself) and S3. [`ObjectStore`] dispatches
//! between them; the [`Store`] trait lets job logic be tested against a double.
//!
//! Layout: originals at `originals/{media_id}` (kept, so media can be
//! re-processed); outputs under `media/{media_id}/v{n}/`, a new `n` per
//! processing attempt, so a retry never overwrites a good set.

pub mod local;
/// The S3 backend (wired into [`ObjectStore`] by the integration step).
pub mod s3;

pub use local::LocalStore;

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

    /// A short-lived download URL.
    pub async fn presign_get(
        &self,
        key: &str,
        expires_in: Duration,
    ) -> Result<PresignedRequest, StoreError> {
        match self {
            Self::Local(s) => s.presign_get(key, expires_in).await,
            Self::S3(s) => s.presign_get(key, expires_in).await,
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

/// Where the original upload of a media lives.
pub fn original_key(media_id: &str) -> String {
    format!("originals/{media_id}")
}

/// The prefix (ending in `/`) of one processing attempt's outputs.
pub fn output_prefix(media_id: &str, version: i64) -> String {
    format!("media/{media_id}/v{version}/")
}

/// The media id an original's key names, if the key follows the layout.
pub fn media_id_of_original(key: &str) -> Option<&str> {
    let id = key.strip_prefix("originals/")?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

/// The `Content-Type` served for a key, from its extension.
pub fn content_type_for(key: &str) -> Option<&'static str> {
    let ext = key.rsplit_once('.').map(|(_, e)| e)?;
    Some(match ext {
        "opus" | "ogg" => "audio/ogg; codecs=opus",
        "caf" => "audio/x-caf",
        "webm" => "audio/webm",
        "json" => "application/json",
        "m4a" => "audio/mp4",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        _ => return None,
    })
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
    fn types_by_extension() {
        assert_eq!(
            content_type_for("media/x/v1/audio.opus"),
            Some("audio/ogg; codecs=opus")
        );
        assert_eq!(
            content_type_for("media/x/v1/audio.caf"),
            Some("audio/x-caf")
        );
        assert_eq!(
            content_type_for("media/x/v1/audio.webm"),
            Some("audio/webm")
        );
        assert_eq!(content_type_for("originals/x"), None);
    }
}
