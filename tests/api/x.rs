//! The x connector against its fake (being written).
