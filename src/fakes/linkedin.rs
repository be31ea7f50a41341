//! Fake linkedin server (being written).
