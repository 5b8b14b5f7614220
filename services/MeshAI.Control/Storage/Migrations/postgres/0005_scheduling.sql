-- Issue 5: per-network policies (policy engine v1, stored as data) and chunked jobs (job_id + chunk_id, first result wins).
CREATE TABLE policies (
    network_id     TEXT PRIMARY KEY REFERENCES networks(network_id),
    version        BIGINT NOT NULL,
    policy         BYTEA NOT NULL,
    update_time_ms BIGINT NOT NULL,
    updated_by     TEXT NOT NULL DEFAULT ''
);

ALTER TABLE jobs ADD COLUMN chunk_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN chunks_completed INTEGER NOT NULL DEFAULT 0;

CREATE TABLE job_chunks (
    job_id         TEXT NOT NULL REFERENCES jobs(job_id),
    chunk_id       TEXT NOT NULL,
    chunk_index    INTEGER NOT NULL,
    attempt        INTEGER NOT NULL,
    device_id      TEXT NOT NULL,
    output         BYTEA NOT NULL,
    runtime_ms     BIGINT NOT NULL DEFAULT 0,
    cost_micro     BIGINT NOT NULL DEFAULT 0,
    end_time_ms    BIGINT NOT NULL,
    PRIMARY KEY (job_id, chunk_id)
);
