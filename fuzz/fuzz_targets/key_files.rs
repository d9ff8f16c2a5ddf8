//! Fuzz target: Key files: BIND `.key`, `.private`, `.state`, TSIG key files and key file names (first byte picks the parser).
//! Run with `scripts/fuzz key_files`; seeds in `fuzz/corpus/key_files/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| signalbox::fuzzing::key_files(data));
