-- Every admin action, kept for accountability: who did what to which
-- target, when and why. actor_id is NULL for the command line (`sori admin`).
CREATE TABLE audit_log (
    id          TEXT PRIMARY KEY,
    actor_id    TEXT REFERENCES users(id) ON DELETE SET NULL,
    -- 'report.dismiss', 'report.remove', 'restore', 'role.grant',
    -- 'role.revoke', 'announcement'.
    action      TEXT NOT NULL,
    -- 'post', 'comment', 'user', 'message', 'report' or 'announcement'.
    target_kind TEXT NOT NULL,
    target_id   TEXT NOT NULL,
    reason      TEXT,
    created_at  BIGINT NOT NULL
);
-- The admins' list, newest first.
CREATE INDEX audit_log_time ON audit_log(created_at, id);
CREATE INDEX audit_log_actor ON audit_log(actor_id);

-- Notices to everyone, each written into every account's notifications
-- (kind 'announcement', no actor) when posted.
CREATE TABLE announcements (
    id         TEXT PRIMARY KEY,
    author_id  TEXT REFERENCES users(id) ON DELETE SET NULL,
    text       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
