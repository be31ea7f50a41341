//! Fake threads server (being written).
