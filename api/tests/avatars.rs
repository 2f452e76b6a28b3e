//! Avatars (`PUT` / `DELETE /v1/me/avatar`) on the backend `SORI_TEST_DB`
//! names, with the local store: a phone photo with EXIF orientation and a
//! GPS position is uploaded as a client does; the stored variants are
//! upright squares with no metadata, the upload is gone, and the signed
//! `avatar_url` plays in every author object without a token. Bombs, HEIC
//! and others' media are refused with their reason.

mod support;

use axum::http::{header, Method, StatusCode};
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use serde_json::{json, Value};
use std::io::Cursor;
use support::{assert_problem, Api, User};

/// EXIF (big-endian TIFF) with an orientation and a GPS latitude: IFD0 at
/// 8 holds Orientation and the GPS IFD pointer; the GPS IFD at 38 holds
/// GPSLatitudeRef "N".
fn exif(orientation: u16) -> Vec<u8> {
    let mut t = b"MM\0\x2a\0\0\0\x08".to_vec();
    t.extend_from_slice(&2u16.to_be_bytes());
    t.extend_from_slice(&[0x01, 0x12, 0, 3, 0, 0, 0, 1]);
    t.extend_from_slice(&orientation.to_be_bytes());
    t.extend_from_slice(&[0, 0]);
    t.extend_from_slice(&[0x88, 0x25, 0, 4, 0, 0, 0, 1, 0, 0, 0, 38]);
    t.extend_from_slice(&[0, 0, 0, 0]);
    t.extend_from_slice(&1u16.to_be_bytes());
    t.extend_from_slice(&[0x00, 0x01, 0, 2, 0, 0, 0, 2, b'N', 0, 0, 0]);
    t.extend_from_slice(&[0, 0, 0, 0]);
    let mut app1 = vec![0xff, 0xe1];
    app1.extend_from_slice(&((t.len() + 8) as u16).to_be_bytes());
    app1.extend_from_slice(b"Exif\0\0");
    app1.extend_from_slice(&t);
    app1
}

/// A 400×200 JPEG, left half red and right half blue, tagged as shot
/// turned a quarter clockwise (orientation 6) with a GPS position: upright
/// it is 200×400, red on top.
fn phone_photo() -> Vec<u8> {
    let img = RgbImage::from_fn(400, 200, |x, _| {
        if x < 200 {
            Rgb([230, 20, 20])
        } else {
            Rgb([20, 20, 230])
        }
    });
    let mut jpeg = Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(img)
        .write_to(&mut jpeg, ImageFormat::Jpeg)
        .unwrap();
    let jpeg = jpeg.into_inner();
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&exif(6));
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// Uploads `bytes` as an image of `who` and makes it their avatar.
async fn set_avatar(api: &Api, who: &User, bytes: &[u8], content_type: &str) -> support::Reply {
    let (media, done) = api.upload(who, content_type, bytes).await;
    assert_eq!(done.status, StatusCode::ACCEPTED, "{}", done.json);
    api.call(
        Method::PUT,
        "/v1/me/avatar",
        Some(&who.token),
        json!({ "media_id": media }),
    )
    .await
}

fn is_red(p: &Rgb<u8>) -> bool {
    p[0] > 150 && p[2] < 100
}

fn is_blue(p: &Rgb<u8>) -> bool {
    p[2] > 150 && p[0] < 100
}

#[tokio::test]
async fn a_phone_photo_becomes_an_upright_avatar_without_metadata() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let photo = phone_photo();
    assert!(photo.windows(4).any(|w| w == b"Exif"));
    let (media, done) = api.upload(&alice, "image/jpeg", &photo).await;
    assert_eq!(done.status, StatusCode::ACCEPTED, "{}", done.json);
    // The stored size is the upright one.
    assert_eq!(
        (done.json["width"].as_i64(), done.json["height"].as_i64()),
        (Some(200), Some(400))
    );

    let r = api
        .call(
            Method::PUT,
            "/v1/me/avatar",
            Some(&alice.token),
            json!({ "media_id": media }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let url = r.json["avatar_url"]
        .as_str()
        .expect("an avatar URL")
        .to_owned();
    let got = api.fetch(Method::GET, &url, &[]).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.headers[header::CONTENT_TYPE], "image/jpeg");
    assert!(
        !got.body.windows(4).any(|w| w == b"Exif"),
        "metadata left in"
    );
    assert!(
        !got.body.windows(4).any(|w| w == b"MM\0\x2a"),
        "a TIFF block left in"
    );
    let avatar = image::load_from_memory(&got.body).unwrap().to_rgb8();
    assert_eq!(avatar.dimensions(), (256, 256));
    assert!(
        is_red(avatar.get_pixel(128, 20)),
        "top should be red (upright)"
    );
    assert!(
        is_blue(avatar.get_pixel(128, 236)),
        "bottom should be blue (upright)"
    );
    // The upload, GPS and all, is gone.
    let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM media WHERE id = $1")
        .bind(&media)
        .fetch_one(api.t.db.pool())
        .await
        .unwrap();
    assert_eq!(left, 0);
    assert!(!api.blobs.path().join(format!("images/{media}")).exists());
    let sizes: Vec<u32> = std::fs::read_dir(api.blobs.path().join(format!("avatars/{}", alice.id)))
        .unwrap()
        .flat_map(|version| std::fs::read_dir(version.unwrap().path()).unwrap())
        .map(|f| {
            let bytes = std::fs::read(f.unwrap().path()).unwrap();
            image::load_from_memory(&bytes).unwrap().width()
        })
        .collect::<std::collections::BTreeSet<u32>>()
        .into_iter()
        .collect();
    assert_eq!(sizes, [64, 256, 512]);
}

/// Every author object `bob` gets that names `alice`.
async fn authors_of_alice(
    api: &Api,
    alice: &User,
    bob: &User,
    post: &str,
    room: &str,
) -> Vec<Value> {
    let feed = api.get("/v1/feed", bob).await.json;
    let comments = api
        .get(&format!("/v1/posts/{post}/comments"), bob)
        .await
        .json;
    let search = api.get("/v1/search?q=alice&kind=users", bob).await.json;
    let following = api
        .get(&format!("/v1/users/{}/following", bob.id), bob)
        .await
        .json;
    let rooms = api.get("/v1/chats", bob).await.json;
    let notes = api.get("/v1/notifications", bob).await.json;
    let lists = api
        .get(&format!("/v1/users/{}/playlists", alice.id), bob)
        .await
        .json;
    let profile = api.get(&format!("/v1/users/{}", alice.id), bob).await.json;
    assert_eq!(rooms["items"][0]["id"], room);
    vec![
        feed["items"][0]["author"].clone(),
        comments["items"][0]["author"].clone(),
        search["items"][0].clone(),
        following["items"][0].clone(),
        rooms["items"][0]["other"].clone(),
        notes["items"][0]["actor"].clone(),
        lists["items"][0]["owner"].clone(),
        profile,
    ]
}

#[tokio::test]
async fn every_author_object_carries_the_avatar_and_a_change_replaces_it() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    api.follow(&bob, &alice).await;
    api.follow(&alice, &bob).await;
    let post = api.ready_post(&alice).await;
    let r = api
        .post(
            &format!("/v1/posts/{post}/comments"),
            &alice,
            json!({"text": "me"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let room = api.room(&alice, &bob).await;
    let r = api
        .post(
            "/v1/playlists",
            &alice,
            json!({"title": "open", "public": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    for author in authors_of_alice(&api, &alice, &bob, &post, &room).await {
        assert!(author["avatar_url"].is_null(), "{author}");
    }

    let r = set_avatar(&api, &alice, &phone_photo(), "image/jpeg").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let first = api.get("/v1/me", &alice).await.json["avatar_url"].clone();
    for author in authors_of_alice(&api, &alice, &bob, &post, &room).await {
        assert_eq!(author["id"], alice.id.as_str(), "{author}");
        let url = author["avatar_url"]
            .as_str()
            .unwrap_or_else(|| panic!("no avatar: {author}"));
        let got = api.fetch(Method::GET, url, &[]).await;
        assert_eq!(got.status, StatusCode::OK, "{url}");
    }

    // A new picture is a new version; the old one's objects go.
    let png = {
        let mut out = Cursor::new(Vec::new());
        RgbImage::from_pixel(300, 300, Rgb([0, 200, 0]))
            .write_to(&mut out, ImageFormat::Png)
            .unwrap();
        out.into_inner()
    };
    let r = set_avatar(&api, &alice, &png, "image/png").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_ne!(r.json["avatar_url"], first);
    let versions = std::fs::read_dir(api.blobs.path().join(format!("avatars/{}", alice.id)))
        .unwrap()
        .count();
    assert_eq!(versions, 1);
    let got = api.fetch(Method::GET, first.as_str().unwrap(), &[]).await;
    assert_eq!(got.status, StatusCode::NOT_FOUND);

    let r = api.delete("/v1/me/avatar", &alice).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(api.get("/v1/me", &alice).await.json["avatar_url"].is_null());
    assert_eq!(
        std::fs::read_dir(api.blobs.path().join(format!("avatars/{}", alice.id)))
            .unwrap()
            .count(),
        0
    );
}

#[tokio::test]
async fn bombs_heic_and_media_not_yours_are_refused_with_their_reason() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;

    let body = json!({"content_type": "image/heic", "size_bytes": 1000});
    let r = api.post("/v1/media", &alice, body).await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert!(
        r.json["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("HEIC"),
        "{}",
        r.json
    );

    // A PNG whose header claims 60 000 × 60 000: refused at completion,
    // from its header, before a pixel is decoded.
    let mut bomb = {
        let mut out = Cursor::new(Vec::new());
        RgbImage::from_pixel(1, 1, Rgb([0, 0, 0]))
            .write_to(&mut out, ImageFormat::Png)
            .unwrap();
        out.into_inner()
    };
    bomb[16..24].copy_from_slice(&[0, 0, 0xea, 0x60, 0, 0, 0xea, 0x60]);
    let crc = crc32fast::hash(&bomb[12..29]);
    bomb[29..33].copy_from_slice(&crc.to_be_bytes());
    let (_, done) = api.upload(&alice, "image/png", &bomb).await;
    assert_problem(&done, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert!(done.json.to_string().contains("pixels"), "{}", done.json);

    // Bob's picture, and Alice's audio, are not hers to use.
    let (bobs, _) = api.upload(&bob, "image/jpeg", &phone_photo()).await;
    let audio = api.media(&alice, "ready").await;
    for media in [bobs, audio, "nothing".to_owned()] {
        let r = api
            .call(
                Method::PUT,
                "/v1/me/avatar",
                Some(&alice.token),
                json!({ "media_id": media }),
            )
            .await;
        assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "validation");
        assert_eq!(r.json["errors"][0]["field"], "media_id");
    }
}

#[tokio::test]
async fn a_chat_picture_is_sent_on_upright_and_without_metadata() {
    let api = Api::new().await;
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let (media, done) = api.upload(&alice, "image/jpeg", &phone_photo()).await;
    assert_eq!(done.status, StatusCode::ACCEPTED, "{}", done.json);
    let room = api.room(&alice, &bob).await;
    let r = api
        .send_message(&alice, &room, json!({"kind": "image", "media_id": media}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
    let history = api.get(&format!("/v1/chats/{room}/messages"), &bob).await;
    let image = &history.json["items"][0]["image"];
    assert_eq!(image["content_type"], "image/jpeg");
    assert_eq!(
        (image["width"].as_i64(), image["height"].as_i64()),
        (Some(200), Some(400))
    );
    for (field, size) in [("image_url", (200, 400)), ("thumbnail_url", (160, 320))] {
        let got = api
            .fetch(Method::GET, image[field].as_str().unwrap(), &[])
            .await;
        assert_eq!(got.status, StatusCode::OK, "{field}");
        assert!(
            !got.body.windows(4).any(|w| w == b"Exif"),
            "{field} keeps metadata"
        );
        let shown = image::load_from_memory(&got.body).unwrap().to_rgb8();
        assert_eq!(shown.dimensions(), size, "{field}");
        assert!(
            is_red(shown.get_pixel(size.0 / 2, 5)),
            "{field} is not upright"
        );
    }
}
