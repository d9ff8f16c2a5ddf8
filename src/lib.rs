//! signalbox: the child side of DNSSEC delegation maintenance.
//!
//! Data flows one way: key sources ([`keys`]) and configuration ([`config`])
//! feed a pure [`policy`], which decides the CDS/CDNSKEY/CSYNC records and the
//! RFC 9615 `_dsboot` signals each child zone should publish. Publishers
//! (served zones, UPDATE, NOTIFY) only move the policy's output.

pub mod check;
pub mod client;
pub mod config;
pub mod cores;
pub mod daemon;
pub mod dns;
pub mod dnssec;
pub mod event;
pub mod follow;
#[cfg(any(fuzzing, test))]
pub mod fuzzing;
pub mod keys;
pub mod log_limit;
pub mod metrics;
pub mod model;
pub mod parent;
pub mod plan;
pub mod policy;
pub mod providers;
pub mod publish;
pub mod server;
pub mod state;
pub mod tsig;
pub mod vital;
pub mod zone;
