//! Served zones: the signalling zones as published, signed, with serials.

pub mod blob;
pub mod changes;
pub mod content;
pub mod journal;
pub mod persist;
pub mod serial;
pub mod signer;
pub mod store;

pub use content::{RrsetData, ZoneContent};
pub use signer::{SignError, ZoneSigner};
pub use store::{Change, Entry, Node, Rrset, RrsetRef, SigRecord, Sigs, UpdateStats, ZoneStore};
