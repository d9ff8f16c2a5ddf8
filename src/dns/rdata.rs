//! RDATA of the record types signalbox publishes, kept byte-exact.
//!
//! - DS (RFC 4034 §5.1) and CDS (RFC 7344 §3.1): key tag, algorithm, digest
//!   type, digest. Presentation: `35217 15 2 2852…` with the digest in hex.
//! - DNSKEY (RFC 4034 §2.1) and CDNSKEY (RFC 7344 §3.2): flags, protocol (3),
//!   algorithm, public key. Presentation: `257 3 15 zPnZ…` with base64.
//! - CSYNC (RFC 7477 §2.1): SOA serial, flags, type bit map.
//!
//! The delete signal (RFC 8078 §4, errata 5049) is `CDS 0 0 0 00` and
//! `CDNSKEY 0 3 0 AA==`: one zero octet of digest or key, never empty.

use std::fmt;

use data_encoding::{BASE64, HEXUPPER};
use hickory_proto::rr::RecordType;

use super::{bitmap, type_mnemonic};

/// Why RDATA text or wire data was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RdataError {
    /// Presentation text could not be parsed.
    #[error("bad {rtype} rdata {text:?}: {why}")]
    Text {
        /// The record type being parsed.
        rtype: &'static str,
        /// The offending text.
        text: String,
        /// What is wrong.
        why: String,
    },
    /// Wire data could not be parsed.
    #[error("bad {rtype} wire rdata: {why}")]
    Wire {
        /// The record type being parsed.
        rtype: &'static str,
        /// What is wrong.
        why: &'static str,
    },
}

/// DNSKEY/CDNSKEY RDATA (RFC 4034 §2.1).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Dnskey {
    /// Flags: 256 = zone key, 257 = zone key + SEP, +128 = revoked.
    pub flags: u16,
    /// Protocol, always 3.
    pub protocol: u8,
    /// DNSSEC algorithm number.
    pub algorithm: u8,
    /// Public key octets in the algorithm's DNSKEY encoding.
    pub public_key: Vec<u8>,
}

impl Dnskey {
    /// Zone Key flag (bit 7, RFC 4034 §2.1.1).
    pub const FLAG_ZONE: u16 = 0x0100;
    /// Secure Entry Point flag (bit 15): a KSK or CSK.
    pub const FLAG_SEP: u16 = 0x0001;
    /// REVOKE flag (RFC 5011 §3).
    pub const FLAG_REVOKE: u16 = 0x0080;

    /// The CDNSKEY delete record `0 3 0 AA==` (RFC 8078 §4, errata 5049).
    pub fn delete() -> Self {
        Dnskey {
            flags: 0,
            protocol: 3,
            algorithm: 0,
            public_key: vec![0],
        }
    }

    /// True for the delete form (algorithm 0).
    pub fn is_delete(&self) -> bool {
        self.algorithm == 0
    }

    /// True when the Zone Key flag is set.
    pub fn is_zone_key(&self) -> bool {
        self.flags & Self::FLAG_ZONE != 0
    }

    /// True when the SEP flag is set (KSK or CSK).
    pub fn is_sep(&self) -> bool {
        self.flags & Self::FLAG_SEP != 0
    }

    /// True when the REVOKE flag is set.
    pub fn is_revoked(&self) -> bool {
        self.flags & Self::FLAG_REVOKE != 0
    }

    /// Wire form of the RDATA.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.public_key.len());
        out.extend_from_slice(&self.flags.to_be_bytes());
        out.push(self.protocol);
        out.push(self.algorithm);
        out.extend_from_slice(&self.public_key);
        out
    }

    /// Parses wire RDATA.
    pub fn from_wire(data: &[u8]) -> Result<Self, RdataError> {
        if data.len() < 5 {
            return Err(RdataError::Wire {
                rtype: "DNSKEY",
                why: "shorter than 5 octets",
            });
        }
        Ok(Dnskey {
            flags: u16::from_be_bytes([data[0], data[1]]),
            protocol: data[2],
            algorithm: data[3],
            public_key: data[4..].to_vec(),
        })
    }

    /// Parses presentation text `FLAGS PROTOCOL ALGORITHM BASE64...`; the
    /// base64 may be split by white space.
    pub fn from_text(text: &str) -> Result<Self, RdataError> {
        let bad = |why: &str| RdataError::Text {
            rtype: "DNSKEY",
            text: text.to_string(),
            why: why.to_string(),
        };
        let mut fields = text.split_whitespace();
        let flags = next_number::<u16>(&mut fields).map_err(|w| bad(&format!("flags: {w}")))?;
        let protocol =
            next_number::<u8>(&mut fields).map_err(|w| bad(&format!("protocol: {w}")))?;
        let algorithm =
            next_number::<u8>(&mut fields).map_err(|w| bad(&format!("algorithm: {w}")))?;
        let key_text: String = fields.collect();
        if key_text.is_empty() {
            return Err(bad("public key missing"));
        }
        let public_key = BASE64
            .decode(key_text.as_bytes())
            .map_err(|e| bad(&format!("public key is not base64: {e}")))?;
        if public_key.is_empty() {
            return Err(bad("public key is empty"));
        }
        Ok(Dnskey {
            flags,
            protocol,
            algorithm,
            public_key,
        })
    }
}

impl fmt::Display for Dnskey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {}",
            self.flags,
            self.protocol,
            self.algorithm,
            BASE64.encode(&self.public_key)
        )
    }
}

impl fmt::Debug for Dnskey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dnskey({self})")
    }
}

/// DS/CDS RDATA (RFC 4034 §5.1).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ds {
    /// Key tag of the referenced DNSKEY.
    pub key_tag: u16,
    /// Algorithm of the referenced DNSKEY.
    pub algorithm: u8,
    /// Digest type: 2 = SHA-256, 4 = SHA-384, 0 = delete (CDS only).
    pub digest_type: u8,
    /// Digest octets.
    pub digest: Vec<u8>,
}

impl Ds {
    /// The CDS delete record `0 0 0 00` (RFC 8078 §4, errata 5049).
    pub fn delete() -> Self {
        Ds {
            key_tag: 0,
            algorithm: 0,
            digest_type: 0,
            digest: vec![0],
        }
    }

    /// True for the delete form (algorithm 0).
    pub fn is_delete(&self) -> bool {
        self.algorithm == 0
    }

    /// Wire form of the RDATA.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.digest.len());
        out.extend_from_slice(&self.key_tag.to_be_bytes());
        out.push(self.algorithm);
        out.push(self.digest_type);
        out.extend_from_slice(&self.digest);
        out
    }

    /// Parses wire RDATA.
    pub fn from_wire(data: &[u8]) -> Result<Self, RdataError> {
        if data.len() < 5 {
            return Err(RdataError::Wire {
                rtype: "DS",
                why: "shorter than 5 octets",
            });
        }
        Ok(Ds {
            key_tag: u16::from_be_bytes([data[0], data[1]]),
            algorithm: data[2],
            digest_type: data[3],
            digest: data[4..].to_vec(),
        })
    }

    /// Parses presentation text `TAG ALGORITHM DIGESTTYPE HEX...`.
    pub fn from_text(text: &str) -> Result<Self, RdataError> {
        let bad = |why: &str| RdataError::Text {
            rtype: "DS",
            text: text.to_string(),
            why: why.to_string(),
        };
        let mut fields = text.split_whitespace();
        let key_tag = next_number::<u16>(&mut fields).map_err(|w| bad(&format!("key tag: {w}")))?;
        let algorithm =
            next_number::<u8>(&mut fields).map_err(|w| bad(&format!("algorithm: {w}")))?;
        let digest_type =
            next_number::<u8>(&mut fields).map_err(|w| bad(&format!("digest type: {w}")))?;
        let hex: String = fields.collect::<String>().to_ascii_uppercase();
        let digest = HEXUPPER
            .decode(hex.as_bytes())
            .map_err(|e| bad(&format!("digest is not hex: {e}")))?;
        if digest.is_empty() {
            return Err(bad("digest is empty"));
        }
        Ok(Ds {
            key_tag,
            algorithm,
            digest_type,
            digest,
        })
    }
}

impl fmt::Display for Ds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {}",
            self.key_tag,
            self.algorithm,
            self.digest_type,
            HEXUPPER.encode(&self.digest)
        )
    }
}

impl fmt::Debug for Ds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ds({self})")
    }
}

/// CSYNC RDATA (RFC 7477 §2.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Csync {
    /// SOA serial of the zone version holding the data to copy.
    pub serial: u32,
    /// Flags: 1 = immediate, 2 = soaminimum.
    pub flags: u16,
    /// Types the parent should copy (NS, A, AAAA), ascending.
    pub types: Vec<RecordType>,
}

impl Csync {
    /// "immediate" flag (RFC 7477 §2.1.1.1).
    pub const FLAG_IMMEDIATE: u16 = 0x0001;
    /// "soaminimum" flag (RFC 7477 §2.1.1.2).
    pub const FLAG_SOAMINIMUM: u16 = 0x0002;

    /// Wire form of the RDATA.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.serial.to_be_bytes());
        out.extend_from_slice(&self.flags.to_be_bytes());
        out.extend(bitmap::encode(&self.types));
        out
    }

    /// Parses wire RDATA.
    pub fn from_wire(data: &[u8]) -> Result<Self, RdataError> {
        let wire = |why| RdataError::Wire {
            rtype: "CSYNC",
            why,
        };
        if data.len() < 6 {
            return Err(wire("shorter than 6 octets"));
        }
        Ok(Csync {
            serial: u32::from_be_bytes([data[0], data[1], data[2], data[3]]),
            flags: u16::from_be_bytes([data[4], data[5]]),
            types: bitmap::decode(&data[6..]).map_err(wire)?,
        })
    }
}

impl fmt::Display for Csync {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.serial, self.flags)?;
        let mut codes: Vec<RecordType> = self.types.clone();
        codes.sort_by_key(|t| u16::from(*t));
        codes.dedup();
        for rtype in codes {
            write!(f, " {}", type_mnemonic(rtype))?;
        }
        Ok(())
    }
}

/// The RDATA of one published record, tagged with its type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Rdata {
    /// CDS (type 59).
    Cds(Ds),
    /// CDNSKEY (type 60).
    Cdnskey(Dnskey),
    /// CSYNC (type 62).
    Csync(Csync),
    /// DS (type 43).
    Ds(Ds),
    /// DNSKEY (type 48).
    Dnskey(Dnskey),
}

impl Rdata {
    /// The record type this RDATA belongs to.
    pub fn rtype(&self) -> RecordType {
        match self {
            Rdata::Cds(_) => RecordType::CDS,
            Rdata::Cdnskey(_) => RecordType::CDNSKEY,
            Rdata::Csync(_) => RecordType::CSYNC,
            Rdata::Ds(_) => RecordType::DS,
            Rdata::Dnskey(_) => RecordType::DNSKEY,
        }
    }

    /// Wire form of the RDATA.
    pub fn to_wire(&self) -> Vec<u8> {
        match self {
            Rdata::Cds(ds) | Rdata::Ds(ds) => ds.to_wire(),
            Rdata::Cdnskey(key) | Rdata::Dnskey(key) => key.to_wire(),
            Rdata::Csync(csync) => csync.to_wire(),
        }
    }
}

impl fmt::Display for Rdata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rdata::Cds(ds) | Rdata::Ds(ds) => ds.fmt(f),
            Rdata::Cdnskey(key) | Rdata::Dnskey(key) => key.fmt(f),
            Rdata::Csync(csync) => csync.fmt(f),
        }
    }
}

fn next_number<'a, T: std::str::FromStr>(
    fields: &mut impl Iterator<Item = &'a str>,
) -> Result<T, String> {
    let field = fields.next().ok_or_else(|| "missing".to_string())?;
    field
        .parse::<T>()
        .map_err(|_| format!("{field:?} is not a number in range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_records_match_rfc8078_errata() {
        assert_eq!(Ds::delete().to_string(), "0 0 0 00");
        assert_eq!(Ds::delete().to_wire(), [0, 0, 0, 0, 0]);
        assert_eq!(Dnskey::delete().to_string(), "0 3 0 AA==");
        assert_eq!(Dnskey::delete().to_wire(), [0, 0, 3, 0, 0]);
        assert!(Ds::delete().is_delete() && Dnskey::delete().is_delete());
    }

    #[test]
    fn csync_rfc7477_example() {
        let csync = Csync {
            serial: 66,
            flags: 3,
            types: vec![RecordType::A, RecordType::NS, RecordType::AAAA],
        };
        assert_eq!(csync.to_string(), "66 3 A NS AAAA");
        assert_eq!(csync.to_wire(), [0, 0, 0, 0x42, 0, 3, 0, 4, 0x60, 0, 0, 8]);
        assert_eq!(Csync::from_wire(&csync.to_wire()).expect("valid"), csync);
    }

    #[test]
    fn dnskey_text_round_trip_with_split_base64() {
        let key = Dnskey::from_text("257 3 13 GojIhhXUN/u4v54ZQqGSnyhWJwaubCvTmeexv7bR6edb krSqQpF64cYbcB7wNcP+e+MAnLr+Wi9xMWyQLc8NAA==")
            .expect("valid");
        assert_eq!(key.flags, 257);
        assert_eq!(key.public_key.len(), 64);
        assert_eq!(Dnskey::from_wire(&key.to_wire()).expect("valid"), key);
        assert!(Dnskey::from_text("257 3").is_err());
        assert!(Dnskey::from_text("257 3 13 !!!").is_err());
        assert!(Dnskey::from_text("70000 3 13 AA==").is_err());
    }

    #[test]
    fn ds_text_round_trip() {
        let text = "55648 13 2 B4C8C1FE2E7477127B27115656AD6256F424625BF5C1E2770CE6D6E37DF61D17";
        let ds = Ds::from_text(text).expect("valid");
        assert_eq!(ds.to_string(), text);
        assert_eq!(Ds::from_wire(&ds.to_wire()).expect("valid"), ds);
        assert_eq!(
            Ds::from_text("1 2 3 ab cd").expect("valid").digest,
            [0xab, 0xcd]
        );
    }
}
