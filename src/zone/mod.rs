//! Served zones: the signalling zones as published, signed, with serials.

pub mod serial;
