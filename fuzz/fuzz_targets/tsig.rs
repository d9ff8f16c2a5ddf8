//! Fuzz target: TSIG: locating, verifying and answering the TSIG record of a message; what we sign verifies.
//! Run with `scripts/fuzz tsig`; seeds in `fuzz/corpus/tsig/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| signalbox::fuzzing::tsig(data));
