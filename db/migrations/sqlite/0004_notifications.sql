-- Notifications: one row per thing a user should be told about, newest first
-- in their list. Ids are time-ordered UUIDv7 text; times are Unix milliseconds.
-- Kinds so far: `media.ready` and `media.failed` (written by the worker in the
-- same transaction as the media's state change); the social routes add others.
CREATE TABLE notifications (
    id         TEXT PRIMARY KEY,
    -- Who is notified.
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind       TEXT NOT NULL,
    -- Who caused it (a liker, a follower), when someone did.
    actor_id   TEXT REFERENCES users(id) ON DELETE CASCADE,
    post_id    TEXT REFERENCES posts(id) ON DELETE CASCADE,
    media_id   TEXT REFERENCES media(id) ON DELETE CASCADE,
    -- Kind-specific details as a JSON object (e.g. a failure's reason).
    body       TEXT,
    created_at BIGINT NOT NULL,
    read_at    BIGINT
);
-- A user's list, keyset-paginated newest first.
CREATE INDEX notifications_user_time ON notifications(user_id, created_at, id);
-- For the cascades when a user, post or media is deleted.
CREATE INDEX notifications_actor ON notifications(actor_id);
CREATE INDEX notifications_post ON notifications(post_id);
CREATE INDEX notifications_media ON notifications(media_id);
