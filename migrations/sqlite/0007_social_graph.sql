-- The rest of the social graph: comments, blocks, reports, plays, and the
-- moderation flag that hides removed content from every list.
-- Ids are time-ordered UUIDv7 text; times are Unix milliseconds.

-- Set when a moderator resolves a report as "removed": the row stays (for
-- the record and for the report) but no list or lookup shows it any more.
ALTER TABLE posts ADD COLUMN hidden_at BIGINT;
ALTER TABLE users ADD COLUMN hidden_at BIGINT;
-- Kept by the plays route, so a feed page needs no aggregate.
ALTER TABLE posts ADD COLUMN play_count BIGINT NOT NULL DEFAULT 0;

-- A comment is text, or a voice clip (a media the commenter owns, shown once ready).
CREATE TABLE comments (
    id         TEXT PRIMARY KEY,
    post_id    TEXT NOT NULL REFERENCES posts(id) ON DELETE CASCADE,
    author_id  TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    body       TEXT NOT NULL DEFAULT '',
    media_id   TEXT UNIQUE REFERENCES media(id) ON DELETE CASCADE,
    hidden_at  BIGINT,
    created_at BIGINT NOT NULL
);
-- A post's comments, keyset-paginated oldest first.
CREATE INDEX comments_post_time ON comments(post_id, created_at, id);
CREATE INDEX comments_author ON comments(author_id);

-- blocker_id blocks blocked_id: checked in both directions by every rule.
CREATE TABLE blocks (
    blocker_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    blocked_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id)
);
CREATE INDEX blocks_blocked ON blocks(blocked_id, blocker_id);

-- Reports for moderation: target_kind is post, comment, user or message.
CREATE TABLE reports (
    id          TEXT PRIMARY KEY,
    reporter_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    target_kind TEXT NOT NULL,
    target_id   TEXT NOT NULL,
    reason      TEXT NOT NULL,
    details     TEXT NOT NULL DEFAULT '',
    -- open, dismissed or removed.
    state       TEXT NOT NULL DEFAULT 'open',
    resolved_by TEXT REFERENCES users(id) ON DELETE SET NULL,
    resolved_at BIGINT,
    created_at  BIGINT NOT NULL
);
-- One open report per reporter and target.
CREATE UNIQUE INDEX reports_one_open ON reports(reporter_id, target_kind, target_id) WHERE state = 'open';
-- The moderators' queue, keyset-paginated.
CREATE INDEX reports_state_time ON reports(state, created_at, id);
CREATE INDEX reports_target ON reports(target_kind, target_id);

-- A play counts at most once per listener, post and UTC day (days since the epoch).
CREATE TABLE plays (
    post_id    TEXT NOT NULL REFERENCES posts(id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    day        BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (post_id, user_id, day)
);
CREATE INDEX plays_user ON plays(user_id);

-- Notifications about a comment (or a mention in one) point at it.
ALTER TABLE notifications ADD COLUMN comment_id TEXT REFERENCES comments(id) ON DELETE CASCADE;
CREATE INDEX notifications_comment ON notifications(comment_id);
