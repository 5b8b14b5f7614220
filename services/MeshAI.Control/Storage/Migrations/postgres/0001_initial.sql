-- Phase 0 schema (PostgreSQL). Times are Unix milliseconds; booleans are BOOLEAN; ids are prefixed text.
CREATE TABLE users (
    user_id        TEXT PRIMARY KEY,
    email          TEXT NOT NULL UNIQUE,
    display_name   TEXT NOT NULL,
    username       TEXT NOT NULL UNIQUE,
    create_time_ms BIGINT NOT NULL
);

CREATE TABLE sessions (
    session_id     TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL REFERENCES users(user_id),
    token_hash     TEXT NOT NULL UNIQUE,
    client_name    TEXT NOT NULL,
    create_time_ms BIGINT NOT NULL,
    expire_time_ms BIGINT NOT NULL,
    revoked        BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX ix_sessions_user ON sessions(user_id);

CREATE TABLE device_logins (
    device_login_id  TEXT PRIMARY KEY,
    device_code_hash TEXT NOT NULL UNIQUE,
    user_code        TEXT NOT NULL UNIQUE,
    email            TEXT NOT NULL,
    client_name      TEXT NOT NULL,
    state            BIGINT NOT NULL,
    approved_user_id TEXT NULL REFERENCES users(user_id),
    delivered        BOOLEAN NOT NULL DEFAULT FALSE,
    create_time_ms   BIGINT NOT NULL,
    expire_time_ms   BIGINT NOT NULL
);

CREATE TABLE magic_links (
    token_hash      TEXT PRIMARY KEY,
    email           TEXT NOT NULL,
    device_login_id TEXT NULL REFERENCES device_logins(device_login_id),
    create_time_ms  BIGINT NOT NULL,
    expire_time_ms  BIGINT NOT NULL,
    used_time_ms    BIGINT NULL
);

CREATE TABLE networks (
    network_id         TEXT PRIMARY KEY,
    name               TEXT NOT NULL,
    visibility         BIGINT NOT NULL,
    billing_mode       BIGINT NOT NULL,
    created_by_user_id TEXT NOT NULL REFERENCES users(user_id),
    create_time_ms     BIGINT NOT NULL,
    settings_json      TEXT NOT NULL
);

CREATE TABLE network_keys (
    key_id            TEXT PRIMARY KEY,
    network_id        TEXT NOT NULL REFERENCES networks(network_id),
    purpose           BIGINT NOT NULL,
    public_key        BYTEA NOT NULL,
    private_key_enc   BYTEA NOT NULL,
    create_time_ms    BIGINT NOT NULL,
    not_after_ms      BIGINT NULL
);
CREATE INDEX ix_network_keys_network ON network_keys(network_id);

CREATE TABLE members (
    network_id   TEXT NOT NULL REFERENCES networks(network_id),
    user_id      TEXT NOT NULL REFERENCES users(user_id),
    role         BIGINT NOT NULL,
    state        BIGINT NOT NULL,
    join_time_ms BIGINT NOT NULL,
    PRIMARY KEY (network_id, user_id)
);
CREATE INDEX ix_members_user ON members(user_id);

CREATE TABLE join_tokens (
    join_token_id      TEXT PRIMARY KEY,
    network_id         TEXT NOT NULL REFERENCES networks(network_id),
    token_hash         TEXT NOT NULL UNIQUE,
    created_by_user_id TEXT NOT NULL REFERENCES users(user_id),
    create_time_ms     BIGINT NOT NULL,
    expire_time_ms     BIGINT NOT NULL,
    max_uses           BIGINT NOT NULL,
    uses               BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE device_pairings (
    pairing_id          TEXT PRIMARY KEY,
    secret_hash         TEXT NOT NULL UNIQUE,
    user_code           TEXT NOT NULL UNIQUE,
    device_name         TEXT NOT NULL,
    installation_id     TEXT NOT NULL,
    state               BIGINT NOT NULL,
    network_id          TEXT NULL REFERENCES networks(network_id),
    approved_by_user_id TEXT NULL REFERENCES users(user_id),
    delivered           BOOLEAN NOT NULL DEFAULT FALSE,
    create_time_ms      BIGINT NOT NULL,
    expire_time_ms      BIGINT NOT NULL
);

CREATE TABLE devices (
    device_id             TEXT PRIMARY KEY,
    network_id            TEXT NOT NULL REFERENCES networks(network_id),
    owner_user_id         TEXT NOT NULL REFERENCES users(user_id),
    name                  TEXT NOT NULL,
    platform              BIGINT NOT NULL,
    installation_id       TEXT NOT NULL,
    signing_public_key    BYTEA NOT NULL,
    encryption_public_key BYTEA NOT NULL,
    capabilities          BYTEA NOT NULL,
    contribution_mode     BIGINT NOT NULL,
    contribution_enabled  BOOLEAN NOT NULL,
    pinned_workloads      TEXT NOT NULL,
    trust_level           BIGINT NOT NULL,
    certificate_serial    TEXT NOT NULL,
    create_time_ms        BIGINT NOT NULL,
    last_seen_time_ms     BIGINT NULL,
    revoked               BOOLEAN NOT NULL DEFAULT FALSE,
    revoke_time_ms        BIGINT NULL,
    revoke_reason         TEXT NULL
);
CREATE INDEX ix_devices_network ON devices(network_id);

CREATE TABLE revoked_serials (
    serial          TEXT PRIMARY KEY,
    network_id      TEXT NOT NULL REFERENCES networks(network_id),
    device_id       TEXT NOT NULL REFERENCES devices(device_id),
    revoke_time_ms  BIGINT NOT NULL
);

CREATE TABLE jobs (
    job_id               TEXT PRIMARY KEY,
    network_id           TEXT NOT NULL REFERENCES networks(network_id),
    submitted_by_user_id TEXT NOT NULL REFERENCES users(user_id),
    workload_id          BIGINT NOT NULL,
    state                BIGINT NOT NULL,
    routing_mode         BIGINT NOT NULL,
    data_sensitivity_tag BIGINT NOT NULL,
    envelope             BYTEA NOT NULL,
    idempotency_key      TEXT NULL,
    device_id            TEXT NULL,
    tier                 BIGINT NOT NULL DEFAULT 0,
    create_time_ms       BIGINT NOT NULL,
    start_time_ms        BIGINT NULL,
    end_time_ms          BIGINT NULL,
    runtime_ms           BIGINT NOT NULL DEFAULT 0,
    billed_runtime_ms    BIGINT NOT NULL DEFAULT 0,
    cost_micro           BIGINT NOT NULL DEFAULT 0,
    max_cost_credits     BIGINT NOT NULL DEFAULT 0,
    timeout_ms           BIGINT NOT NULL,
    error_message        TEXT NOT NULL DEFAULT '',
    relay_bytes          BIGINT NOT NULL DEFAULT 0,
    trace_id             TEXT NOT NULL DEFAULT '',
    output               BYTEA NULL,
    output_nonce         BYTEA NULL,
    output_encrypted     BOOLEAN NOT NULL DEFAULT FALSE,
    debug_view           BYTEA NULL,
    placement_time_ms    BIGINT NULL,
    UNIQUE (network_id, submitted_by_user_id, idempotency_key)
);
CREATE INDEX ix_jobs_network_created ON jobs(network_id, create_time_ms);

CREATE TABLE job_attempts (
    job_id         TEXT NOT NULL REFERENCES jobs(job_id),
    attempt        BIGINT NOT NULL,
    device_id      TEXT NOT NULL,
    cause          BIGINT NOT NULL,
    start_time_ms  BIGINT NOT NULL,
    end_time_ms    BIGINT NULL,
    detail         TEXT NOT NULL DEFAULT '',
    chunk_id       TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (job_id, attempt)
);

CREATE TABLE ledger_events (
    sequence          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id          TEXT NOT NULL UNIQUE,
    network_id        TEXT NOT NULL REFERENCES networks(network_id),
    event_type        BIGINT NOT NULL,
    job_id            TEXT NOT NULL DEFAULT '',
    chunk_id          TEXT NOT NULL DEFAULT '',
    user_id           TEXT NOT NULL DEFAULT '',
    device_id         TEXT NOT NULL DEFAULT '',
    account_kind      BIGINT NOT NULL,
    amount_micro      BIGINT NOT NULL,
    runtime_ms        BIGINT NOT NULL DEFAULT 0,
    billed_runtime_ms BIGINT NOT NULL DEFAULT 0,
    tier              BIGINT NOT NULL DEFAULT 0,
    idempotency_key   TEXT NOT NULL,
    create_time_ms    BIGINT NOT NULL,
    relay_bytes       BIGINT NOT NULL DEFAULT 0,
    UNIQUE (network_id, idempotency_key)
);
CREATE INDEX ix_ledger_network_job ON ledger_events(network_id, job_id);
