//! The discord connector against its fake (being written).
