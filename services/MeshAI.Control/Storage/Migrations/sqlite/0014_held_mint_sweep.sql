-- Issue 10: a spot-check re-run whose control instance died leaves its job's mint held (mint_withheld_reason = the pending
-- reason). The owner renews the lease of such a job while its re-run is in flight; once that lease expires another
-- instance claims the job and re-runs the check (JobRepository.ClaimHeldSpotChecksAsync). This index finds held mints.
CREATE INDEX ix_job_meterings_withheld ON job_meterings(mint_withheld_reason);
