//! Writing an answer into the output buffer: the header, owner names
//! compressed against the question (RFC 1035 §4.1.4; octet-exact, so a
//! mixed-case query gets the zone's case back, RFC 4343 §4.1) and the
//! precomputed RRset blobs behind them, with the section counts and
//! truncation (TC, RFC 2181 §9) kept as records are added. This is the hot
//! path of every answer: it copies, it does not allocate.

use super::{
    Transport, UDP_PLAIN_LIMIT, flags,
    query::{self, Edns},
};
use crate::{
    dns::wire,
    zone::{RrsetRef, Sigs, blob::records},
};

/// `name` written as its labels up to the longest suffix it shares, octet for
/// octet, with the question name `qname` (as received, at offset 12), then
/// a pointer into the question (RFC 1035 §4.1.4). Only
/// owner names are compressed this way; NSEC and RRSIG RDATA never are
/// (RFC 4034 §4.1.1, §3.1.7).
pub(super) fn owner_in_question<'a>(name: &'a [u8], qname: &[u8]) -> Owner<'a> {
    const MAX_LABELS: usize = 128;
    let (mut ns, mut qs) = ([0usize; MAX_LABELS], [0usize; MAX_LABELS]);
    let (Some(n), Some(q)) = (label_starts(name, &mut ns), label_starts(qname, &mut qs)) else {
        return Owner::Wire(name);
    };
    // Walk both names from the root label up while the labels agree.
    let mut shared = 0;
    while shared < n && shared < q {
        let (a, b) = (ns[n - 1 - shared], qs[q - 1 - shared]);
        let la = usize::from(name[a]);
        // Exact, not case-insensitive: a pointer into a mixed-case question
        // would hand the querier's case back instead of ours (RFC 4343 §4.1).
        if name[a..=a + la] != qname[b..=b + usize::from(qname[b])] {
            break;
        }
        shared += 1;
    }
    if shared == 0 {
        return Owner::Wire(name);
    }
    let pointer = 12 + qs[q - shared] as u16;
    match ns[n - shared] {
        0 => Owner::Pointer(pointer),
        cut => Owner::Suffixed(&name[..cut], pointer),
    }
}

/// SOA RDATA split into MNAME, RNAME (uncompressed wire names) and the five
/// 32-bit fields; None when it is not that shape.
pub(super) fn soa_names(rdata: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    let mname_end = query::name_length(rdata, 0)?;
    let rname_end = mname_end + query::name_length(rdata, mname_end)?;
    let rest = rdata.get(rname_end..)?;
    (rest.len() == 20).then(|| (&rdata[..mname_end], &rdata[mname_end..rname_end], rest))
}

/// Start offsets of the non-root labels of wire name `name`; their count, or
/// None when the name is malformed or has too many labels.
pub(super) fn label_starts(name: &[u8], starts: &mut [usize]) -> Option<usize> {
    let mut at = 0;
    let mut count = 0;
    loop {
        let len = usize::from(*name.get(at)?);
        if len == 0 {
            return Some(count);
        }
        if len > 63 || at + 1 + len >= name.len() {
            return None;
        }
        *starts.get_mut(count)? = at;
        count += 1;
        at += 1 + len;
    }
}

#[derive(Clone, Copy)]
pub(super) enum Owner<'a> {
    /// A compression pointer into the question.
    Pointer(u16),
    /// A full, uncompressed name.
    Wire(&'a [u8]),
    /// These labels (no root), then a compression pointer to the rest.
    Suffixed(&'a [u8], u16),
}

#[derive(Clone, Copy)]
pub(super) enum Section {
    Answer = 0,
    Authority = 1,
}

/// An answer being written into `out`.
pub(super) struct Writer<'a> {
    out: &'a mut Vec<u8>,
    id: u16,
    flags: u16,
    question_end: usize,
    /// Records in the answer and authority sections.
    pub(super) counts: [u16; 2],
    /// The query's EDNS, echoed in the OPT record (`None`: no OPT).
    pub(super) edns: Option<Edns>,
    /// Octets to keep free under the UDP limit (for a TSIG record).
    pub(super) reserve: usize,
    /// EDNS options for the OPT record's RDATA (the Report-Channel option,
    /// RFC 9567 §6.1), when there is an OPT record.
    pub(super) options: &'a [u8],
}

impl<'a> Writer<'a> {
    pub(super) fn start(out: &'a mut Vec<u8>, q: &query::Query<'_>) -> Self {
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
            reserve: 0,
            options: &[],
        }
    }

    pub(super) fn records<'o>(
        &mut self,
        section: Section,
        owner: Owner<'o>,
        blob: &[u8],
    ) -> Owner<'o> {
        self.records_ttl(section, owner, blob, None)
    }

    /// Like `records`, with every record's TTL replaced by `ttl` when given.
    /// Returns how to write the same owner again (a pointer once written).
    pub(super) fn records_ttl<'o>(
        &mut self,
        section: Section,
        owner: Owner<'o>,
        blob: &[u8],
        ttl: Option<u32>,
    ) -> Owner<'o> {
        let mut owner = owner;
        for record in records(blob) {
            // The next records of this RRset point at the owner just written.
            owner = self.record(section, owner, record, ttl, |w| {
                w.out.extend_from_slice(&record[10..])
            });
        }
        owner
    }

    /// Writes RRSIGs behind `owner` (with their TTL replaced by `ttl` when
    /// given). Returns how to write the same owner again.
    pub(super) fn sigs<'o>(
        &mut self,
        section: Section,
        owner: Owner<'o>,
        sigs: Sigs<'_>,
        ttl: Option<u32>,
    ) -> Owner<'o> {
        let mut owner = owner;
        for sig in sigs.iter() {
            owner = self.record(section, owner, sig.head(), ttl, |w| sig.put_rdata(w.out));
        }
        owner
    }

    /// Writes one record: `owner`, TYPE and CLASS from `record` (a blob
    /// record), `ttl` or the record's own, and the RDATA `rdata` writes
    /// (RDLENGTH set from what it wrote). Returns how to write the owner again.
    pub(super) fn record<'o>(
        &mut self,
        section: Section,
        owner: Owner<'o>,
        record: &[u8],
        ttl: Option<u32>,
        rdata: impl FnOnce(&mut Self),
    ) -> Owner<'o> {
        let owner = self.name(owner);
        self.out.extend_from_slice(&record[..4]);
        match ttl {
            Some(ttl) => wire::put_u32(self.out, ttl),
            None => self.out.extend_from_slice(&record[4..8]),
        }
        let rdlen_at = self.out.len();
        self.out.extend_from_slice(&[0, 0]);
        rdata(self);
        let written = (self.out.len() - rdlen_at - 2) as u16;
        wire::set_u16(self.out, rdlen_at, written);
        self.counts[section as usize] += 1;
        owner
    }

    /// `name` compressed against the question as the client sent it.
    pub(super) fn compressed<'n>(&self, name: &'n [u8]) -> Owner<'n> {
        let end = self.question_end.saturating_sub(4).max(12);
        owner_in_question(name, self.out.get(12..end).unwrap_or_default())
    }

    /// Writes a name; returns how to refer to it from now on (a pointer to
    /// where it was just written, when it was not one already).
    pub(super) fn name<'o>(&mut self, name: Owner<'o>) -> Owner<'o> {
        let at = self.out.len();
        match name {
            Owner::Pointer(offset) => {
                wire::put_u16(self.out, 0xc000 | offset);
                return name;
            }
            Owner::Wire(wire) => self.out.extend_from_slice(wire),
            Owner::Suffixed(labels, offset) => {
                self.out.extend_from_slice(labels);
                wire::put_u16(self.out, 0xc000 | offset);
            }
        }
        match u16::try_from(at) {
            Ok(at) if at < 0x4000 => Owner::Pointer(at),
            _ => name,
        }
    }

    pub(super) fn rrset(
        &mut self,
        section: Section,
        owner: Owner<'_>,
        blob: RrsetRef<'_>,
        with_sigs: bool,
    ) {
        let owner = self.records(section, owner, blob.records);
        if with_sigs {
            self.sigs(section, owner, blob.sigs, None);
        }
    }

    /// The apex SOA (and its RRSIGs) in a negative answer, with the TTL set to
    /// min(SOA TTL, SOA MINIMUM): RFC 2308 §3 and §5, as Knot and NSD do.
    /// MNAME and RNAME are compressed against the question, as RFC 1035 allows
    /// for SOA: this is what keeps negative answers as small as Knot's.
    pub(super) fn negative_soa(
        &mut self,
        apex: Owner<'_>,
        soa: RrsetRef<'_>,
        ttl: u32,
        with_sigs: bool,
    ) {
        let mut owner = apex;
        for record in records(soa.records) {
            let rdata = &record[10..];
            owner = self.record(
                Section::Authority,
                owner,
                record,
                Some(ttl),
                |w| match soa_names(rdata) {
                    Some((mname, rname, rest)) => {
                        let mname = w.compressed(mname);
                        w.name(mname);
                        let rname = w.compressed(rname);
                        w.name(rname);
                        w.out.extend_from_slice(rest);
                    }
                    None => w.out.extend_from_slice(rdata),
                },
            );
        }
        if with_sigs {
            self.sigs(Section::Authority, owner, soa.sigs, Some(ttl));
        }
    }

    /// Writes the header fields and OPT; truncates a UDP answer that does not fit.
    pub(super) fn finish(
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
            reserve,
            options,
        } = self;
        let mut flag_bits = flags::QR | (qflags & (0x7800 | flags::RD | flags::CD)) | rcode;
        if authoritative {
            flag_bits |= flags::AA;
        }
        let mut counts = counts;
        let opt_len = if edns.is_some() {
            11 + options.len()
        } else {
            0
        };
        if transport == Transport::Udp {
            let limit = match edns {
                Some(e) => usize::from(e.udp_size.min(our_size)).max(UDP_PLAIN_LIMIT),
                None => UDP_PLAIN_LIMIT,
            };
            if out.len() + opt_len + reserve > limit {
                out.truncate(question_end);
                counts = [0, 0];
                flag_bits |= flags::TC;
            }
        }
        if let Some(e) = edns {
            out.extend_from_slice(&[0, 0, 41]);
            wire::put_u16(out, our_size);
            out.push(ext_rcode.unwrap_or(0));
            out.push(0);
            wire::put_u16(out, if e.dnssec_ok { 0x8000u16 } else { 0 });
            wire::put_u16(out, options.len() as u16);
            out.extend_from_slice(options);
        }
        wire::set_u16(out, 0, id);
        wire::set_u16(out, 2, flag_bits);
        wire::set_u16(out, 6, counts[0]);
        wire::set_u16(out, 8, counts[1]);
        wire::set_u16(out, 10, u16::from(edns.is_some()));
    }
}

/// A bare header (used for FORMERR before the question could be parsed).
pub(super) fn header(out: &mut Vec<u8>, id: u16, qflags: u16, rcode: u16, has_question: bool) {
    let flag_bits = flags::QR | (qflags & (0x7800 | flags::RD | flags::CD)) | rcode;
    wire::put_u16(out, id);
    wire::put_u16(out, flag_bits);
    wire::put_u16(out, u16::from(has_question));
    out.extend_from_slice(&[0; 6]);
}
