-- Issue 10: a spot-check re-run whose control instance died leaves its job's mint held (mint_withheld_reason = the pending
-- reason). The owner renews the lease of such a job while its re-run is in flight; once that lease expires another
-- instance claims the job and re-runs the check (JobRepository.ClaimHeldSpotChecksAsync). This index finds held mints.
CREATE INDEX ix_job_meterings_withheld ON job_meterings(mint_withheld_reason);
-- Issue 10: deployment-wide settings agents follow (today: the relay addresses), as last pushed to every network; a control
-- instance that starts with a different set records a NetworkUpdate for every network and pushes it (NetworkUpdates).
CREATE TABLE deployment_settings (
    name           TEXT PRIMARY KEY,
    value          TEXT NOT NULL,
    update_time_ms BIGINT NOT NULL
);
