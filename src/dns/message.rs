//! DNS messages as a client sees them (RFC 1035 §4): building queries,
//! NOTIFYs and UPDATEs, and parsing whatever a server sends back.
//!
//! The server's query path has its own allocation-free parser
//! (`server::query`); this one is for the client side (discovery, the
//! parent observer, the consistency gate, UPDATE read-back), where clarity
//! beats speed. Names in answers may be compressed (RFC 1035 §4.1.4), also
//! inside the RDATA of the well-known types RFC 3597 §4 lists (NS, CNAME,
//! SOA, PTR, MX); those RDATA come out uncompressed, every other RDATA as
//! sent.

use hickory_proto::rr::{Name, RecordType};

use super::{
    name::canonical_wire,
    wire::{CLASS_IN, HEADER_LEN, OPT, flags, opcode, put_u16, put_u32, u16_at, u32_at},
};

/// One resource record, owner decompressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireRecord {
    /// Owner name (case as sent).
    pub owner: Name,
    /// Type code.
    pub rtype: u16,
    /// Class.
    pub class: u16,
    /// TTL.
    pub ttl: u32,
    /// RDATA, decompressed for the RFC 3597 §4 types.
    pub rdata: Vec<u8>,
}

impl WireRecord {
    /// The record type.
    pub fn record_type(&self) -> RecordType {
        RecordType::from(self.rtype)
    }

    /// The name in NS/CNAME/PTR RDATA.
    pub fn target(&self) -> Option<Name> {
        super::name::from_wire(&self.rdata).map(|(name, _)| name)
    }

    /// The address in A/AAAA RDATA.
    pub fn address(&self) -> Option<std::net::IpAddr> {
        match (self.rtype, self.rdata.len()) {
            (1, 4) => {
                let octets: [u8; 4] = self.rdata[..4].try_into().ok()?;
                Some(std::net::IpAddr::from(octets))
            }
            (28, 16) => {
                let octets: [u8; 16] = self.rdata[..16].try_into().ok()?;
                Some(std::net::IpAddr::from(octets))
            }
            _ => None,
        }
    }
}

/// A parsed message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// ID.
    pub id: u16,
    /// Header flags (see [`flags`](super::wire::flags); opcode and RCODE bits left in).
    pub flags: u16,
    /// RCODE, extended by the OPT record when there is one.
    pub rcode: u16,
    /// The question (name, type, class), if any.
    pub question: Option<(Name, u16, u16)>,
    /// Answer section.
    pub answer: Vec<WireRecord>,
    /// Authority section.
    pub authority: Vec<WireRecord>,
    /// Additional section, without OPT.
    pub additional: Vec<WireRecord>,
    /// The sender's EDNS UDP size, when it sent OPT.
    pub edns_udp_size: Option<u16>,
}

impl Message {
    /// The opcode.
    pub fn opcode(&self) -> u8 {
        opcode::of(self.flags)
    }

    /// True when `flag` (from [`flags`](super::wire::flags)) is set.
    pub fn has(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }

    /// Records of `rtype` at `owner` (case-insensitive) in the answer section.
    pub fn answers<'a>(
        &'a self,
        owner: &'a Name,
        rtype: RecordType,
    ) -> impl Iterator<Item = &'a WireRecord> + 'a {
        let code = u16::from(rtype);
        self.answer
            .iter()
            // hickory's Name equality ignores case.
            .filter(move |r| r.rtype == code && r.owner == *owner)
    }

    /// The SOA owner in the authority section (the apex of the zone that
    /// gave a negative answer, RFC 2308 §3).
    pub fn negative_soa_owner(&self) -> Option<&Name> {
        self.authority
            .iter()
            .find(|r| r.rtype == u16::from(RecordType::SOA))
            .map(|r| &r.owner)
    }
}

/// Why a message could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed DNS message: {0}")]
pub struct MessageError(pub &'static str);

/// Parses a whole message.
pub fn parse(packet: &[u8]) -> Result<Message, MessageError> {
    if packet.len() < HEADER_LEN {
        return Err(MessageError("shorter than a header"));
    }
    let word = |i: usize| u16_at(packet, i).unwrap_or(0);
    let (id, flags) = (word(0), word(2));
    let counts = [word(4), word(6), word(8), word(10)];
    let mut at = HEADER_LEN;
    let mut question = None;
    for _ in 0..counts[0] {
        let (name, next) = read_name(packet, at)?;
        let cut = || MessageError("question cut short");
        let rtype = u16_at(packet, next).ok_or_else(cut)?;
        let class = u16_at(packet, next + 2).ok_or_else(cut)?;
        question.get_or_insert((name, rtype, class));
        at = next + 4;
    }
    let mut sections: [Vec<WireRecord>; 3] = Default::default();
    let mut rcode = flags & super::wire::rcode::MASK;
    let mut edns_udp_size = None;
    for (section, count) in sections.iter_mut().zip(&counts[1..]) {
        for _ in 0..*count {
            let (record, next) = read_record(packet, at)?;
            at = next;
            if record.rtype == OPT {
                // Extended RCODE: the TTL's top octet holds bits 4-11.
                rcode |= ((record.ttl >> 24) as u16) << 4;
                edns_udp_size = Some(record.class);
                continue;
            }
            section.push(record);
        }
    }
    let [answer, authority, additional] = sections;
    Ok(Message {
        id,
        flags,
        rcode,
        question,
        answer,
        authority,
        additional,
        edns_udp_size,
    })
}

/// Reads a possibly compressed name at `at`; returns it and the offset after
/// it in the message.
pub fn read_name(packet: &[u8], at: usize) -> Result<(Name, usize), MessageError> {
    let mut wire = Vec::with_capacity(64);
    let mut pos = at;
    let mut end = None;
    let mut jumps = 0;
    loop {
        let len = *packet
            .get(pos)
            .ok_or(MessageError("name runs off the end"))?;
        match len {
            0 => {
                wire.push(0);
                let after = end.unwrap_or(pos + 1);
                let (name, _) = super::name::from_wire(&wire).ok_or(MessageError("bad name"))?;
                return Ok((name, after));
            }
            1..=63 => {
                let label = packet
                    .get(pos..pos + 1 + usize::from(len))
                    .ok_or(MessageError("label runs off the end"))?;
                wire.extend_from_slice(label);
                if wire.len() > 255 {
                    return Err(MessageError("name longer than 255 octets"));
                }
                pos += 1 + usize::from(len);
            }
            0xc0..=0xff => {
                let low = *packet
                    .get(pos + 1)
                    .ok_or(MessageError("pointer cut short"))?;
                let target = usize::from(len & 0x3f) << 8 | usize::from(low);
                jumps += 1;
                // Pointers must go backwards; a bound on jumps stops loops.
                if target >= pos || jumps > 64 {
                    return Err(MessageError("compression pointer loop"));
                }
                end.get_or_insert(pos + 2);
                pos = target;
            }
            _ => return Err(MessageError("reserved label type")),
        }
    }
}

fn read_record(packet: &[u8], at: usize) -> Result<(WireRecord, usize), MessageError> {
    let (owner, next) = read_name(packet, at)?;
    let cut = || MessageError("record header cut short");
    let rtype = u16_at(packet, next).ok_or_else(cut)?;
    let class = u16_at(packet, next + 2).ok_or_else(cut)?;
    let ttl = u32_at(packet, next + 4).ok_or_else(cut)?;
    let rdlen = usize::from(u16_at(packet, next + 8).ok_or_else(cut)?);
    let start = next + 10;
    let raw = packet
        .get(start..start + rdlen)
        .ok_or(MessageError("RDATA runs off the end"))?;
    let rdata = match RecordType::from(rtype) {
        RecordType::NS | RecordType::CNAME | RecordType::PTR => {
            let (name, _) = read_name(packet, start)?;
            canonical_case_wire(&name)
        }
        RecordType::MX => {
            let (name, _) = read_name(packet, start + 2)?;
            let mut out = raw.get(..2).ok_or(MessageError("MX cut short"))?.to_vec();
            out.extend(canonical_case_wire(&name));
            out
        }
        RecordType::SOA => {
            let (mname, after) = read_name(packet, start)?;
            let (rname, after) = read_name(packet, after)?;
            let mut out = canonical_case_wire(&mname);
            out.extend(canonical_case_wire(&rname));
            out.extend_from_slice(
                packet
                    .get(after..after + 20)
                    .ok_or(MessageError("SOA cut short"))?,
            );
            out
        }
        _ => raw.to_vec(),
    };
    Ok((
        WireRecord {
            owner,
            rtype,
            class,
            ttl,
            rdata,
        },
        start + rdlen,
    ))
}

/// Uncompressed wire form with the case kept.
fn canonical_case_wire(name: &Name) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    for label in name.iter() {
        out.push(label.len() as u8);
        out.extend_from_slice(label);
    }
    out.push(0);
    out
}

/// A query for `name`/`rtype` with ID `id`: RD as given, an OPT record with
/// a 1232-octet UDP size and DO when `dnssec_ok` (RFC 6891, RFC 3225).
pub fn query(id: u16, name: &Name, rtype: RecordType, recursion: bool, dnssec_ok: bool) -> Vec<u8> {
    let flags: u16 = if recursion { flags::RD } else { 0 };
    let mut out = header(id, opcode::QUERY, flags, [1, 0, 0, 1]);
    push_question(&mut out, name, rtype);
    push_opt(&mut out, dnssec_ok);
    out
}

/// A NOTIFY for `apex` announcing a change of `rtype` (RFC 1996 §3.7; RFC
/// 9859 §4.2: QTYPE CDS or CSYNC): AA set, one question, nothing else.
pub fn notify(id: u16, apex: &Name, rtype: RecordType) -> Vec<u8> {
    let mut out = header(id, opcode::NOTIFY, flags::AA, [1, 0, 0, 0]);
    push_question(&mut out, apex, rtype);
    out
}

/// The Report-Channel EDNS option code (RFC 9567 §6.1).
pub const OPTION_REPORT_CHANNEL: u16 = 18;

/// [`notify`] naming `agent` as the monitoring agent for error reports:
/// an OPT record with the Report-Channel option (RFC 9567 §6.1: the agent
/// domain in uncompressed wire form), so a parent that finds a problem
/// with what it was told can report it (RFC 9567 §6.2).
pub fn notify_reporting_to(id: u16, apex: &Name, rtype: RecordType, agent: &Name) -> Vec<u8> {
    let mut out = header(id, opcode::NOTIFY, flags::AA, [1, 0, 0, 1]);
    push_question(&mut out, apex, rtype);
    let agent = canonical_wire(agent);
    out.push(0); // root owner
    put_u16(&mut out, OPT);
    put_u16(&mut out, 1232);
    put_u32(&mut out, 0);
    put_u16(&mut out, 4 + agent.len() as u16);
    put_u16(&mut out, OPTION_REPORT_CHANNEL);
    put_u16(&mut out, agent.len() as u16);
    out.extend_from_slice(&agent);
    out
}

/// Appends a question (RFC 1035 §4.1.2): `name` uncompressed, `rtype`,
/// class IN (the caller counts it in QDCOUNT).
pub fn push_question(out: &mut Vec<u8>, name: &Name, rtype: RecordType) {
    out.extend(canonical_wire(name));
    put_u16(out, u16::from(rtype));
    put_u16(out, CLASS_IN);
}

/// A 12-octet header with `opcode`, `flags` and the section counts.
pub fn header(id: u16, opcode: u8, flags: u16, counts: [u16; 4]) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    put_u16(&mut out, id);
    put_u16(&mut out, flags | opcode::bits(opcode));
    for count in counts {
        put_u16(&mut out, count);
    }
    out
}

/// Appends an OPT record (the caller counts it in ARCOUNT).
fn push_opt(out: &mut Vec<u8>, dnssec_ok: bool) {
    out.push(0); // root owner
    put_u16(out, OPT);
    put_u16(out, 1232);
    put_u32(out, if dnssec_ok { 0x0000_8000 } else { 0 });
    put_u16(out, 0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::parse_name;

    #[test]
    fn a_notify_names_its_report_channel_in_an_opt_record() {
        let apex = parse_name("example.com.").expect("valid");
        let agent = parse_name("Agent.Example.NET.").expect("valid");
        let m = notify_reporting_to(7, &apex, RecordType::CDS, &agent);
        let plain = notify(7, &apex, RecordType::CDS);
        // The same header (ARCOUNT 1) and question, then the OPT record.
        assert_eq!(&m[..10], &plain[..10]);
        assert_eq!(u16_at(&m, 10), Some(1));
        assert_eq!(&m[12..plain.len()], &plain[12..]);
        let opt = &m[plain.len()..];
        let agent_wire = b"\x05agent\x07example\x03net\x00";
        let mut want = vec![0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0];
        want.extend_from_slice(&(4 + agent_wire.len() as u16).to_be_bytes());
        want.extend_from_slice(&[0, 18]);
        want.extend_from_slice(&(agent_wire.len() as u16).to_be_bytes());
        want.extend_from_slice(agent_wire);
        assert_eq!(opt, &want[..]);
    }

    #[test]
    fn notify_matches_the_spec_example() {
        // RFC 9859 §4.2: NOTIFY(CDS) for example.co.uk with ID 0x1234.
        let packet = notify(
            0x1234,
            &parse_name("example.co.uk.").expect("valid"),
            RecordType::CDS,
        );
        assert_eq!(
            data_encoding::HEXLOWER.encode(&packet),
            "123424000001000000000000076578616d706c6502636f02756b00003b0001"
        );
        let parsed = parse(&packet).expect("parses");
        assert_eq!(parsed.opcode(), opcode::NOTIFY);
        assert!(parsed.has(flags::AA) && !parsed.has(flags::QR));
        assert_eq!(parsed.question.expect("question").1, 59);
    }

    #[test]
    fn compressed_answers_are_decompressed() {
        // example. NS ns1.example. with the owner and NS target compressed.
        let mut p = header(7, 0, flags::QR | flags::AA, [1, 1, 0, 0]);
        p.extend_from_slice(b"\x07example\x00\x00\x02\x00\x01");
        p.extend_from_slice(&[0xc0, 12, 0, 2, 0, 1, 0, 0, 0x0e, 0x10, 0, 6]);
        p.extend_from_slice(b"\x03ns1\xc0\x0c");
        let m = parse(&p).expect("parses");
        assert_eq!(m.answer.len(), 1);
        assert_eq!(m.answer[0].rdata, b"\x03ns1\x07example\x00");
        assert_eq!(
            m.answer[0].target().expect("name"),
            parse_name("ns1.example.").expect("valid")
        );
        assert_eq!(m.answer[0].ttl, 3600);
    }

    #[test]
    fn malformed_messages_are_errors() {
        assert!(parse(&[0; 5]).is_err());
        // A pointer to itself.
        let mut p = header(1, 0, 0, [1, 0, 0, 0]);
        p.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert!(parse(&p).is_err());
        // Counts larger than the data.
        let p = header(1, 0, 0, [0, 3, 0, 0]);
        assert!(parse(&p).is_err());
    }

    #[test]
    fn queries_carry_edns_and_do() {
        let q = query(
            9,
            &parse_name("a.example.").expect("valid"),
            RecordType::DS,
            true,
            true,
        );
        let m = parse(&q).expect("parses");
        assert!(m.has(flags::RD));
        assert_eq!(m.edns_udp_size, Some(1232));
        assert_eq!(&q[q.len() - 6..q.len() - 2], &[0, 0, 0x80, 0]);
    }
}
