//! One name's data as the store keeps it: all its RRsets, their records and
//! their RRSIGs packed into one allocation (issue 15: a node was ten
//! allocations, a boxed slice of RRset structs and three blobs per RRset,
//! which at a million names cost about 200 octets each in pointers, struct
//! padding and allocator rounding).
//!
//! The packed form, per RRset in type order: a 19-octet header (type, where
//! the RRSIGs' signer name is, TTL, earliest signature expiration, octets of
//! records, octets of RRSIGs; big-endian), then the records and the RRSIGs
//! in the blob layout of [`super::super::blob`] (`type class ttl rdlength
//! rdata`, no owner).
//!
//! Every RRSIG of a zone names the zone's apex as its signer (RFC 4035
//! §2.2), and the apex's wire name ends every owner name in the zone: where
//! an RRset's RRSIGs all carry a signer name that ends the node's owner,
//! they are kept without it (their RDLENGTH less its octets) and the header
//! says where in the owner it begins. At a million children this keeps
//! three copies of the apex's name out of each node (81 octets for
//! `_signal.ns1.operator.test.`), which takes a signal's node from
//! jemalloc's 768-octet class to its 640 one. Readers get the RRSIGs whole
//! through [`Sigs`]; the signers' (algorithm, key tag) pairs are read from
//! the RRSIGs' fixed fields. Builders work with owned [`Rrset`]s (RRSIGs
//! whole) and pack them with [`Node::new`].

use hickory_proto::rr::RecordType;

use std::sync::Arc;

use super::super::blob::records;
use crate::{
    dns::{Rrsig, RrsigHeader, name::wire_name_len, wire},
    zone::{content::RrsetData, signer::Signatures},
};

/// Octets of an RRset's header in the packed form.
const HEADER: usize = 19;

/// The header's "signer" octet for RRSIGs kept whole.
const WHOLE: u8 = u8::MAX;

/// Octets of an RRSIG's RDATA before the signer name (RFC 4034 §3.1).
const RRSIG_FIXED: usize = 18;

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
    /// The RRSIGs.
    pub sigs: Sigs<'a>,
    /// Earliest signature expiration (0 when unsigned).
    pub expires: u32,
}

impl<'a> RrsetRef<'a> {
    /// The RDATA of each record.
    pub fn rdatas(&self) -> Vec<&'a [u8]> {
        rdatas(self.records)
    }

    /// The RRSIGs, decoded.
    pub fn rrsigs(&self) -> Vec<Rrsig> {
        let mut rdata = Vec::new();
        self.sigs
            .iter()
            .filter_map(|sig| {
                rdata.clear();
                sig.put_rdata(&mut rdata);
                Rrsig::from_wire(&rdata)
            })
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
        self.sigs.iter().filter_map(|sig| sig.signer_key())
    }

    /// Number of signatures.
    pub fn signer_count(&self) -> usize {
        self.sigs.len()
    }

    /// An owned copy.
    pub fn to_rrset(&self) -> Rrset {
        Rrset {
            rtype: self.rtype,
            ttl: self.ttl,
            records: self.records.into(),
            sigs: self.sigs.to_blob().into(),
            expires: self.expires,
            signers: self.signers().collect(),
        }
    }
}

/// The RRSIGs of an RRset in a [`Node`]: kept whole, or without the signer
/// name they all carry, which is then `signer` (a suffix of the owner).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sigs<'a> {
    /// The RRSIGs in the blob layout, without their signer name when
    /// `signer` is not empty.
    blob: &'a [u8],
    /// The signer name left out of every RRSIG; empty when kept whole.
    signer: &'a [u8],
}

impl<'a> Sigs<'a> {
    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.blob.is_empty()
    }

    /// Number of RRSIGs.
    pub fn len(&self) -> usize {
        records(self.blob).count()
    }

    /// Each RRSIG, as the parts a writer puts back together.
    pub fn iter(&self) -> impl Iterator<Item = SigRecord<'a>> + 'a {
        let signer = self.signer;
        records(self.blob).map(move |record| {
            let (head, rdata) = record.split_at(10);
            // Kept whole, or (packed so) the fixed fields, then the rest.
            let (fixed, rest) = match signer.is_empty() {
                true => (rdata, &[][..]),
                false => rdata.split_at(RRSIG_FIXED.min(rdata.len())),
            };
            SigRecord {
                head: &head[..8],
                fixed,
                signer,
                rest,
            }
        })
    }

    /// Appends every RRSIG whole (`type class ttl rdlength rdata`).
    pub fn put_blob(&self, out: &mut Vec<u8>) {
        for sig in self.iter() {
            sig.put_body(out);
        }
    }

    /// Every RRSIG whole, as one blob.
    pub fn to_blob(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.blob.len() + self.len() * self.signer.len());
        self.put_blob(&mut out);
        out
    }
}

/// One RRSIG of [`Sigs`], in parts: TYPE, CLASS and TTL, then the RDATA as
/// the fixed fields, the signer name and the signature (or the RDATA whole
/// in `fixed`).
#[derive(Debug, Clone, Copy)]
pub struct SigRecord<'a> {
    head: &'a [u8],
    fixed: &'a [u8],
    signer: &'a [u8],
    rest: &'a [u8],
}

impl SigRecord<'_> {
    /// TYPE, CLASS and TTL (8 octets, as a blob record begins).
    pub fn head(&self) -> &[u8] {
        self.head
    }

    /// Octets of the RDATA.
    pub fn rdlength(&self) -> usize {
        self.fixed.len() + self.signer.len() + self.rest.len()
    }

    /// Appends the RDATA.
    pub fn put_rdata(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.fixed);
        out.extend_from_slice(self.signer);
        out.extend_from_slice(self.rest);
    }

    /// Appends the record in the blob layout: `type class ttl rdlength
    /// rdata`.
    pub fn put_body(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.head);
        // An RDATA is at most 65,535 octets: it came out of a record that
        // held it whole.
        wire::put_u16(out, self.rdlength() as u16);
        self.put_rdata(out);
    }

    /// The (algorithm, key tag) of the key that made it (RFC 4034 §3.1).
    fn signer_key(&self) -> Option<(u8, u16)> {
        let fixed = self.fixed.get(..RRSIG_FIXED)?;
        Some((fixed[2], u16::from_be_bytes([fixed[16], fixed[17]])))
    }
}

/// The RDATA of each record of a blob.
fn rdatas(blob: &[u8]) -> Vec<&[u8]> {
    records(blob).map(|r| &r[10..]).collect()
}

/// Where in `owner` the signer name that every RRSIG of `sigs` (whole, in
/// the blob layout) carries begins, when they all carry the same one and
/// it ends `owner` octet for octet; `None` otherwise (or when there are
/// none), and the RRSIGs are kept whole.
fn signer_in_owner(owner: &[u8], sigs: &[u8]) -> Option<u8> {
    let mut offset = None;
    for sig in records(sigs) {
        let signer = sig.get(10 + RRSIG_FIXED..)?;
        let signer = signer.get(..wire_name_len(signer)?)?;
        let at = owner.len().checked_sub(signer.len())?;
        if owner[at..] != *signer || offset.is_some_and(|o| o != at) {
            return None;
        }
        offset = Some(at);
    }
    u8::try_from(offset?).ok().filter(|o| *o != WHOLE)
}

/// Appends `sigs` (whole, in the blob layout) without the signer name of
/// `signer_len` octets that each carries after its fixed fields.
fn put_without_signer(out: &mut Vec<u8>, sigs: &[u8], signer_len: usize) {
    for sig in records(sigs) {
        let rdata = &sig[10..];
        out.extend_from_slice(&sig[..8]);
        wire::put_u16(out, (rdata.len() - signer_len) as u16);
        out.extend_from_slice(&rdata[..RRSIG_FIXED]);
        out.extend_from_slice(&rdata[RRSIG_FIXED + signer_len..]);
    }
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
                    .map(|r| HEADER + r.records.len() + r.sigs.len())
                    .sum::<usize>(),
        );
        packer.begin(wire);
        for r in rrsets {
            packer.push(r.rtype, r.ttl, r.expires, &r.records, &r.sigs);
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
            owner: self.wire(),
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
    owner: &'a [u8],
    rest: &'a [u8],
}

impl<'a> Iterator for Rrsets<'a> {
    type Item = RrsetRef<'a>;

    fn next(&mut self) -> Option<RrsetRef<'a>> {
        let h = self.rest.get(..HEADER)?;
        let at = |i: usize| u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let rtype = u16::from_be_bytes([h[0], h[1]]);
        let signer = match h[2] {
            WHOLE => &[][..],
            offset => self.owner.get(usize::from(offset)..)?,
        };
        let (ttl, expires) = (at(3), at(7));
        let (records_len, sigs_len) = (at(11) as usize, at(15) as usize);
        let body = &self.rest[HEADER..];
        // Packed by `NodePacker` only, so the lengths hold; a short body
        // ends the walk rather than panicking.
        let records = body.get(..records_len)?;
        let sigs = body.get(records_len..records_len + sigs_len)?;
        self.rest = &body[records_len + sigs_len..];
        Some(RrsetRef {
            rtype,
            ttl,
            records,
            sigs: Sigs { blob: sigs, signer },
            expires,
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
    /// RRSIGs read whole, before they are put in without their signer.
    scratch: Vec<u8>,
}

impl NodePacker {
    /// A packer for about `capacity` octets.
    pub fn with_capacity(capacity: usize) -> Self {
        NodePacker {
            out: Vec::with_capacity(capacity),
            scratch: Vec::new(),
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

    /// The owner of the node begun last.
    fn owner(&self) -> &[u8] {
        &self.out[1..1 + usize::from(self.out[0])]
    }

    /// Appends an RRset (in type order); `sigs` are its RRSIGs whole.
    pub fn push(&mut self, rtype: u16, ttl: u32, expires: u32, records: &[u8], sigs: &[u8]) {
        // Bounded by what callers hold: blobs read with u32 lengths or
        // built from records of at most 65,535 octets each.
        debug_assert!(u32::try_from(records.len()).is_ok() && u32::try_from(sigs.len()).is_ok());
        let signer = signer_in_owner(self.owner(), sigs);
        let start = self.out.len();
        self.out.extend_from_slice(&[0; HEADER]);
        self.out.extend_from_slice(records);
        let sigs_at = self.out.len();
        match signer {
            Some(offset) => {
                let signer_len = self.owner().len() - usize::from(offset);
                put_without_signer(&mut self.out, sigs, signer_len);
            }
            None => self.out.extend_from_slice(sigs),
        }
        let sigs_len = self.out.len() - sigs_at;
        let header = header(rtype, signer, ttl, expires, records.len(), sigs_len);
        self.out[start..start + HEADER].copy_from_slice(&header);
    }

    /// Appends an RRset whose records and then RRSIGs (whole) `fill`
    /// appends to `out` (returning the records' length), with its earliest
    /// expiration read from the RRSIGs (each of which must parse); `None`,
    /// and the packer to be dropped, when `fill` fails or `check(records,
    /// sigs)` does not hold.
    pub fn push_filled(
        &mut self,
        rtype: u16,
        ttl: u32,
        fill: impl FnOnce(&mut Vec<u8>) -> Option<usize>,
        check: impl FnOnce(&[u8], &[u8]) -> bool,
    ) -> Option<()> {
        let mut read = std::mem::take(&mut self.scratch);
        read.clear();
        let filled = fill(&mut read).and_then(|records_len| {
            let (recs, sigs) = read.split_at_checked(records_len)?;
            if !check(recs, sigs) {
                return None;
            }
            let mut expires: Option<u32> = None;
            for sig in records(sigs) {
                let header = RrsigHeader::from_wire(sig.get(10..)?)?;
                expires = Some(expires.map_or(header.expiration, |e| e.min(header.expiration)));
            }
            self.push(rtype, ttl, expires.unwrap_or(0), recs, sigs);
            Some(())
        });
        self.scratch = read;
        filled
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

/// An RRset's header.
fn header(
    rtype: u16,
    signer: Option<u8>,
    ttl: u32,
    expires: u32,
    records: usize,
    sigs: usize,
) -> [u8; HEADER] {
    let mut h = [0; HEADER];
    h[..2].copy_from_slice(&rtype.to_be_bytes());
    h[2] = signer.unwrap_or(WHOLE);
    h[3..7].copy_from_slice(&ttl.to_be_bytes());
    h[7..11].copy_from_slice(&expires.to_be_bytes());
    h[11..15].copy_from_slice(&(records as u32).to_be_bytes());
    h[15..19].copy_from_slice(&(sigs as u32).to_be_bytes());
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNER: &[u8] = b"\x01a\x07example\x00";

    /// An RRSIG record (blob layout) over `covered` by key `tag`, with
    /// `signer` (a wire name) and a signature of `seed` octets.
    fn rrsig(covered: u16, tag: u16, signer: &[u8], seed: u8) -> Vec<u8> {
        let mut rdata = Vec::new();
        wire::put_u16(&mut rdata, covered);
        rdata.extend([13, 2]);
        wire::put_u32(&mut rdata, 300);
        wire::put_u32(&mut rdata, 1_700_000_000 + u32::from(tag));
        wire::put_u32(&mut rdata, 1_600_000_000);
        wire::put_u16(&mut rdata, tag);
        rdata.extend_from_slice(signer);
        rdata.extend([seed; 64]);
        let mut record = Vec::new();
        wire::put_record_body(&mut record, 46, 300, &rdata);
        record
    }

    fn rrset(rtype: u16, tags: &[u16], signer: &[u8]) -> Rrset {
        let mut records = Vec::new();
        wire::put_record_body(&mut records, rtype, 300, &[1, 2, 3, rtype as u8]);
        wire::put_record_body(&mut records, rtype, 300, &[4, 5]);
        let sigs: Vec<u8> = tags
            .iter()
            .flat_map(|tag| rrsig(rtype, *tag, signer, *tag as u8))
            .collect();
        Rrset {
            rtype,
            ttl: 300,
            records: records.into(),
            sigs: sigs.into(),
            expires: 1_700_000_000 + u32::from(rtype),
            signers: tags.iter().map(|tag| (13, *tag)).collect(),
        }
    }

    #[test]
    fn a_packed_node_gives_back_every_rrset_as_it_was() {
        let sets = vec![
            rrset(46, &[], b"\x07example\x00"),
            // Signed by the zone: kept without the signer name.
            rrset(47, &[1], b"\x07example\x00"),
            rrset(59, &[65535, 0, 4242], b"\x07example\x00"),
            // Signer names that are not the owner's suffix, or differ
            // among the RRSIGs of one RRset: kept whole.
            rrset(60, &[7], b"\x05other\x00"),
            Rrset {
                sigs: [
                    rrsig(61, 1, b"\x07example\x00", 1),
                    rrsig(61, 2, b"\x00", 2),
                ]
                .concat()
                .into(),
                signers: [(13, 1), (13, 2)].into(),
                ..rrset(61, &[], b"")
            },
            Rrset {
                rtype: 62,
                ttl: 0,
                records: Box::default(),
                sigs: Box::default(),
                expires: 0,
                signers: Box::default(),
            },
        ];
        let node = Node::new(OWNER, &sets);
        assert_eq!(node.wire(), OWNER);
        assert_eq!(node.to_rrsets(), sets);
        assert_eq!(node.rrsets().count(), 6);
        let cds = node.rrset(RecordType::CDS).expect("CDS");
        assert_eq!(cds.signer_count(), 3);
        assert_eq!(cds.signers().collect::<Vec<_>>(), sets[2].signers.to_vec());
        assert_eq!(cds.rdatas(), vec![&[1, 2, 3, 59][..], &[4, 5][..]]);
        assert_eq!(cds.sigs.to_blob(), sets[2].sigs.to_vec());
        assert_eq!(cds.rrsigs().len(), 3);
        assert_eq!(
            cds.rrsigs()[0].signer,
            "example.".parse::<hickory_proto::rr::Name>().expect("name")
        );
        assert!(node.rrset(RecordType::A).is_none());
        // The two RRsets signed by the zone lose 9 octets (the signer
        // name) per RRSIG.
        assert_eq!(
            node.packed_len(),
            sets.iter()
                .map(|r| HEADER + r.records.len() + r.sigs.len())
                .sum::<usize>()
                - 4 * 9
        );
        let empty = Node::new(b"\x00", &[]);
        assert_eq!(empty.wire(), b"\x00");
        assert_eq!(empty.rrsets().count(), 0);
    }

    #[test]
    fn a_filled_rrset_is_packed_as_a_pushed_one() {
        let set = Rrset {
            // The earliest of the RRSIGs' expirations.
            expires: 1_700_000_003,
            ..rrset(59, &[3, 4], b"\x07example\x00")
        };
        let mut packer = NodePacker::default();
        packer.begin(OWNER);
        packer
            .push_filled(
                59,
                300,
                |out| {
                    out.extend_from_slice(&set.records);
                    out.extend_from_slice(&set.sigs);
                    Some(set.records.len())
                },
                |_, _| true,
            )
            .expect("packed");
        let filled = packer.finish();
        assert_eq!(filled, Node::new(OWNER, std::slice::from_ref(&set)));
        assert_eq!(
            filled.rrsets().next().map(|r| r.expires),
            Some(1_700_000_003)
        );
        // A check that fails, or RRSIGs that do not parse: nothing.
        packer.begin(OWNER);
        let fill = |out: &mut Vec<u8>| {
            out.extend_from_slice(&set.records);
            out.extend_from_slice(&[0; 12]);
            Some(set.records.len())
        };
        assert!(packer.push_filled(59, 300, fill, |_, _| true).is_none());
    }
}
