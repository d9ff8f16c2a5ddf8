//! Served zones: the signalling zones as published, signed, with serials.

pub mod content;
pub mod serial;
pub mod signed;

pub use content::{RrsetData, ZoneContent};
pub use signed::{SignError, SignedNode, SignedRrset, SignedZone, UpdateStats, ZoneSigner};
