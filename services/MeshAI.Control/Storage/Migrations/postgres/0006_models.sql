-- Issue 6: signed model manifests per network (ModelService). Each row keeps the signed ModelManifest as published.
CREATE TABLE model_manifests (
    manifest_id     TEXT PRIMARY KEY,
    network_id      TEXT NOT NULL REFERENCES networks(network_id),
    name            TEXT NOT NULL,
    version         TEXT NOT NULL,
    manifest        BYTEA NOT NULL,
    publish_time_ms BIGINT NOT NULL,
    published_by    TEXT NOT NULL DEFAULT '',
    UNIQUE (network_id, name, version)
);

CREATE INDEX model_manifests_by_name ON model_manifests (network_id, name, publish_time_ms);
