-- The embedded job queue (SQS semantics in a table), the transactional outbox
-- used when the queue is external, and the media row's processing lease.
-- Times are Unix milliseconds.

-- One row per message. `visible_at` in the future means "in flight" (or
-- delayed); `receipt` changes on every receive so a stale holder cannot touch
-- the message after it was redelivered; `dead_at` set means dead-lettered.
CREATE TABLE queue_messages (
    id            TEXT PRIMARY KEY,
    queue         TEXT NOT NULL,
    body          TEXT NOT NULL,
    visible_at    BIGINT NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    receipt       TEXT,
    created_at    BIGINT NOT NULL,
    dead_at       BIGINT
);
CREATE INDEX queue_messages_ready ON queue_messages(queue, visible_at) WHERE dead_at IS NULL;
CREATE UNIQUE INDEX queue_messages_receipt ON queue_messages(receipt);

-- Messages written in the same transaction as a state change, relayed to an
-- external queue (SQS) afterwards: a crash in between loses nothing.
CREATE TABLE outbox (
    id         TEXT PRIMARY KEY,
    body       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Which worker currently processes a media, and until when its claim holds.
ALTER TABLE media ADD COLUMN lease_token TEXT;
ALTER TABLE media ADD COLUMN lease_until BIGINT;
