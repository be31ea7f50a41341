//! Fake x server (being written).
