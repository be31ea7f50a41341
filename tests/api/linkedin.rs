//! The linkedin connector against its fake (being written).
