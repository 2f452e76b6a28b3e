-- Accounts, their bearer tokens, and uploaded media.
-- Ids are time-ordered UUIDv7 text; times are Unix milliseconds.
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    handle        TEXT NOT NULL,
    handle_lower  TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    bio           TEXT NOT NULL DEFAULT '',
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL DEFAULT 'user',
    created_at    BIGINT NOT NULL
);

CREATE TABLE auth_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX auth_tokens_user ON auth_tokens(user_id);

CREATE TABLE media (
    id            TEXT PRIMARY KEY,
    owner_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind          TEXT NOT NULL DEFAULT 'audio',
    state         TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    size_bytes    BIGINT NOT NULL,
    original_key  TEXT NOT NULL,
    output_prefix TEXT,
    duration_ms   BIGINT,
    bars          TEXT,
    report        TEXT,
    failure       TEXT,
    attempts      INTEGER NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX media_owner ON media(owner_id, created_at);
CREATE INDEX media_state ON media(state, updated_at);
