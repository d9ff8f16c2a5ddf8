//! Fuzz target: The query path: `server::respond` on a signed zone with TSIG keys, transfer ACLs, a journal and the NOTIFY inbox configured.
//! Run with `scripts/fuzz query`; seeds in `fuzz/corpus/query/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| signalbox::fuzzing::query(data));
