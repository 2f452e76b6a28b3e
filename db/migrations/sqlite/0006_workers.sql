-- Live worker processes, each refreshing its row while it runs, so that
-- backlog per worker (queue depth ÷ live workers) is a fleet-wide figure.
CREATE TABLE workers (
    id         TEXT PRIMARY KEY,
    slots      BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    seen_at    BIGINT NOT NULL
);
CREATE INDEX workers_seen ON workers(seen_at);
