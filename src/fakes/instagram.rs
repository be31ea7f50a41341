//! Fake instagram server (being written).
