//! The embedded object store: files under `DATA_DIR/blobs/`.
//!
//! Upload and download URLs point at the API's own routes
//! (`PUT|GET /v1/blobs/{key}`) and carry an expiry and an HMAC-SHA256
//! signature over the method, key, content type, content length and expiry,
//! checked in constant time by [`LocalStore::verify`]. For an upload the
//! content type and length are what the body must be; for a download the
//! content type, when not empty, is what the answer is served as, and the
//! length is 0. A download signature also allows `HEAD`.
//!
//! Keys are validated before they touch the file system (see [`validate_key`])
//! so no key can name a path outside the blob directory, and every write goes
//! to a temporary file renamed into place: a half-written object is never
//! visible under its key.

use super::{ObjectMeta, PresignedRequest, StoreError};
use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::Sha256;
use sori_codecs::OutputFormat;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

type HmacSha256 = Hmac<Sha256>;

/// Longest key accepted, bytes (S3's limit).
const MAX_KEY_LEN: usize = 1024;
/// Bytes of a freshly generated signing secret.
const SECRET_LEN: usize = 32;
/// What a query value keeps unescaped (RFC 3986's unreserved characters).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Files under one directory, with URLs the API signs itself.
#[derive(Clone)]
pub struct LocalStore {
    root: PathBuf,
    /// HMAC-SHA256 with the signing secret's key blocks already hashed:
    /// each URL clones it rather than hashing the key again (a feed page
    /// signs some eighty URLs).
    keyed: HmacSha256,
    base_url: Arc<str>,
}

impl std::fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret never reaches a log line.
        f.debug_struct("LocalStore")
            .field("root", &self.root)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// Why an upload through a signed URL was refused.
///
/// All variants except [`UploadError::Store`] are the client's fault and
/// final for that request.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UploadError {
    #[error("body is longer than the signed length of {expected} bytes")]
    TooLarge { expected: u64 },
    #[error("body has {got} bytes, the signed length is {expected}")]
    TooShort { expected: u64, got: u64 },
    /// [`LocalStore::put_new_reader`]: the object was already uploaded.
    #[error("the object already exists")]
    Exists,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a signed URL was refused. Final: the client needs a new URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    #[error("the signed URL has expired")]
    Expired,
    #[error("the signature does not match the request")]
    Invalid,
}

/// What a signed request claims, as the blob routes receive it.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    pub method: &'a str,
    pub key: &'a str,
    /// Content type and length: bound for uploads, empty/0 for downloads.
    pub content_type: &'a str,
    pub content_length: u64,
    /// Unix milliseconds.
    pub expires: i64,
    /// Hex HMAC-SHA256.
    pub sig: &'a str,
}

impl LocalStore {
    /// A store rooted at `root` (created if missing) whose URLs start with
    /// `base_url` (the API's public address) and are signed with `secret`.
    pub fn new(
        root: impl Into<PathBuf>,
        secret: &[u8],
        base_url: &str,
    ) -> Result<Self, StoreError> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        if secret.len() < 16 {
            return Err(StoreError::Permanent(
                "the blob signing secret must have at least 16 bytes".into(),
            ));
        }
        // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
        let keyed = <HmacSha256 as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
        Ok(Self {
            root,
            keyed,
            base_url: base_url.trim_end_matches('/').into(),
        })
    }

    /// The directory objects live in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path of `key` under the root, after [`validate_key`].
    pub fn path_of(&self, key: &str) -> Result<PathBuf, StoreError> {
        validate_key(key)?;
        Ok(self.root.join(key))
    }

    /// Copies a local file in, atomically (temporary file, fsync, rename).
    pub async fn put_file(
        &self,
        key: &str,
        path: &Path,
        _content_type: &str,
    ) -> Result<(), StoreError> {
        let target = self.path_of(key)?;
        let mut source = tokio::fs::File::open(path).await?;
        let len = source.metadata().await?.len();
        match self
            .write_atomically(&target, &mut source, len, Replace::Yes)
            .await
        {
            Ok(_) => Ok(()),
            Err(UploadError::Store(e)) => Err(e),
            Err(e) => Err(StoreError::Transient(format!("{}: {e}", path.display()))),
        }
    }

    /// Writes exactly `expected_len` bytes from `body` under `key`, refusing
    /// (and discarding) a body that is longer or shorter. Reads at most one
    /// byte past the limit, so an oversized upload is cut off early.
    pub async fn put_reader(
        &self,
        key: &str,
        body: &mut (impl AsyncRead + Unpin + Send),
        expected_len: u64,
    ) -> Result<u64, UploadError> {
        let target = self.path_of(key)?;
        self.write_atomically(&target, body, expected_len, Replace::Yes)
            .await
    }

    /// As [`LocalStore::put_reader`], but only if `key` does not exist yet
    /// ([`UploadError::Exists`] otherwise): a signed upload URL then works
    /// once, as S3's `If-None-Match: *`. Two racing uploads: one wins.
    pub async fn put_new_reader(
        &self,
        key: &str,
        body: &mut (impl AsyncRead + Unpin + Send),
        expected_len: u64,
    ) -> Result<u64, UploadError> {
        let target = self.path_of(key)?;
        if tokio::fs::try_exists(&target).await.unwrap_or(false) {
            return Err(UploadError::Exists);
        }
        self.write_atomically(&target, body, expected_len, Replace::No)
            .await
    }

    async fn write_atomically(
        &self,
        target: &Path,
        body: &mut (impl AsyncRead + Unpin + Send),
        expected_len: u64,
        replace: Replace,
    ) -> Result<u64, UploadError> {
        let dir = target.parent().unwrap_or(&self.root);
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(StoreError::Io)?;
        let name = target
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("object");
        let temp = PartFile(dir.join(format!(".{name}.{}.part", uuid::Uuid::new_v4().simple())));
        let n = copy_exact(body, &temp.0, expected_len).await?;
        match replace {
            Replace::Yes => {
                tokio::fs::rename(&temp.0, target)
                    .await
                    .map_err(StoreError::Io)?;
                std::mem::forget(temp);
            }
            // A hard link fails when the target exists, atomically; the
            // temporary name is then removed with the guard.
            Replace::No => match tokio::fs::hard_link(&temp.0, target).await {
                Ok(()) => drop(temp),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    return Err(UploadError::Exists)
                }
                Err(e) => return Err(StoreError::Io(e).into()),
            },
        }
        sync_dir(dir).await;
        Ok(n)
    }

    /// Copies an object out to a local file; returns its size.
    pub async fn get_to_file(&self, key: &str, path: &Path) -> Result<u64, StoreError> {
        let source = self.path_of(key)?;
        tokio::fs::copy(&source, path)
            .await
            .map_err(|e| not_found_or(e, key))
    }

    /// Opens an object for reading (the download route streams it); returns its size.
    pub async fn open_read(&self, key: &str) -> Result<(tokio::fs::File, u64), StoreError> {
        let path = self.path_of(key)?;
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| not_found_or(e, key))?;
        let meta = file.metadata().await?;
        if !meta.is_file() {
            return Err(StoreError::NotFound(key.to_owned()));
        }
        Ok((file, meta.len()))
    }

    pub async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        let path = self.path_of(key)?;
        match tokio::fs::metadata(&path).await {
            Ok(m) if m.is_file() => Ok(Some(ObjectMeta {
                size: m.len(),
                content_type: OutputFormat::of_key(key).map(|o| o.content_type().to_owned()),
            })),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path_of(key)?;
        match tokio::fs::remove_file(&path).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Removes the folder `prefix` (ending in `/`) and everything in it.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<(), StoreError> {
        let path = self.path_of(prefix.trim_end_matches('/'))?;
        match tokio::fs::remove_dir_all(&path).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    pub async fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        content_length: u64,
        expires_in: Duration,
    ) -> Result<PresignedRequest, StoreError> {
        self.presign(
            "PUT",
            key,
            content_type,
            content_length,
            expires_in,
            now_ms(),
        )
    }

    /// A download URL (GET and HEAD) for `key` until `expires_at` (Unix ms).
    /// `content_type`, when given, is bound into the signature and is the
    /// `Content-Type` the blob route answers with (an image's key does not
    /// name its type); `None` serves the output's own type.
    pub fn sign_get(
        &self,
        key: &str,
        content_type: Option<&str>,
        expires_at: i64,
    ) -> Result<String, StoreError> {
        validate_key(key)?;
        let content_type = content_type.unwrap_or("");
        let mac = self.mac("GET", key, content_type, 0, expires_at).finalize();
        let mut url = format!("{}/v1/blobs/{key}?expires={expires_at}", self.base_url);
        if !content_type.is_empty() {
            url.push_str("&type=");
            url.extend(utf8_percent_encode(content_type, QUERY_VALUE));
        }
        url.push_str("&sig=");
        // Hex into a buffer on the stack, then the URL (`hex::encode` would
        // build a string of its own a char at a time): a feed page signs
        // some eighty of these.
        let mut sig = [0u8; 64];
        hex::encode_to_slice(mac.into_bytes(), &mut sig)
            .unwrap_or_else(|_| unreachable!("32 bytes are 64 hex digits"));
        url.extend(sig.map(char::from));
        Ok(url)
    }

    /// Builds a signed URL as of `now` (Unix ms); public so tests can make
    /// already-expired URLs.
    pub fn presign(
        &self,
        method: &str,
        key: &str,
        content_type: &str,
        content_length: u64,
        expires_in: Duration,
        now: i64,
    ) -> Result<PresignedRequest, StoreError> {
        validate_key(key)?;
        let expires_at =
            now.saturating_add(i64::try_from(expires_in.as_millis()).unwrap_or(i64::MAX));
        let sig = hex::encode(
            self.mac(method, key, content_type, content_length, expires_at)
                .finalize()
                .into_bytes(),
        );
        let headers = if method == "PUT" {
            vec![
                ("content-type".to_owned(), content_type.to_owned()),
                ("content-length".to_owned(), content_length.to_string()),
            ]
        } else {
            Vec::new()
        };
        Ok(PresignedRequest {
            url: format!(
                "{}/v1/blobs/{key}?expires={expires_at}&sig={sig}",
                self.base_url
            ),
            method: method.to_owned(),
            headers,
            expires_at,
        })
    }

    /// Checks a signed request in constant time, then its expiry against `now` (Unix ms).
    pub fn verify(&self, req: &SignedRequest<'_>, now: i64) -> Result<(), SignatureError> {
        let sig = hex::decode(req.sig).map_err(|_| SignatureError::Invalid)?;
        self.mac(
            req.method,
            req.key,
            req.content_type,
            req.content_length,
            req.expires,
        )
        .verify_slice(&sig)
        .map_err(|_| SignatureError::Invalid)?;
        if now > req.expires {
            return Err(SignatureError::Expired);
        }
        Ok(())
    }

    fn mac(
        &self,
        method: &str,
        key: &str,
        content_type: &str,
        content_length: u64,
        expires: i64,
    ) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        let canonical = format!("{method}\n{key}\n{content_type}\n{content_length}\n{expires}");
        mac.update(canonical.as_bytes());
        mac
    }
}

/// Refuses any key that could leave the blob directory or collide with the
/// store's temporary files: empty or overlong keys, absolute paths, empty
/// segments, segments starting with `.` (so `.`, `..` and temp names), and any
/// character outside `A–Z a–z 0–9 - _ . ~` and the `/` separator (so no
/// backslash, NUL, `%` or control characters).
pub fn validate_key(key: &str) -> Result<(), StoreError> {
    let bad = |why: &str| Err(StoreError::Permanent(format!("invalid key {key:?}: {why}")));
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return bad("empty or longer than 1024 bytes");
    }
    for segment in key.split('/') {
        if segment.is_empty() {
            return bad("empty path segment or absolute path");
        }
        if segment.starts_with('.') {
            return bad("a segment starts with '.'");
        }
        if !segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
        {
            return bad("characters outside A-Z a-z 0-9 - _ . ~ /");
        }
    }
    Ok(())
}

/// Reads the signing secret from `path`, creating it with random bytes on the
/// first start (readable by the owner only). Several processes starting at
/// once agree on one secret: creation is exclusive, losers read the winner's.
pub fn load_or_create_secret(path: &Path) -> io::Result<Vec<u8>> {
    use rand::RngCore;
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            let mut bytes = [0u8; SECRET_LEN];
            rand::thread_rng().fill_bytes(&mut bytes);
            file.write_all(hex::encode(bytes).as_bytes())?;
            file.sync_all()?;
            Ok(bytes.to_vec())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => read_secret(path),
        Err(e) => Err(e),
    }
}

fn read_secret(path: &Path) -> io::Result<Vec<u8>> {
    // A concurrent creator may not have written yet: retry briefly.
    for _ in 0..50 {
        let text = std::fs::read_to_string(path)?;
        if let Ok(bytes) = hex::decode(text.trim()) {
            if bytes.len() >= 16 {
                return Ok(bytes);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: not a hex secret of 16+ bytes", path.display()),
    ))
}

async fn copy_exact(
    body: &mut (impl AsyncRead + Unpin + Send),
    temp: &Path,
    expected_len: u64,
) -> Result<u64, UploadError> {
    let mut file = tokio::fs::File::create(temp)
        .await
        .map_err(StoreError::Io)?;
    let mut limited = body.take(expected_len.saturating_add(1));
    let copied = tokio::io::copy(&mut limited, &mut file)
        .await
        .map_err(StoreError::Io)?;
    if copied > expected_len {
        return Err(UploadError::TooLarge {
            expected: expected_len,
        });
    }
    if copied < expected_len {
        return Err(UploadError::TooShort {
            expected: expected_len,
            got: copied,
        });
    }
    file.flush().await.map_err(StoreError::Io)?;
    file.sync_all().await.map_err(StoreError::Io)?;
    Ok(copied)
}

/// Makes a rename durable; failure only weakens durability, so it is logged.
async fn sync_dir(dir: &Path) {
    let synced = match tokio::fs::File::open(dir).await {
        Ok(d) => d.sync_all().await,
        Err(e) => Err(e),
    };
    if let Err(e) = synced {
        tracing::warn!(error = %e, dir = %dir.display(), "cannot sync the blob directory");
    }
}

fn not_found_or(e: io::Error, key: &str) -> StoreError {
    if e.kind() == io::ErrorKind::NotFound {
        StoreError::NotFound(key.to_owned())
    } else {
        StoreError::Io(e)
    }
}

pub use crate::clock::now_ms;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_escape() {
        for key in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            "a//b",
            "a/",
            ".secret",
            "a\\b",
            "a\0b",
            "%2e%2e/x",
            "a/b c",
            "ü",
        ] {
            assert!(validate_key(key).is_err(), "{key:?} accepted");
        }
        for key in [
            "originals/0190f0a0-0000-7000-8000-000000000000",
            "media/x/v1/audio.opus",
            "a~b_c-d.e",
        ] {
            assert!(validate_key(key).is_ok(), "{key:?} refused");
        }
        assert!(validate_key(&"a".repeat(1025)).is_err());
    }

    #[tokio::test]
    async fn deleting_a_prefix_removes_that_folder_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path(), &[1; 32], "http://x").unwrap();
        for key in [
            "media/m1/v1/a.opus",
            "media/m1/v2/a.opus",
            "media/m10/v1/a.opus",
        ] {
            let mut bytes: &[u8] = b"x";
            store.put_reader(key, &mut bytes, 1).await.unwrap();
        }
        store.delete_prefix("media/m1/").await.unwrap();
        assert!(store.head("media/m1/v2/a.opus").await.unwrap().is_none());
        assert!(store.head("media/m10/v1/a.opus").await.unwrap().is_some());
        store.delete_prefix("media/m1/").await.unwrap();
        assert!(store.delete_prefix("../").await.is_err());
    }
}

/// Whether a write may replace an existing object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replace {
    Yes,
    No,
}

/// A partly written upload, removed when dropped: on an error, and also when
/// the upload's future is dropped mid-way (a connection closed by the
/// server's idle timeout), so no `.part` file is left behind. Forgotten once
/// renamed into place.
struct PartFile(PathBuf);

impl Drop for PartFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
