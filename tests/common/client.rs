//! A plain HTTP client of the Sori API, as an app would be, and `ffprobe`
//! for what the API hands back.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// How long a clip may take from upload to a final state.
pub const PROCESSING_DEADLINE: Duration = Duration::from_secs(60);

/// What `ffprobe` says about an audio file: codec, rate, channels, seconds.
#[derive(Debug)]
pub struct Probe {
    pub codec: String,
    pub sample_rate: u32,
    pub channels: u32,
    pub format: String,
    pub seconds: f64,
}

pub fn ffprobe(path: &Path) -> Probe {
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
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
}

/// One signed-up person.
pub struct Person {
    pub id: String,
    pub token: String,
}

impl Client {
    pub fn new(base: &str) -> Self {
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
    pub async fn call(
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

    pub async fn expect(
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

    pub async fn sign_up(&self, handle: &str) -> Person {
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
    pub async fn upload(&self, who: &Person, bytes: Vec<u8>, content_type: &str) -> String {
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
    pub async fn wait_ready(&self, who: &Person, id: &str) -> Value {
        let media = self
            .wait_state(who, id, &["ready", "failed"], PROCESSING_DEADLINE)
            .await;
        assert_eq!(media["state"], "ready", "media failed: {}", media["reason"]);
        media
    }

    /// Polls `GET /v1/media/{id}` until its state is one of `want`; fails
    /// after `within`, with the last state and reason.
    pub async fn wait_state(
        &self,
        who: &Person,
        id: &str,
        want: &[&str],
        within: Duration,
    ) -> Value {
        let path = format!("/v1/media/{id}");
        let deadline = Instant::now() + within;
        loop {
            let media = self
                .expect(StatusCode::OK, Method::GET, &path, Some(who), None)
                .await;
            let state = media["state"].as_str().unwrap_or_default();
            if want.contains(&state) {
                return media;
            }
            assert!(
                Instant::now() < deadline,
                "media not {want:?} after {within:?}: still {state} (reason {})",
                media["reason"]
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `POST /v1/media/{id}/complete`: the client says the upload is done.
    pub async fn complete(&self, who: &Person, id: &str) -> Value {
        let path = format!("/v1/media/{id}/complete");
        self.expect(StatusCode::ACCEPTED, Method::POST, &path, Some(who), None)
            .await
    }

    /// Downloads the audio: the bytes themselves (embedded mode), or a 302 to
    /// a signed URL (S3 mode) followed without the bearer token.
    pub async fn play(&self, who: &Person, audio_url: &str) -> Vec<u8> {
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

/// Checks the three audio outputs of a job in `dir` (as downloaded from the
/// store): each an Opus stream, mono 48 kHz, of the original's length.
pub fn check_outputs(dir: &Path, expected_secs: f64) {
    for (file, format) in [
        ("audio.opus", "ogg"),
        ("audio.caf", "caf"),
        ("audio.webm", "matroska,webm"),
    ] {
        let probe = ffprobe(&dir.join(file));
        assert_eq!(probe.codec, "opus", "{file}: {probe:?}");
        assert_eq!(probe.format, format, "{file}: {probe:?}");
        assert_eq!(probe.sample_rate, 48_000, "{file}: {probe:?}");
        assert_eq!(probe.channels, 1, "{file}: {probe:?}");
        assert!(
            (probe.seconds - expected_secs).abs() < 0.1,
            "{file}: {} s, the original {expected_secs} s",
            probe.seconds
        );
    }
}
