-- 1:1 chat: rooms, their two members, messages (read receipts are marker
-- messages), live WebSocket connections for presence, and image dimensions.
-- Ids are time-ordered UUIDv7 text; times are Unix milliseconds.

-- Uploaded images (media.kind = 'image') keep their pixel size.
ALTER TABLE media ADD COLUMN width BIGINT;
ALTER TABLE media ADD COLUMN height BIGINT;

-- One room per pair of users: user_lo < user_hi, so both orders of a pair
-- meet on the same unique key and concurrent creations agree on one row.
CREATE TABLE chat_rooms (
    id              TEXT PRIMARY KEY,
    user_lo         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    user_hi         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    last_message_id TEXT,
    created_at      BIGINT NOT NULL,
    UNIQUE (user_lo, user_hi)
);

-- Each member's view of a room: when it last had activity (for the room
-- list's order) and how far the member has read (a copy of their latest
-- read marker, so unread counts are one index range).
CREATE TABLE chat_members (
    room_id         TEXT NOT NULL REFERENCES chat_rooms(id) ON DELETE CASCADE,
    user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    last_activity   BIGINT NOT NULL,
    read_created_at BIGINT NOT NULL DEFAULT 0,
    read_message_id TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (room_id, user_id)
);
-- The caller's rooms by last activity, keyset-paginated.
CREATE INDEX chat_members_user_activity ON chat_members(user_id, last_activity, room_id);

-- kind: text, voice, image, or read (a marker: the sender has read up to
-- read_message_id, whose time is read_created_at).
CREATE TABLE messages (
    id              TEXT PRIMARY KEY,
    room_id         TEXT NOT NULL REFERENCES chat_rooms(id) ON DELETE CASCADE,
    sender_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind            TEXT NOT NULL,
    body            TEXT NOT NULL DEFAULT '',
    media_id        TEXT UNIQUE REFERENCES media(id) ON DELETE SET NULL,
    -- The sender's idempotency key: a resend returns the first message.
    client_id       TEXT,
    read_message_id TEXT,
    read_created_at BIGINT,
    -- Set when a moderator removes the message after a report: it leaves
    -- the history, the room list and unread counts.
    hidden_at       BIGINT,
    created_at      BIGINT NOT NULL,
    UNIQUE (sender_id, client_id)
);
-- History newest first, and unread counts after a position.
CREATE INDEX messages_room_time ON messages(room_id, created_at, id);

-- Live WebSocket connections of every API process: a row per connection,
-- kept alive by heartbeats; a row past expires_at is a vanished connection.
CREATE TABLE ws_connections (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX ws_connections_user ON ws_connections(user_id, expires_at);

-- When each user was last seen connected.
CREATE TABLE presence (
    user_id   TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    last_seen BIGINT NOT NULL
);
