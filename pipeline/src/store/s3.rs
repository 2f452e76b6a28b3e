//! The production object store: any S3-compatible service through aws-sdk-s3.
//!
//! Clients never send audio through the API: they PUT to a presigned URL that
//! binds the declared `Content-Type` and `Content-Length` into its signature,
//! so a client cannot upload more (or something else) than it declared, and
//! they play through short-lived presigned GET URLs. The worker streams
//! originals to local files and outputs back, never holding a whole file in
//! memory.
//!
//! Download URLs are signed by [`S3GetSigner`] with SigV4 in the query
//! string, the way the SDK presigns `GetObject` (a test checks the two give
//! the same URL), but synchronously and in about a tenth of the time, so a
//! feed page's dozens of URLs cost no noticeable CPU and no network call.
//! The credentials it signs with are resolved once and kept until they near
//! their expiry.
//!
//! Configuration is the standard AWS chain (`AWS_ENDPOINT_URL`, `AWS_REGION`,
//! credentials from the environment, profile or instance role). Requests use
//! path-style addressing (`endpoint/bucket/key`), so MinIO, moto, s3s and
//! other S3-compatible servers work without wildcard DNS.
//!
//! `aws_fault` (crate-internal) classifies SDK errors for both this store and
//! the SQS queue.

pub mod cors;

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use tokio::io::AsyncWriteExt;

use crate::store::{ObjectMeta, PresignedRequest, StoreError, UrlExpiry};
use aws_sigv4::http_request::{
    sign, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// An S3 bucket. Cheap to clone: clones share one HTTP connection pool and
/// the credentials download URLs are signed with.
#[derive(Clone, Debug)]
pub struct S3Store {
    client: Client,
    bucket: String,
    /// Where the bucket's objects are (`{endpoint}/{bucket}/`, path style).
    objects_url: Arc<str>,
    region: Arc<str>,
    credentials: Option<SharedCredentialsProvider>,
    /// The credentials last resolved, reused until they near their expiry.
    cached: Arc<Mutex<Option<Credentials>>>,
}

/// S3's characters that stay unescaped in a URI path segment or query
/// value (RFC 3986's unreserved characters).
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// How long before their expiry resolved credentials are renewed (the SDK's
/// own identity cache renews a few minutes early too).
const CREDENTIALS_MARGIN: Duration = Duration::from_secs(10 * 60);

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
        let region = config.region().map(|r| r.to_string()).unwrap_or_default();
        // Path-style addressing, as the client above uses: the configured
        // endpoint, or the region's S3 endpoint on AWS.
        let endpoint = match config.endpoint_url() {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("https://s3.{region}.amazonaws.com"),
        };
        let bucket_segment = utf8_percent_encode(bucket, UNRESERVED);
        Ok(S3Store {
            client: Client::from_conf(s3_config),
            bucket: bucket.to_owned(),
            objects_url: format!("{endpoint}/{bucket_segment}/").into(),
            region: region.into(),
            credentials: config.credentials_provider(),
            cached: Arc::default(),
        })
    }

    /// A signer of download URLs. Resolves credentials only when the cached
    /// ones are about to expire: with temporary credentials (an instance or
    /// pod role) a URL stops working when they do, however long it was
    /// signed for.
    pub async fn get_signer(&self) -> Result<S3GetSigner, StoreError> {
        let credentials = self.credentials().await?;
        Ok(S3GetSigner {
            objects_url: self.objects_url.clone(),
            region: self.region.clone(),
            identity: credentials.into(),
        })
    }

    /// The cached credentials while they have [`CREDENTIALS_MARGIN`] left,
    /// else fresh ones from the provider. Credentials with no expiry (access
    /// keys) are resolved once.
    async fn credentials(&self) -> Result<Credentials, StoreError> {
        let now = SystemTime::now();
        let lasts = |c: &Credentials| c.expiry().is_none_or(|at| at > now + CREDENTIALS_MARGIN);
        if let Ok(cached) = self.cached.lock() {
            if let Some(c) = cached.as_ref().filter(|c| lasts(c)) {
                return Ok(c.clone());
            }
        }
        let provider = self
            .credentials
            .as_ref()
            .ok_or_else(|| StoreError::Permanent("no AWS credentials configured".into()))?;
        let fresh = provider.provide_credentials().await.map_err(|e| {
            StoreError::Transient(format!("AWS credentials: {}", DisplayErrorContext(&e)))
        })?;
        if let Ok(mut cached) = self.cached.lock() {
            *cached = Some(fresh.clone());
        }
        Ok(fresh)
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

    /// Deletes every object under `prefix`, a listing page (up to 1000
    /// keys) at a time.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<(), StoreError> {
        let mut continuation: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(continuation.take())
                .send()
                .await
                .map_err(|e| store_error("list", prefix, e))?;
            for object in page.contents() {
                if let Some(key) = object.key() {
                    self.delete(key).await?;
                }
            }
            match page.next_continuation_token() {
                Some(token) if page.is_truncated() == Some(true) => {
                    continuation = Some(token.to_owned())
                }
                _ => return Ok(()),
            }
        }
    }

    /// A URL the client PUTs exactly `content_length` bytes of `content_type`
    /// to. Both headers are part of the signature, so S3 rejects an upload
    /// that differs from what the API accepted; so is `If-None-Match: *`, so
    /// the URL works once: S3 refuses (412) to replace the object, and a
    /// finished clip or image cannot be swapped for other bytes.
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
            .if_none_match("*")
            .presigned(config.clone())
            .await
            .map_err(|e| store_error("presign put", key, e))?;
        Ok(presigned_request(&request, &config))
    }
}

/// Signs S3 download URLs without I/O (from [`S3Store::get_signer`]).
#[derive(Clone, Debug)]
pub struct S3GetSigner {
    objects_url: Arc<str>,
    region: Arc<str>,
    identity: Identity,
}

impl S3GetSigner {
    /// A presigned `GetObject` URL for `key` valid from `expiry.start_ms` to
    /// `expiry.expires_ms` (GET and HEAD: S3 accepts a GET signature for
    /// both). The answer carries `content_type` when given (signed
    /// `response-content-type`), and `Cache-Control: public, immutable` with
    /// `Expires` at the URL's expiry (signed `response-cache-control` and
    /// `response-expires`), so caches keep it exactly as long as the URL works.
    pub fn sign(
        &self,
        key: &str,
        content_type: Option<&str>,
        expiry: &UrlExpiry,
    ) -> Result<String, StoreError> {
        let refuse = |e: &dyn std::fmt::Display| StoreError::Permanent(format!("sign {key}: {e}"));
        let path: Vec<String> = key
            .split('/')
            .map(|segment| utf8_percent_encode(segment, UNRESERVED).to_string())
            .collect();
        let mut url = format!("{}{}?", self.objects_url, path.join("/"));
        let mut params: Vec<(&str, String)> = Vec::with_capacity(4);
        params.push(("response-cache-control", "public, immutable".to_owned()));
        if let Some(content_type) = content_type {
            params.push(("response-content-type", content_type.to_owned()));
        }
        params.push(("response-expires", http_date(expiry.expires_ms)));
        params.push(("x-id", "GetObject".to_owned()));
        for (name, value) in &params {
            url.push_str(name);
            url.push('=');
            url.extend(utf8_percent_encode(value, UNRESERVED));
            url.push('&');
        }
        url.pop();
        let mut settings = SigningSettings::default();
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(expiry.lifetime());
        // S3's own rules: no double encoding, no path normalization.
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let start = UNIX_EPOCH + Duration::from_millis(u64::try_from(expiry.start_ms).unwrap_or(0));
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name("s3")
            .time(start)
            .settings(settings)
            .build()
            .map_err(|e| refuse(&e))?
            .into();
        let request = SignableRequest::new(
            "GET",
            &url,
            std::iter::empty(),
            SignableBody::UnsignedPayload,
        )
        .map_err(|e| refuse(&e))?;
        let (instructions, _) = sign(request, &params).map_err(|e| refuse(&e))?.into_parts();
        for (name, value) in instructions.params() {
            url.push('&');
            url.push_str(name);
            url.push('=');
            url.extend(utf8_percent_encode(value, UNRESERVED));
        }
        Ok(url)
    }
}

/// An HTTP date (RFC 9110 §5.6.7) of a Unix ms time, as `Expires` wants it.
fn http_date(unix_ms: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(u64::try_from(unix_ms).unwrap_or(0));
    aws_sdk_s3::primitives::DateTime::from(at)
        .fmt(aws_sdk_s3::primitives::DateTimeFormat::HttpDate)
        .unwrap_or_default()
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
    use aws_sdk_s3::config::Region;

    async fn store_at(endpoint: Option<&str>, session_token: Option<&str>) -> S3Store {
        let credentials = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            session_token.map(str::to_owned),
            None,
            "test",
        );
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new("eu-west-3"))
            .credentials_provider(credentials);
        if let Some(endpoint) = endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        S3Store::new(&loader.load().await, "sori-media").unwrap()
    }

    /// The query of a URL as sorted name/value pairs, and the URL before it.
    fn split(url: &str) -> (String, Vec<(String, String)>) {
        let (base, query) = url.split_once('?').unwrap();
        let mut pairs: Vec<(String, String)> = query
            .split('&')
            .map(|p| {
                let (n, v) = p.split_once('=').unwrap_or((p, ""));
                (n.to_owned(), v.to_owned())
            })
            .collect();
        pairs.sort();
        (base.to_owned(), pairs)
    }

    /// The signer's URL is the one the SDK presigns for the same request,
    /// byte for byte once the query is sorted: same endpoint, path,
    /// parameters and signature. Checked on AWS's endpoint and a custom
    /// one, with and without a session token.
    #[tokio::test]
    async fn signed_urls_equal_the_sdks_presigned_ones() {
        let expiry = UrlExpiry::windowed(1_780_000_123_456, Duration::from_secs(3600));
        let start = UNIX_EPOCH + Duration::from_millis(expiry.start_ms as u64);
        let cases = [
            (None, None),
            (Some("http://127.0.0.1:5000/"), None),
            (
                Some("https://minio.example:9000"),
                Some("FQoGZXIvYXdzE//token+/="),
            ),
        ];
        for (endpoint, token) in cases {
            let store = store_at(endpoint, token).await;
            let signer = store.get_signer().await.unwrap();
            for (key, content_type) in [
                (
                    "media/0190f0a0-0000-7000-8000-000000000000/v2/audio.opus",
                    None,
                ),
                (
                    "images/0190f0a0-0000-7000-8000-000000000001",
                    Some("image/jpeg"),
                ),
            ] {
                let ours = signer.sign(key, content_type, &expiry).unwrap();
                let config = PresigningConfig::builder()
                    .start_time(start)
                    .expires_in(expiry.lifetime())
                    .build()
                    .unwrap();
                let mut get = store
                    .client
                    .get_object()
                    .bucket("sori-media")
                    .key(key)
                    .response_cache_control("public, immutable")
                    .response_expires(aws_sdk_s3::primitives::DateTime::from_millis(
                        expiry.expires_ms,
                    ));
                if let Some(t) = content_type {
                    get = get.response_content_type(t);
                }
                let sdk = get.presigned(config).await.unwrap().uri().to_owned();
                assert_eq!(split(&ours), split(&sdk), "{endpoint:?} {key}");
            }
        }
    }

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
