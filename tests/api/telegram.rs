//! The telegram connector against its fake (being written).
