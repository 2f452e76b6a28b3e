//! End to end, the user's path through the real `sori` binary, in both modes,
//! with a plain HTTP client only: sign up two people, one follows the other,
//! upload a voice clip through the signed URL, wait for `ready`, post it with
//! a `#tag`, see it in the follower's feed, play it, find it in explore.
//!
//! - embedded: `sori serve` with a fresh data directory and no other setting;
//! - production: `sori migrate`, then one `sori api` and one `sori worker` on
//!   PostgreSQL (a fresh schema), S3 (a fresh bucket) and SQS (a fresh queue
//!   with a dead-letter queue) served by the local moto server; once with the
//!   client calling `/complete`, once relying on the bucket's `ObjectCreated`
//!   notification alone.
//!
//! PostgreSQL is found at `SORI_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) and moto at
//! `SORI_TEST_AWS_ENDPOINT` (default `http://127.0.0.1:5000`, started by
//! `scripts/aws-test-server.sh start`). Missing servers fail the tests.

mod common;

use common::{command, fixture, spawn};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sori_pipeline::Db;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const FIXTURE: &str = "speech-mono-16k.m4a";
const TAG: &str = "firstclip";
/// How long a clip may take from upload to `ready`.
const PROCESSING_DEADLINE: Duration = Duration::from_secs(60);

/// What `ffprobe` says about an audio file: codec, rate, channels, seconds.
#[derive(Debug)]
struct Probe {
    codec: String,
    sample_rate: u32,
    channels: u32,
    format: String,
    seconds: f64,
}

fn ffprobe(path: &Path) -> Probe {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-of", "json", "-show_entries"])
        .arg("stream=codec_name,sample_rate,channels:format=format_name,duration")
        .arg(path)
        .output()
        .expect("ffprobe must be installed (scripts/setup.sh test)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ffprobe {}: {stderr}", path.display());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let stream = &v["streams"][0];
    let number = |v: &Value| v.as_str().and_then(|s| s.parse::<f64>().ok());
    Probe {
        codec: stream["codec_name"].as_str().unwrap_or_default().to_owned(),
        sample_rate: number(&stream["sample_rate"]).unwrap_or_default() as u32,
        channels: stream["channels"].as_u64().unwrap_or_default() as u32,
        format: v["format"]["format_name"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        seconds: number(&v["format"]["duration"]).expect("a duration"),
    }
}

/// A plain HTTP client of one API base URL. Redirects are not followed, so
/// the 302 of the audio route can be checked and the bearer token never
/// travels to the signed URL.
struct Client {
    http: reqwest::Client,
    base: String,
}

/// One signed-up person.
struct Person {
    id: String,
    token: String,
}

impl Client {
    fn new(base: &str) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self {
            http,
            base: base.to_owned(),
        }
    }

    /// A JSON request; answers the status and the JSON body (`null` if none).
    async fn call(
        &self,
        method: Method,
        path: &str,
        who: Option<&Person>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(who) = who {
            req = req.bearer_auth(&who.token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let response = req.send().await.unwrap();
        let status = response.status();
        let bytes = response.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn expect(
        &self,
        want: StatusCode,
        method: Method,
        path: &str,
        who: Option<&Person>,
        body: Option<Value>,
    ) -> Value {
        let (status, json) = self.call(method.clone(), path, who, body).await;
        assert_eq!(status, want, "{method} {path}: {json}");
        json
    }

    async fn sign_up(&self, handle: &str) -> Person {
        let body =
            json!({"handle": handle, "password": "correct horse battery", "display_name": handle});
        let session = self
            .expect(
                StatusCode::CREATED,
                Method::POST,
                "/v1/auth/signup",
                None,
                Some(body),
            )
            .await;
        Person {
            id: session["user_id"].as_str().unwrap().to_owned(),
            token: session["token"].as_str().unwrap().to_owned(),
        }
    }

    /// `POST /v1/media`, then the PUT of the bytes exactly as the answer says.
    async fn upload(&self, who: &Person, bytes: Vec<u8>, content_type: &str) -> String {
        let body = json!({"content_type": content_type, "size_bytes": bytes.len()});
        let created = self
            .expect(
                StatusCode::CREATED,
                Method::POST,
                "/v1/media",
                Some(who),
                Some(body),
            )
            .await;
        let upload = &created["upload"];
        let method: Method = upload["method"].as_str().unwrap().parse().unwrap();
        let mut put = self
            .http
            .request(method, upload["url"].as_str().unwrap())
            .body(bytes);
        for (name, value) in upload["headers"].as_object().unwrap() {
            put = put.header(name, value.as_str().unwrap());
        }
        let answer = put.send().await.unwrap();
        let status = answer.status();
        let text = answer.text().await.unwrap_or_default();
        assert!(status.is_success(), "upload PUT: {status} {text}");
        created["id"].as_str().unwrap().to_owned()
    }

    /// Polls `GET /v1/media/{id}` until `ready`; fails on `failed` or after
    /// [`PROCESSING_DEADLINE`], with the last state and reason.
    async fn wait_ready(&self, who: &Person, id: &str) -> Value {
        let path = format!("/v1/media/{id}");
        let deadline = Instant::now() + PROCESSING_DEADLINE;
        loop {
            let media = self
                .expect(StatusCode::OK, Method::GET, &path, Some(who), None)
                .await;
            let state = media["state"].as_str().unwrap_or_default();
            match state {
                "ready" => return media,
                "failed" => panic!("media failed: {}", media["reason"]),
                _ => {}
            }
            assert!(
                Instant::now() < deadline,
                "media not ready after {PROCESSING_DEADLINE:?}: still {state} (reason {})",
                media["reason"]
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Downloads the audio: the bytes themselves (embedded mode), or a 302 to
    /// a signed URL (S3 mode) followed without the bearer token.
    async fn play(&self, who: &Person, audio_url: &str) -> Vec<u8> {
        let first = self
            .http
            .get(audio_url)
            .bearer_auth(&who.token)
            .send()
            .await
            .unwrap();
        if first.status() == StatusCode::OK {
            return first.bytes().await.unwrap().to_vec();
        }
        assert_eq!(first.status(), StatusCode::FOUND, "{audio_url}");
        let location = first.headers()["location"].to_str().unwrap().to_owned();
        let audio = self.http.get(&location).send().await.unwrap();
        assert_eq!(audio.status(), StatusCode::OK, "{location}");
        audio.bytes().await.unwrap().to_vec()
    }
}

/// Whether the client says the upload is done, or the bucket's event does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Completion {
    Client,
    StorageEvent,
}

/// The user's path against the API at `base`. `scratch` holds the download.
async fn user_path(base: &str, completion: Completion, scratch: &Path) {
    let api = Client::new(base);
    let alice = api.sign_up("alice").await;
    let bob = api.sign_up("bob").await;
    let follow = format!("/v1/users/{}/follow", alice.id);
    api.expect(
        StatusCode::NO_CONTENT,
        Method::PUT,
        &follow,
        Some(&bob),
        None,
    )
    .await;

    let original = fixture(FIXTURE);
    let bytes = std::fs::read(&original).expect("fixture");
    let media_id = api.upload(&alice, bytes, "audio/mp4").await;
    if completion == Completion::Client {
        let path = format!("/v1/media/{media_id}/complete");
        api.expect(
            StatusCode::ACCEPTED,
            Method::POST,
            &path,
            Some(&alice),
            None,
        )
        .await;
    }
    let media = api.wait_ready(&alice, &media_id).await;
    assert_eq!(media["bars"].as_array().map(Vec::len), Some(100), "{media}");

    let caption = format!("Morning voice note #{TAG}");
    let body = json!({"media_id": media_id, "caption": caption});
    let post = api
        .expect(
            StatusCode::CREATED,
            Method::POST,
            "/v1/posts",
            Some(&alice),
            Some(body),
        )
        .await;
    let post_id = post["id"].as_str().unwrap();
    assert_eq!(post["tags"], json!([TAG]), "{post}");

    let feed = api
        .expect(StatusCode::OK, Method::GET, "/v1/feed", Some(&bob), None)
        .await;
    let item = find(&feed, post_id).unwrap_or_else(|| panic!("not in bob's feed: {feed}"));
    check_item(&api, &bob, item, scratch).await;

    let explore = format!("/v1/explore?tag={TAG}");
    let found = api
        .expect(StatusCode::OK, Method::GET, &explore, Some(&bob), None)
        .await;
    assert!(find(&found, post_id).is_some(), "not in explore: {found}");
}

fn find<'a>(page: &'a Value, post_id: &str) -> Option<&'a Value> {
    page["items"]
        .as_array()?
        .iter()
        .find(|p| p["id"] == post_id)
}

/// A feed item as bob sees it: ready, with duration and bars, and audio
/// that an independent decoder reads as the mono 48 kHz Ogg Opus of the
/// fixture's length.
async fn check_item(api: &Client, bob: &Person, item: &Value, scratch: &Path) {
    let expected = ffprobe(&fixture(FIXTURE)).seconds;
    assert_eq!(item["state"], "ready", "{item}");
    let duration_ms = item["duration_ms"].as_i64().expect("duration_ms");
    assert!(
        (duration_ms as f64 / 1000.0 - expected).abs() < 0.1,
        "duration {duration_ms} ms vs fixture {expected} s"
    );
    let bars = item["bars"].as_array().expect("bars");
    assert_eq!(bars.len(), 100, "{item}");
    assert!(bars.iter().all(|b| b.as_u64().is_some_and(|v| v <= 31)));
    assert!(bars.iter().any(|b| b.as_u64() > Some(0)), "all bars silent");

    let audio_url = item["audio_url"].as_str().expect("audio_url");
    let audio = api.play(bob, audio_url).await;
    assert_eq!(&audio[..4], b"OggS", "not an Ogg stream");
    assert_eq!(&audio[28..36], b"OpusHead", "first packet not OpusHead");
    let local = scratch.join("played.opus");
    std::fs::write(&local, &audio).unwrap();
    let probe = ffprobe(&local);
    assert_eq!(probe.codec, "opus", "{probe:?}");
    assert_eq!(probe.format, "ogg", "{probe:?}");
    assert_eq!(probe.sample_rate, 48_000, "{probe:?}");
    assert_eq!(probe.channels, 1, "{probe:?}");
    assert!(
        (probe.seconds - expected).abs() < 0.05,
        "played {} s vs fixture {expected} s",
        probe.seconds
    );
}

#[tokio::test]
async fn embedded_user_path() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").display().to_string();
    let envs = [("SORI_DATA_DIR".to_owned(), data)];
    let mut server = spawn(dir.path(), &["serve"], &envs);
    server.wait_ready().await;
    user_path(&server.base, Completion::Client, dir.path()).await;
    server.stop();
}

#[tokio::test]
async fn production_user_path() {
    production(Completion::Client).await;
}

#[tokio::test]
async fn production_user_path_completed_by_the_storage_event() {
    production(Completion::StorageEvent).await;
}

/// `sori migrate`, one `sori api` and one `sori worker` on PostgreSQL, S3 and SQS.
async fn production(completion: Completion) {
    let aws = Moto::connect().await;
    let schema = PgSchema::create().await;
    let bucket = aws.bucket().await;
    let queue = aws.queue().await;
    if completion == Completion::StorageEvent {
        aws.notify(&bucket, &queue.arn).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let envs = production_env(&aws.endpoint, &schema.url, &bucket, &queue.url, dir.path());

    let out = command(dir.path(), &["migrate"], &envs).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "sori migrate: {stderr}");
    let mut api = spawn(dir.path(), &["api"], &envs);
    let mut worker = spawn(dir.path(), &["worker"], &envs);
    api.wait_ready().await;
    worker.wait_ready().await;

    user_path(&api.base, completion, dir.path()).await;
    assert_eq!(aws.queue_length(&queue.dead_letter_url).await, 0);
    api.stop();
    worker.stop();
    drop(schema);
}

fn production_env(
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

/// A fresh PostgreSQL schema (`t_<uuid>`, the name `scripts/test.sh` clears
/// after an aborted run), dropped when this guard is.
struct PgSchema {
    name: String,
    base: String,
    url: String,
}

impl PgSchema {
    async fn create() -> Self {
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
            .arg(format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name))
            .stdout(Stdio::null())
            .status();
    }
}

/// The local moto server, spoken to in plain HTTP (moto does not check
/// signatures; the `Authorization` header only names the service and region).
struct Moto {
    http: reqwest::Client,
    endpoint: String,
}

/// A fresh job queue and its dead-letter queue.
struct TestQueue {
    url: String,
    arn: String,
    dead_letter_url: String,
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

impl Moto {
    async fn connect() -> Self {
        let endpoint = std::env::var("SORI_TEST_AWS_ENDPOINT")
            .unwrap_or_else(|_| "http://127.0.0.1:5000".to_owned());
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
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

    async fn bucket(&self) -> String {
        let bucket = unique("sori-e2e");
        self.s3(&bucket, String::new()).await;
        bucket
    }

    /// Sends every `ObjectCreated` event of `bucket` to the queue `arn`.
    async fn notify(&self, bucket: &str, arn: &str) {
        let config = format!(
            "<NotificationConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
             <QueueConfiguration><Id>sori-uploads</Id><Queue>{arn}</Queue>\
             <Event>s3:ObjectCreated:*</Event></QueueConfiguration>\
             </NotificationConfiguration>"
        );
        self.s3(&format!("{bucket}?notification"), config).await;
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

    async fn queue(&self) -> TestQueue {
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

    async fn queue_length(&self, url: &str) -> u64 {
        let attrs = self
            .sqs(
                "GetQueueAttributes",
                json!({"QueueUrl": url, "AttributeNames": ["ApproximateNumberOfMessages"]}),
            )
            .await;
        let n = &attrs["Attributes"]["ApproximateNumberOfMessages"];
        n.as_str().and_then(|s| s.parse().ok()).unwrap_or(u64::MAX)
    }
}
