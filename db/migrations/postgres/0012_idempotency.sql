-- The first answer to a request sent with an `Idempotency-Key` header, so a
-- client resending it (a phone on a flaky network) gets that answer again
-- instead of a second post, comment, message or upload. One row per user,
-- route (method and path) and key; the primary key makes two concurrent
-- first requests impossible: the loser sees the reservation (`status` NULL
-- while the first request runs). Rows are kept a day. Times are Unix ms.
CREATE TABLE idempotency_keys (
    user_id      TEXT NOT NULL,
    route        TEXT NOT NULL,
    idem_key     TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       BIGINT,
    content_type TEXT,
    body         TEXT,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (user_id, route, idem_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys(created_at);
