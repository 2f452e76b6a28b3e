//! What a user wants to be told: per kind of notification, whether it shows
//! in their list (`inbox`) and whether it is pushed to their closed apps
//! (`push`). Both are on until turned off. `GET|PUT
//! /v1/me/notification-settings`; the effects read them where they write
//! ([`crate::model::rules::turned_off`]).

use crate::core::error::{ApiError, Problem};
use crate::core::extractors::AuthUser;
use crate::core::state::AppState;
use crate::core::validation::JsonBody;
use crate::model::rules::SETTING_KINDS;
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use sori_db::Db;
use sqlx::Row;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Notification settings routes, merged by [`super::router`].
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_settings, put_settings))
}

/// The two switches of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct Switches {
    /// Shown in `GET /v1/notifications` and told to open sockets.
    pub inbox: bool,
    /// Pushed to the user's devices while no app of theirs is connected.
    pub push: bool,
}

impl Default for Switches {
    fn default() -> Self {
        Self {
            inbox: true,
            push: true,
        }
    }
}

/// Every kind's switches.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct NotificationSettings {
    /// Someone follows you.
    pub follow: Switches,
    /// Someone asks to follow your private account, or accepts your request.
    pub follow_request: Switches,
    pub like: Switches,
    pub comment: Switches,
    /// `@you` in a caption or comment.
    pub mention: Switches,
    /// Chat messages: push only (chat keeps its own unread counts, so
    /// `inbox` stays on).
    pub message: Switches,
    /// Your clip is ready, or could not be processed.
    pub media: Switches,
}

impl NotificationSettings {
    /// The switches of setting `kind`, one of [`SETTING_KINDS`].
    fn slot(&mut self, kind: &str) -> Option<&mut Switches> {
        Some(match kind {
            "follow" => &mut self.follow,
            "follow_request" => &mut self.follow_request,
            "like" => &mut self.like,
            "comment" => &mut self.comment,
            "mention" => &mut self.mention,
            "message" => &mut self.message,
            "media" => &mut self.media,
            _ => return None,
        })
    }
}

/// Switches to change; an absent one stays as it is.
#[derive(Debug, Default, Clone, Copy, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SwitchesUpdate {
    pub inbox: Option<bool>,
    pub push: Option<bool>,
}

/// The kinds to change; an absent kind stays as it is.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotificationSettingsUpdate {
    pub follow: Option<SwitchesUpdate>,
    pub follow_request: Option<SwitchesUpdate>,
    pub like: Option<SwitchesUpdate>,
    pub comment: Option<SwitchesUpdate>,
    pub mention: Option<SwitchesUpdate>,
    pub message: Option<SwitchesUpdate>,
    pub media: Option<SwitchesUpdate>,
}

impl NotificationSettingsUpdate {
    /// The kinds given, in the order of [`SETTING_KINDS`].
    fn given(&self) -> Vec<(&'static str, SwitchesUpdate)> {
        let all = [
            self.follow,
            self.follow_request,
            self.like,
            self.comment,
            self.mention,
            self.message,
            self.media,
        ];
        SETTING_KINDS
            .iter()
            .zip(all)
            .filter_map(|(kind, update)| Some((*kind, update?)))
            .collect()
    }
}

/// The caller's notification settings.
#[utoipa::path(get, path = "/v1/me/notification-settings", tag = "social",
    security(("bearer" = [])),
    responses(
        (status = 200, body = NotificationSettings),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
async fn get_settings(
    State(db): State<Db>,
    user: AuthUser,
) -> Result<Json<NotificationSettings>, ApiError> {
    Ok(Json(load(&db, &user.id).await?))
}

/// Turns kinds of notification on or off, in the list and for push; what
/// the body leaves out stays as it is. Answers with every setting.
#[utoipa::path(put, path = "/v1/me/notification-settings", tag = "social",
    security(("bearer" = [])),
    request_body = NotificationSettingsUpdate,
    responses(
        (status = 200, body = NotificationSettings),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 413, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An unknown kind or switch, or a value that is not true or false", body = Problem, content_type = "application/problem+json"),
    ))]
async fn put_settings(
    State(db): State<Db>,
    user: AuthUser,
    JsonBody(req): JsonBody<NotificationSettingsUpdate>,
) -> Result<Json<NotificationSettings>, ApiError> {
    let given = req.given();
    if given
        .iter()
        .any(|(kind, s)| *kind == "message" && s.inbox == Some(false))
    {
        return Err(ApiError::invalid(
            "message.inbox",
            "chat messages are not in the notification list; turn off message.push instead",
        ));
    }
    let mut tx = db.pool().begin().await?;
    for (kind, switches) in given {
        // One statement per kind: a switch left out keeps its stored value
        // even when another request changes the other switch meanwhile.
        sqlx::query(
            "INSERT INTO notification_settings (user_id, kind, inbox, push) \
             VALUES ($1, $2, COALESCE($3, 1), COALESCE($4, 1)) \
             ON CONFLICT (user_id, kind) DO UPDATE SET \
             inbox = COALESCE($3, notification_settings.inbox), \
             push = COALESCE($4, notification_settings.push)",
        )
        .bind(&user.id)
        .bind(kind)
        .bind(switches.inbox.map(i64::from))
        .bind(switches.push.map(i64::from))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(Json(load(&db, &user.id).await?))
}

/// The settings of `user`: the defaults, changed by their stored rows.
async fn load(db: &Db, user: &str) -> Result<NotificationSettings, ApiError> {
    let rows = sqlx::query(
        "SELECT kind, CAST(inbox AS BIGINT) AS inbox, CAST(push AS BIGINT) AS push \
         FROM notification_settings WHERE user_id = $1",
    )
    .bind(user)
    .fetch_all(db.pool())
    .await?;
    let mut settings = NotificationSettings::default();
    for row in rows {
        let kind: String = row.try_get("kind")?;
        if let Some(slot) = settings.slot(&kind) {
            *slot = Switches {
                inbox: row.try_get::<i64, _>("inbox")? != 0,
                push: row.try_get::<i64, _>("push")? != 0,
            };
        }
    }
    Ok(settings)
}
