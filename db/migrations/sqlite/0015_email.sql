-- An optional email on the account, for password recovery: stored trimmed
-- and lowercased, verified by a one-time code. One account at most may hold
-- an address verified; unverified, any number may claim it.
ALTER TABLE users ADD COLUMN email TEXT;
ALTER TABLE users ADD COLUMN email_verified_at BIGINT;
CREATE UNIQUE INDEX users_verified_email ON users(email) WHERE email_verified_at IS NOT NULL;

-- One-time codes: at most one live code per account and purpose
-- ('verify_email', 'reset_password'); a new request replaces it. Stored as
-- SHA-256 hashes, single use, short-lived, with the wrong tries counted.
CREATE TABLE account_codes (
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL,
    code_hash  TEXT NOT NULL,
    -- The address the code was sent to: it is what the code proves.
    email      TEXT NOT NULL,
    attempts   BIGINT NOT NULL DEFAULT 0,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, purpose)
);

-- Mail to send, written in the transaction of the request that asks for
-- it, so a mail server outage delays mail and loses none. A row is deleted
-- once the server accepted it (the body holds a code: nothing stays).
CREATE TABLE mail_outbox (
    id              TEXT PRIMARY KEY,
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body            TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX mail_outbox_due ON mail_outbox(next_attempt_at);
