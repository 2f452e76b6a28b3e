//! Accounts: sign-up, login and logout, the caller's own profile, and
//! public profiles; the caller's [`sessions`], [`password`] change,
//! [`email`] and password recovery, [`avatar`], data [`export`], and
//! account [`deletion`].

mod avatar;
mod deletion;
mod email;
mod export;
mod password;
pub mod sessions;

use crate::core::error::{on_unique, ApiError, Problem};
use crate::core::extractors::{AuthUser, ClientAddr};
use crate::core::limits::CreationLimits;
use crate::core::sessions::{issue_token, SessionClient};
use crate::core::state::AppState;
use crate::core::validation::{self, Checks, JsonBody};
use crate::core::{passwords, time};
use crate::effects::events;
use crate::effects::follows;
use crate::effects::notifications::tell;
use crate::model::posts::Visibility;
use crate::model::rules::{audience, mute_in_force};
use crate::model::users::fold;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use sori_db::Db;
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Sign-up, login, logout and profile routes, merged by [`crate::app`].
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(signup))
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(me, update_me))
        .routes(routes!(user))
        .merge(sessions::router())
        .merge(password::router())
        .merge(deletion::router())
        .merge(email::router())
        .merge(export::router())
        .merge(avatar::router())
}

/// A person's public profile.
#[derive(Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct User {
    pub id: String,
    pub handle: String,
    pub display_name: String,
    pub bio: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Who follows them.
    pub follower_count: i64,
    /// Whom they follow.
    pub following_count: i64,
    /// Their posts the caller may hear: ready, not removed, and public,
    /// followers-only to a follower, or any on the caller's own profile.
    pub post_count: i64,
    /// Whether the caller follows them (false on the caller's own profile).
    #[sqlx(skip)]
    pub followed_by_me: bool,
    /// A private account: following it is a request it approves, and its
    /// posts reach its followers only.
    #[sqlx(skip)]
    pub private: bool,
    #[serde(skip)]
    pub is_private: i64,
    /// Whether the caller has asked to follow them (a private account) and
    /// awaits approval.
    #[sqlx(skip)]
    pub requested_by_me: bool,
    /// Whether the caller has muted them (a mute in force).
    #[sqlx(skip)]
    pub muted_by_me: bool,
    /// Whether the caller blocks them.
    #[sqlx(skip)]
    pub blocked_by_me: bool,
    /// Their avatar (a 256 px square JPEG), a signed URL; `null` without one.
    #[sqlx(skip)]
    pub avatar_url: Option<String>,
    #[serde(skip)]
    pub avatar_version: Option<i64>,
    /// The caller's email, on their own profile only (`GET /v1/me`); absent
    /// elsewhere and when none is set.
    #[sqlx(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Whether `email` is verified (it is then what password recovery uses).
    #[sqlx(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    /// The visibility the caller's new posts get unless they name one, on
    /// their own profile only.
    #[sqlx(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_visibility: Option<String>,
    /// Whether chat partners see the caller online and when last seen, on
    /// their own profile only.
    #[sqlx(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub show_presence: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupRequest {
    /// 3–30 letters, digits or underscores; unique ignoring case.
    pub handle: String,
    /// 8–200 characters.
    pub password: String,
    /// 1–50 characters.
    pub display_name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub handle: String,
    pub password: String,
}

/// A bearer token for `Authorization: Bearer <token>`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Session {
    pub token: String,
    pub user_id: String,
    /// Unix milliseconds after which the token is refused.
    pub expires_at: i64,
}

/// Fields of the caller's profile to change; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMe {
    /// 1–50 characters.
    pub display_name: Option<String>,
    /// At most 300 characters.
    pub bio: Option<String>,
    /// The visibility new posts get when their request names none.
    pub default_visibility: Option<Visibility>,
    /// Whether chat partners see you online and when you were last seen.
    pub show_presence: Option<bool>,
    /// A private account approves its followers (follows become requests),
    /// and its posts reach followers only. Turning it off accepts every
    /// pending request.
    pub private: Option<bool>,
}

const MAX_BIO: usize = 300;

/// Creates an account and logs it in. Sign-ups from one address are limited
/// per hour (`SORI_SIGNUPS_PER_HOUR`; 429 with `Retry-After` past it).
#[utoipa::path(post, path = "/v1/auth/signup", tag = "accounts",
    request_body = SignupRequest,
    responses(
        (status = 201, body = Session),
        (status = 409, description = "Handle taken", body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many sign-ups from this address; see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Password hashing is busy (`busy`); see Retry-After", body = Problem, content_type = "application/problem+json"),
    ))]
async fn signup(
    State(db): State<Db>,
    State(limits): State<Arc<CreationLimits>>,
    ClientAddr(addr): ClientAddr,
    client: SessionClient,
    JsonBody(req): JsonBody<SignupRequest>,
) -> Result<(StatusCode, Json<Session>), ApiError> {
    limits.signup(addr)?;
    let display_name = req.display_name.trim().to_owned();
    Checks::default()
        .check("handle", validation::handle(&req.handle))
        .check("password", validation::password(&req.password))
        .check("display_name", validation::display_name(&display_name))
        .finish()?;
    let hash = passwords::hash_password(req.password).await?;
    let id = uuid::Uuid::now_v7().to_string();
    sqlx::query(
        "INSERT INTO users (id, handle, handle_lower, display_name, password_hash, created_at, \
         handle_fold, name_fold) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&id)
    .bind(&req.handle)
    .bind(req.handle.to_ascii_lowercase())
    .bind(&display_name)
    .bind(&hash)
    .bind(time::now_ms())
    .bind(fold(&req.handle))
    .bind(fold(&display_name))
    .execute(db.pool())
    .await
    .map_err(|e| on_unique(e, || ApiError::Conflict("handle already taken".to_owned())))?;
    let issued = issue_token(&db, &id, &client).await?;
    let session = Session {
        token: issued.token,
        user_id: id,
        expires_at: issued.expires_at,
    };
    Ok((StatusCode::CREATED, Json(session)))
}

/// Exchanges a handle and password for a new token. Attempts are limited per
/// account and address, per address, and (with a growing delay) per account
/// (429, `Retry-After`); when password checks are queued too deep, 503 with
/// `Retry-After`.
#[utoipa::path(post, path = "/v1/auth/login", tag = "accounts",
    request_body = LoginRequest,
    responses(
        (status = 200, body = Session),
        (status = 401, description = "Wrong handle or password", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The account was removed by a moderator (`account-removed`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts; see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Password checks are busy (`busy`); see Retry-After", body = Problem, content_type = "application/problem+json"),
    ))]
async fn login(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    client: SessionClient,
    JsonBody(req): JsonBody<LoginRequest>,
) -> Result<Json<Session>, ApiError> {
    // Capped so guessed handles cannot grow the limiter's keys without bound.
    let account: String = req.handle.to_ascii_lowercase().chars().take(64).collect();
    // Counted before the password check, so simultaneous guesses get no
    // more tries than sequential ones.
    let attempt = state.login_limiter.begin(&account, addr)?;
    let row: Option<(String, String, Option<i64>)> =
        sqlx::query_as("SELECT id, password_hash, hidden_at FROM users WHERE handle_lower = $1")
            .bind(&account)
            .fetch_optional(state.db.pool())
            .await?;
    let (id, hash, removed) = match row {
        Some((id, hash, hidden_at)) => (Some(id), Some(hash), hidden_at.is_some()),
        None => (None, None, false),
    };
    // Without an account this checks a dummy hash: the same time, then false.
    let valid = passwords::verify_password(req.password, hash).await?;
    let Some(id) = id.filter(|_| valid) else {
        return Err(ApiError::Unauthorized("wrong handle or password"));
    };
    attempt.succeeded();
    // Said only to whoever knows the password: to others the account is
    // like any other.
    if removed {
        return Err(ApiError::AccountRemoved);
    }
    let issued = issue_token(&state.db, &id, &client).await?;
    Ok(Json(Session {
        token: issued.token,
        user_id: id,
        expires_at: issued.expires_at,
    }))
}

/// Revokes the token the request carries: its open sockets close and the
/// push devices it registered are unregistered, on every process.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "accounts",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Token revoked"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
async fn logout(State(state): State<AppState>, user: AuthUser) -> Result<StatusCode, ApiError> {
    user.revoke(&state).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's profile.
#[utoipa::path(get, path = "/v1/me", tag = "accounts",
    security(("bearer" = [])),
    responses(
        (status = 200, body = User),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
async fn me(State(state): State<AppState>, user: AuthUser) -> Result<Json<User>, ApiError> {
    own_profile(&state, &user.id).await.map(Json)
}

/// The caller's profile as they see it: with their email.
pub(crate) async fn own_profile(state: &AppState, id: &str) -> Result<User, ApiError> {
    let mut user = profile(state, id, id).await?;
    let (email, verified_at, default_visibility, show_presence): (
        Option<String>,
        Option<i64>,
        String,
        i64,
    ) = sqlx::query_as(
        "SELECT email, email_verified_at, default_visibility, show_presence FROM users \
         WHERE id = $1",
    )
    .bind(id)
    .fetch_one(state.db.pool())
    .await?;
    user.email_verified = email.as_ref().map(|_| verified_at.is_some());
    user.email = email;
    user.default_visibility = Some(default_visibility);
    user.show_presence = Some(show_presence != 0);
    Ok(user)
}

/// Changes the caller's display name, bio, default post visibility or
/// whether chat partners see their presence.
#[utoipa::path(patch, path = "/v1/me", tag = "accounts",
    security(("bearer" = [])),
    request_body = UpdateMe,
    responses(
        (status = 200, body = User),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ))]
async fn update_me(
    State(state): State<AppState>,
    user: AuthUser,
    JsonBody(req): JsonBody<UpdateMe>,
) -> Result<Json<User>, ApiError> {
    let display_name = req.display_name.as_deref().map(str::trim);
    let bio = req.bio.as_deref().map(str::trim);
    let mut checks = Checks::default();
    if let Some(name) = display_name {
        checks.check("display_name", validation::display_name(name));
    }
    if let Some(bio) = bio {
        checks.check("bio", validation::text(bio, 0, MAX_BIO));
    }
    checks.finish()?;
    let mut tx = state.db.pool().begin().await?;
    sqlx::query(
        "UPDATE users SET display_name = COALESCE($1, display_name), bio = COALESCE($2, bio), \
         name_fold = COALESCE($3, name_fold), \
         default_visibility = COALESCE($4, default_visibility), \
         show_presence = COALESCE($5, show_presence), \
         is_private = COALESCE($6, is_private) WHERE id = $7",
    )
    .bind(display_name)
    .bind(bio)
    .bind(display_name.map(fold))
    .bind(req.default_visibility.map(Visibility::as_str))
    .bind(req.show_presence.map(i64::from))
    .bind(req.private.map(i64::from))
    .bind(&user.id)
    .execute(&mut *tx)
    .await?;
    // Turning public accepts whoever asked meanwhile.
    let written = match req.private {
        Some(false) => follows::accept_all(&mut tx, &user.id, state.timelines.length).await?,
        _ => Vec::new(),
    };
    tx.commit().await?;
    tell(&state.realtime, written).await;
    if let Some(shown) = req.show_presence {
        events::presence_setting_changed(&state, &user.id, shown).await?;
    }
    own_profile(&state, &user.id).await.map(Json)
}

/// Someone's public profile.
#[utoipa::path(get, path = "/v1/users/{id}", tag = "accounts",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 200, body = User),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn user(
    State(state): State<AppState>,
    caller: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<User>, ApiError> {
    let mut user = profile(&state, &id, &caller.id).await?;
    let sql = format!(
        "SELECT (SELECT COUNT(*) FROM follows WHERE follower_id = $1 AND followee_id = $2), \
         (SELECT COUNT(*) FROM follow_requests WHERE requester_id = $1 AND target_id = $2), \
         (SELECT COUNT(*) FROM mutes mu WHERE mu.muter_id = $1 AND mu.muted_id = $2 AND {}), \
         (SELECT COUNT(*) FROM blocks WHERE blocker_id = $1 AND blocked_id = $2)",
        mute_in_force(state.db.backend(), "mu")
    );
    let (follows, requests, mutes, blocks): (i64, i64, i64, i64) = sqlx::query_as(&sql)
        .bind(&caller.id)
        .bind(&id)
        .fetch_one(state.db.pool())
        .await?;
    user.followed_by_me = follows > 0;
    user.requested_by_me = requests > 0;
    user.muted_by_me = mutes > 0;
    user.blocked_by_me = blocks > 0;
    Ok(Json(user))
}

/// A profile as `viewer` sees it: a removed user is 404 except to themselves.
/// The counts are index range counts (`follows_followee`, the `follows` key,
/// `posts_author_feed` plus each post's media row).
async fn profile(state: &AppState, id: &str, viewer: &str) -> Result<User, ApiError> {
    let sql = format!(
        "SELECT u.id, u.handle, u.display_name, u.bio, u.created_at, u.avatar_version, u.is_private, \
         (SELECT COUNT(*) FROM follows f WHERE f.followee_id = u.id) AS follower_count, \
         (SELECT COUNT(*) FROM follows f WHERE f.follower_id = u.id) AS following_count, \
         (SELECT COUNT(*) FROM posts p JOIN media m ON m.id = p.media_id \
          WHERE p.author_id = u.id AND p.hidden_at IS NULL AND m.state = 'ready' \
          AND {audience}) AS post_count \
         FROM users u WHERE u.id = $1 AND (u.hidden_at IS NULL OR u.id = $2)",
        audience = audience("$2"),
    );
    let mut user: User = sqlx::query_as(&sql)
        .bind(id)
        .bind(viewer)
        .fetch_optional(state.db.pool())
        .await?
        .ok_or(ApiError::NotFound)?;
    let urls = state.media_urls.signer().await?;
    user.avatar_url = urls.avatar(&user.id, user.avatar_version);
    user.private = user.is_private != 0;
    Ok(user)
}
