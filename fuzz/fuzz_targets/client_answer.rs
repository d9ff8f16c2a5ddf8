//! Fuzz target: The client-side message parser: answers from parents, signers and primaries, as `client::exchange` checks them.
//! Run with `scripts/fuzz client_answer`; seeds in `fuzz/corpus/client_answer/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| signalbox::fuzzing::client_answer(data));
