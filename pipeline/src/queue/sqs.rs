//! The production job queue: Amazon SQS (or any SQS-compatible server)
//! through aws-sdk-sqs.
//!
//! Workers long-poll for batches, extend a message's visibility while its job
//! runs, delete it on success and release it (visible again after a delay) to
//! retry. Dead letters are SQS's own: the queue's redrive policy moves a
//! message to the dead-letter queue after `maxReceiveCount` receives, and
//! [`SqsQueue::depth`] reads that queue's size from the policy's
//! `deadLetterTargetArn`, so the backlog metrics need no extra configuration.
//!
//! Durations are whole seconds on the wire and clamped to SQS's limits:
//! long poll ≤ 20 s, delay ≤ 15 min, visibility ≤ 12 h.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName, QueueAttributeName};
use aws_sdk_sqs::Client;

use crate::queue::{Delivery, QueueDepth, QueueError};
use crate::store::s3::{aws_fault, AwsFault};

/// SQS's longest long poll.
const MAX_WAIT_SECS: u64 = 20;
/// SQS's longest per-message delay.
const MAX_DELAY_SECS: u64 = 15 * 60;
/// SQS's longest visibility timeout.
const MAX_VISIBILITY_SECS: u64 = 12 * 60 * 60;
/// SQS's largest receive batch.
const MAX_BATCH: u32 = 10;

/// An SQS queue. Cheap to clone: clones share one HTTP connection pool.
#[derive(Clone, Debug)]
pub struct SqsQueue {
    client: Client,
    url: String,
    /// The dead-letter queue last seen in the redrive policy: (ARN, URL).
    dead_letters: Arc<Mutex<Option<(String, String)>>>,
}

impl SqsQueue {
    /// The queue at `queue_url`, configured from the standard AWS environment
    /// (`AWS_ENDPOINT_URL`, `AWS_REGION`, credentials).
    pub async fn from_env(queue_url: &str) -> Result<SqsQueue, QueueError> {
        let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
        SqsQueue::new(&config, queue_url)
    }

    /// The queue at `queue_url` with an already loaded AWS configuration, so
    /// the queue and the S3 store can share one.
    pub fn new(config: &SdkConfig, queue_url: &str) -> Result<SqsQueue, QueueError> {
        if queue_url.is_empty() {
            return Err(QueueError::Permanent("the SQS queue URL is empty".into()));
        }
        if config.region().is_none() {
            return Err(QueueError::Permanent(
                "no AWS region configured (set AWS_REGION)".into(),
            ));
        }
        Ok(SqsQueue {
            client: Client::new(config),
            url: queue_url.to_owned(),
            dead_letters: Arc::default(),
        })
    }

    /// The queue's URL, as configured.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Enqueues a message that becomes receivable after `delay` (≤ 15 min).
    pub async fn send(&self, body: &str, delay: Duration) -> Result<(), QueueError> {
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .delay_seconds(secs(delay, MAX_DELAY_SECS))
            .send()
            .await
            .map_err(|e| queue_error("send", e))?;
        Ok(())
    }

    /// Long-polls for up to `max` (≤ 10) messages, waiting up to `wait`
    /// (≤ 20 s) when the queue is empty; each stays invisible to other
    /// workers for `visibility`.
    pub async fn receive(
        &self,
        max: u32,
        wait: Duration,
        visibility: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        let max = i32::try_from(max.clamp(1, MAX_BATCH)).unwrap_or(1);
        let output = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max)
            .wait_time_seconds(secs(wait, MAX_WAIT_SECS))
            .visibility_timeout(secs(visibility, MAX_VISIBILITY_SECS))
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| queue_error("receive", e))?;
        Ok(output.messages().iter().filter_map(delivery).collect())
    }

    /// Keeps a running job's message invisible for `visibility` from now, so
    /// no other worker picks it up while this one is still working.
    /// [`QueueError::StaleReceipt`] means the lease was already lost.
    pub async fn extend(&self, d: &Delivery, visibility: Duration) -> Result<(), QueueError> {
        self.change_visibility("extend", d, secs(visibility, MAX_VISIBILITY_SECS))
            .await
    }

    /// Acknowledges a finished job: the message is gone for good.
    pub async fn delete(&self, d: &Delivery) -> Result<(), QueueError> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(&d.receipt)
            .send()
            .await
            .map_err(|e| queue_error("delete", e))?;
        Ok(())
    }

    /// Gives a message back to be received again after `delay` (zero: now),
    /// for retries with backoff and for graceful shutdown. The receive
    /// still counts towards the dead-letter limit.
    pub async fn release(&self, d: &Delivery, delay: Duration) -> Result<(), QueueError> {
        self.change_visibility("release", d, secs(delay, MAX_VISIBILITY_SECS))
            .await
    }

    /// Messages waiting, in flight, and in the dead-letter queue named by the
    /// redrive policy (zero when the queue has none).
    pub async fn depth(&self) -> Result<QueueDepth, QueueError> {
        let attributes = self
            .attributes(
                &self.url,
                &[
                    QueueAttributeName::ApproximateNumberOfMessages,
                    QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
                    QueueAttributeName::ApproximateNumberOfMessagesDelayed,
                    QueueAttributeName::RedrivePolicy,
                ],
            )
            .await?;
        let dead = match dead_letter_arn(&attributes) {
            Some(arn) => self.dead_letter_count(&arn).await?,
            None => 0,
        };
        Ok(QueueDepth {
            visible: count(
                &attributes,
                &QueueAttributeName::ApproximateNumberOfMessages,
            ),
            // Delayed messages count as in flight, as in the embedded queue.
            in_flight: count(
                &attributes,
                &QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
            ) + count(
                &attributes,
                &QueueAttributeName::ApproximateNumberOfMessagesDelayed,
            ),
            dead,
        })
    }

    async fn change_visibility(
        &self,
        op: &str,
        d: &Delivery,
        seconds: i32,
    ) -> Result<(), QueueError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(&d.receipt)
            .visibility_timeout(seconds)
            .send()
            .await
            .map_err(|e| queue_error(op, e))?;
        Ok(())
    }

    async fn attributes(
        &self,
        url: &str,
        names: &[QueueAttributeName],
    ) -> Result<HashMap<QueueAttributeName, String>, QueueError> {
        let output = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .set_attribute_names(Some(names.to_vec()))
            .send()
            .await
            .map_err(|e| queue_error("get attributes", e))?;
        Ok(output.attributes.unwrap_or_default())
    }

    async fn dead_letter_count(&self, arn: &str) -> Result<u64, QueueError> {
        let url = self.dead_letter_url(arn).await?;
        let attributes = self
            .attributes(
                &url,
                &[
                    QueueAttributeName::ApproximateNumberOfMessages,
                    QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
                ],
            )
            .await?;
        Ok(count(
            &attributes,
            &QueueAttributeName::ApproximateNumberOfMessages,
        ) + count(
            &attributes,
            &QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        ))
    }

    /// The dead-letter queue's URL for its ARN, looked up once per ARN.
    async fn dead_letter_url(&self, arn: &str) -> Result<String, QueueError> {
        if let Some((cached_arn, url)) = self.cached_dead_letters() {
            if cached_arn == arn {
                return Ok(url);
            }
        }
        let (account, name) = parse_queue_arn(arn)
            .ok_or_else(|| QueueError::Permanent(format!("bad dead-letter queue ARN {arn:?}")))?;
        let output = self
            .client
            .get_queue_url()
            .queue_name(name)
            .queue_owner_aws_account_id(account)
            .send()
            .await
            .map_err(|e| queue_error("get dead-letter queue URL", e))?;
        let url = output
            .queue_url
            .ok_or_else(|| QueueError::Permanent(format!("no URL for queue {arn}")))?;
        if let Ok(mut cache) = self.dead_letters.lock() {
            *cache = Some((arn.to_owned(), url.clone()));
        }
        Ok(url)
    }

    fn cached_dead_letters(&self) -> Option<(String, String)> {
        self.dead_letters
            .lock()
            .ok()
            .and_then(|cache| cache.clone())
    }
}

/// A received message as a [`Delivery`]; messages without a receipt handle
/// or body (never sent by SQS) are skipped.
fn delivery(message: &Message) -> Option<Delivery> {
    let receive_count = message
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    Some(Delivery {
        receipt: message.receipt_handle()?.to_owned(),
        body: message.body()?.to_owned(),
        receive_count,
    })
}

/// The `deadLetterTargetArn` of the queue's redrive policy (a JSON string
/// attribute), if it has one.
fn dead_letter_arn(attributes: &HashMap<QueueAttributeName, String>) -> Option<String> {
    let policy = attributes.get(&QueueAttributeName::RedrivePolicy)?;
    let policy: serde_json::Value = serde_json::from_str(policy).ok()?;
    Some(policy.get("deadLetterTargetArn")?.as_str()?.to_owned())
}

/// `arn:aws:sqs:REGION:ACCOUNT:NAME` → (ACCOUNT, NAME).
fn parse_queue_arn(arn: &str) -> Option<(&str, &str)> {
    let mut parts = arn.splitn(6, ':');
    let (_arn, _partition, service, _region) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let (account, name) = (parts.next()?, parts.next()?);
    (service == "sqs" && !name.is_empty()).then_some((account, name))
}

fn count(attributes: &HashMap<QueueAttributeName, String>, name: &QueueAttributeName) -> u64 {
    attributes
        .get(name)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Whole seconds, at most `max` (every SQS limit fits an `i32`).
fn secs(d: Duration, max: u64) -> i32 {
    i32::try_from(d.as_secs().min(max)).unwrap_or(i32::MAX)
}

/// Error codes SQS answers when a receipt handle is no longer this
/// receiver's: the message was deleted, or redelivered after its visibility
/// ran out.
const STALE_RECEIPT_CODES: &[&str] = &[
    "ReceiptHandleIsInvalid",
    "MessageNotInflight",
    "AWS.SimpleQueueService.MessageNotInflight",
];

fn queue_error<E>(op: &str, err: SdkError<E, HttpResponse>) -> QueueError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    if is_stale_receipt(err.code(), err.message()) {
        return QueueError::StaleReceipt;
    }
    let message = format!("{op}: {}", DisplayErrorContext(&err));
    match aws_fault(&err) {
        AwsFault::Transient => QueueError::Transient(message),
        AwsFault::NotFound | AwsFault::Permanent => QueueError::Permanent(message),
    }
}

/// SQS reports an expired receipt on `ChangeMessageVisibility` as an
/// invalid `ReceiptHandle` parameter rather than with a code of its own.
fn is_stale_receipt(code: Option<&str>, message: Option<&str>) -> bool {
    match code {
        Some(code) if STALE_RECEIPT_CODES.contains(&code) => true,
        Some("InvalidParameterValue") => message.is_some_and(|m| m.contains("ReceiptHandle")),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_queue_arns() {
        assert_eq!(
            parse_queue_arn("arn:aws:sqs:us-east-1:123456789012:jobs-dlq"),
            Some(("123456789012", "jobs-dlq"))
        );
        assert_eq!(parse_queue_arn("arn:aws:sns:us-east-1:1:topic"), None);
        assert_eq!(parse_queue_arn("jobs-dlq"), None);
    }

    #[test]
    fn recognises_stale_receipts() {
        assert!(is_stale_receipt(Some("ReceiptHandleIsInvalid"), None));
        assert!(is_stale_receipt(
            Some("InvalidParameterValue"),
            Some("Value x for parameter ReceiptHandle is invalid. Reason: Message does not exist.")
        ));
        assert!(!is_stale_receipt(
            Some("InvalidParameterValue"),
            Some("DelaySeconds")
        ));
        assert!(!is_stale_receipt(Some("QueueDoesNotExist"), None));
        assert!(!is_stale_receipt(None, None));
    }

    #[test]
    fn clamps_durations_to_sqs_limits() {
        assert_eq!(secs(Duration::from_millis(1500), MAX_WAIT_SECS), 1);
        assert_eq!(secs(Duration::from_secs(60), MAX_WAIT_SECS), 20);
        assert_eq!(
            secs(Duration::from_secs(u64::MAX), MAX_VISIBILITY_SECS),
            43_200
        );
    }
}
