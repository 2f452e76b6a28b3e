//! The account's email, verified by a one-time code, and password recovery
//! through it. Codes are six digits, mailed through the outbox
//! ([`crate::effects::mail`]) in the transaction that makes them, stored as
//! hashes, single use, valid [`CODE_TTL`], dead after [`MAX_TRIES`] wrong
//! tries; mails are limited per recipient and per client
//! ([`crate::core::limits::CreationLimits::mail`]). A reset request answers
//! the same whether or not an account has the address.

use crate::core::error::{on_unique, ApiError, Problem};
use crate::core::extractors::{AuthUser, ClientAddr};
use crate::core::mail::valid_address;
use crate::core::state::AppState;
use crate::core::validation::{self, Checks, JsonBody};
use crate::core::{passwords, sessions, time};
use crate::effects::mail;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use rand::Rng;
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use std::time::Duration;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(set_email))
        .routes(routes!(verify_email))
        .routes(routes!(request_reset))
        .routes(routes!(confirm_reset))
}

/// How long a mailed code works.
pub const CODE_TTL: Duration = Duration::from_secs(15 * 60);
/// Wrong tries a code survives: with six digits, one guess in 200 000 per
/// code, and codes are limited by the mail limits.
pub const MAX_TRIES: i64 = 5;

const VERIFY: &str = "verify_email";
const RESET: &str = "reset_password";

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetEmail {
    pub email: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyEmail {
    /// The six digits mailed to the address.
    pub code: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetRequest {
    pub email: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetConfirm {
    pub email: String,
    /// The six digits mailed to the address.
    pub code: String,
    /// 8–200 characters.
    pub new_password: String,
}

/// The caller's email and whether it is verified.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmailStatus {
    pub email: String,
    pub verified: bool,
}

/// The stored form of an address, or 422 on `field`.
fn address(field: &str, raw: &str) -> Result<String, ApiError> {
    let email = raw.trim().to_lowercase();
    if valid_address(&email) {
        Ok(email)
    } else {
        Err(ApiError::invalid(field, "not an email address"))
    }
}

fn mail_configured(state: &AppState) -> Result<(), ApiError> {
    match state.mailer {
        Some(_) => Ok(()),
        None => Err(ApiError::Unavailable(
            "email is not configured on this server (SORI_SMTP_URL)",
        )),
    }
}

/// Six random digits.
fn new_code() -> String {
    format!("{:06}", rand::rngs::OsRng.gen_range(0..1_000_000))
}

/// What is stored of a code: bound to its account and purpose, so a code
/// for one cannot be replayed for the other.
fn code_hash(user_id: &str, purpose: &str, code: &str) -> String {
    sessions::token_hash(&format!("{user_id}:{purpose}:{}", code.trim()))
}

/// Replaces the account's code for `purpose` with a new one for `email`
/// and queues the mail carrying it, in `conn`'s transaction.
async fn send_code(
    conn: &mut AnyConnection,
    user_id: &str,
    purpose: &str,
    email: &str,
    now: i64,
) -> Result<(), sqlx::Error> {
    let code = new_code();
    sqlx::query(
        "INSERT INTO account_codes (user_id, purpose, code_hash, email, attempts, expires_at, created_at) \
         VALUES ($1, $2, $3, $4, 0, $5, $6) \
         ON CONFLICT (user_id, purpose) DO UPDATE SET code_hash = excluded.code_hash, \
         email = excluded.email, attempts = 0, expires_at = excluded.expires_at, \
         created_at = excluded.created_at",
    )
    .bind(user_id)
    .bind(purpose)
    .bind(code_hash(user_id, purpose, &code))
    .bind(email)
    .bind(now + CODE_TTL.as_millis() as i64)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    let minutes = CODE_TTL.as_secs() / 60;
    let (subject, body) = match purpose {
        VERIFY => (
            "Your Sori verification code",
            format!(
                "Your code is {code}. Enter it in Sori to confirm this address; \
                 it works for {minutes} minutes.\n\nIf you did not ask for it, ignore this mail."
            ),
        ),
        _ => (
            "Reset your Sori password",
            format!(
                "Your code is {code}. Enter it in Sori with your new password; \
                 it works for {minutes} minutes, once.\n\n\
                 If you did not ask for it, ignore this mail: your password stays as it is."
            ),
        ),
    };
    mail::enqueue(conn, email, subject, &body, now).await
}

/// Uses the account's code for `purpose`: the address it was sent to when
/// `code` matches (the code is then gone); 422 on `code` when it does not,
/// has expired, or its tries are used up (every try counts).
async fn use_code(
    state: &AppState,
    user_id: &str,
    purpose: &str,
    code: &str,
    now: i64,
) -> Result<String, ApiError> {
    let dead = || ApiError::invalid("code", "no valid code: ask for a new one");
    // Every try is counted before the code is compared, in one statement
    // that refuses past the limit, so simultaneous guesses get no more
    // tries than sequential ones.
    let hash: Option<String> = sqlx::query_scalar(
        "UPDATE account_codes SET attempts = attempts + 1 \
         WHERE user_id = $1 AND purpose = $2 AND attempts < $3 AND expires_at > $4 \
         RETURNING code_hash",
    )
    .bind(user_id)
    .bind(purpose)
    .bind(MAX_TRIES)
    .bind(now)
    .fetch_optional(state.db.pool())
    .await?;
    let hash = hash.ok_or_else(dead)?;
    if hash != code_hash(user_id, purpose, code) {
        return Err(ApiError::invalid("code", "wrong code"));
    }
    // Single use even when two requests race with the right code.
    let email: Option<String> = sqlx::query_scalar(
        "DELETE FROM account_codes WHERE user_id = $1 AND purpose = $2 AND code_hash = $3 \
         RETURNING email",
    )
    .bind(user_id)
    .bind(purpose)
    .bind(&hash)
    .fetch_optional(state.db.pool())
    .await?;
    email.ok_or_else(dead)
}

/// Sets the caller's email, unverified, and mails it a code
/// (`POST /v1/me/email/verify` confirms it). The address already verified
/// on this account is left as it is.
#[utoipa::path(put, path = "/v1/me/email", tag = "accounts",
    security(("bearer" = [])),
    request_body = SetEmail,
    responses(
        (status = 200, description = "Already this account's verified address", body = EmailStatus),
        (status = 202, description = "Set; a code is on its way", body = EmailStatus),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not an email address", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many mails asked for; see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Email is not configured on this server", body = Problem, content_type = "application/problem+json"),
    ))]
async fn set_email(
    State(state): State<AppState>,
    user: AuthUser,
    ClientAddr(addr): ClientAddr,
    JsonBody(req): JsonBody<SetEmail>,
) -> Result<(StatusCode, Json<EmailStatus>), ApiError> {
    mail_configured(&state)?;
    let email = address("email", &req.email)?;
    let current: (Option<String>, Option<i64>) =
        sqlx::query_as("SELECT email, email_verified_at FROM users WHERE id = $1")
            .bind(&user.id)
            .fetch_one(state.db.pool())
            .await?;
    if current.0.as_deref() == Some(email.as_str()) && current.1.is_some() {
        let status = EmailStatus {
            email,
            verified: true,
        };
        return Ok((StatusCode::OK, Json(status)));
    }
    state.creation_limits.mail(&email, addr)?;
    let now = time::now_ms();
    let mut tx = state.db.pool().begin().await?;
    sqlx::query("UPDATE users SET email = $1, email_verified_at = NULL WHERE id = $2")
        .bind(&email)
        .bind(&user.id)
        .execute(&mut *tx)
        .await?;
    send_code(&mut tx, &user.id, VERIFY, &email, now).await?;
    tx.commit().await?;
    let status = EmailStatus {
        email,
        verified: false,
    };
    Ok((StatusCode::ACCEPTED, Json(status)))
}

/// Confirms the caller's email with the code mailed to it.
#[utoipa::path(post, path = "/v1/me/email/verify", tag = "accounts",
    security(("bearer" = [])),
    request_body = VerifyEmail,
    responses(
        (status = 200, body = EmailStatus),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another account verified this address first", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Wrong, expired or used-up code (`code`)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn verify_email(
    State(state): State<AppState>,
    user: AuthUser,
    JsonBody(req): JsonBody<VerifyEmail>,
) -> Result<Json<EmailStatus>, ApiError> {
    let now = time::now_ms();
    let email = use_code(&state, &user.id, VERIFY, &req.code, now).await?;
    let taken = || ApiError::Conflict("another account verified this address first".to_owned());
    let done = sqlx::query("UPDATE users SET email_verified_at = $1 WHERE id = $2 AND email = $3")
        .bind(now)
        .bind(&user.id)
        .bind(&email)
        .execute(state.db.pool())
        .await
        .map_err(|e| on_unique(e, taken))?;
    if done.rows_affected() == 0 {
        // The address changed after this code was sent.
        return Err(ApiError::invalid(
            "code",
            "no valid code: ask for a new one",
        ));
    }
    Ok(Json(EmailStatus {
        email,
        verified: true,
    }))
}

/// The account whose verified address is `email`, if any.
async fn owner_of(state: &AppState, email: &str) -> Result<Option<String>, ApiError> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM users WHERE email = $1 AND email_verified_at IS NOT NULL \
         AND hidden_at IS NULL",
    )
    .bind(email)
    .fetch_optional(state.db.pool())
    .await?)
}

/// "Forgot password": mails a code to the address if an account has it
/// verified. The answer is the same either way.
#[utoipa::path(post, path = "/v1/auth/password-reset", tag = "accounts",
    request_body = ResetRequest,
    responses(
        (status = 202, description = "If an account has this verified address, a code is on its way"),
        (status = 422, description = "Not an email address", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many mails asked for; see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Password recovery is not configured on this server", body = Problem, content_type = "application/problem+json"),
    ))]
async fn request_reset(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    JsonBody(req): JsonBody<ResetRequest>,
) -> Result<StatusCode, ApiError> {
    mail_configured(&state)?;
    let email = address("email", &req.email)?;
    state.creation_limits.mail(&email, addr)?;
    if let Some(user_id) = owner_of(&state, &email).await? {
        let mut tx = state.db.pool().begin().await?;
        send_code(&mut tx, &user_id, RESET, &email, time::now_ms()).await?;
        tx.commit().await?;
    }
    Ok(StatusCode::ACCEPTED)
}

/// Sets a new password with the code mailed by `POST /v1/auth/password-reset`;
/// every session of the account ends.
#[utoipa::path(post, path = "/v1/auth/password-reset/confirm", tag = "accounts",
    request_body = ResetConfirm,
    responses(
        (status = 204, description = "Password set; every session ended"),
        (status = 422, description = "Wrong, expired or used-up code (`code`), or a bad new password", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Password recovery is not configured, or hashing is busy", body = Problem, content_type = "application/problem+json"),
    ))]
async fn confirm_reset(
    State(state): State<AppState>,
    JsonBody(req): JsonBody<ResetConfirm>,
) -> Result<StatusCode, ApiError> {
    mail_configured(&state)?;
    let email = address("email", &req.email)?;
    Checks::default()
        .check("new_password", validation::password(&req.new_password))
        .finish()?;
    let Some(user_id) = owner_of(&state, &email).await? else {
        return Err(ApiError::invalid(
            "code",
            "no valid code: ask for a new one",
        ));
    };
    let sent_to = use_code(&state, &user_id, RESET, &req.code, time::now_ms()).await?;
    if sent_to != email {
        return Err(ApiError::invalid(
            "code",
            "no valid code: ask for a new one",
        ));
    }
    let hash = passwords::hash_password(req.new_password).await?;
    sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
        .bind(&hash)
        .bind(&user_id)
        .execute(state.db.pool())
        .await?;
    sessions::revoke_all(state.ending(), &user_id, None).await?;
    Ok(StatusCode::NO_CONTENT)
}
