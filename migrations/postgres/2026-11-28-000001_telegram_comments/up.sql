-- Telegram comments (shared/platforms.md §8.6). Comments on a channel post
-- live in the channel's linked discussion group and reach the bot only as
-- getUpdates updates, one queue per bot: one consumer per bot token stores
-- the group messages here, and each delivery's poll reads them from here.
-- Keep in step with the other back end's migration of the same name.

-- A message of a group the bot is in, as its update carried it: one row
-- per account using the bot that received it.
CREATE TABLE telegram_comments (
    account_id                  TEXT NOT NULL,
    chat_id                     BIGINT NOT NULL,
    message_id                  BIGINT NOT NULL,
    chat_username               TEXT,
    -- message_thread_id: the automatic forward a comment thread hangs on.
    thread_id                   BIGINT,
    reply_to_message_id         BIGINT,
    -- The group's copy of a channel post, and the post it copies.
    automatic_forward           BOOLEAN NOT NULL,
    forward_origin_chat_id      BIGINT,
    forward_origin_message_id   BIGINT,
    forward_origin_username     TEXT,
    author_id                   BIGINT,
    author                      TEXT NOT NULL,
    text                        TEXT NOT NULL,
    date                        TIMESTAMP NOT NULL,
    update_id                   BIGINT NOT NULL,
    received_at                 TIMESTAMP NOT NULL,
    PRIMARY KEY (account_id, chat_id, message_id)
);
CREATE INDEX telegram_comments_forwards
    ON telegram_comments (account_id, forward_origin_chat_id, forward_origin_message_id);
CREATE INDEX telegram_comments_threads ON telegram_comments (account_id, chat_id, thread_id);

-- Where each bot's update queue stands: the next getUpdates offset (stored
-- in the same transaction as the messages it confirms), and the wait a 429
-- asked for. `bot_key` is the SHA-256 of the bot token, never the token.
CREATE TABLE telegram_offsets (
    bot_key     TEXT PRIMARY KEY NOT NULL,
    next_offset BIGINT NOT NULL,
    retry_at    TIMESTAMP,
    last_error  TEXT,
    updated_at  TIMESTAMP NOT NULL
);
