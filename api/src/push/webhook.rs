//! The webhook sender: an HTTP POST of the [`PushRequest`] as JSON to a push
//! gateway the operator runs (`SORI_PUSH_WEBHOOK_URL`).
//!
//! Headers: `X-Sori-Signature: sha256=<hex HMAC-SHA256 of the body>` with the
//! shared secret, so the receiver knows the request is ours, and
//! `X-Sori-Delivery: <entry id>`, the idempotency key (delivery is at least
//! once: a receiver that answered 2xx to a request we never saw answered is
//! sent it again). A 2xx answer is a delivery; 408, 429, 5xx, timeouts and
//! network errors are transient; any other answer refuses the entry for good.

use super::{PushRequest, PushSender, SendError};
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use sha2::Sha256;
use std::time::Duration;

pub const SIGNATURE_HEADER: &str = "x-sori-signature";
pub const DELIVERY_HEADER: &str = "x-sori-delivery";

/// POSTs entries to one URL.
#[derive(Debug, Clone)]
pub struct WebhookSender {
    client: reqwest::Client,
    url: String,
    secret: Vec<u8>,
}

/// Why a [`WebhookSender`] cannot be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    #[error("webhook URL must be http:// or https://: {0:?}")]
    Url(String),
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
            secret: secret.to_vec(),
        })
    }
}

/// `sha256=<hex>`: the HMAC-SHA256 of `body` under `secret`, as sent in
/// `X-Sori-Signature`. Receivers recompute it over the raw body.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Sorts an answer's status into delivered, retry later, or give up.
pub fn classify(status: StatusCode) -> Result<(), SendError> {
    let transient = status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error();
    match status {
        s if s.is_success() => Ok(()),
        s if transient => Err(SendError::Transient(format!("HTTP {}", s.as_u16()))),
        s => Err(SendError::Permanent(format!("HTTP {}", s.as_u16()))),
    }
}

impl PushSender for WebhookSender {
    async fn send(&self, request: &PushRequest) -> Result<(), SendError> {
        let body = serde_json::to_vec(request)
            .map_err(|e| SendError::Permanent(format!("cannot encode the entry: {e}")))?;
        let response = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature(&self.secret, &body))
            .header(DELIVERY_HEADER, &request.id)
            .body(body)
            .send()
            .await
            .map_err(|e| SendError::Transient(describe(e)))?;
        // The answer's body is not read: its status says all we act on.
        classify(response.status())
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
    fn the_signature_is_the_rfc_4231_hmac() {
        // RFC 4231 test case 2.
        let sig = signature(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            sig,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn statuses_sort_into_delivered_retry_and_give_up() {
        assert_eq!(classify(StatusCode::NO_CONTENT), Ok(()));
        for retry in [408, 429, 500, 502, 503] {
            let status = StatusCode::from_u16(retry).unwrap();
            assert!(
                matches!(classify(status), Err(SendError::Transient(_))),
                "{retry}"
            );
        }
        for refuse in [400, 401, 404, 410, 422] {
            let status = StatusCode::from_u16(refuse).unwrap();
            assert!(
                matches!(classify(status), Err(SendError::Permanent(_))),
                "{refuse}"
            );
        }
    }

    #[test]
    fn only_http_urls_are_accepted() {
        assert!(WebhookSender::new("ftp://x", b"k", Duration::from_secs(1)).is_err());
        assert!(WebhookSender::new("https://push.example", b"k", Duration::from_secs(1)).is_ok());
    }
}
