//! Shared set-up of the AWS backend tests: a local S3/SQS-speaking server
//! (moto, started by `scripts/aws-test-server.sh`; `scripts/test.sh` does
//! it), dummy credentials, and a fresh bucket or queue per test.
//!
//! The server is found at `SORI_TEST_AWS_ENDPOINT` (default
//! `http://127.0.0.1:5000`). A test fails loudly when it does not answer: it
//! never skips.

#![allow(dead_code)] // each test binary uses its own part of this module

use std::sync::Once;
use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_sdk_sqs::types::QueueAttributeName;

const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:5000";

/// The test server's base URL.
pub fn endpoint() -> String {
    std::env::var("SORI_TEST_AWS_ENDPOINT").unwrap_or_else(|_| DEFAULT_ENDPOINT.to_owned())
}

/// Points the AWS environment at the test server with dummy credentials (so
/// a developer's real AWS settings are never used), after checking that the
/// server answers. Every test calls this first.
pub async fn init() -> String {
    static ENV: Once = Once::new();
    let url = endpoint();
    check_server(&url).await;
    ENV.call_once(|| {
        // Set once, before any SDK client of this process reads them.
        for var in [
            "AWS_PROFILE",
            "AWS_SESSION_TOKEN",
            "AWS_ENDPOINT_URL_S3",
            "AWS_ENDPOINT_URL_SQS",
        ] {
            std::env::remove_var(var);
        }
        std::env::set_var("AWS_ENDPOINT_URL", &url);
        std::env::set_var("AWS_REGION", "us-east-1");
        std::env::set_var("AWS_ACCESS_KEY_ID", "test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    });
    url
}

async fn check_server(url: &str) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("HTTP client");
    if let Err(e) = client.get(url).send().await {
        panic!(
            "no S3/SQS test server answers at {url} ({e}).\n\
             Start one with `scripts/aws-test-server.sh start` (scripts/test.sh does) \
             and export SORI_TEST_AWS_ENDPOINT to the URL it prints."
        );
    }
}

/// The AWS configuration the environment set by [`init`] gives.
pub async fn sdk_config() -> SdkConfig {
    init().await;
    aws_config::defaults(BehaviorVersion::latest()).load().await
}

/// A name no other test (or earlier run against the same server) uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// A raw S3 client (path-style), to set up and inspect what the store does.
pub async fn s3_client() -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(&sdk_config().await)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// A raw SQS client, to set up and inspect queues.
pub async fn sqs_client() -> aws_sdk_sqs::Client {
    aws_sdk_sqs::Client::new(&sdk_config().await)
}

/// Creates a fresh, empty bucket and returns its name.
pub async fn new_bucket() -> String {
    let bucket = unique("sori-test");
    s3_client()
        .await
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("create bucket");
    bucket
}

/// A fresh queue with its own dead-letter queue.
#[derive(Debug, Clone)]
pub struct TestQueue {
    pub url: String,
    pub arn: String,
    pub dead_letter_url: String,
}

/// Creates a queue whose redrive policy moves a message to a fresh
/// dead-letter queue after `max_receives` receives.
pub async fn new_queue(max_receives: u32) -> TestQueue {
    let sqs = sqs_client().await;
    let name = unique("sori-jobs");
    let dead_letter_url = create_queue(&sqs, &format!("{name}-dlq"), None).await;
    let dead_letter_arn = queue_arn(&sqs, &dead_letter_url).await;
    let policy = serde_json::json!({
        "deadLetterTargetArn": dead_letter_arn,
        "maxReceiveCount": max_receives.to_string(),
    })
    .to_string();
    let url = create_queue(&sqs, &name, Some(policy)).await;
    let arn = queue_arn(&sqs, &url).await;
    TestQueue {
        url,
        arn,
        dead_letter_url,
    }
}

async fn create_queue(sqs: &aws_sdk_sqs::Client, name: &str, redrive: Option<String>) -> String {
    let mut request = sqs.create_queue().queue_name(name);
    if let Some(policy) = redrive {
        request = request.attributes(QueueAttributeName::RedrivePolicy, policy);
    }
    let output = request.send().await.expect("create queue");
    output.queue_url.expect("queue URL")
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    let output = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue attributes");
    output
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .expect("queue ARN")
}
