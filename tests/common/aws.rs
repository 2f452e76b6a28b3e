//! The production backends of the end-to-end tests: a fresh PostgreSQL
//! schema, and the local moto server (S3 + SQS) spoken to in plain HTTP.
//!
//! PostgreSQL is found at `SORI_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) and moto at
//! `SORI_TEST_AWS_ENDPOINT` (default `http://127.0.0.1:5000`, started by
//! `scripts/aws-test-server.sh start`). Missing servers fail the tests.

use reqwest::StatusCode;
use serde_json::{json, Value};
use sori_db::Db;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The environment of `sori migrate`, `sori api` and `sori worker` on
/// PostgreSQL, S3 and SQS at `aws`.
pub fn production_env(
    aws: &str,
    database_url: &str,
    bucket: &str,
    queue_url: &str,
    dir: &Path,
) -> Vec<(String, String)> {
    let data = dir.join("data").display().to_string();
    [
        ("DATABASE_URL", database_url),
        ("SORI_DATA_DIR", &data),
        ("SORI_STORE", "s3"),
        ("SORI_S3_BUCKET", bucket),
        ("SORI_QUEUE", "sqs"),
        ("SORI_SQS_QUEUE_URL", queue_url),
        ("SORI_WORKERS", "2"),
        ("AWS_ENDPOINT_URL", aws),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// What a production-mode test starts from: a fresh schema, bucket and job
/// queue (with its dead letters) on the test servers, a scratch directory,
/// and the roles' environment for them. Stop the processes before dropping
/// it: the schema goes with it.
pub struct Backends {
    pub aws: Moto,
    pub bucket: String,
    pub queue: TestQueue,
    pub dir: tempfile::TempDir,
    pub envs: Vec<(String, String)>,
    pub schema: PgSchema,
}

impl Backends {
    pub async fn new() -> Self {
        let aws = Moto::connect().await;
        let schema = PgSchema::create().await;
        let bucket = aws.bucket().await;
        let queue = aws.queue().await;
        let dir = tempfile::tempdir().unwrap();
        let envs = production_env(&aws.endpoint, &schema.url, &bucket, &queue.url, dir.path());
        Self {
            aws,
            bucket,
            queue,
            dir,
            envs,
            schema,
        }
    }

    /// Lets web apps on `origins` (comma-separated) call the API.
    pub fn allow_origins(mut self, origins: &str) -> Self {
        self.envs
            .push(("SORI_CORS_ORIGINS".to_owned(), origins.to_owned()));
        self
    }
}

/// A fresh PostgreSQL schema (`t_<uuid>`, the name `scripts/test.sh` clears
/// after an aborted run), dropped when this guard is.
pub struct PgSchema {
    name: String,
    base: String,
    /// The database URL with the schema as its search path.
    pub url: String,
}

impl PgSchema {
    pub async fn create() -> Self {
        let base = std::env::var("SORI_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let admin = Db::connect(&base, 1)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {base} is needed: {e}"));
        sqlx::query(&format!("CREATE SCHEMA {name}"))
            .execute(admin.pool())
            .await
            .unwrap();
        admin.close().await;
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{name}");
        Self { name, base, url }
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        // Synchronous, so it also runs when the test panics.
        let _ = Command::new("psql")
            .args([&self.base, "-q", "-c"])
            .arg(format!(
                "SET client_min_messages TO warning; DROP SCHEMA IF EXISTS {} CASCADE",
                self.name
            ))
            .stdout(Stdio::null())
            .status();
    }
}

/// The local moto server, spoken to in plain HTTP (moto does not check
/// signatures; the `Authorization` header only names the service and region).
pub struct Moto {
    http: reqwest::Client,
    pub endpoint: String,
}

/// A fresh job queue and its dead-letter queue.
pub struct TestQueue {
    pub url: String,
    pub arn: String,
    pub dead_letter_url: String,
}

/// How many messages of a queue wait, and how many are received and not
/// yet deleted (or delayed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueCounts {
    pub visible: u64,
    pub in_flight: u64,
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

impl Moto {
    pub async fn connect() -> Self {
        let endpoint = std::env::var("SORI_TEST_AWS_ENDPOINT")
            .unwrap_or_else(|_| "http://127.0.0.1:5000".to_owned());
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        if let Err(e) = http.get(&endpoint).send().await {
            panic!(
                "no S3/SQS test server answers at {endpoint} ({e}); start one with \
                 `scripts/aws-test-server.sh start` and export SORI_TEST_AWS_ENDPOINT"
            );
        }
        Self { http, endpoint }
    }

    fn auth(service: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential=test/20250101/us-east-1/{service}/aws4_request, \
             SignedHeaders=host, Signature=0"
        )
    }

    async fn s3(&self, path_and_query: &str, body: String) {
        let r = self
            .http
            .put(format!("{}/{path_and_query}", self.endpoint))
            .header("authorization", Self::auth("s3"))
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        assert!(
            status.is_success(),
            "S3 PUT /{path_and_query}: {status} {}",
            r.text().await.unwrap()
        );
    }

    /// `GET /{path_and_query}` on S3: the status and the body.
    async fn s3_get(&self, path_and_query: &str) -> (StatusCode, Vec<u8>) {
        let r = self
            .http
            .get(format!("{}/{path_and_query}", self.endpoint))
            .header("authorization", Self::auth("s3"))
            .send()
            .await
            .unwrap();
        (r.status(), r.bytes().await.unwrap().to_vec())
    }

    async fn sqs(&self, action: &str, body: Value) -> Value {
        let r = self
            .http
            .post(&self.endpoint)
            .header("authorization", Self::auth("sqs"))
            .header("x-amz-target", format!("AmazonSQS.{action}"))
            .header("content-type", "application/x-amz-json-1.0")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert!(status.is_success(), "SQS {action}: {status} {text}");
        serde_json::from_str(&text).unwrap()
    }

    pub async fn bucket(&self) -> String {
        let bucket = unique("sori-e2e");
        self.s3(&bucket, String::new()).await;
        bucket
    }

    /// Sends every `ObjectCreated` event of `bucket` to the queue `arn`.
    pub async fn notify(&self, bucket: &str, arn: &str) {
        let config = format!(
            "<NotificationConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
             <QueueConfiguration><Id>sori-uploads</Id><Queue>{arn}</Queue>\
             <Event>s3:ObjectCreated:*</Event></QueueConfiguration>\
             </NotificationConfiguration>"
        );
        self.s3(&format!("{bucket}?notification"), config).await;
    }

    /// Every key under `prefix` in `bucket` (up to 1000, plenty for a test).
    pub async fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let (status, body) = self
            .s3_get(&format!("{bucket}?list-type=2&prefix={prefix}"))
            .await;
        let xml = String::from_utf8(body).unwrap();
        assert!(
            status.is_success(),
            "S3 list {bucket}/{prefix}: {status} {xml}"
        );
        let mut keys: Vec<String> = xml
            .split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split_once("</Key>").map(|(k, _)| k.to_owned()))
            .collect();
        keys.sort();
        keys
    }

    /// The bucket's CORS configuration as S3 answers it (XML), or `None`
    /// when it has none.
    pub async fn cors(&self, bucket: &str) -> Option<String> {
        let (status, body) = self.s3_get(&format!("{bucket}?cors")).await;
        let xml = String::from_utf8(body).unwrap();
        if status == StatusCode::NOT_FOUND && xml.contains("NoSuchCORSConfiguration") {
            return None;
        }
        assert!(status.is_success(), "S3 GET {bucket}?cors: {status} {xml}");
        Some(xml)
    }

    /// An object's bytes; fails if there is none.
    pub async fn object(&self, bucket: &str, key: &str) -> Vec<u8> {
        let (status, body) = self.s3_get(&format!("{bucket}/{key}")).await;
        assert!(status.is_success(), "S3 GET {bucket}/{key}: {status}");
        body
    }

    async fn create_queue(&self, name: &str, attributes: Value) -> (String, String) {
        let created = self
            .sqs(
                "CreateQueue",
                json!({"QueueName": name, "Attributes": attributes}),
            )
            .await;
        let url = created["QueueUrl"].as_str().unwrap().to_owned();
        let attrs = self
            .sqs(
                "GetQueueAttributes",
                json!({"QueueUrl": url, "AttributeNames": ["QueueArn"]}),
            )
            .await;
        let arn = attrs["Attributes"]["QueueArn"].as_str().unwrap().to_owned();
        (url, arn)
    }

    /// A fresh queue whose messages go to a fresh dead-letter queue after
    /// five receives (the worker's default `SORI_MAX_RECEIVES`).
    pub async fn queue(&self) -> TestQueue {
        let name = unique("sori-e2e");
        let (dead_letter_url, dead_letter_arn) =
            self.create_queue(&format!("{name}-dlq"), json!({})).await;
        let redrive = json!({"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": "5"});
        let (url, arn) = self
            .create_queue(&name, json!({"RedrivePolicy": redrive.to_string()}))
            .await;
        TestQueue {
            url,
            arn,
            dead_letter_url,
        }
    }

    /// Messages waiting in the queue at `url`.
    pub async fn queue_length(&self, url: &str) -> u64 {
        self.queue_counts(url).await.visible
    }

    pub async fn queue_counts(&self, url: &str) -> QueueCounts {
        let attrs = self
            .sqs(
                "GetQueueAttributes",
                json!({"QueueUrl": url, "AttributeNames": [
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed"
                ]}),
            )
            .await;
        let n = |name: &str| {
            let n = &attrs["Attributes"][name];
            n.as_str().and_then(|s| s.parse().ok()).unwrap_or(u64::MAX)
        };
        QueueCounts {
            visible: n("ApproximateNumberOfMessages"),
            in_flight: n("ApproximateNumberOfMessagesNotVisible")
                .saturating_add(n("ApproximateNumberOfMessagesDelayed")),
        }
    }

    /// Sends `body` to the queue at `url`, as the relay or a bucket would.
    pub async fn send(&self, url: &str, body: &str) {
        self.sqs("SendMessage", json!({"QueueUrl": url, "MessageBody": body}))
            .await;
    }
}
