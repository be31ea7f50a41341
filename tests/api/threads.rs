//! The threads connector against its fake (being written).
