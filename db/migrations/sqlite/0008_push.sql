-- Push to offline users: the devices that receive pushes, and a durable
-- outbox written in the same transaction as what causes a push (a chat
-- message to a member with no live connection), drained by a dispatcher.
-- Ids are time-ordered UUIDv7 text; times are Unix milliseconds.
CREATE TABLE devices (
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- Chosen by the app, stable per installation.
    device_id  TEXT NOT NULL,
    -- 'fcm' or 'webhook'.
    platform   TEXT NOT NULL,
    push_token TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, device_id)
);
-- A token belongs to one account: registering it removes it from the others.
CREATE INDEX devices_push_token ON devices(push_token);

CREATE TABLE push_outbox (
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- The event, e.g. 'message.new'.
    kind            TEXT NOT NULL,
    -- The event's data as a JSON object.
    payload         TEXT NOT NULL,
    -- Sends started so far (counted when an entry is claimed).
    attempts        INTEGER NOT NULL DEFAULT 0,
    -- When the entry is next due; while a dispatcher holds it, the end of
    -- its lease (claimed by a conditional UPDATE of this column).
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    delivered_at    BIGINT,
    -- Set when the sender refused the entry for good or the attempts ran out:
    -- kept for inspection, never sent again.
    dead_at         BIGINT,
    created_at      BIGINT NOT NULL
);
-- The dispatcher's scan: entries neither delivered nor dead that are due.
CREATE INDEX push_outbox_due ON push_outbox(next_attempt_at)
    WHERE delivered_at IS NULL AND dead_at IS NULL;
-- The purge of delivered entries past their retention.
CREATE INDEX push_outbox_delivered ON push_outbox(delivered_at)
    WHERE delivered_at IS NOT NULL;
