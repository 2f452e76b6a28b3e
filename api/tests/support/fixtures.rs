//! The data tests start from: users, media rows as the pipeline leaves them,
//! posts, objects in the store, follows, blocks and chat rooms. Rows are
//! written directly where the route is not what a test is about.

use super::{Api, Reply, User, PUBLIC_URL};
use axum::http::{Method, StatusCode};
use serde_json::{json, Value};
use sori_api::cleanup::{sweep, Swept};
use sori_pipeline::store::ObjectStore;
use std::time::Duration;

/// Users.
impl Api {
    /// Signs up `handle` (also its display name).
    pub async fn user(&self, handle: &str) -> User {
        self.user_named(handle, handle).await
    }

    /// Signs up `handle` with another display name.
    pub async fn user_named(&self, handle: &str, display_name: &str) -> User {
        let body =
            json!({"handle": handle, "password": "correct horse", "display_name": display_name});
        let r = self.call(Method::POST, "/v1/auth/signup", None, body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
        User {
            id: r.json["user_id"].as_str().unwrap().to_owned(),
            handle: handle.to_owned(),
            token: r.json["token"].as_str().unwrap().to_owned(),
        }
    }

    /// A user row written directly (no password hashing, no token), for a
    /// lowercase `handle`; its id.
    pub async fn user_row(&self, handle: &str, password_hash: &str) -> String {
        let id = uuid::Uuid::now_v7().to_string();
        sqlx::query(
            "INSERT INTO users (id, handle, handle_lower, display_name, password_hash, \
             created_at, handle_fold, name_fold) VALUES ($1, $2, $2, $2, $3, 0, $2, $2)",
        )
        .bind(&id)
        .bind(handle)
        .bind(password_hash)
        .execute(self.t.db.pool())
        .await
        .unwrap();
        id
    }

    /// `n` users `{prefix}{i}` with tokens, written directly (no password
    /// hashing), for tests that need many of them.
    pub async fn many_users(&self, prefix: &str, n: usize) -> Vec<User> {
        self.users_with_hash(prefix, n, "x").await
    }

    /// As [`Api::many_users`], with one precomputed `password_hash` for all
    /// of them (from `sori_api::core::passwords::hash_password`), so they can log in.
    pub async fn users_with_hash(&self, prefix: &str, n: usize, password_hash: &str) -> Vec<User> {
        let mut users = Vec::with_capacity(n);
        for i in 0..n {
            let handle = format!("{prefix}{i}");
            let id = self.user_row(&handle, password_hash).await;
            let issued =
                sori_api::core::sessions::issue_token(&self.t.db, &id, &Default::default())
                    .await
                    .unwrap();
            users.push(User {
                id,
                handle,
                token: issued.token,
            });
        }
        users
    }

    /// Gives `who` the admin role, as `sori admin grant` does.
    pub async fn make_admin(&self, who: &User) {
        let done = sori_api::social::set_admin(&self.t.db, &who.handle, true).await;
        assert!(done.unwrap(), "no user {}", who.handle);
    }
}

/// A media row to write, as the pipeline leaves one; start from
/// [`NewMedia::clip`] or [`NewMedia::bare`] and change what the test needs.
pub struct NewMedia<'a> {
    pub state: &'a str,
    pub kind: &'a str,
    pub content_type: &'a str,
    pub size_bytes: i64,
    /// The folder of the original's key: `{folder}/{id}`.
    pub folder: &'a str,
    pub duration_ms: Option<i64>,
    pub bars: Option<&'a str>,
    /// The processing attempt whose outputs the row names
    /// (`media/{id}/v{n}/`), if any.
    pub version: Option<i64>,
    pub attempts: i32,
    pub width: Option<i64>,
    pub height: Option<i64>,
    /// Unix ms, also its last update.
    pub created_at: i64,
}

impl<'a> NewMedia<'a> {
    /// An audio clip in `state` with a duration (1234 ms), three bars and
    /// its first attempt's outputs named (the files are not written).
    pub fn clip(state: &'a str) -> Self {
        Self {
            duration_ms: Some(1234),
            bars: Some("[1,2,3]"),
            version: Some(1),
            ..Self::bare(state)
        }
    }

    /// An audio upload in `state` with nothing processed yet.
    pub fn bare(state: &'a str) -> Self {
        Self {
            state,
            kind: "audio",
            content_type: "audio/mp4",
            size_bytes: 1000,
            folder: "originals",
            duration_ms: None,
            bars: None,
            version: None,
            attempts: 0,
            width: None,
            height: None,
            created_at: 0,
        }
    }
}

/// Media and posts.
impl Api {
    /// A media row of `owner` in `state`, as [`NewMedia::clip`] describes it.
    pub async fn media(&self, owner: &User, state: &str) -> String {
        self.media_with(&owner.id, NewMedia::clip(state)).await
    }

    /// A media row of the user `owner_id`; its id.
    pub async fn media_with(&self, owner_id: &str, m: NewMedia<'_>) -> String {
        let id = uuid::Uuid::now_v7().to_string();
        sqlx::query(
            "INSERT INTO media (id, owner_id, kind, state, content_type, size_bytes, original_key, \
             duration_ms, bars, output_prefix, attempts, width, height, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)",
        )
        .bind(&id)
        .bind(owner_id)
        .bind(m.kind)
        .bind(m.state)
        .bind(m.content_type)
        .bind(m.size_bytes)
        .bind(format!("{}/{id}", m.folder))
        .bind(m.duration_ms)
        .bind(m.bars)
        .bind(m.version.map(|v| format!("media/{id}/v{v}/")))
        .bind(m.attempts)
        .bind(m.width)
        .bind(m.height)
        .bind(m.created_at)
        .execute(self.t.db.pool())
        .await
        .unwrap();
        id
    }

    /// Moves a media row to `state`, as the pipeline does.
    pub async fn set_media_state(&self, media: &str, state: &str) {
        sqlx::query("UPDATE media SET state = $1 WHERE id = $2")
            .bind(state)
            .bind(media)
            .execute(self.t.db.pool())
            .await
            .unwrap();
    }

    /// A post of `author` with `caption` on media the pipeline has finished.
    pub async fn post_with(&self, author: &User, caption: &str) -> String {
        let media = self.media(author, "ready").await;
        self.publish(author, &media, caption).await
    }

    /// `author` posts `media` with `caption` (201 asserted); the post's id.
    pub async fn publish(&self, author: &User, media: &str, caption: &str) -> String {
        let body = json!({"media_id": media, "caption": caption});
        let r = self.post("/v1/posts", author, body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
        r.id()
    }

    /// A post of `author` on media the pipeline has finished.
    pub async fn ready_post(&self, author: &User) -> String {
        self.post_with(author, "hello").await
    }

    /// A post row written directly (any `created_at`, no route), with its
    /// tag rows; its id.
    pub async fn post_on(
        &self,
        author_id: &str,
        media: &str,
        caption: &str,
        tags: &[&str],
        created_at: i64,
    ) -> String {
        let id = uuid::Uuid::now_v7().to_string();
        sqlx::query(
            "INSERT INTO posts (id, author_id, media_id, caption, tags, created_at, trend_key) \
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(&id)
        .bind(author_id)
        .bind(media)
        .bind(caption)
        .bind(json!(tags).to_string())
        .bind(created_at)
        .execute(self.t.db.pool())
        .await
        .unwrap();
        for tag in tags {
            sqlx::query("INSERT INTO post_tags (tag, post_id, created_at) VALUES ($1, $2, $3)")
                .bind(tag)
                .bind(&id)
                .bind(created_at)
                .execute(self.t.db.pool())
                .await
                .unwrap();
        }
        id
    }

    /// Makes every account so far one from before home timelines (as
    /// migration 0023 leaves them): its timeline's floor is now, so its
    /// feed reads older posts, such as those of [`Api::post_on`], by the merge.
    pub async fn accounts_before_timelines(&self) {
        sqlx::query("UPDATE users SET timeline_floor_at = $1")
            .bind(sori_pipeline::clock::now_ms())
            .execute(self.t.db.pool())
            .await
            .unwrap();
    }

    /// One post as `who` sees it (`GET /v1/posts/{id}`), asserting 200.
    pub async fn post_item(&self, post: &str, who: &User) -> Value {
        let r = self.get(&format!("/v1/posts/{post}"), who).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.json);
        r.json
    }

    /// Asks for an upload URL, PUTs `bytes` to it as a client does (no
    /// token, the headers it was given) and completes it: the media id and
    /// the completion's answer.
    pub async fn upload(&self, who: &User, content_type: &str, bytes: &[u8]) -> (String, Reply) {
        let body = json!({"content_type": content_type, "size_bytes": bytes.len()});
        let r = self.post("/v1/media", who, body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
        let id = r.id();
        let upload = &r.json["upload"];
        let method = upload["method"].as_str().unwrap().parse().unwrap();
        let headers: Vec<(&str, &str)> = upload["headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str().unwrap()))
            .collect();
        let url = upload["url"].as_str().unwrap();
        let put = self.fetch_with(method, url, &headers, bytes.to_vec()).await;
        assert!(put.status.is_success(), "PUT {}", put.status);
        let done = self
            .post(&format!("/v1/media/{id}/complete"), who, Value::Null)
            .await;
        (id, done)
    }
}

/// Objects in the test app's local store.
impl Api {
    /// Writes `bytes` under `key`.
    pub async fn put_object(&self, key: &str, mut bytes: &[u8]) {
        let len = bytes.len() as u64;
        self.store().put_reader(key, &mut bytes, len).await.unwrap();
    }

    /// Writes a ready media's four outputs (as [`Api::media`] names them)
    /// with these bytes.
    pub async fn outputs(
        &self,
        media: &str,
        opus: &[u8],
        caf: &[u8],
        webm: &[u8],
        waveform: &[u8],
    ) {
        let prefix = format!("media/{media}/v1/");
        for (name, bytes) in [
            ("audio.opus", opus),
            ("audio.caf", caf),
            ("audio.webm", webm),
            ("waveform.json", waveform),
        ] {
            self.put_object(&format!("{prefix}{name}"), bytes).await;
        }
    }

    /// A signed `GET` URL of `key`, valid for ten minutes, as the path the
    /// router serves.
    pub fn signed_path(&self, key: &str) -> String {
        let expires = sori_pipeline::clock::now_ms() + 600_000;
        let url = self.store().sign_get(key, None, expires).unwrap();
        url.strip_prefix(PUBLIC_URL).unwrap().to_owned()
    }

    /// One pass of the media cleanup over the app's database and store, as
    /// if at `now_ms` with `ttl` for unattached media.
    pub async fn sweep(&self, ttl: Duration, now_ms: i64) -> Swept {
        let store = ObjectStore::Local(self.store());
        sweep(&self.t.db, &store, ttl, now_ms).await.unwrap()
    }
}

/// The social graph and chat, through their routes.
impl Api {
    /// `follower` follows `followee` (204 asserted).
    pub async fn follow(&self, follower: &User, followee: &User) {
        let r = self
            .put(&format!("/v1/users/{}/follow", followee.id), follower)
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.json);
    }

    /// `blocker` blocks `blocked` (204 asserted).
    pub async fn block(&self, blocker: &User, blocked: &User) {
        let r = self
            .put(&format!("/v1/users/{}/block", blocked.id), blocker)
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.json);
    }

    /// `PUT /v1/me/notification-settings` as `who`.
    pub async fn notification_settings(&self, who: &User, body: Value) -> Reply {
        let path = "/v1/me/notification-settings";
        self.call(Method::PUT, path, Some(&who.token), body).await
    }

    /// `DELETE /v1/me` as `who`, with the fixtures' password.
    pub async fn delete_account(&self, who: &User) -> Reply {
        let body = json!({"password": "correct horse"});
        self.call(Method::DELETE, "/v1/me", Some(&who.token), body)
            .await
    }

    /// A live connection of `who` for the next minute, as an open socket
    /// leaves: what decides that a chat message or notification is not pushed.
    pub async fn online(&self, who: &User) {
        let now = sori_pipeline::clock::now_ms();
        sqlx::query(
            "INSERT INTO ws_connections (id, user_id, expires_at, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(&who.id)
        .bind(now + 60_000)
        .bind(now)
        .execute(self.t.db.pool())
        .await
        .unwrap();
    }

    /// `muter` mutes `muted` until unmuted.
    pub async fn mute(&self, muter: &User, muted: &User) {
        let r = self
            .put(&format!("/v1/users/{}/mute", muted.id), muter)
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.json);
    }

    /// The chat room of `who` and `with`, opened (or found) by `who`.
    pub async fn room(&self, who: &User, with: &User) -> String {
        let r = self
            .post("/v1/chats", who, json!({"user_id": with.id}))
            .await;
        assert!(
            r.status == StatusCode::CREATED || r.status == StatusCode::OK,
            "{}",
            r.json
        );
        r.id()
    }

    /// `POST /v1/chats/{room}/messages` as `who`.
    pub async fn send_message(&self, who: &User, room: &str, body: Value) -> Reply {
        self.post(&format!("/v1/chats/{room}/messages"), who, body)
            .await
    }

    /// A text message of `who` in `room` (201 asserted); its id.
    pub async fn text_message(&self, who: &User, room: &str, text: &str) -> String {
        let body = json!({"kind": "text", "text": text});
        let r = self.send_message(who, room, body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
        r.id()
    }
}
