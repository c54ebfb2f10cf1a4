-- The durable job queue and idempotency records.

CREATE TABLE jobs (
    id                TEXT PRIMARY KEY,
    project_id        TEXT NOT NULL,
    job_type          TEXT NOT NULL,
    status            TEXT NOT NULL,
    cluster_id        TEXT,
    backup_id         TEXT,
    payload           TEXT NOT NULL,
    -- Handler-owned JSON that survives a crash, so a resumed job continues where it stopped.
    state             TEXT,
    attempts          INTEGER NOT NULL,
    max_attempts      INTEGER NOT NULL,
    run_after         TIMESTAMPTZ NOT NULL,
    lease_owner       TEXT,
    lease_expires_at  TIMESTAMPTZ,
    progress          INTEGER NOT NULL,
    bytes_done        BIGINT NOT NULL,
    bytes_total       BIGINT NOT NULL,
    current_step      TEXT,
    reason            TEXT,
    dedupe_key        TEXT,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL,
    started_at        TIMESTAMPTZ,
    finished_at       TIMESTAMPTZ,
    CONSTRAINT jobs_status_check CHECK (status IN
        ('PENDING', 'IN_PROGRESS', 'SUCCESSFUL', 'FAILED', 'CANCELING', 'CANCELED')),
    CONSTRAINT jobs_progress_check CHECK (progress BETWEEN 0 AND 100)
);

-- Work that must exist at most once (e.g. one automatic backup per cluster and slot).
CREATE UNIQUE INDEX jobs_dedupe_key_key ON jobs (dedupe_key) WHERE dedupe_key IS NOT NULL;
-- The claim path: pending work by due time, and running work by lease expiry.
CREATE INDEX jobs_pending_idx ON jobs (run_after, created_at) WHERE status = 'PENDING';
CREATE INDEX jobs_lease_idx ON jobs (lease_expires_at) WHERE status IN ('IN_PROGRESS', 'CANCELING');
-- The job center: newest first per project.
CREATE INDEX jobs_project_created_idx ON jobs (project_id, created_at DESC);

-- A replayed write request (same API key, route and Idempotency-Key) gets the first answer.
-- `scope` is the SHA-256 of the caller's API key; status_code 0 marks a request still running.
CREATE TABLE idempotency_keys (
    scope         TEXT NOT NULL,
    route         TEXT NOT NULL,
    idem_key      TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    status_code   INTEGER NOT NULL,
    response      TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (scope, route, idem_key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
