//! signalbox's integration tests, one binary: the harness in [`common`]
//! compiles once and every suite below is a module named after what it tests
//! (run one with `cargo test --test it serve::`).
//!
//! The suites that start real servers (Knot, BIND, NSD, Unbound, `signalbox
//! serve`) each work in their own temporary directory on ports from
//! [`common::process::free_port`], so they may run in parallel threads.

mod common;

mod bind_fixtures;
mod chain_harness;
mod check;
mod cli;
mod cross_check;
mod durability;
mod explain;
mod flood;
mod fuzz_query;
mod key_directory;
mod live;
mod metrics;
mod notify;
mod notify_inbox;
mod package;
mod parent_world;
mod partial_reads;
mod providers;
mod report;
mod rrl;
mod serve;
mod service;
mod sidecar;
mod signer_harness;
mod standby;
mod tcp_limits;
mod transfer;
mod vital;
