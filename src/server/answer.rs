//! Authoritative answers from an immutable snapshot, assembled from
//! precomputed wire blobs without allocating (after warm-up).
//!
//! Every RRset is stored once, in wire form without owner names, next to
//! its RRSIGs. An answer is the query's header and question (echoed byte for
//! byte, so the QNAME keeps its case) followed by blobs copied behind an owner:
//! a compression pointer to the QNAME for records at the QNAME, a pointer into
//! it for the apex SOA, or the full name for NSEC records proving a name does
//! not exist. Denial (RFC 4035 §3.1.3): NODATA carries the SOA and the name's
//! NSEC; an empty non-terminal the NSEC of its canonical predecessor;
//! NXDOMAIN the NSEC covering the name and the one covering the wildcard at
//! the closest encloser. ANY gets one RRset (RFC 8482).

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use hickory_proto::rr::RecordType;

use super::query::{self, Edns, ParseError, flags};
use crate::{
    dns::name::{canonical_key_of_wire, canonical_wire, display},
    zone::{SignedRrset, SignedZone},
};

/// Response codes used here.
mod rcode {
    pub const NOERROR: u16 = 0;
    pub const FORMERR: u16 = 1;
    pub const SERVFAIL: u16 = 2;
    pub const NXDOMAIN: u16 = 3;
    pub const NOTIMP: u16 = 4;
    pub const REFUSED: u16 = 5;
    /// Extended RCODE 16 (RFC 6891 §6.1.3): upper 8 bits 1 in the OPT TTL.
    pub const BADVERS_HIGH: u8 = 1;
}

/// Largest UDP answer without EDNS (RFC 1035 §4.2.1).
pub const UDP_PLAIN_LIMIT: usize = 512;

/// One RRset in wire form without owners: `type class ttl rdlen rdata` per
/// record, and the same for its RRSIGs.
#[derive(Debug)]
struct RrBlob {
    rtype: u16,
    records: Box<[u8]>,
    sigs: Box<[u8]>,
}

impl RrBlob {
    fn from_rrset(rrset: &SignedRrset) -> Self {
        let rtype = u16::from(rrset.data.rtype);
        let mut records = Vec::new();
        for rdata in &rrset.data.rdatas {
            push_record(&mut records, rtype, rrset.data.ttl, rdata);
        }
        let mut sigs = Vec::new();
        for sig in &rrset.sigs {
            push_record(
                &mut sigs,
                u16::from(RecordType::RRSIG),
                rrset.data.ttl,
                &sig.to_wire(),
            );
        }
        RrBlob {
            rtype,
            records: records.into(),
            sigs: sigs.into(),
        }
    }
}

fn push_record(out: &mut Vec<u8>, rtype: u16, ttl: u32, rdata: &[u8]) {
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(rdata);
}

#[derive(Debug)]
enum Entry {
    /// A name with data: its RRsets (NSEC included), by type code.
    Node(Box<[RrBlob]>),
    /// An empty non-terminal.
    Ent,
}

/// The answers of one zone.
#[derive(Debug)]
pub struct ZoneAnswers {
    apex: Box<[u8]>,
    serial: u32,
    names: HashMap<Box<[u8]>, Entry>,
    /// Canonical key -> wire name, for names with data.
    order: BTreeMap<Box<[u8]>, Box<[u8]>>,
    broken: Option<String>,
}

impl ZoneAnswers {
    /// Precomputes the answers of a signed zone.
    pub fn build(zone: &SignedZone) -> Self {
        let apex = canonical_wire(&zone.apex);
        let mut names: HashMap<Box<[u8]>, Entry> = HashMap::with_capacity(zone.nodes.len() * 2);
        let mut order = BTreeMap::new();
        for (key, node) in &zone.nodes {
            let wire: Box<[u8]> = canonical_wire(&node.name).into();
            let blobs: Box<[RrBlob]> = node.rrsets.iter().map(RrBlob::from_rrset).collect();
            names.insert(wire.clone(), Entry::Node(blobs));
            order.insert(key.clone().into_boxed_slice(), wire.clone());
            // Ancestors up to the apex that hold no data are empty non-terminals.
            let mut at = 0;
            while wire.len() - at > apex.len() {
                at += 1 + usize::from(wire[at]);
                if wire.len() - at <= apex.len() {
                    break;
                }
                names.entry(wire[at..].into()).or_insert(Entry::Ent);
            }
        }
        ZoneAnswers {
            apex: apex.into(),
            serial: zone.serial,
            names,
            order,
            broken: None,
        }
    }

    /// A zone that cannot be served (it could not be signed): SERVFAIL.
    pub fn broken(apex: &hickory_proto::rr::Name, why: String) -> Self {
        ZoneAnswers {
            apex: canonical_wire(apex).into(),
            serial: 0,
            names: HashMap::new(),
            order: BTreeMap::new(),
            broken: Some(why),
        }
    }

    /// The apex in wire form.
    pub fn apex(&self) -> &[u8] {
        &self.apex
    }

    /// The serial of this version.
    pub fn serial(&self) -> u32 {
        self.serial
    }

    /// Number of names with data.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True when the zone holds no names (a broken zone).
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    fn node(&self, wire: &[u8]) -> Option<&[RrBlob]> {
        match self.names.get(wire)? {
            Entry::Node(blobs) => Some(blobs),
            Entry::Ent => None,
        }
    }

    /// The data name before `key` in canonical order, with its NSEC blob.
    fn predecessor(&self, key: &[u8]) -> Option<(&[u8], &RrBlob)> {
        let range = (std::ops::Bound::Unbounded, std::ops::Bound::Excluded(key));
        let (_, wire) = self.order.range::<[u8], _>(range).next_back()?;
        let nsec = self
            .node(wire)?
            .iter()
            .find(|b| b.rtype == u16::from(RecordType::NSEC))?;
        Some((wire, nsec))
    }
}

/// Everything `serve` answers from: every zone, swapped as a whole.
#[derive(Debug, Default)]
pub struct Snapshot {
    zones: HashMap<Box<[u8]>, Arc<ZoneAnswers>>,
    /// Our EDNS UDP payload size.
    pub edns_udp_size: u16,
}

impl Snapshot {
    /// A snapshot of `zones`.
    pub fn new(zones: Vec<Arc<ZoneAnswers>>, edns_udp_size: u16) -> Self {
        Snapshot {
            zones: zones.into_iter().map(|z| (z.apex.clone(), z)).collect(),
            edns_udp_size,
        }
    }

    /// The zones, for status and logs.
    pub fn zones(&self) -> impl Iterator<Item = &Arc<ZoneAnswers>> {
        self.zones.values()
    }

    /// The zone holding `lower` (a lower-case wire name): longest apex match.
    fn zone_for(&self, lower: &[u8]) -> Option<&ZoneAnswers> {
        let mut at = 0;
        loop {
            if let Some(zone) = self.zones.get(&lower[at..]) {
                return Some(zone);
            }
            let len = usize::from(*lower.get(at)?);
            if len == 0 {
                return None;
            }
            at += 1 + len;
        }
    }
}

/// How the answer travels: UDP answers are truncated to the client's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP: up to 65535 octets.
    Tcp,
}

/// Answers `packet` into `out`; false when the packet is to be dropped.
pub fn respond(
    snapshot: &Snapshot,
    packet: &[u8],
    transport: Transport,
    out: &mut Vec<u8>,
) -> bool {
    out.clear();
    let q = match query::parse(packet) {
        Ok(q) => q,
        Err(ParseError::Drop) => return false,
        Err(ParseError::FormErr {
            id,
            flags,
            question,
        }) => {
            header(out, id, flags, rcode::FORMERR, question.is_some());
            if let Some(question) = question {
                out.extend_from_slice(question);
            }
            return true;
        }
    };
    let mut w = Writer::start(out, &q);
    if let Some(edns) = q.edns {
        if edns.version > 0 {
            w.finish(
                rcode::NOERROR,
                false,
                Some(rcode::BADVERS_HIGH),
                snapshot.edns_udp_size,
                transport,
            );
            return true;
        }
    }
    if q.opcode != 0 {
        w.finish(
            rcode::NOTIMP,
            false,
            None,
            snapshot.edns_udp_size,
            transport,
        );
        return true;
    }
    if q.qtype == u16::from(RecordType::OPT) {
        w.finish(
            rcode::FORMERR,
            false,
            None,
            snapshot.edns_udp_size,
            transport,
        );
        return true;
    }
    let mut lower = [0u8; 255];
    let qname_len = q.qname.len();
    for (dst, src) in lower.iter_mut().zip(q.qname) {
        *dst = src.to_ascii_lowercase();
    }
    let lower = &lower[..qname_len];
    let zone = match (q.qclass, snapshot.zone_for(lower)) {
        (1, Some(zone)) => zone,
        _ => {
            w.finish(
                rcode::REFUSED,
                false,
                None,
                snapshot.edns_udp_size,
                transport,
            );
            return true;
        }
    };
    if zone.broken.is_some() {
        w.finish(
            rcode::SERVFAIL,
            false,
            None,
            snapshot.edns_udp_size,
            transport,
        );
        return true;
    }
    if matches!(q.qtype, 251 | 252) {
        // Zone transfers come with their own access control.
        w.finish(
            rcode::REFUSED,
            false,
            None,
            snapshot.edns_udp_size,
            transport,
        );
        return true;
    }
    let dnssec = q.edns.is_some_and(|e| e.dnssec_ok);
    let apex_pointer = Owner::Pointer(12 + (qname_len - zone.apex.len()) as u16);
    let code = answer(&mut w, zone, lower, q.qtype, dnssec, apex_pointer);
    w.finish(code, true, None, snapshot.edns_udp_size, transport);
    true
}

/// Fills the sections for a query inside `zone`; returns the RCODE.
fn answer(
    w: &mut Writer<'_>,
    zone: &ZoneAnswers,
    qname: &[u8],
    qtype: u16,
    dnssec: bool,
    apex: Owner<'_>,
) -> u16 {
    let Some(soa) = zone
        .node(&zone.apex)
        .and_then(|b| b.iter().find(|b| b.rtype == u16::from(RecordType::SOA)))
    else {
        return rcode::SERVFAIL;
    };
    match zone.names.get(qname) {
        Some(Entry::Node(blobs)) => {
            let wanted = match qtype {
                255 => blobs
                    .iter()
                    .find(|b| b.rtype != u16::from(RecordType::NSEC))
                    .or(blobs.first()),
                t => blobs.iter().find(|b| b.rtype == t),
            };
            if qtype == u16::from(RecordType::RRSIG) {
                for blob in blobs.iter() {
                    w.records(Section::Answer, Owner::Pointer(12), &blob.sigs);
                }
                if w.counts[0] > 0 {
                    return rcode::NOERROR;
                }
            }
            if let Some(blob) = wanted {
                w.rrset(Section::Answer, Owner::Pointer(12), blob, dnssec);
                return rcode::NOERROR;
            }
            // NODATA: SOA, and the name's own NSEC.
            w.rrset(Section::Authority, apex, soa, dnssec);
            if dnssec {
                if let Some(nsec) = blobs
                    .iter()
                    .find(|b| b.rtype == u16::from(RecordType::NSEC))
                {
                    w.rrset(Section::Authority, Owner::Pointer(12), nsec, true);
                }
            }
            rcode::NOERROR
        }
        Some(Entry::Ent) => {
            w.rrset(Section::Authority, apex, soa, dnssec);
            if dnssec {
                let mut key = [0u8; 512];
                if let Some(n) = canonical_key_of_wire(qname, &mut key) {
                    if let Some((owner, nsec)) = zone.predecessor(&key[..n]) {
                        w.rrset(Section::Authority, Owner::Wire(owner), nsec, true);
                    }
                }
            }
            rcode::NOERROR
        }
        None => {
            w.rrset(Section::Authority, apex, soa, dnssec);
            if dnssec {
                let mut key = [0u8; 512];
                let mut covering: Option<&[u8]> = None;
                if let Some(n) = canonical_key_of_wire(qname, &mut key) {
                    if let Some((owner, nsec)) = zone.predecessor(&key[..n]) {
                        w.rrset(Section::Authority, Owner::Wire(owner), nsec, true);
                        covering = Some(owner);
                    }
                }
                // The wildcard at the closest encloser does not exist either.
                let encloser = closest_encloser(zone, qname);
                if let Some(n) = canonical_key_of_wire(encloser, &mut key) {
                    if n + 2 <= key.len() {
                        key[n] = b'*';
                        key[n + 1] = 0;
                        if let Some((owner, nsec)) = zone.predecessor(&key[..n + 2]) {
                            if covering != Some(owner) {
                                w.rrset(Section::Authority, Owner::Wire(owner), nsec, true);
                            }
                        }
                    }
                }
            }
            rcode::NXDOMAIN
        }
    }
}

/// The longest existing ancestor of `qname` (the apex at worst).
fn closest_encloser<'a>(zone: &ZoneAnswers, qname: &'a [u8]) -> &'a [u8] {
    let mut at = 0;
    while qname.len() - at > zone.apex.len() {
        at += 1 + usize::from(qname[at]);
        if zone.names.contains_key(&qname[at..]) {
            return &qname[at..];
        }
    }
    &qname[qname.len() - zone.apex.len()..]
}

#[derive(Clone, Copy)]
enum Owner<'a> {
    /// A compression pointer into the question.
    Pointer(u16),
    /// A full, uncompressed name.
    Wire(&'a [u8]),
}

#[derive(Clone, Copy)]
enum Section {
    Answer = 0,
    Authority = 1,
}

struct Writer<'a> {
    out: &'a mut Vec<u8>,
    id: u16,
    flags: u16,
    question_end: usize,
    counts: [u16; 2],
    edns: Option<Edns>,
}

impl<'a> Writer<'a> {
    fn start(out: &'a mut Vec<u8>, q: &query::Query<'_>) -> Self {
        header(out, q.id, q.flags, 0, true);
        out.extend_from_slice(q.question);
        let question_end = out.len();
        Writer {
            out,
            id: q.id,
            flags: q.flags,
            question_end,
            counts: [0; 2],
            edns: q.edns,
        }
    }

    fn records(&mut self, section: Section, owner: Owner<'_>, blob: &[u8]) {
        let mut at = 0;
        while at + 10 <= blob.len() {
            let rdlen = usize::from(u16::from_be_bytes([blob[at + 8], blob[at + 9]]));
            match owner {
                Owner::Pointer(offset) => {
                    self.out.extend_from_slice(&(0xc000 | offset).to_be_bytes())
                }
                Owner::Wire(name) => self.out.extend_from_slice(name),
            }
            self.out.extend_from_slice(&blob[at..at + 10 + rdlen]);
            self.counts[section as usize] += 1;
            at += 10 + rdlen;
        }
    }

    fn rrset(&mut self, section: Section, owner: Owner<'_>, blob: &RrBlob, with_sigs: bool) {
        self.records(section, owner, &blob.records);
        if with_sigs {
            self.records(section, owner, &blob.sigs);
        }
    }

    /// Writes the header fields and OPT; truncates a UDP answer that does not fit.
    fn finish(
        self,
        rcode: u16,
        authoritative: bool,
        ext_rcode: Option<u8>,
        our_size: u16,
        transport: Transport,
    ) {
        let Writer {
            out,
            id,
            flags: qflags,
            question_end,
            counts,
            edns,
        } = self;
        let mut flag_bits = flags::QR | (qflags & (0x7800 | flags::RD | flags::CD)) | rcode;
        if authoritative {
            flag_bits |= flags::AA;
        }
        let mut counts = counts;
        let opt_len = if edns.is_some() { 11 } else { 0 };
        if transport == Transport::Udp {
            let limit = match edns {
                Some(e) => usize::from(e.udp_size.min(our_size)).max(UDP_PLAIN_LIMIT),
                None => UDP_PLAIN_LIMIT,
            };
            if out.len() + opt_len > limit {
                out.truncate(question_end);
                counts = [0, 0];
                flag_bits |= flags::TC;
            }
        }
        if let Some(e) = edns {
            out.extend_from_slice(&[0, 0, 41]);
            out.extend_from_slice(&our_size.to_be_bytes());
            out.push(ext_rcode.unwrap_or(0));
            out.push(0);
            out.extend_from_slice(&(if e.dnssec_ok { 0x8000u16 } else { 0 }).to_be_bytes());
            out.extend_from_slice(&[0, 0]);
        }
        out[0..2].copy_from_slice(&id.to_be_bytes());
        out[2..4].copy_from_slice(&flag_bits.to_be_bytes());
        out[6..8].copy_from_slice(&counts[0].to_be_bytes());
        out[8..10].copy_from_slice(&counts[1].to_be_bytes());
        out[10..12].copy_from_slice(&u16::from(edns.is_some()).to_be_bytes());
    }
}

/// A bare header (used for FORMERR before the question could be parsed).
fn header(out: &mut Vec<u8>, id: u16, qflags: u16, rcode: u16, has_question: bool) {
    let flag_bits = flags::QR | (qflags & (0x7800 | flags::RD | flags::CD)) | rcode;
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&flag_bits.to_be_bytes());
    out.extend_from_slice(&u16::from(has_question).to_be_bytes());
    out.extend_from_slice(&[0; 6]);
}

impl std::fmt::Display for ZoneAnswers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let apex = hickory_proto::rr::Name::from_labels(label_iter(&self.apex))
            .map(|n| display(&n))
            .unwrap_or_default();
        match &self.broken {
            Some(why) => write!(f, "{apex} (not served: {why})"),
            None => write!(f, "{apex} serial {} ({} names)", self.serial, self.len()),
        }
    }
}

fn label_iter(wire: &[u8]) -> Vec<&[u8]> {
    let mut labels = Vec::new();
    let mut at = 0;
    while let Some(&len) = wire.get(at) {
        if len == 0 {
            break;
        }
        let len = usize::from(len);
        if let Some(label) = wire.get(at + 1..at + 1 + len) {
            labels.push(label);
        }
        at += 1 + len;
    }
    labels
}

#[cfg(test)]
mod tests;
