//! Deleting the caller's account (`DELETE /v1/me`), as app stores require
//! of any app with sign-up. What happens, and why without a grace period:
//! [`crate::effects::erasure`].

use super::password::confirm_password;
use crate::core::error::{ApiError, Problem};
use crate::core::extractors::{AuthUser, ClientAddr};
use crate::core::sessions;
use crate::core::state::AppState;
use crate::core::time;
use crate::core::validation::JsonBody;
use crate::effects::erasure;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(delete_me))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteAccount {
    /// The account's password, asked for again.
    pub password: String,
}

/// Deletes the caller's account, for good. At once: every session ends (its
/// sockets close, its push devices are unregistered), the profile leaves
/// every list and search, the handle is free. Then, in the background:
/// posts, comments, likes (counters follow), follows, blocks, reports filed,
/// playlists, chat messages (the other member sees "Deleted account"),
/// notifications, and every stored audio and image object are erased.
#[utoipa::path(delete, path = "/v1/me", tag = "accounts",
    security(("bearer" = [])),
    request_body = DeleteAccount,
    responses(
        (status = 202, description = "Account closed; its data is being erased"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The password does not match (`wrong-password`)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many wrong passwords; see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Password checks are busy (`busy`); see Retry-After", body = Problem, content_type = "application/problem+json"),
    ))]
async fn delete_me(
    State(state): State<AppState>,
    user: AuthUser,
    ClientAddr(addr): ClientAddr,
    JsonBody(req): JsonBody<DeleteAccount>,
) -> Result<StatusCode, ApiError> {
    confirm_password(&state, &user, addr, req.password).await?;
    erasure::close_account(&state.db, &user.id, time::now_ms()).await?;
    sessions::revoke_all(state.ending(), &user.id, None).await?;
    // Without a store (an API built without media) the cleanup task, which
    // always has one, does the erasing.
    if let Some(store) = state.store.clone() {
        tokio::spawn(erasure::erase_now(state.db.clone(), store, user.id.clone()));
    }
    Ok(StatusCode::ACCEPTED)
}
