-- Publishing engine: deliveries, their attempts, the pause switch, sandbox posts.
-- Keep in step with the other back end's migration of the same name.

ALTER TABLE statements ADD COLUMN language TEXT;

CREATE TABLE deliveries (
    id                 TEXT PRIMARY KEY NOT NULL,
    statement_id       TEXT NOT NULL REFERENCES statements (id),
    lineage_id         TEXT NOT NULL,
    statement_version  INTEGER NOT NULL,
    account_id         TEXT NOT NULL REFERENCES accounts (id),
    platform           TEXT NOT NULL,
    kind               TEXT NOT NULL,
    planned_at         TIMESTAMP NOT NULL,
    timezone           TEXT,
    max_lateness_s     INTEGER NOT NULL,
    deadline           TIMESTAMP NOT NULL,
    status             TEXT NOT NULL,
    attempts           INTEGER NOT NULL,
    retries            INTEGER NOT NULL,
    reconcile_tries    INTEGER NOT NULL,
    next_attempt_at    TIMESTAMP,
    lease_owner        TEXT,
    lease_expires_at   TIMESTAMP,
    idempotency_key    TEXT NOT NULL UNIQUE,
    first_attempt_at   TIMESTAMP,
    published_at       TIMESTAMP,
    lateness_ms        BIGINT,
    remote_id          TEXT,
    remote_url         TEXT,
    last_error         TEXT,
    created_by         TEXT NOT NULL,
    created_at         TIMESTAMP NOT NULL,
    updated_at         TIMESTAMP NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);
CREATE INDEX deliveries_by_statement ON deliveries (statement_id, id);
CREATE INDEX deliveries_by_lineage ON deliveries (lineage_id, id);
CREATE INDEX deliveries_by_account ON deliveries (account_id, id);
CREATE INDEX deliveries_by_planned ON deliveries (planned_at);

CREATE TABLE delivery_attempts (
    delivery_id  TEXT NOT NULL REFERENCES deliveries (id),
    number       INTEGER NOT NULL,
    owner        TEXT NOT NULL,
    started_at   TIMESTAMP NOT NULL,
    ended_at     TIMESTAMP,
    outcome      TEXT,
    http_status  INTEGER,
    error        TEXT,
    PRIMARY KEY (delivery_id, number)
);

-- One row: whether publishing is paused, and for what.
CREATE TABLE publishing_control (
    id         INTEGER PRIMARY KEY NOT NULL,
    scope      TEXT,
    reason     TEXT,
    changed_by TEXT,
    changed_at TIMESTAMP
);
INSERT INTO publishing_control (id) VALUES (1);

CREATE TABLE sandbox_posts (
    id              TEXT PRIMARY KEY NOT NULL,
    account_id      TEXT NOT NULL REFERENCES accounts (id),
    delivery_id     TEXT,
    idempotency_key TEXT NOT NULL UNIQUE,
    text            TEXT NOT NULL,
    language        TEXT,
    created_at      TIMESTAMP NOT NULL
);
CREATE INDEX sandbox_posts_by_account ON sandbox_posts (account_id, id);
