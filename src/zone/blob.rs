//! The wire layout in which a zone keeps its records: each RRset's records
//! (and, separately, its RRSIGs) as one blob of `type class ttl rdlength
//! rdata` entries without owner names (RFC 1035 §4.1.3), so an answer copies
//! them behind an owner as they are. The store, the signer, the journal and
//! the server all read this one layout; records are written into it with
//! [`wire::put_record_body`].

use std::sync::Arc;

use crate::dns::wire;

/// A shared byte string: a wire name or a canonical key.
pub type Bytes = Arc<[u8]>;

/// The records of a blob, each `type class ttl rdlength rdata`.
pub fn records(blob: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let end = at + 10 + usize::from(wire::u16_at(blob, at + 8)?);
        let record = blob.get(at..end)?;
        at = end;
        Some(record)
    })
}
