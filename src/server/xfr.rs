//! Zone transfers out: AXFR (RFC 5936) and IXFR (RFC 1995), over TCP in as
//! many messages as needed, owner names compressed, each message TSIG-signed
//! when the request was (RFC 8945 §5.3.1).
//!
//! AXFR: SOA, every RRset of every name with its RRSIGs, SOA. IXFR from a
//! serial in the journal: SOA(new), then per version SOA(old), removed
//! records, SOA(new), added records, and SOA(new) to close; from a serial
//! the journal does not reach: the whole zone (AXFR form); from the current
//! serial (or a newer one): the SOA alone.

use std::{collections::HashMap, sync::Arc};

use hickory_proto::rr::RecordType;

use super::{query::Query, snapshot::ServedZone};
use crate::{
    dns::wire,
    dns::wire::flags,
    tsig,
    zone::{
        RrsetRef, Sigs,
        blob::{Bytes, records},
        journal::Diff,
    },
};

/// Target size of one transfer message (well under 64 KiB).
const MESSAGE_TARGET: usize = 16_000;

/// Builds one DNS message with owner-name compression.
struct MessageBuilder {
    out: Vec<u8>,
    names: HashMap<Vec<u8>, u16>,
    count: u16,
}

impl MessageBuilder {
    /// A response header for `query` and its question.
    fn new(query: &Query<'_>, id: u16) -> Self {
        let mut out = Vec::with_capacity(MESSAGE_TARGET + 1024);
        let flags = flags::QR | flags::AA | (query.flags & 0x7800);
        wire::put_u16(&mut out, id);
        wire::put_u16(&mut out, flags);
        out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
        out.extend_from_slice(query.question);
        MessageBuilder {
            out,
            names: HashMap::new(),
            count: 0,
        }
    }

    /// Writes a (lower-case, uncompressed) wire name, compressing suffixes
    /// already written.
    fn name(&mut self, wire: &[u8]) {
        let mut at = 0;
        while wire[at] != 0 {
            if let Some(&offset) = self.names.get(&wire[at..]) {
                wire::put_u16(&mut self.out, 0xc000 | offset);
                return;
            }
            if self.out.len() < 0x3fff {
                self.names
                    .insert(wire[at..].to_vec(), self.out.len() as u16);
            }
            let len = usize::from(wire[at]);
            self.out.extend_from_slice(&wire[at..at + 1 + len]);
            at += 1 + len;
        }
        self.out.push(0);
    }

    fn record(&mut self, owner: &[u8], record: &[u8]) {
        self.name(owner);
        self.out.extend_from_slice(record);
        self.count += 1;
    }

    fn blob(&mut self, owner: &[u8], blob: &[u8]) {
        for record in records(blob) {
            self.record(owner, record);
        }
    }

    fn sigs(&mut self, owner: &[u8], sigs: Sigs<'_>) {
        for sig in sigs.iter() {
            self.name(owner);
            sig.put_body(&mut self.out);
            self.count += 1;
        }
    }

    fn rrset(&mut self, owner: &[u8], rrset: RrsetRef<'_>) {
        self.blob(owner, rrset.records);
        self.sigs(owner, rrset.sigs);
    }

    fn full(&self) -> bool {
        self.out.len() >= MESSAGE_TARGET
    }

    fn finish(mut self) -> Vec<u8> {
        let count = self.count;
        wire::set_u16(&mut self.out, 6, count);
        self.out
    }
}

/// How a transfer is signed.
pub struct Signing {
    /// The key.
    pub key: tsig::Key,
    /// The request's MAC (for the first message), then the previous MAC.
    pub mac: Vec<u8>,
    /// The time used for every message.
    pub now: u64,
    first: bool,
}

impl Signing {
    /// Signing with `key` for a request whose MAC was `request_mac`.
    pub fn new(key: tsig::Key, request_mac: Vec<u8>, now: u64) -> Self {
        Signing {
            key,
            mac: request_mac,
            now,
            first: true,
        }
    }

    fn sign(&mut self, message: &mut Vec<u8>) {
        self.mac = if self.first {
            tsig::sign(message, &self.key, Some(&self.mac), self.now, 0)
        } else {
            tsig::sign_continuation(message, &self.key, &self.mac, self.now)
        };
        self.first = false;
    }
}

/// What a transfer still has to send.
enum Phase {
    /// The opening SOA.
    Start,
    /// Names after this canonical key (AXFR form).
    Names(Option<Bytes>),
    /// Journal diffs: (diff index, record index within removed+added).
    Diffs(usize, usize),
    /// The closing SOA.
    End,
    Done,
}

/// A transfer, produced one message at a time (a large zone is never built
/// in memory as a whole).
pub struct Transfer {
    zone: Arc<ServedZone>,
    diffs: Option<Vec<Arc<Diff>>>,
    phase: Phase,
    question: Vec<u8>,
    query_flags: u16,
    id: u16,
    signing: Option<Signing>,
    soa: Option<Box<[u8]>>,
    /// Records sent so far.
    pub records: usize,
    /// Messages sent so far.
    pub messages: usize,
}

impl Transfer {
    /// A full transfer (AXFR, or IXFR falling back to it).
    pub fn axfr(zone: Arc<ServedZone>, query: &Query<'_>, signing: Option<Signing>) -> Self {
        Transfer::new(zone, None, query, signing)
    }

    /// True for an incremental transfer (IXFR answered with diffs).
    pub fn is_incremental(&self) -> bool {
        self.diffs.is_some()
    }

    /// An incremental transfer with these diffs (empty: the SOA alone).
    pub fn ixfr(
        zone: Arc<ServedZone>,
        diffs: Vec<Arc<Diff>>,
        query: &Query<'_>,
        signing: Option<Signing>,
    ) -> Self {
        Transfer::new(zone, Some(diffs), query, signing)
    }

    fn new(
        zone: Arc<ServedZone>,
        diffs: Option<Vec<Arc<Diff>>>,
        query: &Query<'_>,
        signing: Option<Signing>,
    ) -> Self {
        let soa = zone
            .store()
            .apex_node()
            .and_then(|n| n.rrset(RecordType::SOA))
            .and_then(|r| records(r.records).next().map(Box::from));
        Transfer {
            zone,
            diffs,
            phase: Phase::Start,
            question: query.question.to_vec(),
            query_flags: query.flags,
            id: query.id,
            signing,
            soa,
            records: 0,
            messages: 0,
        }
    }

    /// The next message, or `None` when the transfer is complete.
    pub fn next_message(&mut self) -> Option<Vec<u8>> {
        if matches!(self.phase, Phase::Done) {
            return None;
        }
        let query = Query {
            id: self.id,
            flags: self.query_flags,
            opcode: 0,
            question: &self.question,
            qname: &[],
            qtype: 0,
            qclass: 1,
            edns: None,
            tsig: None,
            ixfr_serial: None,
        };
        let mut message = MessageBuilder::new(&query, self.id);
        let apex: Bytes = self.zone.store().apex_wire().into();
        let soa = self.soa.clone()?;
        loop {
            match &mut self.phase {
                Phase::Start => {
                    message.record(&apex, &soa);
                    let only_soa = self.diffs.as_ref().is_some_and(Vec::is_empty);
                    self.phase = match &self.diffs {
                        _ if only_soa => Phase::Done,
                        Some(_) => Phase::Diffs(0, 0),
                        None => Phase::Names(None),
                    };
                    if only_soa {
                        break;
                    }
                }
                Phase::Names(after) => {
                    let store = self.zone.store();
                    let Some((key, node)) = store.next_after(after.as_deref()) else {
                        self.phase = Phase::End;
                        continue;
                    };
                    for rrset in node.rrsets() {
                        if rrset.rtype == u16::from(RecordType::SOA) {
                            message.sigs(node.wire(), rrset.sigs);
                        } else {
                            message.rrset(node.wire(), rrset);
                        }
                    }
                    *after = Some(key);
                    if message.full() {
                        break;
                    }
                }
                Phase::Diffs(index, record) => {
                    let diffs = self.diffs.as_ref()?;
                    let Some(diff) = diffs.get(*index) else {
                        self.phase = Phase::End;
                        continue;
                    };
                    let removed = diff.removed.len();
                    let total = removed + diff.added.len();
                    if *record == 0 {
                        message.record(&apex, &diff.old_soa);
                    }
                    while *record < total {
                        if *record == removed {
                            message.record(&apex, &diff.new_soa);
                        }
                        let rr = if *record < removed {
                            &diff.removed[*record]
                        } else {
                            &diff.added[*record - removed]
                        };
                        message.record(&rr.owner, &rr.record);
                        *record += 1;
                        if message.full() {
                            break;
                        }
                    }
                    if *record >= total {
                        if removed == total {
                            message.record(&apex, &diff.new_soa);
                        }
                        *index += 1;
                        *record = 0;
                    }
                    if message.full() {
                        break;
                    }
                }
                Phase::End => {
                    message.record(&apex, &soa);
                    self.phase = Phase::Done;
                    break;
                }
                Phase::Done => break,
            }
        }
        self.records += usize::from(message.count);
        self.messages += 1;
        let mut out = message.finish();
        if let Some(signing) = &mut self.signing {
            signing.sign(&mut out);
        }
        Some(out)
    }
}
