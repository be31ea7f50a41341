//! Fake facebook server (being written).
