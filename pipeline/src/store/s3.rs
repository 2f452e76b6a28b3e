//! The production object store: any S3-compatible service through aws-sdk-s3.
//!
//! Clients never send audio through the API: they PUT to a presigned URL that
//! binds the declared `Content-Type` and `Content-Length` into its signature,
//! so a client cannot upload more (or something else) than it declared, and
//! they play through short-lived presigned GET URLs. The worker streams
//! originals to local files and outputs back, never holding a whole file in
//! memory.
//!
//! Configuration is the standard AWS chain (`AWS_ENDPOINT_URL`, `AWS_REGION`,
//! credentials from the environment, profile or instance role). Requests use
//! path-style addressing (`endpoint/bucket/key`), so MinIO, moto, s3s and
//! other S3-compatible servers work without wildcard DNS.
//!
//! `aws_fault` (crate-internal) classifies SDK errors for both this store and
//! the SQS queue.

use std::io;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use tokio::io::AsyncWriteExt;

use crate::store::{ObjectMeta, PresignedRequest, StoreError};

/// An S3 bucket. Cheap to clone: clones share one HTTP connection pool.
#[derive(Clone, Debug)]
pub struct S3Store {
    client: Client,
    bucket: String,
}

impl S3Store {
    /// The store for `bucket`, configured from the standard AWS environment
    /// (`AWS_ENDPOINT_URL`, `AWS_REGION`, credentials).
    pub async fn from_env(bucket: &str) -> Result<S3Store, StoreError> {
        let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
        S3Store::new(&config, bucket)
    }

    /// The store for `bucket` with an already loaded AWS configuration, so
    /// the S3 store and the SQS queue can share one.
    pub fn new(config: &SdkConfig, bucket: &str) -> Result<S3Store, StoreError> {
        if bucket.is_empty() {
            return Err(StoreError::Permanent("the S3 bucket name is empty".into()));
        }
        if config.region().is_none() {
            return Err(StoreError::Permanent(
                "no AWS region configured (set AWS_REGION)".into(),
            ));
        }
        // Checksums only where S3 requires them: the default ("when
        // supported") sends streaming uploads as aws-chunked bodies with a
        // CRC trailer, which several S3-compatible servers reject.
        let s3_config = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(true)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .build();
        Ok(S3Store {
            client: Client::from_conf(s3_config),
            bucket: bucket.to_owned(),
        })
    }

    /// The bucket this store reads and writes.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Uploads a local file, streaming it from disk.
    pub async fn put_file(
        &self,
        key: &str,
        path: &Path,
        content_type: &str,
    ) -> Result<(), StoreError> {
        let body = ByteStream::from_path(path)
            .await
            .map_err(|e| StoreError::Io(io::Error::other(e)))?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(body)
            .send()
            .await
            .map_err(|e| store_error("put", key, e))?;
        Ok(())
    }

    /// Downloads an object to a local file, streaming it to disk, and returns
    /// its size. On failure no partial file is left at `path`.
    pub async fn get_to_file(&self, key: &str, path: &Path) -> Result<u64, StoreError> {
        let output = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| store_error("get", key, e))?;
        let expected = output.content_length().and_then(|n| u64::try_from(n).ok());
        let result = write_body(output.body, path, key, expected).await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(path).await;
        }
        result
    }

    /// The object's size and content type, or `None` when there is no object
    /// under `key`. A missing bucket also reads as `None` here: S3 answers a
    /// HEAD with a bare 404 either way.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        let result = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await;
        match result {
            Ok(output) => Ok(Some(ObjectMeta {
                size: output
                    .content_length()
                    .and_then(|n| u64::try_from(n).ok())
                    .unwrap_or(0),
                content_type: output.content_type().map(str::to_owned),
            })),
            Err(e) => match store_error("head", key, e) {
                StoreError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    /// Deletes an object; deleting a missing key succeeds (S3 semantics).
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| store_error("delete", key, e))?;
        Ok(())
    }

    /// A URL the client PUTs exactly `content_length` bytes of `content_type`
    /// to. Both headers are part of the signature, so S3 rejects an upload
    /// that differs from what the API accepted.
    pub async fn presign_put(
        &self,
        key: &str,
        content_type: &str,
        content_length: u64,
        expires_in: Duration,
    ) -> Result<PresignedRequest, StoreError> {
        let length = i64::try_from(content_length).map_err(|_| {
            StoreError::Permanent(format!("content length {content_length} too large"))
        })?;
        let config = presigning(expires_in)?;
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .content_length(length)
            .presigned(config.clone())
            .await
            .map_err(|e| store_error("presign put", key, e))?;
        Ok(presigned_request(&request, &config))
    }

    /// A short-lived URL that downloads the object, for players that fetch
    /// audio straight from the store.
    pub async fn presign_get(
        &self,
        key: &str,
        expires_in: Duration,
    ) -> Result<PresignedRequest, StoreError> {
        let config = presigning(expires_in)?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config.clone())
            .await
            .map_err(|e| store_error("presign get", key, e))?;
        Ok(presigned_request(&request, &config))
    }
}

/// Streams a response body to a new file at `path`. Reading the body is the
/// network (transient); writing the file is local I/O.
async fn write_body(
    mut body: ByteStream,
    path: &Path,
    key: &str,
    expected: Option<u64>,
) -> Result<u64, StoreError> {
    let mut file = tokio::fs::File::create(path).await?;
    let mut written: u64 = 0;
    while let Some(chunk) = body.try_next().await.map_err(|e| {
        StoreError::Transient(format!("get {key}: body: {}", DisplayErrorContext(&e)))
    })? {
        file.write_all(&chunk).await?;
        written += chunk.len() as u64;
    }
    file.flush().await?;
    match expected {
        Some(n) if n != written => Err(StoreError::Transient(format!(
            "get {key}: body ended after {written} of {n} bytes"
        ))),
        _ => Ok(written),
    }
}

fn presigning(expires_in: Duration) -> Result<PresigningConfig, StoreError> {
    PresigningConfig::expires_in(expires_in)
        .map_err(|e| StoreError::Permanent(format!("presigning: {}", DisplayErrorContext(&e))))
}

fn presigned_request(
    request: &aws_sdk_s3::presigning::PresignedRequest,
    config: &PresigningConfig,
) -> PresignedRequest {
    let expires = config.start_time() + config.expires();
    let expires_at = expires
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    PresignedRequest {
        url: request.uri().to_owned(),
        method: request.method().to_owned(),
        headers: request
            .headers()
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect(),
        expires_at,
    }
}

fn store_error<E>(op: &str, key: &str, err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let fault = aws_fault(&err);
    let message = format!("{op} {key}: {}", DisplayErrorContext(&err));
    match fault {
        AwsFault::NotFound => StoreError::NotFound(key.to_owned()),
        AwsFault::Transient => StoreError::Transient(message),
        AwsFault::Permanent => StoreError::Permanent(message),
    }
}

/// How a failed AWS call should be treated by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AwsFault {
    /// The object or key does not exist.
    NotFound,
    /// Worth retrying: throttling, timeouts, 5xx, connection trouble.
    Transient,
    /// Retrying cannot help: denied, invalid, misconfigured.
    Permanent,
}

/// Error codes AWS services use for throttling and request timeouts (the
/// SDK's own retry classifier treats the same codes as retryable).
const TRANSIENT_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestThrottled",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "SlowDown",
    "PriorRequestNotComplete",
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "ServiceUnavailable",
];

/// Classifies an SDK error (after the SDK's own retries): throttling,
/// timeouts, 5xx and dispatch failures are transient; a missing key is
/// not-found; everything else the service refused is permanent.
pub(crate) fn aws_fault<E>(err: &SdkError<E, HttpResponse>) -> AwsFault
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::ConstructionFailure(_) => AwsFault::Permanent,
        SdkError::DispatchFailure(failure) if failure.is_user() => AwsFault::Permanent,
        SdkError::ServiceError(service) => {
            fault_of_response(err.code(), service.raw().status().as_u16())
        }
        _ => AwsFault::Transient,
    }
}

fn fault_of_response(code: Option<&str>, status: u16) -> AwsFault {
    match code {
        Some("NoSuchKey" | "NotFound") => AwsFault::NotFound,
        // A HEAD has no body, so its 404 has no code: the SDK names it NotFound.
        None if status == 404 => AwsFault::NotFound,
        Some(code) if TRANSIENT_CODES.contains(&code) => AwsFault::Transient,
        _ if status == 429 || status >= 500 => AwsFault::Transient,
        _ => AwsFault::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_service_errors() {
        use AwsFault::*;
        assert_eq!(fault_of_response(Some("NoSuchKey"), 404), NotFound);
        assert_eq!(fault_of_response(None, 404), NotFound);
        assert_eq!(fault_of_response(Some("NoSuchBucket"), 404), Permanent);
        assert_eq!(fault_of_response(Some("AccessDenied"), 403), Permanent);
        assert_eq!(fault_of_response(Some("InvalidArgument"), 400), Permanent);
        assert_eq!(fault_of_response(Some("SlowDown"), 503), Transient);
        assert_eq!(fault_of_response(Some("RequestTimeout"), 400), Transient);
        assert_eq!(
            fault_of_response(Some("ThrottlingException"), 400),
            Transient
        );
        assert_eq!(fault_of_response(None, 500), Transient);
        assert_eq!(fault_of_response(None, 429), Transient);
        assert_eq!(fault_of_response(None, 400), Permanent);
    }
}
