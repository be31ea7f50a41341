//! The API integration tests: one binary, the real server, a real database
//! (SQLite by default; PostgreSQL when HERALD_TEST_DATABASE_URL is set).

mod helpers;

mod accounts;
mod approval;
mod auth;
mod bluesky;
mod cli;
mod concurrency;
mod deliveries;
mod dispatch;
mod errors;
mod idempotency;
mod log;
mod mastodon;
mod openapi;
mod readme;
mod statements;
mod text_rules;
mod webhook;
