-- Sessions a user can list and end: each token gets a public id (the token
-- hash never leaves the server), when it was last used (refreshed at most
-- every few minutes), and the client it was issued to: its User-Agent and
-- a coarse address (an IPv4 /24 or IPv6 /48, never the full address).
-- Tokens issued before this migration get an id from their hash.
ALTER TABLE auth_tokens ADD COLUMN id TEXT;
ALTER TABLE auth_tokens ADD COLUMN last_used_at BIGINT;
ALTER TABLE auth_tokens ADD COLUMN user_agent TEXT NOT NULL DEFAULT '';
ALTER TABLE auth_tokens ADD COLUMN address TEXT NOT NULL DEFAULT '';
UPDATE auth_tokens SET id = substr(token_hash, 1, 32), last_used_at = created_at WHERE id IS NULL;
CREATE UNIQUE INDEX auth_tokens_id ON auth_tokens(id);

-- Account deletion: at the request the account stops working (deleted_at,
-- with hidden_at so every list already skips it, its handle freed and its
-- profile blanked); a background pass then erases what it owns, and sets
-- purged_at when nothing is left. The row stays as a tombstone with no
-- personal data, so the other member of a chat room sees "Deleted account".
ALTER TABLE users ADD COLUMN deleted_at BIGINT;
ALTER TABLE users ADD COLUMN purged_at BIGINT;
CREATE INDEX users_erasing ON users(deleted_at) WHERE deleted_at IS NOT NULL AND purged_at IS NULL;

-- An erased account's media row stays (state 'erasing', which no worker
-- takes) until its last upload URL has expired: an object that a late PUT
-- leaves under its key is deleted with the row, not orphaned.
ALTER TABLE media ADD COLUMN erase_after BIGINT;
