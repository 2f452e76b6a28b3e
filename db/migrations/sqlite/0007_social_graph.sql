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

-- The feed's index also carries hidden_at, so skipping removed posts keeps
-- the feed's id walk index-only (see 0005).
DROP INDEX posts_author_feed;
CREATE INDEX posts_author_feed ON posts(author_id, created_at, id, media_id, hidden_at);

-- Follower and following lists, newest follow first, keyset over (created_at, other id).
DROP INDEX follows_followee;
CREATE INDEX follows_followee ON follows(followee_id, created_at, follower_id);
CREATE INDEX follows_follower_time ON follows(follower_id, created_at, followee_id);

-- Search: handle and display name folded (NFKD, combining marks stripped,
-- lowercase) by the API on sign-up and profile change, matched by prefix as
-- a range (>= q AND < q || U+FFFF) on these indexes. Compared bytewise on
-- both backends (SQLite's BINARY; PostgreSQL's "C" collation), so the range
-- means the same thing everywhere. Existing rows get a plain lowercase copy.
ALTER TABLE users ADD COLUMN handle_fold TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN name_fold TEXT NOT NULL DEFAULT '';
UPDATE users SET handle_fold = handle_lower, name_fold = LOWER(display_name);
CREATE INDEX users_handle_fold ON users(handle_fold);
CREATE INDEX users_name_fold ON users(name_fold);

-- A user is told once that someone liked a post, or followed them: liking
-- again after unliking (or re-following) writes nothing new (the routes insert
-- with ON CONFLICT DO NOTHING).
CREATE UNIQUE INDEX notifications_one_like ON notifications(user_id, actor_id, post_id) WHERE kind = 'like';
CREATE UNIQUE INDEX notifications_one_follow ON notifications(user_id, actor_id) WHERE kind = 'follow';
-- The unread count on every notifications page reads only unread rows.
CREATE INDEX notifications_unread ON notifications(user_id) WHERE read_at IS NULL;
