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

use std::{net::IpAddr, sync::Arc};

use hickory_proto::rr::RecordType;

use super::{
    inbound::Verdict,
    query::{self, ParseError},
    report::AgentAnswer,
    snapshot::{ServedZone, Snapshot},
    xfr::{self, Transfer},
};
use crate::{
    dns::{
        name::canonical_key_of_wire,
        wire::{flags, rcode, unix_now},
    },
    log_limit::LogLimit,
    tsig,
    zone::{Node, ZoneStore},
};

/// Failed TSIG checks and refused transfers are logged at most five times
/// per ten seconds each: anyone can send them.
static TSIG_FAILED_LOG: LogLimit = LogLimit::new(5, 10);
static TRANSFER_REFUSED_LOG: LogLimit = LogLimit::new(5, 10);

/// Largest UDP answer without EDNS (RFC 1035 §4.2.1).
pub const UDP_PLAIN_LIMIT: usize = 512;

/// How the answer travels: UDP answers are truncated to the client's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP: up to 65535 octets.
    Tcp,
}

/// What to do with a packet.
pub enum Answer {
    /// Nothing: drop it.
    Drop,
    /// Send the message written to `out`.
    Message,
    /// A zone transfer: send its messages one by one (TCP only).
    Transfer(Box<Transfer>),
}

/// Answers `packet` from `peer` into `out`.
pub fn respond(
    snapshot: &Snapshot,
    packet: &[u8],
    transport: Transport,
    peer: IpAddr,
    out: &mut Vec<u8>,
) -> Answer {
    respond_echo(snapshot, packet, transport, peer, out).0
}

/// What response rate limiting needs of an answer besides its header,
/// known while answering so the UDP path never reads the query again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Echo {
    /// The query's QTYPE (0 when it could not be read).
    pub qtype: u16,
    /// Where the echoed question ends in the answer (header and question:
    /// what a TC=1 "slip" reply keeps).
    pub question_end: usize,
    /// The query carried a TSIG that verified: the answer goes to a key
    /// holder, not to a spoofable address, and is never rate limited.
    pub signed: bool,
}

/// [`respond`], and what the answer echoes of the query.
pub fn respond_echo(
    snapshot: &Snapshot,
    packet: &[u8],
    transport: Transport,
    peer: IpAddr,
    out: &mut Vec<u8>,
) -> (Answer, Echo) {
    out.clear();
    let q = match query::parse(packet) {
        Ok(q) => q,
        Err(ParseError::Drop) => {
            let echo = Echo {
                qtype: 0,
                question_end: 0,
                signed: false,
            };
            return (Answer::Drop, echo);
        }
        Err(ParseError::FormErr {
            id,
            flags,
            question,
        }) => {
            header(out, id, flags, rcode::FORMERR, question.is_some());
            if let Some(question) = question {
                out.extend_from_slice(question);
            }
            let echo = Echo {
                qtype: 0,
                question_end: out.len(),
                signed: false,
            };
            return (Answer::Message, echo);
        }
    };
    let mut echo = Echo {
        qtype: q.qtype,
        question_end: 12 + q.question.len(),
        signed: false,
    };
    // TSIG (RFC 8945): verify, answer NOTAUTH on failure, sign the answer.
    let mut signing: Option<(tsig::Key, Vec<u8>, u64)> = None;
    if q.tsig.is_some() {
        let now = unix_now();
        match tsig::find(packet) {
            Ok(Some(t)) => match tsig::verify_request(&snapshot.keyring, packet, &t, now) {
                Ok((key, mac)) => signing = Some((key.clone(), mac, now)),
                Err(e) => {
                    if let Some(suppressed) = TSIG_FAILED_LOG.allow() {
                        tracing::info!(%peer, key = %t.key_name, error = ?e, suppressed, "TSIG verification failed");
                    }
                    let mut w = Writer::start(out, &q);
                    w.edns = None;
                    w.finish(
                        rcode::NOTAUTH,
                        false,
                        None,
                        snapshot.edns_udp_size,
                        transport,
                    );
                    match (e, snapshot.keyring.get(&t.key_name)) {
                        // The MAC verified: the error answer is signed.
                        (tsig::VerifyError::BadTime, Some(key)) => {
                            tsig::sign_badtime(out, key, &t, now);
                        }
                        _ => tsig::append_error(out, &t, e.code(), now),
                    }
                    return (Answer::Message, echo);
                }
            },
            _ => {
                let mut w = Writer::start(out, &q);
                w.edns = None;
                w.finish(
                    rcode::FORMERR,
                    false,
                    None,
                    snapshot.edns_udp_size,
                    transport,
                );
                return (Answer::Message, echo);
            }
        }
    }
    let answer = respond_to(snapshot, &q, transport, peer, signing.as_ref(), out);
    if let (Answer::Message, Some((key, mac, now))) = (&answer, &signing) {
        tsig::sign(out, key, Some(mac), *now, 0);
    }
    echo.signed = signing.is_some();
    (answer, echo)
}

fn respond_to(
    snapshot: &Snapshot,
    q: &query::Query<'_>,
    transport: Transport,
    peer: IpAddr,
    signing: Option<&(tsig::Key, Vec<u8>, u64)>,
    out: &mut Vec<u8>,
) -> Answer {
    let mut w = Writer::start(out, q);
    // Leave room for the TSIG record a signed answer gets (BADTIME's six
    // octets of other data included).
    w.reserve = signing.map_or(0, |(key, _, _)| key.record_len() + 6);
    let size = snapshot.edns_udp_size;
    if let Some(edns) = q.edns {
        if edns.version > 0 {
            w.finish(
                rcode::NOERROR,
                false,
                Some(rcode::BADVERS_HIGH),
                size,
                transport,
            );
            return Answer::Message;
        }
    }
    if q.opcode == 4 {
        // NOTIFY from a followed zone's primary (RFC 1996 §4.7).
        let mut lower = [0u8; 255];
        for (dst, src) in lower.iter_mut().zip(q.qname) {
            *dst = src.to_ascii_lowercase();
        }
        let key = signing.map(|(k, _, _)| &k.name);
        let verdict = snapshot.inbox.as_ref().map_or(Verdict::Refused, |inbox| {
            inbox.accept(&lower[..q.qname.len()], peer, key)
        });
        let (code, accepted) = match verdict {
            Verdict::Accepted => (rcode::NOERROR, true),
            Verdict::Refused => (rcode::REFUSED, false),
            Verdict::Dropped => return Answer::Drop,
        };
        w.finish(code, accepted, None, size, transport);
        return Answer::Message;
    }
    if q.opcode != 0 {
        w.finish(rcode::NOTIMP, false, None, size, transport);
        return Answer::Message;
    }
    if q.qtype == u16::from(RecordType::OPT) {
        w.finish(rcode::FORMERR, false, None, size, transport);
        return Answer::Message;
    }
    let mut lower = [0u8; 255];
    let qname_len = q.qname.len();
    for (dst, src) in lower.iter_mut().zip(q.qname) {
        *dst = src.to_ascii_lowercase();
    }
    let lower = &lower[..qname_len];
    let zone = match (q.qclass, snapshot.zone_arc_for(lower)) {
        (1, Some(zone)) => zone,
        (1, None)
            if snapshot
                .report_agent
                .as_ref()
                .is_some_and(|a| a.covers(lower)) =>
        {
            // RFC 9567 §6.3: a report gets a positive answer.
            if let Some(agent) = &snapshot.report_agent {
                if let AgentAnswer::Report(txt) = agent.answer(lower, q.qtype, peer) {
                    w.records(Section::Answer, Owner::Pointer(12), txt);
                }
            }
            w.finish(rcode::NOERROR, true, None, size, transport);
            return Answer::Message;
        }
        _ => {
            w.finish(rcode::REFUSED, false, None, size, transport);
            return Answer::Message;
        }
    };
    if zone.broken.is_some() {
        w.finish(rcode::SERVFAIL, false, None, size, transport);
        return Answer::Message;
    }
    if matches!(q.qtype, 251 | 252) {
        return transfer(w, zone, q, lower, transport, peer, signing, size);
    }
    // RFC 9567 §6.1: a resolver that fails to validate what a served zone
    // answers can report it to the agent (never on the agent's own answers).
    if let Some(agent) = &snapshot.report_agent {
        w.options = agent.channel_option();
    }
    let dnssec = q.edns.is_some_and(|e| e.dnssec_ok);
    let store = &zone.store;
    let apex_pointer = Owner::Pointer(12 + (qname_len - store.apex_wire().len()) as u16);
    let code = answer(
        &mut w,
        store,
        zone.apex.as_ref(),
        lower,
        q.qtype,
        dnssec,
        apex_pointer,
    );
    w.finish(code, true, None, size, transport);
    Answer::Message
}

/// AXFR/IXFR: access control, then the transfer (TCP) or, for IXFR over UDP,
/// the current SOA alone (RFC 1995 §2: the client then asks over TCP).
#[allow(clippy::too_many_arguments)]
fn transfer(
    mut w: Writer<'_>,
    zone: &Arc<ServedZone>,
    q: &query::Query<'_>,
    lower: &[u8],
    transport: Transport,
    peer: IpAddr,
    signing: Option<&(tsig::Key, Vec<u8>, u64)>,
    size: u16,
) -> Answer {
    let key_name = signing.map(|(k, _, _)| &k.name);
    let allowed =
        lower == zone.store.apex_wire() && zone.acl.iter().any(|e| e.matches(peer, key_name));
    if !allowed {
        if let Some(suppressed) = TRANSFER_REFUSED_LOG.allow() {
            tracing::info!(%peer, key = ?key_name.map(display), zone = %display(zone.store.apex()), suppressed, "transfer refused");
        }
        w.finish(rcode::REFUSED, false, None, size, transport);
        return Answer::Message;
    }
    if transport == Transport::Udp {
        if q.qtype == 252 {
            w.finish(rcode::NOTIMP, false, None, size, transport);
        } else if let Some(soa) = zone
            .store
            .apex_node()
            .and_then(|n| n.rrset(RecordType::SOA))
        {
            w.rrset(Section::Answer, Owner::Pointer(12), soa, false);
            w.finish(rcode::NOERROR, true, None, size, transport);
        } else {
            w.finish(rcode::SERVFAIL, false, None, size, transport);
        }
        return Answer::Message;
    }
    let _ = w;
    let signer = signing.map(|(key, mac, now)| xfr::Signing::new(key.clone(), mac.clone(), *now));
    let current = zone.store.serial();
    let transfer = match (q.qtype, q.ixfr_serial) {
        (251, Some(theirs))
            if theirs == current || crate::zone::serial::is_newer(theirs, current) =>
        {
            Transfer::ixfr(zone.clone(), Vec::new(), q, signer)
        }
        (251, Some(theirs)) => match zone.journal.since(theirs) {
            Some(diffs) if diffs.last().is_some_and(|d| d.to == current) => {
                Transfer::ixfr(zone.clone(), diffs, q, signer)
            }
            _ => {
                tracing::info!(
                    %peer,
                    zone = %display(zone.store.apex()),
                    from = theirs,
                    "IXFR: serial not in the journal, sending the whole zone"
                );
                Transfer::axfr(zone.clone(), q, signer)
            }
        },
        _ => Transfer::axfr(zone.clone(), q, signer),
    };
    tracing::info!(
        %peer,
        zone = %display(zone.store.apex()),
        kind = if q.qtype == 251 { "IXFR" } else { "AXFR" },
        from = q.ixfr_serial,
        to = current,
        "transfer"
    );
    Answer::Transfer(Box::new(transfer))
}

/// Fills the sections for a query inside `zone`; returns the RCODE.
fn answer(
    w: &mut Writer<'_>,
    zone: &ZoneStore,
    apex_node: Option<&Node>,
    qname: &[u8],
    qtype: u16,
    dnssec: bool,
    apex: Owner<'_>,
) -> u16 {
    let Some(soa) = apex_node.and_then(|n| n.rrset(RecordType::SOA)) else {
        return rcode::SERVFAIL;
    };
    let negative_ttl = zone.negative_ttl();
    let nsec_type = u16::from(RecordType::NSEC);
    if let Some(node) = zone.node(qname) {
        let wanted = match qtype {
            255 => node
                .rrsets()
                .find(|b| b.rtype != nsec_type)
                .or(node.rrsets().next()),
            t => node.rrsets().find(|b| b.rtype == t),
        };
        if qtype == u16::from(RecordType::RRSIG) {
            for rrset in node.rrsets() {
                w.sigs(Section::Answer, Owner::Pointer(12), rrset.sigs, None);
            }
            if w.counts[0] > 0 {
                return rcode::NOERROR;
            }
        }
        if let Some(rrset) = wanted {
            w.rrset(Section::Answer, Owner::Pointer(12), rrset, dnssec);
            return rcode::NOERROR;
        }
        // NODATA: SOA, and the name's own NSEC.
        w.negative_soa(apex, soa, negative_ttl, dnssec);
        if dnssec {
            if let Some(nsec) = node.rrsets().find(|b| b.rtype == nsec_type) {
                w.rrset(Section::Authority, Owner::Pointer(12), nsec, true);
            }
        }
        return rcode::NOERROR;
    }
    // No data here: an empty non-terminal (NODATA) if a data name lies
    // below, else NXDOMAIN. The data names around it in canonical order
    // tell both, and their NSECs are the ones to show (RFC 4035 §3.1.3).
    let mut key = [0u8; 512];
    let key = canonical_key_of_wire(qname, &mut key).map(|n| &key[..n]);
    let neighbours = key.map(|key| zone.neighbours(key)).unwrap_or_default();
    w.negative_soa(apex, soa, negative_ttl, dnssec);
    let covering = match neighbours.before {
        Some(node) if dnssec => nsec_of(w, node, None),
        _ => None,
    };
    let Some(key) = key else {
        return rcode::NXDOMAIN;
    };
    if neighbours.show_an_empty_non_terminal(key) {
        return rcode::NOERROR;
    }
    if dnssec {
        // The wildcard at the closest encloser does not exist either: the
        // encloser is the deepest ancestor shared with a neighbour.
        let encloser = neighbours.closest_encloser_len(key);
        let mut wildcard = [0u8; 514];
        wildcard[..encloser].copy_from_slice(&key[..encloser]);
        wildcard[encloser] = b'*';
        wildcard[encloser + 1] = 0;
        if let Some(node) = zone.predecessor(&wildcard[..encloser + 2]) {
            nsec_of(w, node, covering);
        }
    }
    rcode::NXDOMAIN
}

/// Writes `node`'s NSEC (and RRSIG), unless its owner is `skip`; returns
/// the owner written.
fn nsec_of<'z>(w: &mut Writer<'_>, node: &'z Node, skip: Option<&[u8]>) -> Option<&'z [u8]> {
    if skip == Some(node.wire()) {
        return None;
    }
    let nsec = node.rrset(RecordType::NSEC)?;
    let owner = w.compressed(node.wire());
    w.rrset(Section::Authority, owner, nsec, true);
    Some(node.wire())
}

mod writer;

use writer::{Owner, Section, Writer, header};

#[cfg(test)]
mod tests;
