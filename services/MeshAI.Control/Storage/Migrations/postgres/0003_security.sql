-- Issue 4 (identity, keys, security): the append-only audit log, invites, API keys, passkeys, WebAuthn and OIDC
-- ceremonies, and the control key each device was last told about (tickets are signed with a key it trusts).
CREATE TABLE audit_events (
    sequence        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        TEXT NOT NULL UNIQUE,
    network_id      TEXT NOT NULL DEFAULT '',
    actor_user_id   TEXT NOT NULL DEFAULT '',
    action          BIGINT NOT NULL,
    target          TEXT NOT NULL DEFAULT '',
    details_json    TEXT NOT NULL DEFAULT '{}',
    time_ms         BIGINT NOT NULL,
    remote_address  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX ix_audit_events_network ON audit_events(network_id, sequence);
-- Append-only: the store itself refuses changes to recorded events.
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only';
END;
$$;
CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();

CREATE TABLE invites (
    invite_id           TEXT PRIMARY KEY,
    network_id          TEXT NOT NULL REFERENCES networks(network_id),
    invite_type         BIGINT NOT NULL,
    invitee             TEXT NOT NULL DEFAULT '',
    role                BIGINT NOT NULL,
    token_hash          TEXT NOT NULL UNIQUE,
    created_by_user_id  TEXT NOT NULL REFERENCES users(user_id),
    create_time_ms      BIGINT NOT NULL,
    expire_time_ms      BIGINT NOT NULL,
    revoked             BOOLEAN NOT NULL DEFAULT FALSE,
    uses                BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX ix_invites_network ON invites(network_id);

CREATE TABLE api_keys (
    api_key_id      TEXT PRIMARY KEY,
    network_id      TEXT NOT NULL REFERENCES networks(network_id),
    user_id         TEXT NOT NULL REFERENCES users(user_id),
    name            TEXT NOT NULL,
    scopes          TEXT NOT NULL DEFAULT '',
    prefix          TEXT NOT NULL,
    secret_hash     TEXT NOT NULL UNIQUE,
    create_time_ms  BIGINT NOT NULL,
    revoked         BOOLEAN NOT NULL DEFAULT FALSE,
    revoke_time_ms  BIGINT NULL
);
CREATE INDEX ix_api_keys_user ON api_keys(user_id);

CREATE TABLE passkeys (
    passkey_id      TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users(user_id),
    name            TEXT NOT NULL,
    credential_id   BYTEA NOT NULL UNIQUE,
    public_key      BYTEA NOT NULL,
    user_handle     BYTEA NOT NULL,
    sign_count      BIGINT NOT NULL DEFAULT 0,
    create_time_ms  BIGINT NOT NULL
);
CREATE INDEX ix_passkeys_user ON passkeys(user_id);

CREATE TABLE auth_ceremonies (
    ceremony_id     TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    user_id         TEXT NULL,
    data_json       TEXT NOT NULL,
    create_time_ms  BIGINT NOT NULL,
    expire_time_ms  BIGINT NOT NULL,
    used            BOOLEAN NOT NULL DEFAULT FALSE
);

ALTER TABLE devices ADD COLUMN control_key_id TEXT NULL;
