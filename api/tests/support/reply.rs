//! Answers of the router: as they came ([`Fetched`]) or parsed as JSON
//! ([`Reply`]), with the checks tests make of problems, lists and signed
//! media URLs.

use super::PUBLIC_URL;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;
use http_body_util::BodyExt;
use serde_json::Value;

/// The base every problem `type` starts with.
const PROBLEMS: &str = "https://sori.dev/problems/";

/// A plain answer: status, headers and bytes.
pub struct Fetched {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Fetched {
    pub(super) async fn read(response: Response) -> Self {
        let (parts, body) = response.into_parts();
        Self {
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await.unwrap().to_bytes().to_vec(),
        }
    }

    /// A header's value; fails when absent.
    pub fn header(&self, name: header::HeaderName) -> &str {
        self.header_if(name.clone())
            .unwrap_or_else(|| panic!("no {name} in {:?}", self.headers))
    }

    /// A header's value, if present.
    pub fn header_if(&self, name: header::HeaderName) -> Option<&str> {
        header_of(&self.headers, name)
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

fn header_of(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).map(|v| v.to_str().unwrap())
}

/// A response, its body parsed as JSON (`Null` when empty or not JSON).
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub content_type: String,
    pub json: Value,
    /// Seconds of `Retry-After`, when the answer has one (429s).
    pub retry_after: Option<u64>,
}

impl From<Fetched> for Reply {
    fn from(fetched: Fetched) -> Self {
        let json = fetched.json();
        let content_type = fetched
            .header_if(header::CONTENT_TYPE)
            .unwrap_or_default()
            .to_owned();
        let retry_after = fetched
            .header_if(header::RETRY_AFTER)
            .map(|v| v.parse().unwrap());
        Self {
            status: fetched.status,
            headers: fetched.headers,
            content_type,
            json,
            retry_after,
        }
    }
}

impl Reply {
    /// A header's value, if present.
    pub fn header(&self, name: header::HeaderName) -> Option<&str> {
        header_of(&self.headers, name)
    }

    /// The problem's kind (its `type` after the problems base), after
    /// checking the content type and that the body names the status.
    pub fn problem(&self) -> &str {
        assert_eq!(
            self.content_type, "application/problem+json",
            "{}",
            self.json
        );
        assert_eq!(self.json["status"], self.status.as_u16(), "{}", self.json);
        let kind = self.json["type"].as_str().unwrap_or_default();
        kind.strip_prefix(PROBLEMS)
            .unwrap_or_else(|| panic!("problem type {kind:?}"))
    }

    /// The fields a 422 validation problem names, in order.
    pub fn fields(&self) -> Vec<String> {
        assert_eq!(
            self.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            self.json
        );
        assert_eq!(self.problem(), "validation");
        self.json["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The items of a 200 list page.
    pub fn items(&self) -> &Vec<Value> {
        assert_eq!(self.status, StatusCode::OK, "{}", self.json);
        self.json["items"].as_array().expect("a list page")
    }

    /// The ids of a 200 list page's items, in order.
    pub fn ids(&self) -> Vec<String> {
        self.strings("id")
    }

    /// One string field of each item of a 200 list page, in order.
    pub fn strings(&self, field: &str) -> Vec<String> {
        self.items()
            .iter()
            .map(|item| item[field].as_str().unwrap().to_owned())
            .collect()
    }

    /// The `id` of what a successful answer created or returned.
    pub fn id(&self) -> String {
        assert!(self.status.is_success(), "{}: {}", self.status, self.json);
        self.json["id"].as_str().unwrap().to_owned()
    }
}

/// Asserts a problem response of `status` whose `type` is `kind`.
pub fn assert_problem(r: &Reply, status: StatusCode, kind: &str) {
    assert_eq!(r.status, status, "{}", r.json);
    assert_eq!(r.problem(), kind);
}

/// Asserts an item carries the signed URLs of `media`'s outputs, version 1
/// (as [`super::Api::media`] makes them): `audio_url` (the Ogg Opus one),
/// every variant in `audio_urls`, and `waveform_url`.
pub fn assert_clip_urls(item: &Value, media: &str) {
    let base = format!("{PUBLIC_URL}/v1/blobs/media/{media}/v1/");
    assert_eq!(item["audio_url"], item["audio_urls"]["opus"], "{item}");
    for (variant, file) in [
        ("opus", "audio.opus"),
        ("caf", "audio.caf"),
        ("webm", "audio.webm"),
    ] {
        let url = item["audio_urls"][variant].as_str().unwrap_or_default();
        assert!(
            url.starts_with(&format!("{base}{file}?expires=")),
            "{variant}: {item}"
        );
        assert!(url.contains("&sig="), "{url}");
    }
    let waveform = item["waveform_url"].as_str().unwrap_or_default();
    assert!(
        waveform.starts_with(&format!("{base}waveform.json?expires=")),
        "{item}"
    );
}
