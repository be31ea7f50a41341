-- Reply tracking, sentiment, follow-up, responses and outbound webhooks.
-- Keep in step with the other back end's migration of the same name.

-- A reply collected from a network, answering one of our published posts.
CREATE TABLE replies (
    id                  TEXT PRIMARY KEY NOT NULL,
    delivery_id         TEXT NOT NULL REFERENCES deliveries (id),
    statement_id        TEXT NOT NULL,
    lineage_id          TEXT NOT NULL,
    account_id          TEXT NOT NULL,
    platform            TEXT NOT NULL,
    remote_id           TEXT NOT NULL,
    parent_remote_id    TEXT,
    author              TEXT NOT NULL,
    text                TEXT NOT NULL,
    url                 TEXT,
    created_at          TIMESTAMP NOT NULL,
    collected_at        TIMESTAMP NOT NULL,
    language            TEXT,
    sentiment           TEXT NOT NULL,
    score               DOUBLE PRECISION NOT NULL,
    question            BOOLEAN NOT NULL,
    follow_up           TEXT NOT NULL,
    follow_up_reason    TEXT,
    assignee            TEXT,
    first_response_at   TIMESTAMP,
    updated_at          TIMESTAMP NOT NULL,
    UNIQUE (account_id, remote_id)
);
CREATE INDEX replies_by_statement ON replies (lineage_id, created_at);
CREATE INDEX replies_by_delivery ON replies (delivery_id);
CREATE INDEX replies_by_follow_up ON replies (follow_up, created_at);

-- Where reply collection stands for each published delivery: the network's
-- cursor (only what is new is fetched) and when to look again.
CREATE TABLE reply_polls (
    delivery_id     TEXT PRIMARY KEY NOT NULL REFERENCES deliveries (id),
    account_id      TEXT NOT NULL,
    published_at    TIMESTAMP NOT NULL,
    cursor          TEXT,
    next_poll_at    TIMESTAMP NOT NULL,
    lease_until     TIMESTAMP,
    polls           INTEGER NOT NULL,
    last_polled_at  TIMESTAMP,
    last_error      TEXT,
    done_at         TIMESTAMP
);
CREATE INDEX reply_polls_due ON reply_polls (done_at, next_poll_at);

-- An answer to a reply, published through the dispatcher as a delivery of
-- kind 'response'.
CREATE TABLE responses (
    delivery_id     TEXT PRIMARY KEY NOT NULL REFERENCES deliveries (id),
    reply_id        TEXT NOT NULL REFERENCES replies (id),
    text            TEXT NOT NULL,
    template_id     TEXT,
    forced          BOOLEAN NOT NULL,
    created_by      TEXT NOT NULL,
    created_at      TIMESTAMP NOT NULL
);
CREATE INDEX responses_by_reply ON responses (reply_id);

-- A negative-tone episode for a statement or an account: one warning each.
CREATE TABLE reply_spikes (
    scope       TEXT NOT NULL,
    scope_id    TEXT NOT NULL,
    started_at  TIMESTAMP NOT NULL,
    ended_at    TIMESTAMP,
    negative    INTEGER NOT NULL,
    total       INTEGER NOT NULL,
    PRIMARY KEY (scope, scope_id, started_at)
);

-- Outbound webhooks: subscriptions, and an outbox of signed calls.
CREATE TABLE webhooks (
    id          TEXT PRIMARY KEY NOT NULL,
    url         TEXT NOT NULL,
    events      TEXT NOT NULL,
    secret      TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    removed_at  TIMESTAMP
);

CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY NOT NULL,
    webhook_id      TEXT NOT NULL REFERENCES webhooks (id),
    event           TEXT NOT NULL,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_at TIMESTAMP,
    lease_until     TIMESTAMP,
    last_status     INTEGER,
    last_error      TEXT,
    created_at      TIMESTAMP NOT NULL,
    delivered_at    TIMESTAMP
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, created_at);

CREATE TABLE webhook_attempts (
    delivery_id TEXT NOT NULL REFERENCES webhook_deliveries (id),
    number      INTEGER NOT NULL,
    at          TIMESTAMP NOT NULL,
    status      INTEGER,
    error       TEXT,
    duration_ms BIGINT NOT NULL,
    PRIMARY KEY (delivery_id, number)
);

-- A member of the public answering a sandbox post (who wrote it).
ALTER TABLE sandbox_posts ADD COLUMN author TEXT;
