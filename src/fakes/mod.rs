//! Local fake servers that follow the networks' official APIs
//! (shared/platforms.md), with fault injection. Tests and `herald bench`
//! publish to them; they are never used by `herald serve`.

pub mod bluesky;
pub mod discord;
pub mod facebook;
pub mod instagram;
pub mod linkedin;
pub mod mastodon;
pub mod server;
pub mod telegram;
pub mod threads;
pub mod x;
