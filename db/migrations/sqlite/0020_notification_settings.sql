-- What a user wants to be told, per kind of notification (follow,
-- follow_request, like, comment, mention, message, media) and channel: the
-- in-app list (inbox) and push to closed apps. A missing row is the default:
-- both on. Flags are 1 (on) or 0 (off).
CREATE TABLE notification_settings (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind    TEXT NOT NULL,
    inbox   BIGINT NOT NULL DEFAULT 1,
    push    BIGINT NOT NULL DEFAULT 1,
    PRIMARY KEY (user_id, kind)
);

-- Social pushes collapse: while an entry of a user waits unsent (no attempt
-- yet), another event of the same key (the likes of one post, new
-- followers) updates it instead of queueing another push; `collapsed`
-- counts the events it stands for.
ALTER TABLE push_outbox ADD COLUMN collapse_key TEXT;
ALTER TABLE push_outbox ADD COLUMN collapsed BIGINT NOT NULL DEFAULT 1;
CREATE UNIQUE INDEX push_outbox_collapse ON push_outbox(user_id, collapse_key)
    WHERE collapse_key IS NOT NULL AND attempts = 0 AND delivered_at IS NULL AND dead_at IS NULL;
