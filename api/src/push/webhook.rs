//! The webhook sender: an HTTP POST of the [`PushRequest`] as JSON to a push
//! gateway the operator runs (`SORI_PUSH_WEBHOOK_URL`).
//!
//! Signed the [Standard Webhooks](https://www.standardwebhooks.com) way, so a
//! receiver verifies with any of that scheme's libraries and can refuse
//! replays: `webhook-id` (the entry id, stable across retries: the
//! idempotency key, as delivery is at least once), `webhook-timestamp` (Unix
//! seconds of this attempt) and `webhook-signature: v1,<base64 HMAC-SHA256 of
//! "{id}.{timestamp}.{body}">`. The key is the bytes of
//! `SORI_PUSH_WEBHOOK_SECRET`, or, for a `whsec_<base64>` secret as those
//! libraries generate, the decoded bytes.
//!
//! A 2xx answer is a delivery; 408, 429, 5xx, timeouts and network errors
//! are transient (a `Retry-After` on the answer, in seconds or as a date,
//! sets the earliest next attempt); any other answer refuses the entry for good.

use super::{PushRequest, PushSender, SendError};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;
use sha2::Sha256;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const ID_HEADER: &str = "webhook-id";
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// The prefix of a Standard Webhooks secret whose key is base64 after it.
const ENCODED_SECRET: &str = "whsec_";

/// POSTs entries to one URL.
#[derive(Debug, Clone)]
pub struct WebhookSender {
    client: reqwest::Client,
    url: String,
    key: Vec<u8>,
}

/// Why a [`WebhookSender`] cannot be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    #[error("webhook URL must be http:// or https://: {0:?}")]
    Url(String),
    #[error("webhook secret starts with whsec_ but the rest is not base64")]
    Secret,
    #[error("webhook client: {0}")]
    Client(#[from] reqwest::Error),
}

impl WebhookSender {
    /// Posts to `url`, signing with `secret`; a request taking longer than
    /// `timeout` (connecting included) is abandoned as a transient failure.
    pub fn new(url: &str, secret: &[u8], timeout: Duration) -> Result<Self, WebhookError> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(WebhookError::Url(url.to_owned()));
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()?;
        Ok(Self {
            client,
            url: url.to_owned(),
            key: signing_key(secret)?,
        })
    }
}

/// The HMAC key of a secret: `whsec_<base64>` decoded, any other bytes as given.
pub fn signing_key(secret: &[u8]) -> Result<Vec<u8>, WebhookError> {
    match secret.strip_prefix(ENCODED_SECRET.as_bytes()) {
        Some(encoded) => STANDARD.decode(encoded).map_err(|_| WebhookError::Secret),
        None => Ok(secret.to_vec()),
    }
}

/// `v1,<base64>`: the HMAC-SHA256 under `key` of `{id}.{timestamp}.{body}`,
/// as sent in `webhook-signature`.
pub fn signature(key: &[u8], id: &str, timestamp: u64, body: &[u8]) -> String {
    // HMAC accepts keys of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// Sorts an answer into delivered, retry later (no sooner than its
/// `Retry-After`), or give up.
pub fn classify(status: StatusCode, headers: &HeaderMap) -> Result<(), SendError> {
    let transient = status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error();
    match status {
        s if s.is_success() => Ok(()),
        s if transient => Err(SendError::Transient {
            why: format!("HTTP {}", s.as_u16()),
            retry_after: retry_after(headers, SystemTime::now()),
        }),
        s => Err(SendError::Permanent(format!("HTTP {}", s.as_u16()))),
    }
}

/// `Retry-After` as a wait from `now`: delay-seconds or an HTTP date
/// (RFC 9110 §10.2.3). Absent or unreadable: none.
fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

impl PushSender for WebhookSender {
    async fn send(&self, request: &PushRequest) -> Result<(), SendError> {
        let body = serde_json::to_vec(request)
            .map_err(|e| SendError::Permanent(format!("cannot encode the entry: {e}")))?;
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let response = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(ID_HEADER, &request.id)
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(
                SIGNATURE_HEADER,
                signature(&self.key, &request.id, timestamp, &body),
            )
            .body(body)
            .send()
            .await
            .map_err(|e| SendError::transient(describe(e)))?;
        // The answer's body is not read: its status and Retry-After say all we act on.
        classify(response.status(), response.headers())
    }
}

/// A reqwest error without the URL (it may carry credentials in its query).
fn describe(e: reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    format!("{what}: {}", e.without_url())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_matches_the_standard_webhooks_test_vector() {
        // The example of the Standard Webhooks specification and libraries.
        let key = signing_key(b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = signature(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn plain_secrets_are_their_bytes_and_bad_encoded_ones_are_refused() {
        assert_eq!(signing_key(b"a plain secret").unwrap(), b"a plain secret");
        assert!(matches!(
            signing_key(b"whsec_not base64!"),
            Err(WebhookError::Secret)
        ));
    }

    #[test]
    fn statuses_sort_into_delivered_retry_and_give_up() {
        let none = HeaderMap::new();
        assert_eq!(classify(StatusCode::NO_CONTENT, &none), Ok(()));
        for retry in [408, 429, 500, 502, 503] {
            let status = StatusCode::from_u16(retry).unwrap();
            assert!(
                matches!(
                    classify(status, &none),
                    Err(SendError::Transient {
                        retry_after: None,
                        ..
                    })
                ),
                "{retry}"
            );
        }
        for refuse in [400, 401, 404, 410, 422] {
            let status = StatusCode::from_u16(refuse).unwrap();
            assert!(
                matches!(classify(status, &none), Err(SendError::Permanent(_))),
                "{refuse}"
            );
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(RETRY_AFTER, v.parse().unwrap());
            retry_after(&h, now)
        };
        assert_eq!(with("120"), Some(Duration::from_secs(120)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(with(&later), Some(Duration::from_secs(30)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(with(&past), Some(Duration::ZERO));
        assert_eq!(with("soon"), None);
    }

    #[test]
    fn only_http_urls_are_accepted() {
        assert!(WebhookSender::new("ftp://x", b"k", Duration::from_secs(1)).is_err());
        assert!(WebhookSender::new("https://push.example", b"k", Duration::from_secs(1)).is_ok());
    }
}
