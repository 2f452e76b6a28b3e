-- Playlists: a user's ordered lists of voice posts, public or private.
-- Ids are time-ordered UUIDv7 text; times are Unix milliseconds.
CREATE TABLE playlists (
    id          TEXT PRIMARY KEY,
    owner_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    title       TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    -- 1: everyone may see it; 0: only its owner.
    is_public   BIGINT NOT NULL DEFAULT 0,
    -- Bumped first by every write to the playlist or its items, so writers of
    -- one playlist take turns (a row lock on PostgreSQL, the write lock on SQLite).
    version     BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
-- A user's playlists, keyset-paginated newest first.
CREATE INDEX playlists_owner_time ON playlists(owner_id, created_at, id);

-- One row per post in a playlist. Positions are 0..n-1 after every write;
-- deleting a post removes its rows (a gap closed by the playlist's next write).
CREATE TABLE playlist_items (
    playlist_id TEXT NOT NULL REFERENCES playlists(id) ON DELETE CASCADE,
    post_id     TEXT NOT NULL REFERENCES posts(id) ON DELETE CASCADE,
    position    BIGINT NOT NULL,
    added_at    BIGINT NOT NULL,
    PRIMARY KEY (playlist_id, post_id),
    UNIQUE (playlist_id, position)
);
-- The cascade from a deleted post.
CREATE INDEX playlist_items_post ON playlist_items(post_id);
