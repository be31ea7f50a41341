//! The API integration tests: one binary, the real server, a real database
//! (SQLite by default; PostgreSQL when HERALD_TEST_DATABASE_URL is set).

mod helpers;
mod kit;

mod accounts;
mod approval;
mod auth;
mod bluesky;
mod cli;
mod concurrency;
mod deliveries;
mod discord;
mod dispatch;
mod errors;
mod every_network;
mod facebook;
mod idempotency;
mod instagram;
mod linkedin;
mod log;
mod mastodon;
mod networks;
mod openapi;
mod outbound_webhooks;
mod readme;
mod replies;
mod statements;
mod telegram;
mod telegram_replies;
mod text_rules;
mod threads;
mod webhook;
mod x;
