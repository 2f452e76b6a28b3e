-- Data exports (GDPR art. 15/20): one archive of what an account holds,
-- built in the background. A 'pending' row is the job: the API process that
-- took the request builds it, and every API process's cleanup task resumes
-- one left pending (lease_until guards against two builders). A 'ready'
-- archive lives in the store at exports/{user_id}/{id}.zip until
-- expires_at, then it is deleted and the row says 'expired'.
CREATE TABLE exports (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- pending, ready, failed or expired.
    state       TEXT NOT NULL,
    size_bytes  BIGINT,
    failure     TEXT,
    attempts    BIGINT NOT NULL DEFAULT 0,
    lease_until BIGINT,
    created_at  BIGINT NOT NULL,
    ready_at    BIGINT,
    expires_at  BIGINT
);
CREATE INDEX exports_user ON exports(user_id, created_at);
CREATE INDEX exports_state ON exports(state, created_at);
