-- What belongs to a session ends with it (logout, expiry, moderator
-- removal): a push device registered with a token is unregistered when that
-- token is revoked or purged after expiry. Devices registered before this
-- migration have no session and stay until the app removes them.
ALTER TABLE devices ADD COLUMN session_hash TEXT;
CREATE INDEX devices_session ON devices(session_hash);

-- Single-use, short-lived tickets to open the event socket
-- (`POST /v1/ws/ticket`, then `GET /v1/ws?ticket=`), so long-lived bearer
-- tokens never appear in URLs that proxies log. Stored as SHA-256 hashes.
CREATE TABLE ws_tickets (
    ticket_hash  TEXT PRIMARY KEY,
    -- The token hash of the session that asked: the socket belongs to it.
    session_hash TEXT NOT NULL,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX ws_tickets_expiry ON ws_tickets(expires_at);

-- The cleanup task deletes expired tokens (and the devices registered with
-- them) by expiry.
CREATE INDEX auth_tokens_expiry ON auth_tokens(expires_at);
