//! A plain HTTP client of the Sori API, as an app would be, and `ffprobe`
//! for what the API hands back.
//!
//! Calls panic on a transport error or an unexpected status, with what the
//! server said. The `try_` calls answer `Err` instead, for tests that kill
//! the server mid-request and count only what it acknowledged; the
//! panicking calls are built on them.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// How long a clip may take from upload to a final state.
pub const PROCESSING_DEADLINE: Duration = Duration::from_secs(60);

/// The password of everyone [`Client::sign_up`] creates.
pub const PASSWORD: &str = "correct horse battery";

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
/// travels to the signed URL. Requests time out, so a test against a dead
/// server fails rather than hangs.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
}

/// One signed-up person.
#[derive(Debug, Clone)]
pub struct Person {
    pub id: String,
    pub handle: String,
    pub token: String,
}

/// A string field of an answer the server acknowledged; its absence is a bug,
/// not a dead server.
fn field(json: &Value, key: &str) -> String {
    json[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {json}"))
        .to_owned()
}

impl Client {
    pub fn new(base: &str) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Self {
            http,
            base: base.to_owned(),
        }
    }

    /// A JSON request with `token` as bearer: the status and the JSON body
    /// (`null` if none), or the transport error.
    pub async fn try_call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value), String> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let response = req.send().await.map_err(|e| e.to_string())?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| e.to_string())?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let what = format!("{method} {path}");
        self.try_call(method, path, token, body)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"))
    }

    /// A request that must answer `want`: its JSON body, or `Err` on a
    /// transport error or another status.
    pub async fn try_expect(
        &self,
        want: StatusCode,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let (status, json) = self.try_call(method.clone(), path, token, body).await?;
        if status == want {
            Ok(json)
        } else {
            Err(format!("{method} {path}: {status} {json}"))
        }
    }

    pub async fn expect(
        &self,
        want: StatusCode,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Value {
        self.try_expect(want, method, path, token, body)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Signs up `handle` with [`PASSWORD`].
    pub async fn try_sign_up(&self, handle: &str) -> Result<Person, String> {
        let body = json!({"handle": handle, "password": PASSWORD, "display_name": handle});
        let session = self
            .try_expect(
                StatusCode::CREATED,
                Method::POST,
                "/v1/auth/signup",
                None,
                Some(body),
            )
            .await?;
        Ok(Person {
            id: field(&session, "user_id"),
            handle: handle.to_owned(),
            token: field(&session, "token"),
        })
    }

    pub async fn sign_up(&self, handle: &str) -> Person {
        self.try_sign_up(handle)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// `POST /v1/media` for an upload of `size` bytes: the media id and the
    /// upload instructions.
    pub async fn try_create_media(
        &self,
        who: &Person,
        size: usize,
        content_type: &str,
    ) -> Result<(String, Value), String> {
        let body = json!({"content_type": content_type, "size_bytes": size});
        let created = self
            .try_expect(
                StatusCode::CREATED,
                Method::POST,
                "/v1/media",
                Some(&who.token),
                Some(body),
            )
            .await?;
        Ok((field(&created, "id"), created["upload"].clone()))
    }

    pub async fn create_media(
        &self,
        who: &Person,
        size: usize,
        content_type: &str,
    ) -> (String, Value) {
        self.try_create_media(who, size, content_type)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Creates a media, then PUTs `bytes` exactly as the answer says; the
    /// media id.
    pub async fn upload(&self, who: &Person, bytes: Vec<u8>, content_type: &str) -> String {
        let (id, upload) = self.create_media(who, bytes.len(), content_type).await;
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
        id
    }

    /// Uploads `file` and says complete; the media id.
    pub async fn upload_file(&self, who: &Person, file: &Path, content_type: &str) -> String {
        let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let id = self.upload(who, bytes, content_type).await;
        self.complete(who, &id).await;
        id
    }

    /// `POST /v1/media/{id}/complete`: the client says the upload is done.
    pub async fn complete(&self, who: &Person, id: &str) -> Value {
        let path = format!("/v1/media/{id}/complete");
        self.expect(
            StatusCode::ACCEPTED,
            Method::POST,
            &path,
            Some(&who.token),
            None,
        )
        .await
    }

    /// A post of `media_id`; the post id.
    pub async fn try_post(
        &self,
        who: &Person,
        media_id: &str,
        caption: &str,
    ) -> Result<String, String> {
        let body = json!({"media_id": media_id, "caption": caption});
        let post = self
            .try_expect(
                StatusCode::CREATED,
                Method::POST,
                "/v1/posts",
                Some(&who.token),
                Some(body),
            )
            .await?;
        Ok(field(&post, "id"))
    }

    pub async fn post(&self, who: &Person, media_id: &str, caption: &str) -> String {
        self.try_post(who, media_id, caption)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
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
                .expect(StatusCode::OK, Method::GET, &path, Some(&who.token), None)
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

    /// Fetches a media URL the API handed out as a player does: as given,
    /// with no token. Fails unless it answers the whole object.
    pub async fn play(&self, url: &str) -> Vec<u8> {
        let audio = self.http.get(url).send().await.unwrap();
        assert_eq!(audio.status(), StatusCode::OK, "{url}");
        audio.bytes().await.unwrap().to_vec()
    }

    /// The audio route of a media: a 302 to its signed Ogg Opus URL, followed
    /// without the bearer token.
    pub async fn audio(&self, who: &Person, media_id: &str) -> Vec<u8> {
        let url = format!("{}/v1/media/{media_id}/audio", self.base);
        let first = self
            .http
            .get(&url)
            .bearer_auth(&who.token)
            .send()
            .await
            .unwrap();
        assert_eq!(first.status(), StatusCode::FOUND, "{url}");
        let location = first.headers()["location"].to_str().unwrap().to_owned();
        self.play(&location).await
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
