-- Herald foundation schema (SQLite). Keep in step with migrations/postgres.
-- Portable types only: ids are UUIDv7 text, instants are UTC TIMESTAMP, JSON is text.

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL UNIQUE,
    role        TEXT NOT NULL,
    key_hash    TEXT NOT NULL UNIQUE,
    key_prefix  TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    revoked_at  TIMESTAMP,
    revoked_by  TEXT
);

CREATE TABLE statements (
    id                  TEXT PRIMARY KEY NOT NULL,
    lineage_id          TEXT NOT NULL,
    version             INTEGER NOT NULL,
    previous_version_id TEXT REFERENCES statements (id),
    title               TEXT NOT NULL,
    kind                TEXT NOT NULL,
    severity            TEXT,
    status              TEXT NOT NULL,
    author              TEXT NOT NULL,
    editors             TEXT NOT NULL,
    rejection_reason    TEXT,
    created_at          TIMESTAMP NOT NULL,
    updated_at          TIMESTAMP NOT NULL,
    submitted_at        TIMESTAMP,
    approved_at         TIMESTAMP,
    retired_at          TIMESTAMP,
    UNIQUE (lineage_id, version)
);
CREATE INDEX statements_by_status ON statements (status, id);
CREATE INDEX statements_by_kind ON statements (kind, id);
CREATE INDEX statements_by_previous ON statements (previous_version_id);

CREATE TABLE variants (
    statement_id TEXT NOT NULL REFERENCES statements (id),
    platform     TEXT NOT NULL,
    text         TEXT NOT NULL,
    updated_at   TIMESTAMP NOT NULL,
    PRIMARY KEY (statement_id, platform)
);

CREATE TABLE approvals (
    statement_id TEXT NOT NULL REFERENCES statements (id),
    approver     TEXT NOT NULL,
    approved_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (statement_id, approver)
);

CREATE TABLE accounts (
    id             TEXT PRIMARY KEY NOT NULL,
    platform       TEXT NOT NULL,
    name           TEXT NOT NULL,
    base_url       TEXT,
    status         TEXT NOT NULL,
    status_reason  TEXT,
    credentials    TEXT,
    max_characters INTEGER,
    created_by     TEXT NOT NULL,
    created_at     TIMESTAMP NOT NULL,
    updated_at     TIMESTAMP NOT NULL,
    removed_at     TIMESTAMP
);
CREATE INDEX accounts_by_status ON accounts (status, id);

CREATE TABLE publish_log (
    seq          BIGINT PRIMARY KEY NOT NULL,
    id           TEXT NOT NULL UNIQUE,
    at           TIMESTAMP NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    statement_id TEXT,
    account_id   TEXT,
    delivery_id  TEXT,
    details      TEXT NOT NULL,
    prev_hash    TEXT NOT NULL,
    hash         TEXT NOT NULL
);
CREATE INDEX publish_log_by_action ON publish_log (action, seq);
CREATE INDEX publish_log_by_actor ON publish_log (actor, seq);
CREATE INDEX publish_log_by_statement ON publish_log (statement_id, seq);
CREATE INDEX publish_log_by_account ON publish_log (account_id, seq);
CREATE INDEX publish_log_by_at ON publish_log (at);

-- The log is append-only: editing or deleting a row needs to drop these first,
-- and `herald log verify` still catches the edit through the hash chain.
CREATE TRIGGER publish_log_no_update BEFORE UPDATE ON publish_log
BEGIN
    SELECT RAISE(ABORT, 'the publish log is append-only');
END;
CREATE TRIGGER publish_log_no_delete BEFORE DELETE ON publish_log
BEGIN
    SELECT RAISE(ABORT, 'the publish log is append-only');
END;

-- One row that every write transaction touches first: on SQLite it takes the
-- write lock at the start of the transaction (no stale read snapshot), and it
-- serialises appends to the hash chain.
CREATE TABLE write_gate (
    id    INTEGER PRIMARY KEY NOT NULL,
    ticks BIGINT NOT NULL
);
INSERT INTO write_gate (id, ticks) VALUES (1, 0);

CREATE TABLE idempotency_keys (
    actor        TEXT NOT NULL,
    key          TEXT NOT NULL,
    route        TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       INTEGER NOT NULL,
    body         TEXT NOT NULL,
    created_at   TIMESTAMP NOT NULL,
    PRIMARY KEY (actor, key, route)
);
