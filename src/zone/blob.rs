//! The wire layout in which a zone keeps its records: each RRset's records
//! (and, separately, its RRSIGs) as one blob of `type class ttl rdlength
//! rdata` entries without owner names (RFC 1035 §4.1.3), so an answer copies
//! them behind an owner as they are. The store, the signer, the journal and
//! the server all read this one layout.

use std::sync::Arc;

/// A shared byte string: a wire name or a canonical key.
pub type Bytes = Arc<[u8]>;

/// Appends one record (`type class ttl rdlength rdata`, no owner).
pub(crate) fn push_record(out: &mut Vec<u8>, rtype: u16, ttl: u32, rdata: &[u8]) {
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(rdata);
}

/// The records of a blob, each `type class ttl rdlength rdata`.
pub fn records(blob: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let head = blob.get(at..at + 10)?;
        let end = at + 10 + usize::from(u16::from_be_bytes([head[8], head[9]]));
        let record = blob.get(at..end)?;
        at = end;
        Some(record)
    })
}
