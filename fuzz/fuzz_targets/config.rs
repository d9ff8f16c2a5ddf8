//! Fuzz target: The config loader, on TOML text.
//! Run with `scripts/fuzz config`; seeds in `fuzz/corpus/config/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| signalbox::fuzzing::config(data));
