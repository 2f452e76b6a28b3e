//! Data exports (GDPR art. 15/20): one ZIP of what an account holds — its
//! profile, posts, comments, likes, follows both ways, blocks, playlists,
//! the messages of its chat rooms (both members', as the conversation),
//! its media's metadata as JSON, and each media's original upload and
//! processed outputs as files — written to the store at
//! `exports/{user_id}/{id}.zip`, downloadable through a signed URL until it
//! expires ([`ARCHIVE_TTL`]).
//!
//! Durable like the erasure: a `pending` row is the job. The request's
//! process builds it at once ([`build`]); every API process's cleanup task
//! builds any left pending ([`build_pending`]), a lease keeping two
//! builders apart. A build that fails [`MAX_ATTEMPTS`] times ends `failed`
//! with its reason. When ready, the owner gets an `export.ready` notification.

use serde_json::{json, Map, Value};
use sori_codecs::OutputFormat;
use sori_db::Db;
use sori_pipeline::store::{ObjectStore, StoreError};
use sqlx::any::AnyRow;
use sqlx::{Column, Row};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a ready archive stays downloadable.
pub const ARCHIVE_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long one build may hold its export before another process may take it.
const LEASE: Duration = Duration::from_secs(15 * 60);
/// Builds tried before an export is marked failed.
pub const MAX_ATTEMPTS: i64 = 3;

/// Why a build or a pass failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    #[error("export: database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("export: store: {0}")]
    Store(#[from] StoreError),
    #[error("export: writing the archive: {0}")]
    Archive(String),
}

/// The store key of an export's archive.
pub fn archive_key(user_id: &str, export_id: &str) -> String {
    format!("exports/{user_id}/{export_id}.zip")
}

/// Each JSON file of the archive and the query filling it (`$1`: the user).
const SECTIONS: &[(&str, &str)] = &[
    ("profile", "SELECT id, handle, display_name, bio, email, email_verified_at, created_at FROM users WHERE id = $1"),
    ("posts", "SELECT id, media_id, caption, tags, visibility, edited_at, like_count, comment_count, play_count, hidden_at, created_at FROM posts WHERE author_id = $1 ORDER BY created_at, id"),
    ("comments", "SELECT id, post_id, body AS text, media_id, hidden_at, created_at FROM comments WHERE author_id = $1 ORDER BY created_at, id"),
    ("likes", "SELECT post_id, created_at FROM likes WHERE user_id = $1 ORDER BY created_at"),
    ("following", "SELECT f.followee_id AS user_id, u.handle, f.created_at FROM follows f JOIN users u ON u.id = f.followee_id WHERE f.follower_id = $1 ORDER BY f.created_at"),
    ("followers", "SELECT f.follower_id AS user_id, u.handle, f.created_at FROM follows f JOIN users u ON u.id = f.follower_id WHERE f.followee_id = $1 ORDER BY f.created_at"),
    ("blocks", "SELECT b.blocked_id AS user_id, u.handle, b.created_at FROM blocks b JOIN users u ON u.id = b.blocked_id WHERE b.blocker_id = $1 ORDER BY b.created_at"),
    ("mutes", "SELECT mu.muted_id AS user_id, u.handle, mu.until, mu.created_at FROM mutes mu JOIN users u ON u.id = mu.muted_id WHERE mu.muter_id = $1 ORDER BY mu.created_at"),
    ("notification_settings", "SELECT kind, inbox, push FROM notification_settings WHERE user_id = $1 ORDER BY kind"),
    ("playlists", "SELECT id, title, description, is_public, created_at, updated_at FROM playlists WHERE owner_id = $1 ORDER BY created_at"),
    ("playlist_items", "SELECT i.playlist_id, i.post_id, i.position, i.added_at FROM playlist_items i JOIN playlists p ON p.id = i.playlist_id WHERE p.owner_id = $1 ORDER BY i.playlist_id, i.position"),
    ("messages", "SELECT m.id, m.room_id, m.sender_id, m.kind, m.body AS text, m.media_id, m.created_at FROM messages m JOIN chat_members cm ON cm.room_id = m.room_id AND cm.user_id = $1 WHERE m.kind <> 'read' AND m.hidden_at IS NULL ORDER BY m.room_id, m.created_at, m.id"),
    ("media", "SELECT id, kind, state, content_type, size_bytes, duration_ms, width, height, created_at FROM media WHERE owner_id = $1 AND state IN ('ready', 'failed') ORDER BY created_at, id"),
];

/// What the archive's `README.txt` says.
const README: &str = "Your Sori data.\n\n\
profile.json, posts.json, comments.json, likes.json, following.json, followers.json, \
blocks.json, mutes.json, notification_settings.json (the kinds you turned off somewhere), playlists.json, playlist_items.json, messages.json (every message of your \
chat rooms), media.json: one JSON array each. Times are Unix milliseconds.\n\
avatar.jpg is your profile picture; media/<id>/original is each clip or image as you uploaded it; media/<id>/audio.opus, \
audio.caf, audio.webm and waveform.json are what Sori made of a clip.\n";

/// A row as a JSON object, each column an integer, a string or null.
fn row_json(row: &AnyRow) -> Value {
    let mut object = Map::new();
    for column in row.columns() {
        let i = column.ordinal();
        let value = match row.try_get::<Option<i64>, _>(i) {
            Ok(n) => json!(n),
            Err(_) => json!(row.try_get::<Option<String>, _>(i).ok().flatten()),
        };
        object.insert(column.name().to_owned(), value);
    }
    Value::Object(object)
}

/// One object of the store to copy into the archive.
struct StoredFile {
    key: String,
    name: String,
}

/// The account's avatar (largest variant), then the originals and outputs
/// of its finished media.
async fn stored_files(db: &Db, user_id: &str) -> Result<Vec<StoredFile>, sqlx::Error> {
    let mut files = Vec::new();
    let avatar: Option<i64> = sqlx::query_scalar("SELECT avatar_version FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(db.pool())
        .await?
        .flatten();
    if let Some(version) = avatar {
        files.push(StoredFile {
            key: crate::core::images::avatar_key(user_id, version, 512),
            name: "avatar.jpg".to_owned(),
        });
    }
    let media: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
        "SELECT id, state, original_key, output_prefix FROM media \
         WHERE owner_id = $1 AND state IN ('ready', 'failed') ORDER BY created_at, id",
    )
    .bind(user_id)
    .fetch_all(db.pool())
    .await?;
    for (id, state, original, prefix) in media {
        files.push(StoredFile {
            key: original,
            name: format!("media/{id}/original"),
        });
        if let Some(prefix) = prefix.filter(|_| state == "ready") {
            for output in OutputFormat::ALL {
                let key = output.key(&prefix);
                let file = key.rsplit('/').next().unwrap_or_default().to_owned();
                files.push(StoredFile {
                    key,
                    name: format!("media/{id}/{file}"),
                });
            }
        }
    }
    Ok(files)
}

/// Takes the export for a build, unless another process holds it.
async fn claim(db: &Db, export_id: &str, now: i64) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "UPDATE exports SET lease_until = $2, attempts = attempts + 1 \
         WHERE id = $1 AND state = 'pending' AND (lease_until IS NULL OR lease_until < $3) \
         RETURNING user_id",
    )
    .bind(export_id)
    .bind(now + LEASE.as_millis() as i64)
    .bind(now)
    .fetch_optional(db.pool())
    .await
}

/// Builds the export `export_id` if it is pending and free: writes the
/// archive, stores it, marks it ready and notifies its owner. Returns the
/// owner when it became ready. A failure is recorded; the export is tried
/// again by a later pass, up to [`MAX_ATTEMPTS`].
pub async fn build(
    db: &Db,
    store: &ObjectStore,
    export_id: &str,
    now: i64,
) -> Result<Option<String>, ExportError> {
    let Some(user_id) = claim(db, export_id, now).await? else {
        return Ok(None);
    };
    match write_and_store(db, store, &user_id, export_id).await {
        Ok(size) => {
            finish(
                db,
                &user_id,
                export_id,
                size,
                sori_pipeline::clock::now_ms(),
            )
            .await?;
            Ok(Some(user_id))
        }
        Err(e) => {
            tracing::warn!(error = %e, %export_id, "export build failed");
            sqlx::query(
                "UPDATE exports SET lease_until = NULL, failure = $2, \
                 state = CASE WHEN attempts >= $3 THEN 'failed' ELSE state END WHERE id = $1",
            )
            .bind(export_id)
            .bind(e.to_string())
            .bind(MAX_ATTEMPTS)
            .execute(db.pool())
            .await?;
            Err(e)
        }
    }
}

/// Marks the export ready and notifies its owner, in one transaction.
async fn finish(
    db: &Db,
    user_id: &str,
    export_id: &str,
    size: u64,
    now: i64,
) -> Result<(), sqlx::Error> {
    let mut tx = db.pool().begin().await?;
    sqlx::query(
        "UPDATE exports SET state = 'ready', size_bytes = $2, ready_at = $3, expires_at = $4, \
         lease_until = NULL, failure = NULL WHERE id = $1",
    )
    .bind(export_id)
    .bind(size as i64)
    .bind(now)
    .bind(now + ARCHIVE_TTL.as_millis() as i64)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO notifications (id, user_id, kind, body, created_at) \
         VALUES ($1, $2, 'export.ready', $3, $4)",
    )
    .bind(uuid::Uuid::now_v7().to_string())
    .bind(user_id)
    .bind(json!({ "export_id": export_id }).to_string())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Writes the archive in a temporary directory and puts it in the store;
/// its size.
async fn write_and_store(
    db: &Db,
    store: &ObjectStore,
    user_id: &str,
    export_id: &str,
) -> Result<u64, ExportError> {
    let dir = tempfile::tempdir().map_err(|e| ExportError::Archive(e.to_string()))?;
    let mut sections = Vec::with_capacity(SECTIONS.len());
    for (name, sql) in SECTIONS {
        let rows = sqlx::query(sql).bind(user_id).fetch_all(db.pool()).await?;
        let items: Vec<Value> = rows.iter().map(row_json).collect();
        sections.push((format!("{name}.json"), Value::Array(items)));
    }
    let mut files = Vec::new();
    for (i, file) in stored_files(db, user_id).await?.into_iter().enumerate() {
        let local = dir.path().join(format!("object-{i}"));
        match store.get_to_file(&file.key, &local).await {
            Ok(_) => files.push((file.name, local)),
            // An output the worker replaced meanwhile: the archive goes without it.
            Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let archive = dir.path().join("export.zip");
    let path = archive.clone();
    tokio::task::spawn_blocking(move || write_zip(&path, &sections, &files))
        .await
        .map_err(|e| ExportError::Archive(e.to_string()))??;
    let size = std::fs::metadata(&archive)
        .map_err(|e| ExportError::Archive(e.to_string()))?
        .len();
    store
        .put_file(
            &archive_key(user_id, export_id),
            &archive,
            "application/zip",
        )
        .await?;
    Ok(size)
}

/// The ZIP itself: the README, one JSON file per section, then the files.
fn write_zip(
    path: &Path,
    sections: &[(String, Value)],
    files: &[(String, PathBuf)],
) -> Result<(), ExportError> {
    let failed = |e: &dyn std::fmt::Display| ExportError::Archive(e.to_string());
    let out = std::fs::File::create(path).map_err(|e| failed(&e))?;
    let mut zip = zip::ZipWriter::new(out);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(true);
    zip.start_file("README.txt", options)
        .map_err(|e| failed(&e))?;
    zip.write_all(README.as_bytes()).map_err(|e| failed(&e))?;
    for (name, value) in sections {
        zip.start_file(name.as_str(), options)
            .map_err(|e| failed(&e))?;
        let text = serde_json::to_vec_pretty(value).map_err(|e| failed(&e))?;
        zip.write_all(&text).map_err(|e| failed(&e))?;
    }
    for (name, local) in files {
        zip.start_file(name.as_str(), options)
            .map_err(|e| failed(&e))?;
        let mut input = std::fs::File::open(local).map_err(|e| failed(&e))?;
        std::io::copy(&mut input, &mut zip).map_err(|e| failed(&e))?;
    }
    zip.finish().map_err(|e| failed(&e))?;
    Ok(())
}

/// One pass of the cleanup task: builds the exports left pending (a
/// crash, a failure) and expires the archives past their time. Returns the
/// exports built.
pub async fn build_pending(db: &Db, store: &ObjectStore, now: i64) -> Result<u64, ExportError> {
    let pending: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM exports WHERE state = 'pending' \
         AND (lease_until IS NULL OR lease_until < $1) ORDER BY created_at LIMIT 20",
    )
    .bind(now)
    .fetch_all(db.pool())
    .await?;
    let mut built = 0;
    for id in pending {
        if let Ok(Some(_)) = build(db, store, &id, now).await {
            built += 1;
        }
    }
    expire(db, store, now).await?;
    Ok(built)
}

/// Deletes the archives past their expiry; their rows say `expired`.
async fn expire(db: &Db, store: &ObjectStore, now: i64) -> Result<(), ExportError> {
    let expired: Vec<(String, String)> = sqlx::query_as(
        "SELECT id, user_id FROM exports WHERE state = 'ready' AND expires_at < $1 LIMIT 100",
    )
    .bind(now)
    .fetch_all(db.pool())
    .await?;
    for (id, user) in expired {
        store.delete(&archive_key(&user, &id)).await?;
        sqlx::query("UPDATE exports SET state = 'expired' WHERE id = $1")
            .bind(&id)
            .execute(db.pool())
            .await?;
    }
    Ok(())
}
