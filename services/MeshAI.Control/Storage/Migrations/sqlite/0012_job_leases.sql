-- Issue 10: jobs are a durable queue with leases. The owning control instance renews lease_expire_ms; when it stops, another
-- instance claims the job (PostgreSQL: FOR UPDATE SKIP LOCKED) and carries it on; the embedded store has one owner.
ALTER TABLE jobs ADD COLUMN owner_instance TEXT NULL;
ALTER TABLE jobs ADD COLUMN lease_expire_ms BIGINT NULL;
CREATE INDEX ix_jobs_owner ON jobs(owner_instance);
