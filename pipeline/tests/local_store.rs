//! The local object store: atomic writes, exact-length uploads, signed URLs.

use sori_pipeline::store::local::{
    load_or_create_secret, now_ms, SignatureError, SignedRequest, UploadError,
};
use sori_pipeline::store::{LocalStore, ObjectStore, StoreError};
use std::time::Duration;

fn store(dir: &std::path::Path) -> LocalStore {
    LocalStore::new(
        dir.join("blobs"),
        b"0123456789abcdef0123456789abcdef",
        "http://127.0.0.1:8080/",
    )
    .unwrap()
}

fn query_param<'a>(url: &'a str, name: &str) -> &'a str {
    let query = url.split_once('?').unwrap().1;
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .unwrap()
}

#[tokio::test]
async fn put_get_head_delete_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let s = ObjectStore::Local(store(dir.path()));
    let src = dir.path().join("src.bin");
    std::fs::write(&src, b"hello blobs").unwrap();
    s.put_file("media/m/v1/audio.opus", &src, "audio/ogg")
        .await
        .unwrap();
    let meta = s.head("media/m/v1/audio.opus").await.unwrap().unwrap();
    assert_eq!(meta.size, 11);
    assert_eq!(meta.content_type.as_deref(), Some("audio/ogg; codecs=opus"));
    let dst = dir.path().join("dst.bin");
    assert_eq!(
        s.get_to_file("media/m/v1/audio.opus", &dst).await.unwrap(),
        11
    );
    assert_eq!(std::fs::read(&dst).unwrap(), b"hello blobs");
    s.delete("media/m/v1/audio.opus").await.unwrap();
    s.delete("media/m/v1/audio.opus").await.unwrap();
    assert!(s.head("media/m/v1/audio.opus").await.unwrap().is_none());
    assert!(matches!(
        s.get_to_file("media/m/v1/audio.opus", &dst).await,
        Err(StoreError::NotFound(_))
    ));
    // No temporary files are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("blobs/media/m/v1"))
        .unwrap()
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn escaping_keys_are_refused_by_every_operation() {
    let dir = tempfile::tempdir().unwrap();
    let s = ObjectStore::Local(store(dir.path()));
    let src = dir.path().join("src.bin");
    std::fs::write(&src, b"x").unwrap();
    for key in [
        "../outside",
        "/etc/passwd",
        "a/../../outside",
        "a\\..\\b",
        "a\0b",
        ".hidden",
        "a//b",
    ] {
        assert!(
            matches!(
                s.put_file(key, &src, "x").await,
                Err(StoreError::Permanent(_))
            ),
            "{key:?}"
        );
        assert!(
            matches!(s.head(key).await, Err(StoreError::Permanent(_))),
            "{key:?}"
        );
        assert!(
            matches!(s.delete(key).await, Err(StoreError::Permanent(_))),
            "{key:?}"
        );
        assert!(
            s.presign_get(key, Duration::from_secs(60)).await.is_err(),
            "{key:?}"
        );
    }
    assert!(!dir.path().join("outside").exists());
}

/// The file names directly under the store's blob directory in `dir`.
fn blob_names(dir: &std::path::Path) -> Vec<std::ffi::OsString> {
    std::fs::read_dir(dir.join("blobs"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect()
}

#[tokio::test]
async fn uploads_must_have_exactly_the_signed_length() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let mut long: &[u8] = b"0123456789";
    assert!(matches!(
        s.put_reader("k", &mut long, 5).await,
        Err(UploadError::TooLarge { expected: 5 })
    ));
    let mut short: &[u8] = b"012";
    assert!(matches!(
        s.put_reader("k", &mut short, 5).await,
        Err(UploadError::TooShort {
            expected: 5,
            got: 3
        })
    ));
    assert!(
        s.head("k").await.unwrap().is_none(),
        "a refused upload leaves nothing"
    );
    let mut exact: &[u8] = b"01234";
    assert_eq!(s.put_reader("k", &mut exact, 5).await.unwrap(), 5);
    assert_eq!(s.head("k").await.unwrap().unwrap().size, 5);
    let names = blob_names(dir.path());
    assert_eq!(names, ["k"], "no temporary files left");
}

#[tokio::test]
async fn signatures_bind_method_key_type_length_and_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let p = s
        .presign_put("originals/abc", "audio/mp4", 1234, Duration::from_secs(600))
        .await
        .unwrap();
    assert!(
        p.url
            .starts_with("http://127.0.0.1:8080/v1/blobs/originals/abc?expires="),
        "{}",
        p.url
    );
    assert_eq!(p.method, "PUT");
    assert!(p
        .headers
        .contains(&("content-type".into(), "audio/mp4".into())));
    assert!(p
        .headers
        .contains(&("content-length".into(), "1234".into())));
    let sig = query_param(&p.url, "sig").to_owned();
    let expires: i64 = query_param(&p.url, "expires").parse().unwrap();
    assert_eq!(expires, p.expires_at);
    let good = SignedRequest {
        method: "PUT",
        key: "originals/abc",
        content_type: "audio/mp4",
        content_length: 1234,
        expires,
        sig: &sig,
    };
    assert_eq!(s.verify(&good, now_ms()), Ok(()));
    let invalid = Err(SignatureError::Invalid);
    assert_eq!(
        s.verify(
            &SignedRequest {
                method: "GET",
                ..good
            },
            now_ms()
        ),
        invalid
    );
    assert_eq!(
        s.verify(
            &SignedRequest {
                key: "originals/abd",
                ..good
            },
            now_ms()
        ),
        invalid
    );
    assert_eq!(
        s.verify(
            &SignedRequest {
                content_type: "audio/mpeg",
                ..good
            },
            now_ms()
        ),
        invalid
    );
    assert_eq!(
        s.verify(
            &SignedRequest {
                content_length: 1235,
                ..good
            },
            now_ms()
        ),
        invalid
    );
    assert_eq!(
        s.verify(
            &SignedRequest {
                expires: expires + 1,
                ..good
            },
            now_ms()
        ),
        invalid
    );
    let mut tampered = sig.clone().into_bytes();
    tampered[0] = if tampered[0] == b'0' { b'1' } else { b'0' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_eq!(
        s.verify(
            &SignedRequest {
                sig: &tampered,
                ..good
            },
            now_ms()
        ),
        invalid
    );
    assert_eq!(
        s.verify(&SignedRequest { sig: "zz", ..good }, now_ms()),
        invalid
    );
    assert_eq!(s.verify(&good, expires + 1), Err(SignatureError::Expired));
    // Another secret does not accept this signature.
    let other = LocalStore::new(
        dir.path().join("b2"),
        b"another secret of 32 bytes......",
        "http://x",
    )
    .unwrap();
    assert_eq!(other.verify(&good, now_ms()), invalid);
}

#[test]
fn the_secret_is_created_once_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data/secret");
    let first = load_or_create_secret(&path).unwrap();
    assert_eq!(first.len(), 32);
    assert_eq!(load_or_create_secret(&path).unwrap(), first);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "secret readable by others: {mode:o}");
    }
}

#[tokio::test]
async fn a_new_object_is_written_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let mut first: &[u8] = b"first";
    assert_eq!(s.put_new_reader("k", &mut first, 5).await.unwrap(), 5);
    let mut second: &[u8] = b"other";
    assert!(matches!(
        s.put_new_reader("k", &mut second, 5).await,
        Err(UploadError::Exists)
    ));
    assert_eq!(std::fs::read(s.path_of("k").unwrap()).unwrap(), b"first");
    let names = blob_names(dir.path());
    assert_eq!(names, ["k"], "no temporary files left");
}

#[tokio::test]
async fn an_upload_dropped_midway_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    // A body that sends two bytes and then stalls forever.
    let (mut client, mut server) = tokio::io::duplex(64);
    tokio::io::AsyncWriteExt::write_all(&mut client, b"ab")
        .await
        .unwrap();
    let upload = s.put_new_reader("k", &mut server, 5);
    let timed_out = tokio::time::timeout(std::time::Duration::from_millis(200), upload).await;
    assert!(timed_out.is_err());
    let names = blob_names(dir.path());
    assert!(names.is_empty(), "left behind: {names:?}");
}
