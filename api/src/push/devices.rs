//! The caller's push devices: each app installation registers its push token
//! under a device id it chooses (`PUT /v1/me/devices/{device_id}`), and the
//! dispatcher sends every push of the user to all of them.
//!
//! A token belongs to one account: registering it moves it away from any
//! other account that had it (a phone where someone else logged in before),
//! so one person's messages never reach another's phone. A user keeps at
//! most [`MAX_DEVICES`]; registering one more forgets the least recently
//! registered.

use crate::core::error::{ApiError, Problem};
use crate::core::extractors::AuthUser;
use crate::core::limits::CreationLimits;
use crate::core::state::AppState;
use crate::core::validation::{Checks, JsonBody};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use sori_db::Db;
use sori_pipeline::clock::now_ms;
use sqlx::Row;
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Devices kept per user.
pub const MAX_DEVICES: i64 = 20;
/// Longest device id, in characters.
pub const MAX_DEVICE_ID: usize = 64;
/// Longest push token, in bytes (FCM tokens are about 160).
pub const MAX_TOKEN: usize = 4096;

/// Device routes, merged by [`crate::app`].
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(put_device, delete_device))
        .routes(routes!(list_devices))
}

/// How pushes reach the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// Firebase Cloud Messaging (Android, and iOS through FCM).
    Fcm,
    /// Handed to the operator's push gateway as is.
    Webhook,
}

impl Platform {
    fn as_str(self) -> &'static str {
        match self {
            Self::Fcm => "fcm",
            Self::Webhook => "webhook",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "fcm" => Some(Self::Fcm),
            "webhook" => Some(Self::Webhook),
            _ => None,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutDevice {
    pub platform: Platform,
    /// The token the platform gave the app; 1–4096 printable ASCII characters.
    pub push_token: String,
}

/// A registered device.
#[derive(Debug, Serialize, ToSchema)]
pub struct Device {
    pub device_id: String,
    pub platform: Platform,
    pub push_token: String,
    /// Unix milliseconds of the last registration.
    pub updated_at: i64,
}

/// Every device of the caller (at most [`MAX_DEVICES`]), most recently registered first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceList {
    pub items: Vec<Device>,
}

/// Device ids: 1–64 ASCII letters, digits, `.`, `_`, `:` or `-`.
fn device_id(value: &str) -> Result<(), String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-');
    if value.is_empty() || value.len() > MAX_DEVICE_ID {
        return Err(format!("must be 1 to {MAX_DEVICE_ID} characters"));
    }
    if !value.chars().all(ok) {
        return Err("may contain only letters a-z, digits, '.', '_', ':' and '-'".to_owned());
    }
    Ok(())
}

/// Push tokens: 1–4096 printable ASCII characters, no spaces.
fn push_token(value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > MAX_TOKEN {
        return Err(format!("must be 1 to {MAX_TOKEN} characters"));
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be printable ASCII without spaces".to_owned());
    }
    Ok(())
}

/// Registers the caller's device, or replaces its platform and token. The
/// device belongs to the session (token) that registered it: when that
/// session ends (logout, moderator removal) the device is unregistered.
#[utoipa::path(put, path = "/v1/me/devices/{device_id}", tag = "push",
    security(("bearer" = [])),
    params(("device_id" = String, Path, description = "Chosen by the app, stable per installation: 1–64 of a-z, A-Z, 0-9, '.', '_', ':', '-'")),
    request_body = PutDevice,
    responses(
        (status = 200, description = "Registered (created or replaced)", body = Device),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid device id, platform or token", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many device registrations this hour; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ))]
async fn put_device(
    State(db): State<Db>,
    State(limits): State<Arc<CreationLimits>>,
    user: AuthUser,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<PutDevice>,
) -> Result<Json<Device>, ApiError> {
    Checks::default()
        .check("device_id", device_id(&id))
        .check("push_token", push_token(&req.push_token))
        .finish()?;
    limits.devices.take(&user.id)?;
    let now = now_ms();
    let mut tx = db.pool().begin().await?;
    sqlx::query("DELETE FROM devices WHERE push_token = $1 AND user_id <> $2")
        .bind(&req.push_token)
        .bind(&user.id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO devices (user_id, device_id, platform, push_token, updated_at, session_hash) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (user_id, device_id) DO UPDATE \
         SET platform = excluded.platform, push_token = excluded.push_token, \
         updated_at = excluded.updated_at, session_hash = excluded.session_hash",
    )
    .bind(&user.id)
    .bind(&id)
    .bind(req.platform.as_str())
    .bind(&req.push_token)
    .bind(now)
    .bind(user.session_hash())
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "DELETE FROM devices WHERE user_id = $1 AND device_id NOT IN (SELECT device_id \
         FROM devices WHERE user_id = $1 ORDER BY updated_at DESC, device_id LIMIT $2)",
    )
    .bind(&user.id)
    .bind(MAX_DEVICES)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Json(Device {
        device_id: id,
        platform: req.platform,
        push_token: req.push_token,
        updated_at: now,
    }))
}

/// Forgets one of the caller's devices: it receives no more pushes.
#[utoipa::path(delete, path = "/v1/me/devices/{device_id}", tag = "push",
    security(("bearer" = [])),
    params(("device_id" = String, Path, description = "The device to forget")),
    responses(
        (status = 204, description = "Forgotten (also when it was not registered)"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
async fn delete_device(
    State(db): State<Db>,
    user: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    sqlx::query("DELETE FROM devices WHERE user_id = $1 AND device_id = $2")
        .bind(&user.id)
        .bind(&id)
        .execute(db.pool())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's registered devices (never more than 20, so one page).
#[utoipa::path(get, path = "/v1/me/devices", tag = "push",
    security(("bearer" = [])),
    responses(
        (status = 200, body = DeviceList),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_devices(State(db): State<Db>, user: AuthUser) -> Result<Json<DeviceList>, ApiError> {
    let rows = sqlx::query(
        "SELECT device_id, platform, push_token, updated_at FROM devices \
         WHERE user_id = $1 ORDER BY updated_at DESC, device_id LIMIT $2",
    )
    .bind(&user.id)
    .bind(MAX_DEVICES)
    .fetch_all(db.pool())
    .await?;
    let items = rows
        .iter()
        .map(|r| {
            let platform: String = r.try_get("platform")?;
            Ok(Device {
                device_id: r.try_get("device_id")?,
                platform: Platform::parse(&platform)
                    .ok_or_else(|| sqlx::Error::Decode(format!("platform {platform:?}").into()))?,
                push_token: r.try_get("push_token")?,
                updated_at: r.try_get("updated_at")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(Json(DeviceList { items }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_ids_are_short_and_plain() {
        assert!(device_id("ios-7F3A.b_2:x").is_ok());
        assert!(device_id("").is_err());
        assert!(device_id(&"a".repeat(65)).is_err());
        assert!(device_id(&"a".repeat(64)).is_ok());
        assert!(device_id("a/b").is_err());
        assert!(device_id("기기").is_err());
    }

    #[test]
    fn tokens_are_printable_ascii() {
        assert!(push_token("fMI-qk:APA91b").is_ok());
        assert!(push_token("").is_err());
        assert!(push_token("a b").is_err());
        assert!(push_token(&"t".repeat(4097)).is_err());
    }
}
