//! Fuzz target: The IXFR journal loader and the serial high-water mark, and serving IXFR from what loads.
//! Run with `scripts/fuzz journal`; seeds in `fuzz/corpus/journal/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| signalbox::fuzzing::journal(data));
