//! The S3 object store against a real S3-speaking server (moto on loopback;
//! see `aws_support`). Each test works in its own fresh bucket.
//!
//! moto does not verify presigned signatures, so these tests check that the
//! URLs work and what they sign, not that S3 enforces them.

mod aws_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_s3::config::{Credentials, Region, SharedCredentialsProvider};
use sori_pipeline::store::s3::S3Store;
use sori_pipeline::store::StoreError;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fixtures/speech-5.1-48k.wav"
);

async fn store() -> S3Store {
    aws_support::init().await;
    let bucket = aws_support::new_bucket().await;
    S3Store::from_env(&bucket).await.expect("store from env")
}

fn fixture() -> Vec<u8> {
    std::fs::read(FIXTURE).expect("fixture speech-5.1-48k.wav (run scripts/make-fixtures.sh)")
}

fn temp_path(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

#[tokio::test]
async fn put_get_head_delete_round_trip() {
    let store = store().await;
    let dir = tempfile::tempdir().unwrap();
    let key = "originals/round trip+1.wav";

    store
        .put_file(key, Path::new(FIXTURE), "audio/wav")
        .await
        .unwrap();

    let meta = store.head(key).await.unwrap().expect("object after put");
    let original = fixture();
    assert_eq!(meta.size, original.len() as u64);
    assert_eq!(meta.content_type.as_deref(), Some("audio/wav"));

    let out = temp_path(&dir, "copy.wav");
    let size = store.get_to_file(key, &out).await.unwrap();
    assert_eq!(size, original.len() as u64);
    assert!(
        std::fs::read(&out).unwrap() == original,
        "downloaded bytes differ"
    );

    store.delete(key).await.unwrap();
    assert_eq!(store.head(key).await.unwrap(), None);
    // Deleting again is not an error (S3 semantics).
    store.delete(key).await.unwrap();
}

#[tokio::test]
async fn missing_keys() {
    let store = store().await;
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(store.head("originals/nothing").await.unwrap(), None);

    let out = temp_path(&dir, "nothing");
    match store.get_to_file("originals/nothing", &out).await {
        Err(StoreError::NotFound(key)) => assert_eq!(key, "originals/nothing"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(!out.exists(), "a failed get leaves no file behind");
}

#[tokio::test]
async fn put_of_a_missing_local_file_is_io() {
    let store = store().await;
    let err = store
        .put_file("k", Path::new("no/such/file.wav"), "audio/wav")
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Io(_)), "got {err:?}");
}

#[tokio::test]
async fn missing_bucket_is_permanent() {
    aws_support::init().await;
    let store = S3Store::from_env(&aws_support::unique("no-such-bucket"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = store
        .get_to_file("k", &temp_path(&dir, "k"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Permanent(_)), "got {err:?}");
}

#[tokio::test]
async fn unreachable_server_is_transient() {
    aws_support::init().await;
    // A port nothing listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Built by hand: the environment's AWS_ENDPOINT_URL would override an
    // endpoint set on a loaded configuration.
    let config = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "test", "test", None, None, "tests",
        )))
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .build();
    let store = S3Store::new(&config, "bucket").unwrap();
    let err = store.head("k").await.unwrap_err();
    assert!(matches!(err, StoreError::Transient(_)), "got {err:?}");
}

#[tokio::test]
async fn presigned_put_then_get() {
    let store = store().await;
    let body = fixture();
    let key = "originals/presigned";
    let put = store
        .presign_put(
            key,
            "audio/wav",
            body.len() as u64,
            Duration::from_secs(300),
        )
        .await
        .unwrap();
    assert_eq!(put.method, "PUT");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!(
        (put.expires_at - now_ms - 300_000).abs() < 5_000,
        "expires_at {}",
        put.expires_at
    );

    let http = reqwest::Client::new();
    let mut request = http.put(&put.url).body(body.clone());
    for (name, value) in &put.headers {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    assert!(response.status().is_success(), "PUT: {}", response.status());

    let meta = store
        .head(key)
        .await
        .unwrap()
        .expect("object after presigned PUT");
    assert_eq!(meta.size, body.len() as u64);
    assert_eq!(meta.content_type.as_deref(), Some("audio/wav"));

    let get = sori_pipeline::store::ObjectStore::S3(store.clone())
        .presign_get(key, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(get.method, "GET");
    let response = http.get(&get.url).send().await.unwrap();
    assert!(response.status().is_success(), "GET: {}", response.status());
    assert!(
        response.bytes().await.unwrap() == body,
        "presigned GET bytes differ"
    );
}

#[tokio::test]
async fn presigned_put_signs_type_and_length() {
    let store = store().await;
    let put = store
        .presign_put("originals/x", "audio/mp4", 12_345, Duration::from_secs(60))
        .await
        .unwrap();
    let signed = query_param(&put.url, "X-Amz-SignedHeaders")
        .expect("X-Amz-SignedHeaders")
        .replace("%3B", ";");
    let signed: Vec<&str> = signed.split(';').collect();
    assert!(signed.contains(&"content-length"), "signed: {signed:?}");
    assert!(signed.contains(&"content-type"), "signed: {signed:?}");
    assert!(query_param(&put.url, "X-Amz-Signature").is_some());
    assert!(
        !put.url.contains("x-amz-checksum"),
        "no checksum of an empty body in a presigned URL: {}",
        put.url
    );

    let header = |name: &str| {
        put.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header("content-type"), Some("audio/mp4"));
    assert_eq!(header("content-length"), Some("12345"));
}

/// The raw (still percent-encoded) value of a query parameter.
fn query_param<'a>(url: &'a str, name: &str) -> Option<&'a str> {
    let query = url.split_once('?')?.1;
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

#[tokio::test]
async fn deleting_a_prefix_removes_every_version_under_it_and_nothing_beside() {
    let store = store().await;
    let wav = Path::new(FIXTURE);
    let gone = [
        "media/m1/v1/audio.opus",
        "media/m1/v1/waveform.json",
        "media/m1/v7/audio.opus",
    ];
    let kept = [
        "media/m10/v1/audio.opus",
        "media/m2/v1/audio.opus",
        "originals/m1",
    ];
    for key in gone.iter().chain(&kept) {
        store.put_file(key, wav, "audio/wav").await.unwrap();
    }
    store.delete_prefix("media/m1/").await.unwrap();
    for key in gone {
        assert_eq!(store.head(key).await.unwrap(), None, "{key} left");
    }
    for key in kept {
        assert!(store.head(key).await.unwrap().is_some(), "{key} deleted");
    }
    // An empty prefix is nothing to do.
    store.delete_prefix("media/m1/").await.unwrap();
}
