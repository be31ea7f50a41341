-- Every network: OAuth connections, token lifecycle, preflight checks,
-- threads, media, retraction and corrections.
-- Keep in step with the other back end's migration of the same name.

-- A pending authorization: single use, expires after 10 minutes.
CREATE TABLE oauth_states (
    state        TEXT PRIMARY KEY NOT NULL,
    platform     TEXT NOT NULL,
    name         TEXT NOT NULL,
    base_url     TEXT,
    target       TEXT,
    redirect_uri TEXT NOT NULL,
    verifier     TEXT,
    account_id   TEXT,
    created_by   TEXT NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    expires_at   TIMESTAMP NOT NULL,
    used_at      TIMESTAMP
);

-- Herald's app registration on each Mastodon instance (POST /api/v1/apps).
CREATE TABLE oauth_apps (
    platform      TEXT NOT NULL,
    base_url      TEXT NOT NULL,
    redirect_uri  TEXT NOT NULL,
    client_id     TEXT NOT NULL,
    client_secret TEXT NOT NULL,
    created_at    TIMESTAMP NOT NULL,
    PRIMARY KEY (platform, base_url, redirect_uri)
);

ALTER TABLE accounts ADD COLUMN remote_name TEXT;
ALTER TABLE accounts ADD COLUMN token_expires_at TIMESTAMP;
ALTER TABLE accounts ADD COLUMN refresh_lease_until TIMESTAMP;
ALTER TABLE accounts ADD COLUMN checked_at TIMESTAMP;
ALTER TABLE accounts ADD COLUMN check_error TEXT;
CREATE INDEX accounts_by_expiry ON accounts (token_expires_at);

-- Later parts of a thread (JSON array of strings) and images (JSON array).
ALTER TABLE variants ADD COLUMN thread TEXT;
ALTER TABLE variants ADD COLUMN media TEXT;

-- Published parts (JSON array of {id, url}), corrections, retraction, preflight.
ALTER TABLE deliveries ADD COLUMN remote_parts TEXT;
ALTER TABLE deliveries ADD COLUMN reply_to_delivery_id TEXT;
ALTER TABLE deliveries ADD COLUMN retracted_at TIMESTAMP;
ALTER TABLE deliveries ADD COLUMN retraction_error TEXT;

-- Preflight checks of a delivery's account: one row per stage (24h, 1h).
CREATE TABLE delivery_checks (
    delivery_id TEXT NOT NULL REFERENCES deliveries (id),
    stage       TEXT NOT NULL,
    checked_at  TIMESTAMP NOT NULL,
    ok          BOOLEAN NOT NULL,
    error       TEXT,
    PRIMARY KEY (delivery_id, stage)
);

-- Images uploaded to Herald (POST /v1/media), served to the networks.
CREATE TABLE media (
    id           TEXT PRIMARY KEY NOT NULL,
    content_type TEXT NOT NULL,
    size         BIGINT NOT NULL,
    sha256       TEXT NOT NULL,
    bytes        BLOB NOT NULL,
    created_by   TEXT NOT NULL,
    created_at   TIMESTAMP NOT NULL
);

ALTER TABLE sandbox_posts ADD COLUMN in_reply_to TEXT;
ALTER TABLE sandbox_posts ADD COLUMN media TEXT;
