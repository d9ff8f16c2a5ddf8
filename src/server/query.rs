//! Parsing a DNS query, allocation-free (RFC 1035 §4.1, RFC 6891 §6).
//!
//! Only what an authoritative answer needs is extracted: header, the one
//! question (kept as the raw bytes so its case is echoed back), and the EDNS
//! OPT record. Anything malformed is either dropped (too short to answer, or
//! a response) or answered FORMERR.

use crate::dns::wire::{flags, opcode};

/// The EDNS(0) OPT record of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edns {
    /// Requestor's UDP payload size.
    pub udp_size: u16,
    /// EDNS version.
    pub version: u8,
    /// The DO bit (RFC 3225).
    pub dnssec_ok: bool,
}

/// A parsed query; slices borrow the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query<'a> {
    /// Message ID.
    pub id: u16,
    /// Header flags as received.
    pub flags: u16,
    /// Opcode.
    pub opcode: u8,
    /// The question section exactly as received: QNAME, QTYPE, QCLASS.
    pub question: &'a [u8],
    /// QNAME in wire form (as received, any case).
    pub qname: &'a [u8],
    /// QTYPE.
    pub qtype: u16,
    /// QCLASS.
    pub qclass: u16,
    /// The OPT record, if any.
    pub edns: Option<Edns>,
    /// Offset of a TSIG record (the last one of the message), if any.
    pub tsig: Option<usize>,
    /// For IXFR: the serial of the client's SOA.
    pub ixfr_serial: Option<u32>,
}

/// Why a packet is not a query we can answer normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError<'a> {
    /// Not worth an answer: shorter than a header, or a response.
    Drop,
    /// Answer FORMERR; the question is echoed when it could be read.
    FormErr {
        /// Message ID.
        id: u16,
        /// Header flags as received.
        flags: u16,
        /// The question, when readable.
        question: Option<&'a [u8]>,
    },
}

/// Parses a query packet.
pub fn parse(packet: &[u8]) -> Result<Query<'_>, ParseError<'_>> {
    if packet.len() < 12 {
        return Err(ParseError::Drop);
    }
    let word = |at: usize| u16::from_be_bytes([packet[at], packet[at + 1]]);
    let (id, flag_bits) = (word(0), word(2));
    if flag_bits & flags::QR != 0 {
        return Err(ParseError::Drop);
    }
    let (qdcount, ancount, nscount, arcount) = (word(4), word(6), word(8), word(10));
    let formerr = |question| ParseError::FormErr {
        id,
        flags: flag_bits,
        question,
    };
    if qdcount != 1 {
        return Err(formerr(None));
    }
    let name_len = name_length(packet, 12).ok_or(formerr(None))?;
    let qname_end = 12 + name_len;
    let question_end = qname_end + 4;
    if packet.len() < question_end {
        return Err(formerr(None));
    }
    let question = &packet[12..question_end];
    let qtype = u16::from_be_bytes([packet[qname_end], packet[qname_end + 1]]);
    // Only IXFR carries a record besides the question: the client's SOA
    // in the authority section (RFC 1995 §3); and a NOTIFY may carry the
    // new SOA in its answer section (RFC 1996 §3.7; Knot sends it), which
    // is skipped: it is only a hint.
    let notify = opcode::of(flag_bits) == opcode::NOTIFY;
    if (ancount != 0 && !(notify && ancount == 1))
        || (nscount != 0 && (qtype != 251 || nscount != 1))
    {
        return Err(formerr(Some(question)));
    }
    let mut at = question_end;
    if ancount == 1 {
        let (_, next) = record_at(packet, at).ok_or(formerr(Some(question)))?;
        at = next;
    }
    let mut ixfr_serial = None;
    if nscount == 1 {
        let (record, next) = record_at(packet, at).ok_or(formerr(Some(question)))?;
        let rdata = &packet[next - record.rdlen..next];
        // SOA RDATA: two names, then the serial.
        let serial_at = soa_serial_offset(rdata).ok_or(formerr(Some(question)))?;
        if record.rtype != 6 {
            return Err(formerr(Some(question)));
        }
        ixfr_serial = Some(u32::from_be_bytes([
            rdata[serial_at],
            rdata[serial_at + 1],
            rdata[serial_at + 2],
            rdata[serial_at + 3],
        ]));
        at = next;
    }
    let mut edns = None;
    let mut tsig = None;
    for i in 0..arcount {
        let (record, next) = record_at(packet, at).ok_or(formerr(Some(question)))?;
        if record.rtype == 250 {
            if i + 1 != arcount {
                // TSIG must be the last record (RFC 8945 §5.1).
                return Err(formerr(Some(question)));
            }
            tsig = Some(at);
        }
        if record.rtype == 41 {
            if edns.is_some() || record.owner_len != 1 {
                // Two OPT records, or OPT not at the root (RFC 6891 §6.1.1).
                return Err(formerr(Some(question)));
            }
            edns = Some(Edns {
                udp_size: record.class,
                version: (record.ttl >> 16) as u8,
                dnssec_ok: record.ttl & 0x8000 != 0,
            });
        }
        at = next;
    }
    Ok(Query {
        id,
        flags: flag_bits,
        opcode: opcode::of(flag_bits),
        question,
        qname: &packet[12..qname_end],
        qtype,
        qclass: u16::from_be_bytes([packet[qname_end + 2], packet[qname_end + 3]]),
        edns,
        tsig,
        ixfr_serial,
    })
}

/// Length of an uncompressed wire name at `at`, root octet included;
/// `None` if it is malformed, compressed, or longer than 255 octets.
pub fn name_length(packet: &[u8], at: usize) -> Option<usize> {
    let mut pos = at;
    loop {
        let len = usize::from(*packet.get(pos)?);
        if len == 0 {
            let total = pos + 1 - at;
            return (total <= 255).then_some(total);
        }
        if len > 63 {
            return None;
        }
        pos += 1 + len;
        if pos - at > 255 {
            return None;
        }
    }
}

struct RecordHead {
    owner_len: usize,
    rtype: u16,
    class: u16,
    ttl: u32,
    rdlen: usize,
}

/// Offset of the serial in SOA RDATA (after two uncompressed or
/// compressed names), if the RDATA is long enough.
fn soa_serial_offset(rdata: &[u8]) -> Option<usize> {
    let mut at = 0;
    for _ in 0..2 {
        loop {
            let len = *rdata.get(at)?;
            if len == 0 {
                at += 1;
                break;
            }
            if len & 0xc0 == 0xc0 {
                at += 2;
                break;
            }
            at += 1 + usize::from(len);
        }
    }
    (rdata.len() >= at + 20).then_some(at)
}

/// A resource record at `at` (owner may be compressed); returns it and the
/// offset after it.
fn record_at(packet: &[u8], at: usize) -> Option<(RecordHead, usize)> {
    // Owner: labels, ending in a root octet or a compression pointer.
    let mut pos = at;
    loop {
        let len = *packet.get(pos)?;
        if len == 0 {
            pos += 1;
            break;
        }
        if len & 0xc0 == 0xc0 {
            packet.get(pos + 1)?;
            pos += 2;
            break;
        }
        if len > 63 {
            return None;
        }
        pos += 1 + usize::from(len);
    }
    let owner_len = pos - at;
    let fixed = packet.get(pos..pos + 10)?;
    let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
    let end = pos + 10 + rdlen;
    if end > packet.len() {
        return None;
    }
    Some((
        RecordHead {
            owner_len,
            rtype: u16::from_be_bytes([fixed[0], fixed[1]]),
            class: u16::from_be_bytes([fixed[2], fixed[3]]),
            ttl: u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
            rdlen,
        },
        end,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `dig +dnssec example.com CDS` style query.
    fn query(edns: bool, dnssec: bool) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x20, 0, 1, 0, 0, 0, 0, 0, u8::from(edns)];
        q.extend_from_slice(b"\x07Example\x03com\x00\x00\x3b\x00\x01");
        if edns {
            q.extend_from_slice(&[
                0,
                0,
                41,
                0x04,
                0xd0,
                0,
                0,
                if dnssec { 0x80 } else { 0 },
                0,
                0,
                0,
            ]);
        }
        q
    }

    #[test]
    fn parses_question_and_edns() {
        let packet = query(true, true);
        let q = parse(&packet).expect("valid");
        assert_eq!(q.id, 0x1234);
        assert_eq!(q.qname, b"\x07Example\x03com\x00");
        assert_eq!((q.qtype, q.qclass, q.opcode), (59, 1, 0));
        assert_eq!(
            q.edns,
            Some(Edns {
                udp_size: 1232,
                version: 0,
                dnssec_ok: true
            })
        );
        assert_eq!(parse(&packet).expect("valid").tsig, None);
        assert_eq!(parse(&query(false, false)).expect("valid").edns, None);
    }

    #[test]
    fn malformed_queries() {
        assert_eq!(parse(&[0; 11]), Err(ParseError::Drop));
        let mut response = query(false, false);
        response[2] |= 0x80;
        assert_eq!(parse(&response), Err(ParseError::Drop));
        // Truncated question.
        let packet = query(false, false);
        assert!(matches!(
            parse(&packet[..20]),
            Err(ParseError::FormErr { question: None, .. })
        ));
        // Two questions.
        let mut two = query(false, false);
        two[5] = 2;
        assert!(matches!(parse(&two), Err(ParseError::FormErr { .. })));
        // Compressed QNAME.
        let mut compressed = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1];
        assert!(matches!(
            parse(&compressed),
            Err(ParseError::FormErr { .. })
        ));
        compressed.truncate(12);
        assert!(parse(&compressed).is_err());
        // Two OPT records.
        let mut opt2 = query(true, false);
        opt2[11] = 2;
        opt2.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
        assert!(matches!(
            parse(&opt2),
            Err(ParseError::FormErr {
                question: Some(_),
                ..
            })
        ));
        // OPT record cut short.
        let full = query(true, false);
        assert!(matches!(
            parse(&full[..full.len() - 3]),
            Err(ParseError::FormErr { .. })
        ));
        // A 64-octet label.
        let mut long = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 64];
        long.extend_from_slice(&[b'a'; 64]);
        long.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert!(parse(&long).is_err());
    }

    #[test]
    fn names_longer_than_255_octets_are_refused() {
        let mut packet = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for _ in 0..5 {
            packet.push(63);
            packet.extend_from_slice(&[b'a'; 63]);
        }
        packet.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert!(parse(&packet).is_err());
    }
}
