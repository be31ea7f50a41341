//! Fake Mastodon server (placeholder).
