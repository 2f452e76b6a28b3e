//! Presigned URLs are really enforced: against s3s-fs, an S3 server that
//! verifies SigV4 signatures (moto does not), a client cannot upload another
//! content type, more or fewer bytes than declared, after expiry, or with a
//! tampered URL (another key, a changed signature, a stretched expiry). `scripts/setup.sh test` installs s3s-fs; the test starts its
//! own instance on a free port and fails loudly when the binary is missing.

use aws_config::BehaviorVersion;
use aws_sdk_s3::config::{Credentials, Region};
use sori_pipeline::store::s3::S3Store;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ACCESS_KEY: &str = "sori-test-access";
const SECRET_KEY: &str = "sori-test-secret-key-0123456789";

/// An s3s-fs process serving a temporary directory; killed on drop.
struct S3sFs {
    child: Child,
    endpoint: String,
    root: tempfile::TempDir,
}

impl Drop for S3sFs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn s3s_fs_binary() -> PathBuf {
    if let Ok(path) = std::env::var("S3S_FS_BIN") {
        return PathBuf::from(path);
    }
    let cargo_bin = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo"))
        .join("bin/s3s-fs");
    if cargo_bin.exists() {
        cargo_bin
    } else {
        PathBuf::from("s3s-fs")
    }
}

async fn start_s3s_fs() -> S3sFs {
    let root = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(s3s_fs_binary())
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
        .arg(root.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("s3s-fs is required (scripts/setup.sh test installs it): {e}"));
    let endpoint = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "s3s-fs did not start on {endpoint}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    S3sFs {
        child,
        endpoint,
        root,
    }
}

async fn store_on(server: &S3sFs, bucket: &str) -> S3Store {
    std::fs::create_dir_all(server.root.path().join(bucket)).unwrap();
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&server.endpoint)
        .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"))
        .load()
        .await;
    S3Store::new(&config, bucket).unwrap()
}

/// PUTs `body` to a presigned request, with the signed headers except where
/// `content_type` overrides the type.
async fn put(url: &str, headers: &[(String, String)], content_type: &str, body: Vec<u8>) -> u16 {
    let client = reqwest::Client::new();
    let mut req = client.put(url);
    for (name, value) in headers {
        if !name.eq_ignore_ascii_case("content-type")
            && !name.eq_ignore_ascii_case("content-length")
        {
            req = req.header(name, value);
        }
    }
    req.header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// `url` with the value of query parameter `name` replaced by `change(value)`.
fn tamper_query(url: &str, name: &str, change: impl Fn(&str) -> String) -> String {
    let (base, query) = url.split_once('?').expect("a presigned URL has a query");
    let mut found = false;
    let params: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) if key == name => {
                found = true;
                format!("{key}={}", change(value))
            }
            _ => pair.to_owned(),
        })
        .collect();
    assert!(found, "{url} has no {name}");
    format!("{base}?{}", params.join("&"))
}

#[tokio::test]
async fn presigned_uploads_are_bound_to_type_length_and_expiry() {
    let server = start_s3s_fs().await;
    let store = store_on(&server, "sori-media").await;
    let body = vec![7u8; 1000];
    let ttl = Duration::from_secs(300);

    let ok = store
        .presign_put("originals/a", "audio/mp4", 1000, ttl)
        .await
        .unwrap();
    assert_eq!(
        put(&ok.url, &ok.headers, "audio/mp4", body.clone()).await,
        200
    );
    assert_eq!(store.head("originals/a").await.unwrap().unwrap().size, 1000);
    // The URL works once: other bytes of the same length cannot replace the
    // upload (If-None-Match: * is signed), nor can the header be left out.
    assert!(ok
        .headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("if-none-match") && v == "*"));
    assert_eq!(
        put(&ok.url, &ok.headers, "audio/mp4", vec![8u8; 1000]).await,
        412
    );
    let without: Vec<_> = ok
        .headers
        .iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case("if-none-match"))
        .cloned()
        .collect();
    assert_eq!(
        put(&ok.url, &without, "audio/mp4", vec![8u8; 1000]).await,
        403
    );
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("a");
    store.get_to_file("originals/a", &copy).await.unwrap();
    assert_eq!(std::fs::read(&copy).unwrap(), body);

    // Another content type than the one signed.
    let p = store
        .presign_put("originals/b", "audio/mp4", 1000, ttl)
        .await
        .unwrap();
    assert_eq!(
        put(&p.url, &p.headers, "video/mp4", body.clone()).await,
        403
    );
    // More bytes than declared, and fewer.
    let p = store
        .presign_put("originals/c", "audio/mp4", 1000, ttl)
        .await
        .unwrap();
    assert_eq!(
        put(&p.url, &p.headers, "audio/mp4", vec![7u8; 5000]).await,
        403
    );
    assert_eq!(
        put(&p.url, &p.headers, "audio/mp4", vec![7u8; 10]).await,
        403
    );
    // A tampered URL (another key under the same signature).
    let tampered = p.url.replace("originals/c", "originals/evil");
    assert_eq!(
        put(&tampered, &p.headers, "audio/mp4", body.clone()).await,
        403
    );
    // A tampered signature, and an expiry stretched past the signed one.
    let p = store
        .presign_put("originals/e", "audio/mp4", 1000, ttl)
        .await
        .unwrap();
    let forged = tamper_query(&p.url, "X-Amz-Signature", |sig| {
        let flipped = if sig.starts_with('0') { "1" } else { "0" };
        format!("{flipped}{}", &sig[1..])
    });
    assert_eq!(
        put(&forged, &p.headers, "audio/mp4", body.clone()).await,
        403
    );
    let stretched = tamper_query(&p.url, "X-Amz-Expires", |_| "604800".to_owned());
    assert_eq!(
        put(&stretched, &p.headers, "audio/mp4", body.clone()).await,
        403
    );
    // An expired URL.
    let p = store
        .presign_put("originals/d", "audio/mp4", 1000, Duration::from_secs(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(put(&p.url, &p.headers, "audio/mp4", body).await, 403);

    for refused in [
        "originals/b",
        "originals/c",
        "originals/evil",
        "originals/e",
        "originals/d",
    ] {
        assert!(
            store.head(refused).await.unwrap().is_none(),
            "{refused} was stored"
        );
    }
}

#[tokio::test]
async fn presigned_downloads_expire_and_cannot_be_redirected() {
    let server = start_s3s_fs().await;
    let store = store_on(&server, "sori-media").await;
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), b"opus bytes").unwrap();
    store
        .put_file("media/x/v1/audio.opus", file.path(), "audio/ogg")
        .await
        .unwrap();
    store
        .put_file("media/y/v1/audio.opus", file.path(), "audio/ogg")
        .await
        .unwrap();

    let get = sori_pipeline::store::ObjectStore::S3(store.clone())
        .presign_get("media/x/v1/audio.opus", Duration::from_secs(1))
        .await
        .unwrap();
    let response = reqwest::get(&get.url).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().as_ref(), b"opus bytes");
    let other = get.url.replace("media/x/", "media/y/");
    assert_eq!(reqwest::get(&other).await.unwrap().status(), 403);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(reqwest::get(&get.url).await.unwrap().status(), 403);
}
