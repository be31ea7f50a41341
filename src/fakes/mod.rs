//! Local fake servers that follow the networks' official APIs
//! (shared/platforms.md), with fault injection. Tests and `herald bench`
//! publish to them; they are never used by `herald serve`.

pub mod bluesky;
pub mod mastodon;
