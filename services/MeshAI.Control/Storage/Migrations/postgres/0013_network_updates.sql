-- Issue 10: control pushes NetworkUpdate{serial, ...} deltas down the relay streams. networks.update_serial is the last
-- serial handed out (incremented under the row lock); network_updates keeps the newest deltas per network so an agent that
-- reconnects gets the ones it missed (older ones are trimmed: such an agent gets the whole state); control_key_id is the
-- control signing key the delta told devices to trust, so an acknowledgement moves the device's tickets to that key.
-- devices.network_serial is the last serial the device acknowledged.
ALTER TABLE networks ADD COLUMN update_serial BIGINT NOT NULL DEFAULT 0;
CREATE TABLE network_updates (
    network_id      TEXT NOT NULL REFERENCES networks(network_id),
    serial          BIGINT NOT NULL,
    payload         BYTEA NOT NULL,
    control_key_id  TEXT NULL,
    create_time_ms  BIGINT NOT NULL,
    PRIMARY KEY (network_id, serial)
);
ALTER TABLE devices ADD COLUMN network_serial BIGINT NOT NULL DEFAULT 0;
-- Leases on store-wide chores (today: the scheduled key rotation) so that only one control instance runs each
-- at a time: a row per chore, taken when free or expired, renewed by its holder.
CREATE TABLE control_leases (
    name            TEXT PRIMARY KEY,
    holder          TEXT NOT NULL,
    expire_time_ms  BIGINT NOT NULL
);
