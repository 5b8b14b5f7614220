-- Issue 7: execution records the ledger reconciles against, and devices flagged by anti-abuse checks.
-- job_meterings holds the inputs of every settlement (what ran, where, for how long, at which rates);
-- ledger_events holds the outputs. ReconcileLedger recomputes the outputs from these inputs.
CREATE TABLE job_meterings (
    network_id                    TEXT NOT NULL REFERENCES networks(network_id),
    job_id                        TEXT NOT NULL,
    chunk_id                      TEXT NOT NULL DEFAULT '',
    attempt                       INTEGER NOT NULL,
    device_id                     TEXT NOT NULL,
    device_owner_user_id          TEXT NOT NULL,
    submitted_by_user_id          TEXT NOT NULL,
    burn_account_kind             INTEGER NOT NULL,
    tier                          INTEGER NOT NULL,
    workload_id                   INTEGER NOT NULL DEFAULT 0,
    runtime_ms                    BIGINT NOT NULL,
    relay_bytes                   BIGINT NOT NULL DEFAULT 0,
    heartbeats_during_run         INTEGER NOT NULL DEFAULT 0,
    burn_micro_per_min            BIGINT NOT NULL,
    earn_micro_per_min            BIGINT NOT NULL,
    multiplier_bps                BIGINT NOT NULL,
    billing_granularity_ms        BIGINT NOT NULL,
    relay_surcharge_micro_per_mib BIGINT NOT NULL DEFAULT 0,
    mint_cap_bps                  BIGINT NOT NULL DEFAULT 10000,
    max_cost_micro                BIGINT NOT NULL DEFAULT 0,
    prior_burn_micro              BIGINT NOT NULL DEFAULT 0,
    mint_withheld_reason          TEXT NOT NULL DEFAULT '',
    create_time_ms                BIGINT NOT NULL,
    PRIMARY KEY (network_id, job_id, chunk_id)
);
CREATE INDEX ix_job_meterings_workload ON job_meterings(network_id, workload_id, tier, create_time_ms);
CREATE INDEX ix_job_meterings_device ON job_meterings(device_id, create_time_ms);

CREATE TABLE device_flags (
    flag_id        TEXT PRIMARY KEY,
    network_id     TEXT NOT NULL REFERENCES networks(network_id),
    device_id      TEXT NOT NULL,
    job_id         TEXT NOT NULL DEFAULT '',
    reason         TEXT NOT NULL,
    create_time_ms BIGINT NOT NULL
);
CREATE INDEX ix_device_flags_device ON device_flags(device_id);
