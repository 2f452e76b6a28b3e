//! The caller's avatar: an uploaded image (`POST /v1/media` with an image
//! type, PUT, complete) made into 64, 256 and 512 px square JPEGs with its
//! EXIF orientation applied and every metadata block left behind
//! ([`crate::core::images`]); the upload itself, which may carry a GPS
//! position, is deleted once the variants are stored. Each avatar is a new
//! version under its own keys, so URLs already handed out never change
//! picture; the previous version's objects are deleted.

use super::{own_profile, User};
use crate::core::error::{ApiError, Problem};
use crate::core::extractors::AuthUser;
use crate::core::images::{self, avatar_key, avatar_prefix};
use crate::core::state::AppState;
use crate::core::time;
use crate::core::validation::JsonBody;
use crate::effects::erasure::delete_media_objects;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use sori_pipeline::store::ObjectStore;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(set_avatar, remove_avatar))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetAvatar {
    /// An image the caller uploaded and completed, attached nowhere.
    pub media_id: String,
}

fn store(state: &AppState) -> Result<&ObjectStore, ApiError> {
    state
        .store
        .as_ref()
        .ok_or(ApiError::Unavailable("avatars need the object store"))
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string().into())
}

/// Stores the variants of `bytes` as a new avatar version of `user_id`; the
/// version.
async fn store_variants(
    store: &ObjectStore,
    user_id: &str,
    bytes: Vec<u8>,
) -> Result<i64, ApiError> {
    let variants = tokio::task::spawn_blocking(move || images::avatar_variants(&bytes))
        .await
        .map_err(internal)?
        .map_err(|e| ApiError::invalid("media_id", e.to_string()))?;
    let version = time::now_ms();
    for (size, jpeg) in variants {
        let key = avatar_key(user_id, version, size);
        store
            .put_bytes(&key, &jpeg, "image/jpeg")
            .await
            .map_err(internal)?;
    }
    Ok(version)
}

/// Replaces the account's avatar version with `version` (`None`: none) and
/// deletes the previous version's objects.
async fn switch_version(
    state: &AppState,
    user_id: &str,
    version: Option<i64>,
) -> Result<(), ApiError> {
    let previous: Option<i64> =
        sqlx::query_scalar("SELECT avatar_version FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_one(state.db.pool())
            .await?;
    sqlx::query("UPDATE users SET avatar_version = $1 WHERE id = $2")
        .bind(version)
        .bind(user_id)
        .execute(state.db.pool())
        .await?;
    if let Some(old) = previous.filter(|old| Some(*old) != version) {
        let prefix = avatar_prefix(user_id, old);
        if let Err(e) = store(state)?.delete_prefix(&prefix).await {
            tracing::warn!(error = %e, %prefix, "cannot delete a previous avatar");
        }
    }
    Ok(())
}

/// Makes an uploaded image the caller's avatar. The image must be the
/// caller's, completed, and attached to no message; it is consumed (deleted
/// once its variants are stored).
#[utoipa::path(put, path = "/v1/me/avatar", tag = "accounts",
    security(("bearer" = [])),
    request_body = SetAvatar,
    responses(
        (status = 200, description = "The caller's profile with its new `avatar_url`", body = User),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a usable image of the caller (`media_id`): not theirs, not an image, not completed, in use, HEIC, over 50 megapixels, or undecodable", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No object store", body = Problem, content_type = "application/problem+json"),
    ))]
async fn set_avatar(
    State(state): State<AppState>,
    user: AuthUser,
    JsonBody(req): JsonBody<SetAvatar>,
) -> Result<Json<User>, ApiError> {
    let store = store(&state)?;
    let media: Option<String> = sqlx::query_scalar(
        "SELECT original_key FROM media m WHERE m.id = $1 AND m.owner_id = $2 \
         AND m.kind = 'image' AND m.state = 'ready' \
         AND NOT EXISTS (SELECT 1 FROM messages WHERE messages.media_id = m.id)",
    )
    .bind(&req.media_id)
    .bind(&user.id)
    .fetch_optional(state.db.pool())
    .await?;
    let Some(original) = media else {
        let why = "not a completed image of yours that is free to use";
        return Err(ApiError::invalid("media_id", why));
    };
    let bytes = store.get_bytes(&original).await.map_err(internal)?;
    let version = store_variants(store, &user.id, bytes).await?;
    switch_version(&state, &user.id, Some(version)).await?;
    // The upload, with whatever metadata it carried, is not kept.
    let consumed = sqlx::query(
        "DELETE FROM media WHERE id = $1 \
         AND NOT EXISTS (SELECT 1 FROM messages WHERE messages.media_id = media.id)",
    )
    .bind(&req.media_id)
    .execute(state.db.pool())
    .await?;
    if consumed.rows_affected() == 1 {
        delete_media_objects(store, &req.media_id, &original).await;
    }
    own_profile(&state, &user.id).await.map(Json)
}

/// Removes the caller's avatar.
#[utoipa::path(delete, path = "/v1/me/avatar", tag = "accounts",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "No avatar now"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "No object store", body = Problem, content_type = "application/problem+json"),
    ))]
async fn remove_avatar(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<StatusCode, ApiError> {
    switch_version(&state, &user.id, None).await?;
    Ok(StatusCode::NO_CONTENT)
}
