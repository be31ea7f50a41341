//! Fake Bluesky PDS (placeholder).
