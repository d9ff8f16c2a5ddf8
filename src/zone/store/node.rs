//! One name's data as the store keeps it: all its RRsets, their records and
//! their RRSIGs packed into one allocation (issue 15: a node was ten
//! allocations, a boxed slice of RRset structs and three blobs per RRset,
//! which at a million names cost about 200 octets each in pointers, struct
//! padding and allocator rounding).
//!
//! The packed form, per RRset in type order: a 20-octet header (type,
//! number of signers, TTL, earliest signature expiration, octets of
//! records, octets of RRSIGs; big-endian), the records and the RRSIGs in
//! the blob layout of [`super::super::blob`] (`type class ttl rdlength
//! rdata`, no owner), then the (algorithm, key tag) of each RRSIG, three
//! octets each. Readers get [`RrsetRef`] views into it; builders work with
//! owned [`Rrset`]s and pack them with [`Node::new`].

use hickory_proto::rr::RecordType;

use std::sync::Arc;

use super::super::blob::records;
use crate::{
    dns::{Rrsig, RrsigHeader, wire},
    zone::{content::RrsetData, signer::Signatures},
};

/// Octets of an RRset's header in the packed form.
const HEADER: usize = 20;

/// One RRset with its signatures, owned (for building and changing nodes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rrset {
    /// Type code.
    pub rtype: u16,
    /// TTL.
    pub ttl: u32,
    /// The records: `type class ttl rdlength rdata` each, no owner.
    pub records: Box<[u8]>,
    /// The RRSIGs, same layout.
    pub sigs: Box<[u8]>,
    /// Earliest signature expiration (0 when unsigned).
    pub expires: u32,
    /// (algorithm, key tag) of every signature.
    pub signers: Box<[(u8, u16)]>,
}

impl Rrset {
    /// An unsigned RRset from its data.
    pub fn unsigned(data: &RrsetData) -> Self {
        let rtype = u16::from(data.rtype);
        let mut records = Vec::new();
        for rdata in &data.rdatas {
            wire::put_record_body(&mut records, rtype, data.ttl, rdata);
        }
        Rrset {
            rtype,
            ttl: data.ttl,
            records: records.into(),
            sigs: Box::default(),
            expires: 0,
            signers: Box::default(),
        }
    }

    /// The RDATA of each record.
    pub fn rdatas(&self) -> Vec<&[u8]> {
        rdatas(&self.records)
    }

    pub(super) fn set_sigs(&mut self, sigs: Signatures) {
        self.sigs = sigs.blob;
        self.expires = sigs.expires;
        self.signers = sigs.signers;
    }
}

/// One RRset of a [`Node`], read in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RrsetRef<'a> {
    /// Type code.
    pub rtype: u16,
    /// TTL.
    pub ttl: u32,
    /// The records: `type class ttl rdlength rdata` each, no owner.
    pub records: &'a [u8],
    /// The RRSIGs, same layout.
    pub sigs: &'a [u8],
    /// Earliest signature expiration (0 when unsigned).
    pub expires: u32,
    /// (algorithm, key tag) of every signature, three octets each.
    signers: &'a [u8],
}

impl<'a> RrsetRef<'a> {
    /// The RDATA of each record.
    pub fn rdatas(&self) -> Vec<&'a [u8]> {
        rdatas(self.records)
    }

    /// The RRSIGs, decoded.
    pub fn rrsigs(&self) -> Vec<Rrsig> {
        records(self.sigs)
            .filter_map(|r| Rrsig::from_wire(&r[10..]))
            .collect()
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        records(self.records).count()
    }

    /// True when the RRset has no records.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// (algorithm, key tag) of every signature.
    pub fn signers(&self) -> impl Iterator<Item = (u8, u16)> + 'a {
        self.signers
            .chunks_exact(3)
            .map(|s| (s[0], u16::from_be_bytes([s[1], s[2]])))
    }

    /// Number of signatures.
    pub fn signer_count(&self) -> usize {
        self.signers.len() / 3
    }

    /// An owned copy.
    pub fn to_rrset(&self) -> Rrset {
        Rrset {
            rtype: self.rtype,
            ttl: self.ttl,
            records: self.records.into(),
            sigs: self.sigs.into(),
            expires: self.expires,
            signers: self.signers().collect(),
        }
    }
}

/// The RDATA of each record of a blob.
fn rdatas(blob: &[u8]) -> Vec<&[u8]> {
    records(blob).map(|r| &r[10..]).collect()
}

/// A name with data: its owner and its RRsets, NSEC included, in type
/// order, packed into one shared allocation (`[owner length] owner packed`).
/// A clone shares it. The zone's name index compares a query name with the
/// owner in here, so a lookup touches the allocation the answer reads next
/// instead of a separate key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    data: Arc<[u8]>,
}

impl Node {
    /// The node at `wire` holding `rrsets` (which must be in type order,
    /// one per type).
    pub fn new(wire: &[u8], rrsets: &[Rrset]) -> Self {
        let mut packer = NodePacker::with_capacity(
            1 + wire.len()
                + rrsets
                    .iter()
                    .map(|r| HEADER + r.records.len() + r.sigs.len() + 3 * r.signers.len())
                    .sum::<usize>(),
        );
        packer.begin(wire);
        for r in rrsets {
            packer.push(
                r.rtype,
                r.ttl,
                r.expires,
                &r.records,
                &r.sigs,
                r.signers.iter().copied(),
            );
        }
        packer.finish()
    }

    /// Its lower-case wire owner name.
    pub fn wire(&self) -> &[u8] {
        let len = usize::from(self.data[0]);
        &self.data[1..1 + len]
    }

    /// Its packed RRsets.
    fn packed(&self) -> &[u8] {
        let len = usize::from(self.data[0]);
        &self.data[1 + len..]
    }

    /// Its RRsets, in type order.
    pub fn rrsets(&self) -> Rrsets<'_> {
        Rrsets {
            rest: self.packed(),
        }
    }

    /// The RRset of `rtype`.
    pub fn rrset(&self, rtype: RecordType) -> Option<RrsetRef<'_>> {
        let code = u16::from(rtype);
        self.rrsets().find(|r| r.rtype == code)
    }

    /// Its RRsets, owned (to change them and pack a new node).
    pub fn to_rrsets(&self) -> Vec<Rrset> {
        self.rrsets().map(|r| r.to_rrset()).collect()
    }

    /// Octets of the packed RRsets.
    pub fn packed_len(&self) -> usize {
        self.packed().len()
    }
}

/// The RRsets of a [`Node`].
#[derive(Debug, Clone)]
pub struct Rrsets<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Rrsets<'a> {
    type Item = RrsetRef<'a>;

    fn next(&mut self) -> Option<RrsetRef<'a>> {
        let h = self.rest.get(..HEADER)?;
        let at = |i: usize| u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let rtype = u16::from_be_bytes([h[0], h[1]]);
        let signers = usize::from(u16::from_be_bytes([h[2], h[3]])) * 3;
        let (ttl, expires) = (at(4), at(8));
        let (records_len, sigs_len) = (at(12) as usize, at(16) as usize);
        let body = &self.rest[HEADER..];
        // Packed by `NodePacker` only, so the lengths hold; a short body
        // ends the walk rather than panicking.
        let records = body.get(..records_len)?;
        let sigs = body.get(records_len..records_len + sigs_len)?;
        let end = records_len + sigs_len + signers;
        let signers = body.get(records_len + sigs_len..end)?;
        self.rest = &body[end..];
        Some(RrsetRef {
            rtype,
            ttl,
            records,
            sigs,
            expires,
            signers,
        })
    }
}

/// Packs RRsets into a [`Node`] one at a time; one packer can pack many
/// nodes (the saved zone's reader packs straight from the file into one
/// buffer, without owned RRsets in between).
#[derive(Debug, Default)]
pub struct NodePacker {
    /// The node being packed, in its final layout (reused, so a node
    /// costs one allocation, its own).
    out: Vec<u8>,
}

impl NodePacker {
    /// A packer for about `capacity` octets.
    pub fn with_capacity(capacity: usize) -> Self {
        NodePacker {
            out: Vec::with_capacity(capacity),
        }
    }

    /// Starts the node at `wire` (a wire name: at most 255 octets, RFC
    /// 1035 §3.1; a longer one is cut, which no parsed name is); its
    /// RRsets are pushed next.
    pub fn begin(&mut self, wire: &[u8]) {
        debug_assert!(wire.len() <= 255, "a wire name of {} octets", wire.len());
        let wire = &wire[..wire.len().min(255)];
        self.out.clear();
        self.out.push(wire.len() as u8);
        self.out.extend_from_slice(wire);
    }

    /// Appends an RRset (in type order).
    pub fn push(
        &mut self,
        rtype: u16,
        ttl: u32,
        expires: u32,
        records: &[u8],
        sigs: &[u8],
        signers: impl ExactSizeIterator<Item = (u8, u16)>,
    ) {
        let out = &mut self.out;
        // Bounded by what callers hold: an RRset's RRSIGs (one per signing
        // key) and blobs read with u32 lengths or built from records of at
        // most 65,535 octets each.
        debug_assert!(signers.len() <= usize::from(u16::MAX));
        debug_assert!(u32::try_from(records.len()).is_ok() && u32::try_from(sigs.len()).is_ok());
        let count = signers.len().min(usize::from(u16::MAX));
        put_header(
            out,
            rtype,
            count as u16,
            ttl,
            expires,
            records.len(),
            sigs.len(),
        );
        out.extend_from_slice(records);
        out.extend_from_slice(sigs);
        for (algorithm, tag) in signers.take(count) {
            out.push(algorithm);
            wire::put_u16(out, tag);
        }
    }

    /// Appends an RRset whose records and then RRSIGs `fill` appends to the
    /// packed octets (returning the records' length), with its earliest
    /// expiration and signers read from the RRSIGs (each of which must
    /// parse); `None`, and the packer to be dropped, when `fill` fails or
    /// `check(records, sigs)` does not hold.
    pub fn push_filled(
        &mut self,
        rtype: u16,
        ttl: u32,
        fill: impl FnOnce(&mut Vec<u8>) -> Option<usize>,
        check: impl FnOnce(&[u8], &[u8]) -> bool,
    ) -> Option<()> {
        let start = self.out.len();
        self.out.extend_from_slice(&[0; HEADER]);
        let body = self.out.len();
        let records_len = fill(&mut self.out)?;
        let (recs, sigs) = self.out.get(body..)?.split_at_checked(records_len)?;
        if !check(recs, sigs) {
            return None;
        }
        let sigs_len = sigs.len();
        let mut expires: Option<u32> = None;
        let mut signers: Vec<u8> = Vec::with_capacity(3 * 4);
        for sig in records(sigs) {
            let header = RrsigHeader::from_wire(sig.get(10..)?)?;
            expires = Some(expires.map_or(header.expiration, |e| e.min(header.expiration)));
            signers.push(header.algorithm);
            signers.extend_from_slice(&header.key_tag.to_be_bytes());
        }
        let count = u16::try_from(signers.len() / 3).ok()?;
        self.out.extend_from_slice(&signers);
        let mut header = Vec::with_capacity(HEADER);
        put_header(
            &mut header,
            rtype,
            count,
            ttl,
            expires.unwrap_or(0),
            records_len,
            sigs_len,
        );
        self.out[start..body].copy_from_slice(&header);
        Some(())
    }

    /// The node begun last, with the RRsets pushed since; the packer is
    /// empty again.
    pub fn finish(&mut self) -> Node {
        let node = Node {
            data: Arc::from(&self.out[..]),
        };
        self.out.clear();
        node
    }
}

/// Appends an RRset's header.
fn put_header(
    out: &mut Vec<u8>,
    rtype: u16,
    signers: u16,
    ttl: u32,
    expires: u32,
    records: usize,
    sigs: usize,
) {
    wire::put_u16(out, rtype);
    wire::put_u16(out, signers);
    wire::put_u32(out, ttl);
    wire::put_u32(out, expires);
    wire::put_u32(out, records as u32);
    wire::put_u32(out, sigs as u32);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rrset(rtype: u16, signers: &[(u8, u16)]) -> Rrset {
        let mut records = Vec::new();
        wire::put_record_body(&mut records, rtype, 300, &[1, 2, 3, rtype as u8]);
        wire::put_record_body(&mut records, rtype, 300, &[4, 5]);
        Rrset {
            rtype,
            ttl: 300,
            records: records.into(),
            sigs: vec![9; 11 * signers.len()].into(),
            expires: 1_700_000_000 + u32::from(rtype),
            signers: signers.into(),
        }
    }

    #[test]
    fn a_packed_node_gives_back_every_rrset_as_it_was() {
        let sets = vec![
            rrset(46, &[]),
            rrset(47, &[(13, 1)]),
            rrset(59, &[(13, 65535), (8, 0), (15, 4242)]),
            Rrset {
                rtype: 60,
                ttl: 0,
                records: Box::default(),
                sigs: Box::default(),
                expires: 0,
                signers: Box::default(),
            },
        ];
        let node = Node::new(b"\x01a\x00", &sets);
        assert_eq!(node.wire(), b"\x01a\x00");
        assert_eq!(node.to_rrsets(), sets);
        assert_eq!(node.rrsets().count(), 4);
        let cds = node.rrset(RecordType::CDS).expect("CDS");
        assert_eq!(cds.signer_count(), 3);
        assert_eq!(cds.signers().collect::<Vec<_>>(), sets[2].signers.to_vec());
        assert_eq!(cds.rdatas(), vec![&[1, 2, 3, 59][..], &[4, 5][..]]);
        assert!(node.rrset(RecordType::A).is_none());
        assert_eq!(
            node.packed_len(),
            sets.iter()
                .map(|r| HEADER + r.records.len() + r.sigs.len() + 3 * r.signers.len())
                .sum::<usize>()
        );
        let empty = Node::new(b"\x00", &[]);
        assert_eq!(empty.wire(), b"\x00");
        assert_eq!(empty.rrsets().count(), 0);
    }
}
