//! The facebook connector against its fake (being written).
