//! A plain HTTP client of the real `sori` binary for the reliability tests
//! (backup, crash, log secrets). Every call answers `Err` instead of
//! panicking when the server is gone, so a test can kill it mid-request.
// Each test binary compiles this module and uses a different part of it.
#![allow(dead_code)]

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

pub const PASSWORD: &str = "correct horse battery";

/// One API base URL.
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

pub type Answer = Result<(StatusCode, Value), String>;

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

    /// A JSON request; the status and the JSON body (`null` if none), or the
    /// transport error.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
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

    /// A request that must answer `want`; `Err` on a transport error or another status.
    pub async fn expect(
        &self,
        want: StatusCode,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let (status, json) = self.call(method.clone(), path, token, body).await?;
        if status == want {
            Ok(json)
        } else {
            Err(format!("{method} {path}: {status} {json}"))
        }
    }

    pub async fn sign_up(&self, handle: &str) -> Result<Person, String> {
        let body = json!({"handle": handle, "password": PASSWORD, "display_name": handle});
        let session = self
            .expect(
                StatusCode::CREATED,
                Method::POST,
                "/v1/auth/signup",
                None,
                Some(body),
            )
            .await?;
        Ok(Person {
            id: session["user_id"].as_str().unwrap_or_default().to_owned(),
            handle: handle.to_owned(),
            token: session["token"].as_str().unwrap_or_default().to_owned(),
        })
    }

    /// `POST /v1/media` for an upload of `size` bytes: the media id and the upload instructions.
    pub async fn create_media(&self, who: &Person, size: usize) -> Result<(String, Value), String> {
        let body = json!({"content_type": "audio/mp4", "size_bytes": size});
        let created = self
            .expect(
                StatusCode::CREATED,
                Method::POST,
                "/v1/media",
                Some(&who.token),
                Some(body),
            )
            .await?;
        let id = created["id"].as_str().unwrap_or_default().to_owned();
        Ok((id, created["upload"].clone()))
    }

    /// Creates a media and PUTs `bytes` exactly as the answer says; the media id.
    pub async fn upload(&self, who: &Person, bytes: Vec<u8>) -> Result<String, String> {
        let (id, upload) = self.create_media(who, bytes.len()).await?;
        let method: Method = upload["method"].as_str().unwrap_or("PUT").parse().unwrap();
        let mut put = self
            .http
            .request(method, upload["url"].as_str().unwrap_or_default())
            .body(bytes);
        for (name, value) in upload["headers"].as_object().into_iter().flatten() {
            put = put.header(name, value.as_str().unwrap_or_default());
        }
        let answer = put.send().await.map_err(|e| e.to_string())?;
        if !answer.status().is_success() {
            return Err(format!("upload PUT: {}", answer.status()));
        }
        Ok(id)
    }

    /// Uploads the fixture `name` and says complete; the media id.
    pub async fn upload_fixture(&self, who: &Person, fixture: &Path) -> Result<String, String> {
        let bytes = std::fs::read(fixture).map_err(|e| e.to_string())?;
        let id = self.upload(who, bytes).await?;
        let path = format!("/v1/media/{id}/complete");
        self.expect(
            StatusCode::ACCEPTED,
            Method::POST,
            &path,
            Some(&who.token),
            None,
        )
        .await?;
        Ok(id)
    }

    /// A post of `media_id`; the post id.
    pub async fn post(
        &self,
        who: &Person,
        media_id: &str,
        caption: &str,
    ) -> Result<String, String> {
        let body = json!({"media_id": media_id, "caption": caption});
        let post = self
            .expect(
                StatusCode::CREATED,
                Method::POST,
                "/v1/posts",
                Some(&who.token),
                Some(body),
            )
            .await?;
        Ok(post["id"].as_str().unwrap_or_default().to_owned())
    }

    /// The media's state, polled until `ready` (panics on `failed` or after 60 s).
    pub async fn wait_ready(&self, who: &Person, media_id: &str) -> Value {
        let path = format!("/v1/media/{media_id}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let media = self
                .expect(StatusCode::OK, Method::GET, &path, Some(&who.token), None)
                .await
                .unwrap();
            match media["state"].as_str().unwrap_or_default() {
                "ready" => return media,
                "failed" => panic!("media failed: {media}"),
                state => assert!(Instant::now() < deadline, "media still {state} after 60 s"),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The processed audio bytes of a media (embedded mode serves them directly).
    pub async fn audio(&self, who: &Person, media_id: &str) -> Vec<u8> {
        let url = format!("{}/v1/media/{media_id}/audio", self.base);
        let r = self
            .http
            .get(&url)
            .bearer_auth(&who.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{url}");
        r.bytes().await.unwrap().to_vec()
    }
}
