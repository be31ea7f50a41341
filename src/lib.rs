//! Herald: a crisis-communication scheduler. See docs/ARCHITECTURE.md.

pub mod accounts;
pub mod app;
pub mod bench;
pub mod config;
pub mod crypto;
pub mod db;
pub mod deliveries;
pub mod dispatch;
pub mod fakes;
pub mod http;
pub mod keys;
pub mod log;
pub mod media;
pub mod platforms;
pub mod replies;
pub mod sentiment;
pub mod statements;
pub mod webhooks;
