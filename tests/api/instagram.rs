//! The instagram connector against its fake (being written).
