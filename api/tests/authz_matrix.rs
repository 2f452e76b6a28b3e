//! Who may do what: every route of the OpenAPI document, called by five
//! callers — anonymous, another user, the owner of the resource, a user the
//! owner blocked, and an admin — each answered with an exact status.
//!
//! Every call runs against its own fresh [`Scene`] (the owner's post with
//! ready media, a post still processing, an upload, an image, a voice message,
//! a private and a public playlist, a chat room with a message, a comment, a
//! device, a report, notifications), so a call that changes something cannot
//! change another call's answer. Besides the status, each call by someone
//! other than the owner must not show the owner's private data (the private
//! playlist's title, the chat text, the push token, the ids of unready media
//! and of the post still processing), and must leave the owner's playlists
//! and devices as they were. The table must name every route of the document:
//! a new route without a row fails [`every_documented_route_has_a_row`].
//! On the backend `SORI_TEST_DB` names.

mod support;

use futures_util::StreamExt;

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use support::{operations, Api, NewMedia, Reply, User};

/// The callers, in the order of a row's statuses.
const ROLES: [&str; 5] = ["anonymous", "other", "owner", "blocked", "admin"];

/// The password of every scene user (its Argon2 hash is computed once).
const PASSWORD: &str = "correct horse";

/// One route called one way: the documented method and path, the concrete
/// path (placeholders `{name}` filled from [`Scene::ids`]), the JSON body,
/// and the status each of [`ROLES`] gets.
struct Row {
    method: &'static str,
    doc_path: &'static str,
    path: &'static str,
    body: fn(&Scene) -> Value,
    expect: [u16; 5],
}

fn row(
    method: &'static str,
    doc_path: &'static str,
    path: &'static str,
    body: fn(&Scene) -> Value,
    expect: [u16; 5],
) -> Row {
    Row {
        method,
        doc_path,
        path,
        body,
        expect,
    }
}

fn none(_: &Scene) -> Value {
    Value::Null
}

/// The table. A route may have several rows (a private and a public
/// playlist, ready and unready media); each documented route needs one.
/// One line per row, so the table reads as one.
#[rustfmt::skip]
fn table() -> Vec<Row> {
    vec![
        // Operations: public.
        row("get", "/healthz", "/healthz", none, [200; 5]),
        row("get", "/readyz", "/readyz", none, [200; 5]),
        row("get", "/metrics", "/metrics", none, [200; 5]),
        // Accounts.
        row("post", "/v1/auth/signup", "/v1/auth/signup",
            |s| json!({"handle": format!("{}new", s.prefix), "password": PASSWORD, "display_name": "New"}),
            [201; 5]),
        row("post", "/v1/auth/login", "/v1/auth/login",
            |s| json!({"handle": s.owner.handle, "password": PASSWORD}),
            [200; 5]),
        row("post", "/v1/auth/logout", "/v1/auth/logout", none, [401, 204, 204, 204, 204]),
        row("get", "/v1/me", "/v1/me", none, [401, 200, 200, 200, 200]),
        row("patch", "/v1/me", "/v1/me", |_| json!({"bio": "hi"}), [401, 200, 200, 200, 200]),
        // The caller's own account: sessions, password, deletion.
        row("get", "/v1/me/sessions", "/v1/me/sessions", none, [401, 200, 200, 200, 200]),
        row("delete", "/v1/me/sessions/{id}", "/v1/me/sessions/{owner_session}", none, [401, 404, 204, 404, 404]),
        row("post", "/v1/auth/logout-all", "/v1/auth/logout-all", none, [401, 200, 200, 200, 200]),
        row("post", "/v1/me/password", "/v1/me/password",
            |_| json!({"current_password": PASSWORD, "new_password": "another horse"}), [401, 204, 204, 204, 204]),
        row("delete", "/v1/me", "/v1/me", |_| json!({"password": PASSWORD}), [401, 202, 202, 202, 202]),
        // The scene's image is the owner's but only a PNG signature: undecodable.
        row("put", "/v1/me/avatar", "/v1/me/avatar", |s| json!({"media_id": s.id("image_media")}), [401, 422, 422, 422, 422]),
        row("delete", "/v1/me/avatar", "/v1/me/avatar", none, [401, 204, 204, 204, 204]),
        // No export was started in a scene.
        row("post", "/v1/me/export", "/v1/me/export", none, [401, 202, 202, 202, 202]),
        row("get", "/v1/me/export", "/v1/me/export", none, [401, 404, 404, 404, 404]),
        row("put", "/v1/me/email", "/v1/me/email", |_| json!({"email": "me@example.com"}), [401, 202, 202, 202, 202]),
        // No code was mailed to anyone here.
        row("post", "/v1/me/email/verify", "/v1/me/email/verify", |_| json!({"code": "123456"}), [401, 422, 422, 422, 422]),
        // Public: the same answer whoever asks, for any address.
        row("post", "/v1/auth/password-reset", "/v1/auth/password-reset", |_| json!({"email": "x@example.com"}), [202; 5]),
        row("post", "/v1/auth/password-reset/confirm", "/v1/auth/password-reset/confirm",
            |_| json!({"email": "x@example.com", "code": "123456", "new_password": "another horse"}), [422; 5]),
        row("get", "/v1/users/{id}", "/v1/users/{owner}", none, [401, 200, 200, 200, 200]),
        // Posts and feeds.
        row("post", "/v1/posts", "/v1/posts",
            |s| json!({"media_id": s.id("upload_media"), "caption": "mine?"}),
            [401, 422, 201, 422, 422]),
        row("get", "/v1/posts/{id}", "/v1/posts/{post}", none, [401, 200, 200, 404, 200]),
        row("get", "/v1/posts/{id}", "/v1/posts/{pending_post}", none, [401, 404, 200, 404, 404]),
        row("patch", "/v1/posts/{id}", "/v1/posts/{post}", |_| json!({"caption": "edited"}), [401, 403, 200, 404, 403]),
        row("patch", "/v1/posts/{id}", "/v1/posts/{pending_post}", |_| json!({"visibility": "private"}), [401, 404, 200, 404, 404]),
        row("delete", "/v1/posts/{id}", "/v1/posts/{post}", none, [401, 403, 204, 403, 403]),
        row("delete", "/v1/posts/{id}", "/v1/posts/{pending_post}", none, [401, 404, 204, 404, 404]),
        row("get", "/v1/feed", "/v1/feed", none, [401, 200, 200, 200, 200]),
        row("get", "/v1/explore", "/v1/explore?tag=sori", none, [401, 200, 200, 200, 200]),
        row("get", "/v1/users/{id}/posts", "/v1/users/{owner}/posts", none, [401, 200, 200, 200, 200]),
        // Media: the owner's, or posted; chat media to the room only.
        row("post", "/v1/media", "/v1/media",
            |_| json!({"content_type": "audio/mp4", "size_bytes": 1000}),
            [401, 201, 201, 201, 201]),
        row("get", "/v1/media/{id}", "/v1/media/{upload_media}", none, [401, 403, 200, 403, 403]),
        row("get", "/v1/media/{id}", "/v1/media/{ready_media}", none, [401, 403, 200, 403, 403]),
        row("post", "/v1/media/{id}/complete", "/v1/media/{upload_media}/complete", none, [401, 403, 202, 403, 403]),
        // Playback redirects to a signed URL of the variant.
        row("get", "/v1/media/{id}/audio", "/v1/media/{ready_media}/audio", none, [401, 302, 302, 403, 302]),
        row("get", "/v1/media/{id}/audio", "/v1/media/{pending_media}/audio", none, [401, 403, 409, 403, 403]),
        row("get", "/v1/media/{id}/audio", "/v1/media/{voice_media}/audio", none, [401, 403, 302, 403, 403]),
        row("get", "/v1/media/{id}/audio", "/v1/media/{upload_media}/audio", none, [401, 403, 409, 403, 403]),
        row("get", "/v1/media/{id}/waveform", "/v1/media/{ready_media}/waveform", none, [401, 200, 200, 403, 200]),
        row("get", "/v1/media/{id}/waveform", "/v1/media/{pending_media}/waveform", none, [401, 403, 409, 403, 403]),
        row("get", "/v1/media/{id}/original", "/v1/media/{image_media}/original", none, [401, 403, 302, 403, 403]),
        // The embedded store: the signature is the authorization, not the token.
        row("get", "/v1/blobs/{key}", "{audio_blob}", none, [200; 5]),
        row("put", "/v1/blobs/{key}", "/v1/blobs/originals/x", none, [400; 5]),
        // Social.
        row("put", "/v1/users/{id}/follow", "/v1/users/{owner}/follow", none, [401, 204, 422, 403, 204]),
        row("delete", "/v1/users/{id}/follow", "/v1/users/{owner}/follow", none, [401, 204, 422, 204, 204]),
        row("get", "/v1/users/{id}/followers", "/v1/users/{owner}/followers", none, [401, 200, 200, 200, 200]),
        row("get", "/v1/me/follow-requests", "/v1/me/follow-requests", none, [401, 200, 200, 200, 200]),
        row("get", "/v1/me/notification-settings", "/v1/me/notification-settings", none, [401, 200, 200, 200, 200]),
        row("put", "/v1/me/notification-settings", "/v1/me/notification-settings", |_| json!({"like": {"push": false}}), [401, 200, 200, 200, 200]),
        // Nobody asked anyone to follow in a scene: no request to answer.
        row("post", "/v1/me/follow-requests/{user_id}/approve", "/v1/me/follow-requests/{owner}/approve", none, [401, 404, 404, 404, 404]),
        row("post", "/v1/me/follow-requests/{user_id}/decline", "/v1/me/follow-requests/{owner}/decline", none, [401, 404, 404, 404, 404]),
        row("get", "/v1/users/{id}/following", "/v1/users/{owner}/following", none, [401, 200, 200, 200, 200]),
        row("put", "/v1/posts/{id}/like", "/v1/posts/{post}/like", none, [401, 204, 204, 403, 204]),
        row("delete", "/v1/posts/{id}/like", "/v1/posts/{post}/like", none, [401, 204, 204, 204, 204]),
        row("get", "/v1/posts/{id}/comments", "/v1/posts/{post}/comments", none, [401, 200, 200, 404, 200]),
        row("get", "/v1/posts/{id}/comments", "/v1/posts/{pending_post}/comments", none, [401, 404, 200, 404, 404]),
        row("post", "/v1/posts/{id}/comments", "/v1/posts/{post}/comments",
            |_| json!({"text": "nice"}), [401, 201, 201, 403, 201]),
        row("delete", "/v1/comments/{id}", "/v1/comments/{comment}", none, [401, 403, 204, 403, 403]),
        row("put", "/v1/users/{id}/block", "/v1/users/{owner}/block", none, [401, 204, 422, 204, 204]),
        row("delete", "/v1/users/{id}/block", "/v1/users/{owner}/block", none, [401, 204, 422, 204, 204]),
        row("get", "/v1/me/blocks", "/v1/me/blocks", none, [401, 200, 200, 200, 200]),
        row("put", "/v1/users/{id}/mute", "/v1/users/{owner}/mute?minutes=60", none, [401, 204, 422, 204, 204]),
        row("delete", "/v1/users/{id}/mute", "/v1/users/{owner}/mute", none, [401, 204, 422, 204, 204]),
        row("get", "/v1/me/mutes", "/v1/me/mutes", none, [401, 200, 200, 200, 200]),
        row("post", "/v1/reports", "/v1/reports",
            |s| json!({"target_kind": "post", "target_id": s.id("post"), "reason": "spam"}),
            [401, 201, 201, 201, 201]),
        row("post", "/v1/reports", "/v1/reports",
            |s| json!({"target_kind": "message", "target_id": s.id("message"), "reason": "spam"}),
            [401, 422, 201, 422, 422]),
        row("get", "/v1/reports", "/v1/reports", none, [401, 403, 403, 403, 200]),
        row("post", "/v1/reports/{id}/resolve", "/v1/reports/{report}/resolve",
            |_| json!({"action": "dismiss"}), [401, 403, 403, 403, 200]),
        row("get", "/v1/search", "/v1/search?q={owner_handle}", none, [401, 200, 200, 200, 200]),
        row("get", "/v1/search", "/v1/search?q=sori&kind=posts", none, [401, 200, 200, 200, 200]),
        row("post", "/v1/posts/{id}/plays", "/v1/posts/{post}/plays", none, [401, 200, 200, 404, 200]),
        row("get", "/v1/notifications", "/v1/notifications", none, [401, 200, 200, 200, 200]),
        row("post", "/v1/notifications/read", "/v1/notifications/read", |_| json!({}), [401, 200, 200, 200, 200]),
        row("delete", "/v1/notifications/{id}", "/v1/notifications/{owner_notification}", none, [401, 404, 204, 404, 404]),
        // Moderation: admins only. The post was never removed: nothing to restore.
        row("get", "/v1/admin/audit", "/v1/admin/audit", none, [401, 403, 403, 403, 200]),
        row("post", "/v1/admin/restore", "/v1/admin/restore",
            |s| json!({"target_kind": "post", "target_id": s.id("post")}), [401, 403, 403, 403, 409]),
        row("post", "/v1/admin/announcements", "/v1/admin/announcements", |_| json!({"text": "hello"}), [401, 403, 403, 403, 201]),
        // Playlists: a private one exists only for its owner.
        row("post", "/v1/playlists", "/v1/playlists", |_| json!({"title": "new"}), [401, 201, 201, 201, 201]),
        row("get", "/v1/playlists/{id}", "/v1/playlists/{private_playlist}", none, [401, 404, 200, 404, 404]),
        row("get", "/v1/playlists/{id}", "/v1/playlists/{public_playlist}", none, [401, 200, 200, 404, 200]),
        row("patch", "/v1/playlists/{id}", "/v1/playlists/{private_playlist}",
            |_| json!({"public": true}), [401, 404, 200, 404, 404]),
        row("patch", "/v1/playlists/{id}", "/v1/playlists/{public_playlist}",
            |_| json!({"title": "taken"}), [401, 403, 200, 404, 403]),
        row("delete", "/v1/playlists/{id}", "/v1/playlists/{private_playlist}", none, [401, 404, 204, 404, 404]),
        row("delete", "/v1/playlists/{id}", "/v1/playlists/{public_playlist}", none, [401, 403, 204, 404, 403]),
        row("post", "/v1/playlists/{id}/items", "/v1/playlists/{private_playlist}/items",
            |s| json!({"post_id": s.id("post2")}), [401, 404, 201, 404, 404]),
        row("post", "/v1/playlists/{id}/items", "/v1/playlists/{public_playlist}/items",
            |s| json!({"post_id": s.id("post2")}), [401, 403, 201, 404, 403]),
        row("put", "/v1/playlists/{id}/items", "/v1/playlists/{public_playlist}/items",
            |s| json!({"post_ids": [s.id("post")]}), [401, 403, 200, 404, 403]),
        row("delete", "/v1/playlists/{id}/items/{post_id}", "/v1/playlists/{private_playlist}/items/{post}",
            none, [401, 404, 204, 404, 404]),
        row("delete", "/v1/playlists/{id}/items/{post_id}", "/v1/playlists/{public_playlist}/items/{post}",
            none, [401, 403, 204, 404, 403]),
        row("get", "/v1/users/{id}/playlists", "/v1/users/{owner}/playlists", none, [401, 200, 200, 200, 200]),
        // Chat: a room exists only for its two members.
        row("post", "/v1/chats", "/v1/chats", |s| json!({"user_id": s.owner.id}), [401, 201, 422, 403, 201]),
        row("get", "/v1/chats", "/v1/chats", none, [401, 200, 200, 200, 200]),
        row("get", "/v1/chats/{id}/messages", "/v1/chats/{room}/messages", none, [401, 404, 200, 404, 404]),
        row("post", "/v1/chats/{id}/messages", "/v1/chats/{room}/messages",
            |_| json!({"kind": "text", "text": "hello"}), [401, 404, 201, 404, 404]),
        row("patch", "/v1/chats/{id}/messages/{message_id}", "/v1/chats/{room}/messages/{message}",
            |_| json!({"text": "edited"}), [401, 404, 200, 404, 404]),
        row("delete", "/v1/chats/{id}/messages/{message_id}", "/v1/chats/{room}/messages/{message}",
            none, [401, 404, 204, 404, 404]),
        row("post", "/v1/chats/{id}/read", "/v1/chats/{room}/read",
            |s| json!({"message_id": s.id("message")}), [401, 404, 200, 404, 404]),
        // Presence: the user themself and chat partners only.
        row("get", "/v1/users/{id}/presence", "/v1/users/{owner}/presence", none, [401, 404, 200, 404, 404]),
        // Not an upgrade request: the token is checked first, then the upgrade.
        row("get", "/v1/ws", "/v1/ws", none, [401, 400, 400, 400, 400]),
        row("post", "/v1/ws/ticket", "/v1/ws/ticket", none, [401, 201, 201, 201, 201]),
        // Devices: always the caller's own.
        row("get", "/v1/me/devices", "/v1/me/devices", none, [401, 200, 200, 200, 200]),
        row("put", "/v1/me/devices/{device_id}", "/v1/me/devices/phone-1",
            |_| json!({"platform": "webhook", "push_token": "caller-token"}), [401, 200, 200, 200, 200]),
        row("delete", "/v1/me/devices/{device_id}", "/v1/me/devices/phone-1", none, [401, 204, 204, 204, 204]),
    ]
}

/// What the owner has, created afresh for each call.
struct Scene {
    /// Handles of this scene's users start with it.
    prefix: String,
    owner: User,
    /// Indexed like [`ROLES`]; `None` for anonymous.
    callers: [Option<User>; 5],
    /// Placeholder name → value.
    ids: Vec<(&'static str, String)>,
    /// Strings only the owner may see.
    secrets: Vec<String>,
    /// The owner's playlists and devices as the owner sees them.
    owner_view: Value,
}

impl Scene {
    fn id(&self, name: &str) -> &str {
        self.ids
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("the scene has no {name}"))
    }

    fn fill(&self, template: &str) -> String {
        let mut path = template.to_owned();
        for (name, value) in &self.ids {
            path = path.replace(&format!("{{{name}}}"), value);
        }
        assert!(!path.contains('{'), "unfilled placeholder in {path}");
        path
    }
}

/// The app with a local store, and the password hash of scene users.
struct World {
    api: Api,
    password_hash: String,
}

async fn world() -> World {
    // Mail is on (the outbox fills; nothing is sent in this test).
    let mailer =
        sori_api::core::mail::Mailer::new("smtp://127.0.0.1:9", "Sori <a@sori.test>").unwrap();
    let api = Api::with(|state| state.with_mailer(std::sync::Arc::new(mailer))).await;
    let password_hash = sori_api::core::passwords::hash_password(PASSWORD.to_owned())
        .await
        .unwrap();
    World { api, password_hash }
}

impl World {
    /// An audio media of `owner` in `state`; a ready one gets its outputs.
    async fn audio(&self, owner: &User, state: &str) -> String {
        let id = self.api.media(owner, state).await;
        if state == "ready" {
            let prefix = format!("media/{id}/v1/");
            let api = &self.api;
            api.put_object(&format!("{prefix}audio.opus"), b"OggS audio")
                .await;
            api.put_object(&format!("{prefix}waveform.json"), br#"{"version":2}"#)
                .await;
        }
        id
    }

    /// A ready PNG image of `owner`, its bytes in the store.
    async fn image(&self, owner: &User) -> String {
        let row = NewMedia {
            kind: "image",
            content_type: "image/png",
            size_bytes: 8,
            folder: "images",
            width: Some(1),
            height: Some(1),
            ..NewMedia::bare("ready")
        };
        let id = self.api.media_with(&owner.id, row).await;
        self.api
            .put_object(&format!("images/{id}"), b"\x89PNG\r\n\x1a\n")
            .await;
        id
    }

    /// `who` calls `method path` with `body`; asserts `status`; returns the reply.
    async fn must(
        &self,
        who: &User,
        method: Method,
        path: &str,
        body: Value,
        status: u16,
    ) -> Reply {
        let r = self.api.call(method, path, Some(&who.token), body).await;
        assert_eq!(r.status.as_u16(), status, "set-up {path}: {}", r.json);
        r
    }

    async fn scene(&self, n: usize) -> Scene {
        let prefix = format!("s{n}_");
        let users = self
            .api
            .users_with_hash(&prefix, 5, &self.password_hash)
            .await;
        let [other, owner, blocked, admin, partner]: [User; 5] = users.try_into().ok().unwrap();
        self.api.make_admin(&admin).await;
        self.api.block(&owner, &blocked).await;
        for follower in [&other, &admin] {
            self.api.follow(follower, &owner).await;
        }

        let ready_media = self.audio(&owner, "ready").await;
        let post_body = json!({"media_id": ready_media, "caption": "hello #sori"});
        let post = self
            .must(&owner, Method::POST, "/v1/posts", post_body, 201)
            .await;
        let post = post.json["id"].as_str().unwrap().to_owned();
        let media2 = self.audio(&owner, "ready").await;
        let post2 = self
            .must(
                &owner,
                Method::POST,
                "/v1/posts",
                json!({"media_id": media2}),
                201,
            )
            .await;
        let post2 = post2.json["id"].as_str().unwrap().to_owned();
        let pending_media = self.audio(&owner, "processing").await;
        let body = json!({"media_id": pending_media, "caption": "still processing #sori"});
        let pending = self
            .must(&owner, Method::POST, "/v1/posts", body, 201)
            .await;
        let pending_post = pending.json["id"].as_str().unwrap().to_owned();
        let upload_media = self.api.media(&owner, "awaiting_upload").await;
        let original = format!("originals/{upload_media}");
        self.api.put_object(&original, &[0; 1000]).await;
        let image_media = self.image(&owner).await;
        let voice_media = self.audio(&owner, "ready").await;

        let secret_title = format!("{prefix}secret playlist");
        let private_playlist = self.playlist(&owner, &secret_title, false, &post).await;
        let public_playlist = self.playlist(&owner, "open list", true, &post).await;

        let room = self
            .must(
                &owner,
                Method::POST,
                "/v1/chats",
                json!({"user_id": partner.id}),
                201,
            )
            .await;
        let room = room.json["id"].as_str().unwrap().to_owned();
        let secret_text = format!("{prefix}whispered words");
        let messages = format!("/v1/chats/{room}/messages");
        let body = json!({"kind": "text", "text": secret_text});
        let message = self.must(&owner, Method::POST, &messages, body, 201).await;
        let message = message.json["id"].as_str().unwrap().to_owned();
        let body = json!({"kind": "voice", "media_id": voice_media});
        self.must(&owner, Method::POST, &messages, body, 201).await;

        let comments = format!("/v1/posts/{post}/comments");
        let comment = self
            .must(
                &owner,
                Method::POST,
                &comments,
                json!({"text": "first"}),
                201,
            )
            .await;
        let comment = comment.json["id"].as_str().unwrap().to_owned();
        let secret_token = format!("{prefix}push-token");
        let body = json!({"platform": "webhook", "push_token": secret_token});
        self.must(&owner, Method::PUT, "/v1/me/devices/phone-1", body, 200)
            .await;
        let body = json!({"target_kind": "user", "target_id": partner.id, "reason": "spam"});
        let report = self
            .must(&owner, Method::POST, "/v1/reports", body, 201)
            .await;
        let report = report.json["id"].as_str().unwrap().to_owned();
        let like = format!("/v1/posts/{post}/like");
        self.must(&other, Method::PUT, &like, Value::Null, 204)
            .await;

        let owner_notification: String =
            sqlx::query_scalar("SELECT id FROM notifications WHERE user_id = $1 AND kind = 'like'")
                .bind(&owner.id)
                .fetch_one(self.api.t.db.pool())
                .await
                .unwrap();

        let audio_key = format!("media/{ready_media}/v1/audio.opus");
        let audio_blob = self.api.signed_path(&audio_key);

        let owner_session: String =
            sqlx::query_scalar("SELECT id FROM auth_tokens WHERE user_id = $1")
                .bind(&owner.id)
                .fetch_one(self.api.t.db.pool())
                .await
                .unwrap();
        let ids = vec![
            ("owner", owner.id.clone()),
            ("owner_session", owner_session),
            ("owner_handle", owner.handle.clone()),
            ("post", post),
            ("post2", post2),
            ("pending_post", pending_post.clone()),
            ("ready_media", ready_media),
            ("pending_media", pending_media.clone()),
            ("upload_media", upload_media.clone()),
            ("image_media", image_media),
            ("voice_media", voice_media),
            ("private_playlist", private_playlist),
            ("public_playlist", public_playlist),
            ("room", room),
            ("message", message),
            ("comment", comment),
            ("report", report),
            ("owner_notification", owner_notification),
            ("audio_blob", audio_blob),
        ];
        let secrets = vec![
            secret_title,
            secret_text,
            secret_token,
            pending_post,
            pending_media,
            upload_media,
        ];
        let mut scene = Scene {
            prefix,
            callers: [None, Some(other), None, Some(blocked), Some(admin)],
            owner,
            ids,
            secrets,
            owner_view: Value::Null,
        };
        scene.owner_view = self.owner_view(&scene).await;
        scene
    }

    async fn playlist(&self, owner: &User, title: &str, public: bool, post: &str) -> String {
        let body = json!({"title": title, "public": public});
        let r = self
            .must(owner, Method::POST, "/v1/playlists", body, 201)
            .await;
        let id = r.json["id"].as_str().unwrap().to_owned();
        let items = format!("/v1/playlists/{id}/items");
        self.must(owner, Method::POST, &items, json!({"post_id": post}), 201)
            .await;
        id
    }

    /// The owner's playlists (title, visibility, items) and devices.
    async fn owner_view(&self, s: &Scene) -> Value {
        let mut view = Vec::new();
        for name in ["private_playlist", "public_playlist"] {
            let r = self
                .api
                .get(&format!("/v1/playlists/{}", s.id(name)), &s.owner)
                .await;
            let items: Vec<&Value> = r.json["items"]
                .as_array()
                .map(|items| items.iter().map(|i| &i["id"]).collect())
                .unwrap_or_default();
            view.push(json!([
                r.status.as_u16(),
                r.json["title"],
                r.json["public"],
                items
            ]));
        }
        view.push(self.api.get("/v1/me/devices", &s.owner).await.json);
        Value::Array(view)
    }
}

/// Runs one row for every role; returns the mismatches and leaks found.
async fn check_row(w: &World, row: &Row, first_scene: usize) -> Vec<String> {
    let mut problems = Vec::new();
    for (i, role) in ROLES.iter().enumerate() {
        let s = w.scene(first_scene + i).await;
        let caller = if *role == "owner" {
            Some(&s.owner)
        } else {
            s.callers[i].as_ref()
        };
        let method = Method::from_bytes(row.method.to_ascii_uppercase().as_bytes()).unwrap();
        let path = s.fill(row.path);
        let r = w
            .api
            .call(
                method,
                &path,
                caller.map(|u| u.token.as_str()),
                (row.body)(&s),
            )
            .await;
        let what = format!("{} {} as {role}", row.method.to_uppercase(), row.path);
        if r.status.as_u16() != row.expect[i] {
            problems.push(format!(
                "{what}: {} (expected {}) {}",
                r.status.as_u16(),
                row.expect[i],
                r.json
            ));
        }
        if *role == "owner" {
            continue;
        }
        let text = r.json.to_string();
        for secret in &s.secrets {
            if text.contains(secret.as_str()) {
                problems.push(format!(
                    "{what}: shows the owner's private {secret}: {text}"
                ));
            }
        }
        if w.owner_view(&s).await != s.owner_view {
            problems.push(format!("{what}: changed the owner's playlists or devices"));
        }
    }
    problems
}

#[tokio::test]
async fn every_documented_route_has_a_row() {
    let api = Api::new().await;
    let documented = operations(&api.openapi().await);
    let in_table: BTreeSet<(String, String)> = table()
        .iter()
        .map(|r| (r.method.to_owned(), r.doc_path.to_owned()))
        .collect();
    let missing: Vec<_> = documented.difference(&in_table).collect();
    let unknown: Vec<_> = in_table.difference(&documented).collect();
    assert!(missing.is_empty(), "routes without a row: {missing:?}");
    assert!(
        unknown.is_empty(),
        "rows for undocumented routes: {unknown:?}"
    );
    // Rows' concrete paths belong to their documented path.
    for r in table() {
        let head = r.doc_path.split('{').next().unwrap();
        assert!(
            r.path.starts_with(head) || r.path.starts_with('{'),
            "{} is not a {}",
            r.path,
            r.doc_path
        );
    }
}

#[tokio::test]
async fn each_caller_gets_exactly_its_status_and_nothing_private() {
    let w = world().await;
    let rows = table();
    // Every call has its own scene (distinct users and rows), so rows may run
    // side by side: on PostgreSQL one after another took over ten minutes.
    let checks = rows
        .iter()
        .enumerate()
        .map(|(n, row)| check_row(&w, row, n * ROLES.len()));
    let problems: Vec<String> = futures_util::stream::iter(checks)
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .flatten()
        .collect();
    println!(
        "{} rows × {} callers = {} calls",
        rows.len(),
        ROLES.len(),
        rows.len() * ROLES.len()
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The roles behave as named: the admin can moderate, the blocked user is
/// blocked, and nothing else distinguishes them from "other".
#[tokio::test]
async fn the_scene_roles_are_what_they_claim() {
    let w = world().await;
    let s = w.scene(0).await;
    let [_, other, _, blocked, admin] = &s.callers;
    let (other, blocked, admin) = (
        other.as_ref().unwrap(),
        blocked.as_ref().unwrap(),
        admin.as_ref().unwrap(),
    );
    let reports = w.api.get("/v1/reports", admin).await;
    assert_eq!(reports.status, StatusCode::OK);
    assert_eq!(reports.json["items"].as_array().unwrap().len(), 1);
    let post = format!("/v1/posts/{}", s.id("post"));
    assert_eq!(
        w.api.get(&post, blocked).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(w.api.get(&post, other).await.status, StatusCode::OK);
    // The owner sees every secret somewhere: the leak checks look for real strings.
    let mut owner_text = String::new();
    for path in [
        format!("/v1/playlists/{}", s.id("private_playlist")),
        format!("/v1/chats/{}/messages", s.id("room")),
        "/v1/me/devices".to_owned(),
        format!("/v1/users/{}/posts", s.owner.id),
        format!("/v1/media/{}", s.id("upload_media")),
    ] {
        owner_text.push_str(&w.api.get(&path, &s.owner).await.json.to_string());
    }
    for secret in &s.secrets {
        assert!(
            owner_text.contains(secret.as_str()),
            "the owner never sees {secret}"
        );
    }
}
