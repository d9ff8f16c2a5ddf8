//! Fuzz target: The saved zone loader (`zone::persist`), checksum appended, and serving what it loads.
//! Run with `scripts/fuzz saved_zone`; seeds in `fuzz/corpus/saved_zone/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| signalbox::fuzzing::saved_zone(data));
