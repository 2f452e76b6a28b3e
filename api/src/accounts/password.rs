//! Changing the caller's password, and the check of the current password
//! that the actions which need it again share ([`confirm_password`]).

use crate::core::error::{ApiError, Problem};
use crate::core::extractors::{AuthUser, ClientAddr};
use crate::core::state::AppState;
use crate::core::validation::{self, Checks, JsonBody};
use crate::core::{passwords, sessions};
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use std::net::IpAddr;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(change_password))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    pub current_password: String,
    /// 8–200 characters.
    pub new_password: String,
}

/// Checks `password` against the caller's before an action that asks for it
/// again. Counted by the login limiter as a login to the caller's handle, so
/// a stolen token gives no faster way to guess the password (429 past the
/// limit); 403 `wrong-password` when it does not match.
pub(super) async fn confirm_password(
    state: &AppState,
    user: &AuthUser,
    addr: Option<IpAddr>,
    password: String,
) -> Result<(), ApiError> {
    let (handle, hash): (String, String) =
        sqlx::query_as("SELECT handle_lower, password_hash FROM users WHERE id = $1")
            .bind(&user.id)
            .fetch_optional(state.db.pool())
            .await?
            .ok_or(ApiError::Unauthorized("unknown or revoked token"))?;
    let attempt = state.login_limiter.begin(&handle, addr)?;
    if !passwords::verify_password(password, Some(hash)).await? {
        return Err(ApiError::WrongPassword);
    }
    attempt.succeeded();
    Ok(())
}

/// Changes the caller's password. Every other session ends (their sockets
/// close, their push devices are unregistered); the one this request came
/// with stays logged in.
#[utoipa::path(post, path = "/v1/me/password", tag = "accounts",
    security(("bearer" = [])),
    request_body = ChangePassword,
    responses(
        (status = 204, description = "Password changed; other sessions ended"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The current password does not match (`wrong-password`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The new password is too short or too long", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many wrong passwords; see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Password hashing is busy (`busy`); see Retry-After", body = Problem, content_type = "application/problem+json"),
    ))]
async fn change_password(
    State(state): State<AppState>,
    user: AuthUser,
    ClientAddr(addr): ClientAddr,
    JsonBody(req): JsonBody<ChangePassword>,
) -> Result<StatusCode, ApiError> {
    Checks::default()
        .check("new_password", validation::password(&req.new_password))
        .finish()?;
    confirm_password(&state, &user, addr, req.current_password).await?;
    let hash = passwords::hash_password(req.new_password).await?;
    sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
        .bind(&hash)
        .bind(&user.id)
        .execute(state.db.pool())
        .await?;
    sessions::revoke_all(state.ending(), &user.id, Some(user.session_hash())).await?;
    Ok(StatusCode::NO_CONTENT)
}
