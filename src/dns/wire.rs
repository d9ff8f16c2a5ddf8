//! The DNS header and the octets under it (RFC 1035 §4.1): the one set of
//! header constants (flags, opcodes, RCODEs, classes), big-endian reads and
//! writes, the clock TSIG and the journal stamp with, and message IDs.
//!
//! Header layout (RFC 1035 §4.1.1): ID, then a 16-bit word holding QR,
//! OPCODE (4 bits), AA, TC, RD, RA, Z, AD, CD (RFC 4035 §3.2) and RCODE (4
//! bits), then QDCOUNT, ANCOUNT, NSCOUNT and ARCOUNT. All integers on the
//! wire are big-endian (network order, RFC 1035 §2.3.2).
//!
//! Everything here is a constant or a tiny `#[inline]` function: the
//! server's query path (`server::query`, `server::answer`) uses them too.
//! Whole messages are built and parsed in [`super::message`]. The query
//! parser (`server::query`) reads its fields with `from_be_bytes` after one
//! bounds check per section, on purpose: it is the measured hot path, and
//! [`u16_at`]'s `Option` would add a check per field.

/// Header flag bits (RFC 1035 §4.1.1, RFC 4035 §3.2).
pub mod flags {
    /// Response.
    pub const QR: u16 = 0x8000;
    /// Authoritative answer.
    pub const AA: u16 = 0x0400;
    /// Truncated.
    pub const TC: u16 = 0x0200;
    /// Recursion desired.
    pub const RD: u16 = 0x0100;
    /// Recursion available.
    pub const RA: u16 = 0x0080;
    /// Authentic data (validated by the resolver).
    pub const AD: u16 = 0x0020;
    /// Checking disabled.
    pub const CD: u16 = 0x0010;
}

/// Opcodes (RFC 1035 §4.1.1, RFC 1996 §3.1, RFC 2136 §1.3).
pub mod opcode {
    /// Standard query.
    pub const QUERY: u8 = 0;
    /// NOTIFY (RFC 1996).
    pub const NOTIFY: u8 = 4;
    /// UPDATE (RFC 2136).
    pub const UPDATE: u8 = 5;

    /// The opcode in a header flags word.
    #[inline]
    pub const fn of(flags: u16) -> u8 {
        ((flags >> 11) & 0x0f) as u8
    }

    /// The opcode placed in a header flags word.
    #[inline]
    pub const fn bits(opcode: u8) -> u16 {
        ((opcode & 0x0f) as u16) << 11
    }
}

/// Response codes (RFC 1035 §4.1.1, RFC 2136 §2.2, RFC 6891 §6.1.3). The
/// TSIG error codes (RFC 8945 §3) live in `tsig::error`.
pub mod rcode {
    /// No error.
    pub const NOERROR: u16 = 0;
    /// Format error.
    pub const FORMERR: u16 = 1;
    /// Server failure.
    pub const SERVFAIL: u16 = 2;
    /// Name does not exist.
    pub const NXDOMAIN: u16 = 3;
    /// Not implemented.
    pub const NOTIMP: u16 = 4;
    /// Refused.
    pub const REFUSED: u16 = 5;
    /// UPDATE: name exists when it should not.
    pub const YXDOMAIN: u16 = 6;
    /// UPDATE: RRset exists when it should not.
    pub const YXRRSET: u16 = 7;
    /// UPDATE: RRset does not exist when it should.
    pub const NXRRSET: u16 = 8;
    /// Not authoritative (or TSIG failure, RFC 8945 §5.3.2).
    pub const NOTAUTH: u16 = 9;
    /// Name not in zone.
    pub const NOTZONE: u16 = 10;
    /// Extended RCODE 16, BADVERS (RFC 6891 §6.1.3).
    pub const BADVERS: u16 = 16;
    /// BADVERS as the upper 8 bits carried in the OPT record's TTL.
    pub const BADVERS_HIGH: u8 = (BADVERS >> 4) as u8;
    /// The RCODE bits of a header flags word.
    pub const MASK: u16 = 0x000f;

    /// The mnemonic of a response code.
    pub fn name(code: u16) -> String {
        match code {
            NOERROR => "NOERROR".into(),
            FORMERR => "FORMERR".into(),
            SERVFAIL => "SERVFAIL".into(),
            NXDOMAIN => "NXDOMAIN".into(),
            NOTIMP => "NOTIMP".into(),
            REFUSED => "REFUSED".into(),
            YXDOMAIN => "YXDOMAIN".into(),
            YXRRSET => "YXRRSET".into(),
            NXRRSET => "NXRRSET".into(),
            NOTAUTH => "NOTAUTH".into(),
            NOTZONE => "NOTZONE".into(),
            BADVERS => "BADSIG/BADVERS".into(),
            17 => "BADKEY".into(),
            18 => "BADTIME".into(),
            other => format!("RCODE{other}"),
        }
    }
}

/// Class IN.
pub const CLASS_IN: u16 = 1;
/// Class NONE (RFC 2136 §2.4: delete an RR).
pub const CLASS_NONE: u16 = 254;
/// Class ANY (RFC 2136 §2.4: delete an RRset; RFC 8945 §4.2: TSIG).
pub const CLASS_ANY: u16 = 255;
/// OPT pseudo-record type (RFC 6891 §6.1.1).
pub const OPT: u16 = 41;
/// Octets in a header.
pub const HEADER_LEN: usize = 12;

/// The big-endian `u16` at `at`, if `buf` is long enough.
#[inline]
pub fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
    let octets = buf.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([octets[0], octets[1]]))
}

/// The big-endian `u32` at `at`, if `buf` is long enough.
#[inline]
pub fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    let octets = buf.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([
        octets[0], octets[1], octets[2], octets[3],
    ]))
}

/// Appends `value` big-endian.
#[inline]
pub fn put_u16(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(&value.to_be_bytes());
}

/// Appends `value` big-endian.
#[inline]
pub fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_be_bytes());
}

/// Overwrites the two octets at `at` with `value` big-endian (a header
/// field or an RDLENGTH filled in afterwards). Panics when `at + 2` is past
/// the end: callers write into what they built themselves.
#[inline]
pub fn set_u16(buf: &mut [u8], at: usize, value: u16) {
    buf[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

/// Overwrites the four octets at `at` with `value` big-endian. Panics when
/// `at + 4` is past the end: callers write into what they built themselves.
#[inline]
pub fn set_u32(buf: &mut [u8], at: usize, value: u32) {
    buf[at..at + 4].copy_from_slice(&value.to_be_bytes());
}

/// The big-endian `u64` at `at`, if `buf` is long enough.
#[inline]
pub fn u64_at(buf: &[u8], at: usize) -> Option<u64> {
    let octets = buf.get(at..at.checked_add(8)?)?;
    let mut value = [0u8; 8];
    value.copy_from_slice(octets);
    Some(u64::from_be_bytes(value))
}

/// Appends `value` big-endian.
#[inline]
pub fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_be_bytes());
}

/// The 48-bit big-endian number at `at` (TSIG's Time Signed, RFC 8945
/// §4.2), if `buf` is long enough.
#[inline]
pub fn u48_at(buf: &[u8], at: usize) -> Option<u64> {
    let octets = buf.get(at..at.checked_add(6)?)?;
    let mut value = [0u8; 8];
    value[2..].copy_from_slice(octets);
    Some(u64::from_be_bytes(value))
}

/// Appends the low 48 bits of `value` big-endian (TSIG's Time Signed).
#[inline]
pub fn put_u48(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_be_bytes()[2..]);
}

/// Appends the part of a resource record after its owner name (RFC 1035
/// §4.1.3): `type`, class IN, `ttl`, RDLENGTH and `rdata`. The layout of the
/// zone store's record blobs and of the records under an RRSIG (RFC 4034
/// §3.1.8.1). RDATA is at most 65535 octets by construction of every caller.
#[inline]
pub fn put_record_body(out: &mut Vec<u8>, rtype: u16, ttl: u32, rdata: &[u8]) {
    put_u16(out, rtype);
    put_u16(out, CLASS_IN);
    put_u32(out, ttl);
    put_u16(out, rdata.len() as u16);
    out.extend_from_slice(rdata);
}

/// A message too long for the two-octet length prefix of DNS over TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("message of {0} octets is longer than 65535")]
pub struct FrameTooLong(pub usize);

/// Appends `message` behind its two-octet length, as DNS over TCP sends it
/// (RFC 1035 §4.2.2, RFC 7766 §8).
#[inline]
pub fn put_framed(out: &mut Vec<u8>, message: &[u8]) -> Result<(), FrameTooLong> {
    let len = u16::try_from(message.len()).map_err(|_| FrameTooLong(message.len()))?;
    put_u16(out, len);
    out.extend_from_slice(message);
    Ok(())
}

/// Seconds since the Unix epoch (TSIG's time signed, RFC 8945 §4.2; journal
/// stamps); 0 if the clock is before 1970.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A fresh message ID from the system's random source (RFC 5452 §9.2).
pub fn random_id() -> u16 {
    let mut id = [0u8; 2];
    // A failed RNG leaves a zero ID: legal, only less spoofing-resistant.
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id);
    u16::from_be_bytes(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_are_big_endian() {
        let mut out = Vec::new();
        put_u16(&mut out, 0x1234);
        put_u32(&mut out, 0xdead_beef);
        assert_eq!(out, [0x12, 0x34, 0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(u16_at(&out, 0), Some(0x1234));
        assert_eq!(u32_at(&out, 2), Some(0xdead_beef));
        assert_eq!(u16_at(&out, 5), None);
        assert_eq!(u32_at(&out, usize::MAX), None);
        set_u16(&mut out, 4, 0xabcd);
        assert_eq!(&out[4..], &[0xab, 0xcd]);
        let mut framed = Vec::new();
        put_framed(&mut framed, b"abc").expect("short");
        assert_eq!(framed, b"\x00\x03abc");
        assert!(put_framed(&mut framed, &vec![0; 65536]).is_err());
    }

    #[test]
    fn opcode_bits_round_trip() {
        let word = opcode::bits(opcode::NOTIFY) | flags::AA;
        assert_eq!(word, 0x2400);
        assert_eq!(opcode::of(word), opcode::NOTIFY);
        assert_eq!(rcode::BADVERS_HIGH, 1);
    }
}
