//! Who sees what, as SQL fragments every list composes and as the checks
//! before an action: blocks, mutes, moderators' removals, post visibility
//! (a post's audience), chat media, and being online.

use crate::model::dialect;
use sori_db::{Backend, Db};

/// SQL: no block between the users `a` and `b` (columns or parameters), in
/// either direction. Two probes of the `blocks` primary key, rather than one
/// `OR`, so each stays a single index lookup on both backends.
pub fn not_blocked(a: &str, b: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM blocks bk WHERE bk.blocker_id = {a} AND bk.blocked_id = {b}) \
         AND NOT EXISTS (SELECT 1 FROM blocks bk WHERE bk.blocker_id = {b} AND bk.blocked_id = {a})"
    )
}

/// SQL: the user row aliased `alias` is shown to `viewer`: not removed by a
/// moderator, and no block between them.
pub fn user_visible(alias: &str, viewer: &str) -> String {
    format!(
        "{alias}.hidden_at IS NULL AND {}",
        not_blocked(viewer, &format!("{alias}.id"))
    )
}

/// SQL: the post aliased `p` is meant for `viewer` by its visibility:
/// `public` for everyone, `followers` for the author's followers, `private`
/// for the author alone — and the author always. A private account's
/// public posts reach its followers only. Probes of the `users` key (public
/// posts) and the `follows` key (the rest), each only when needed.
pub fn audience(viewer: &str) -> String {
    format!(
        "(p.author_id = {viewer} \
         OR (p.visibility = 'public' AND NOT EXISTS (SELECT 1 FROM users pa \
             WHERE pa.id = p.author_id AND pa.is_private = 1)) \
         OR (p.visibility <> 'private' AND EXISTS (SELECT 1 FROM follows fa \
             WHERE fa.follower_id = {viewer} AND fa.followee_id = p.author_id)))"
    )
}

/// SQL over the aliases of [`crate::model::posts::SELECT_ITEMS`]: the post
/// is shown to the viewer `$1` at all — neither it nor its author removed by
/// a moderator, no block between the viewer and the author (two probes of
/// the `blocks` key), and the viewer in its [`audience`].
pub fn visible() -> String {
    format!(
        "p.hidden_at IS NULL AND u.hidden_at IS NULL AND {} AND {}",
        not_blocked("$1", "p.author_id"),
        audience("$1")
    )
}

/// SQL: `viewer` is an admin and the post aliased `p` has been reported:
/// moderators look up and hear reported posts whatever their visibility
/// (and once removed, to restore them), and no others beyond what anyone sees.
pub fn reported_to_admin(viewer: &str) -> String {
    format!(
        "(EXISTS (SELECT 1 FROM users ad WHERE ad.id = {viewer} AND ad.role = 'admin') \
         AND EXISTS (SELECT 1 FROM reports rp WHERE rp.target_kind = 'post' AND rp.target_id = p.id))"
    )
}

/// SQL: `viewer` has no mute of `author` in force (one probe of the `mutes`
/// key). Mutes quiet the feed, explore (by tag too, which post search
/// shares) and notifications; profiles, people search and direct links still
/// show the muted user.
pub fn not_muted(backend: Backend, viewer: &str, author: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM mutes mu WHERE mu.muter_id = {viewer} AND mu.muted_id = {author} \
         AND {})",
        mute_in_force(backend, "mu")
    )
}

/// SQL: the `mutes` row aliased `alias` has not lapsed: for good, or its
/// `until` still ahead of the database's clock.
pub fn mute_in_force(backend: Backend, alias: &str) -> String {
    format!(
        "({alias}.until IS NULL OR {alias}.until > {now})",
        now = dialect::now_ms(backend)
    )
}

/// Whether either user blocks the other: every interaction between them
/// (follow, like, comment, message, seeing posts) is refused when true.
pub async fn blocked_either_way(db: &Db, a: &str, b: &str) -> Result<bool, sqlx::Error> {
    let found: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM blocks WHERE (blocker_id = $1 AND blocked_id = $2) \
         OR (blocker_id = $2 AND blocked_id = $1)",
    )
    .bind(a)
    .bind(b)
    .fetch_one(db.pool())
    .await?;
    Ok(found > 0)
}

/// SQL: the user `user` (an SQL expression) has a live connection on any
/// process at time `at`; what "online" means wherever a statement asks.
pub fn live_connection(user: &str, at: &str) -> String {
    format!("EXISTS (SELECT 1 FROM ws_connections WHERE user_id = {user} AND expires_at > {at})")
}

/// Whether `user_id` is a member of a room where `media_id` was sent in a
/// message a moderator has not removed: who may play or view chat media
/// besides its owner.
pub async fn can_see_media(db: &Db, media_id: &str, user_id: &str) -> Result<bool, sqlx::Error> {
    let found: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM messages m JOIN chat_members cm ON cm.room_id = m.room_id \
         WHERE m.media_id = $1 AND cm.user_id = $2 AND m.hidden_at IS NULL",
    )
    .bind(media_id)
    .bind(user_id)
    .fetch_one(db.pool())
    .await?;
    Ok(found > 0)
}

/// The kinds of notification a user may turn off, each for the in-app list
/// and for push: what `GET|PUT /v1/me/notification-settings` lists.
pub const SETTING_KINDS: [&str; 7] = [
    "follow",
    "follow_request",
    "like",
    "comment",
    "mention",
    "message",
    "media",
];

/// Notification and push kinds governed by a setting of another name; every
/// other kind is its own setting.
const SETTING_OF: &[(&str, &str)] = &[
    ("follow_accepted", "follow_request"),
    ("media.ready", "media"),
    ("media.failed", "media"),
    ("message.new", "message"),
];

/// The setting (one of [`SETTING_KINDS`], or none) that governs
/// notification or push `kind`.
pub fn setting_of(kind: &str) -> &str {
    SETTING_OF
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or(kind, |(_, setting)| setting)
}

/// Where a notification reaches its user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// `GET /v1/notifications` and the socket's `notification` event.
    Inbox,
    /// A push to the user's devices.
    Push,
}

impl Channel {
    /// Its column in `notification_settings`.
    pub fn column(self) -> &'static str {
        match self {
            Channel::Inbox => "inbox",
            Channel::Push => "push",
        }
    }
}

/// SQL: `user` turned `channel` off for the notifications of kind `kind`
/// (a column or parameter holding a notification kind, mapped to its
/// setting here as [`setting_of`] does).
pub fn turned_off(user: &str, kind: &str, channel: Channel) -> String {
    let mapped: String = SETTING_OF
        .iter()
        .map(|(k, setting)| format!(" WHEN '{k}' THEN '{setting}'"))
        .collect();
    format!(
        "EXISTS (SELECT 1 FROM notification_settings ns WHERE ns.user_id = {user} \
         AND ns.kind = (CASE {kind}{mapped} ELSE {kind} END) AND ns.{column} = 0)",
        column = channel.column()
    )
}
