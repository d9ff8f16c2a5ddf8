//! The `signalbox` command line.

mod cli;

use std::process::ExitCode;

/// jemalloc instead of glibc malloc: a round's short-lived allocations (one
/// per record, a million children) leave glibc's per-thread arenas
/// fragmented, and the RSS stayed near 3x the live heap; jemalloc, tuned in
/// `.cargo/config.toml` to give pages back after a second, halves it.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    cli::run()
}
