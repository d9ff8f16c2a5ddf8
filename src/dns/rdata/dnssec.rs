//! DNSSEC RDATA: DNSKEY/CDNSKEY, DS/CDS (RFC 4034 §2, §5; RFC 7344 §3),
//! NSEC (RFC 4034 §4) and RRSIG (RFC 4034 §3).

use std::fmt;

use data_encoding::{BASE64, HEXUPPER};
use hickory_proto::rr::{Name, RecordType};

use super::{RdataError, TextError, next_number};
use crate::dns::{
    bitmap,
    name::{canonical_wire, display},
    type_mnemonic,
    wire::{put_u16, put_u32, u16_at, u32_at},
};

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
        put_u16(&mut out, self.flags);
        out.push(self.protocol);
        out.push(self.algorithm);
        out.extend_from_slice(&self.public_key);
        out
    }

    /// Parses wire RDATA.
    pub fn from_wire(data: &[u8]) -> Result<Self, RdataError> {
        let short = RdataError::Wire {
            rtype: "DNSKEY",
            why: "shorter than 5 octets",
        };
        if data.len() < 5 {
            return Err(short);
        }
        Ok(Dnskey {
            flags: u16_at(data, 0).ok_or(short)?,
            protocol: data[2],
            algorithm: data[3],
            public_key: data[4..].to_vec(),
        })
    }

    /// Parses presentation text `FLAGS PROTOCOL ALGORITHM BASE64...`; the
    /// base64 may be split by white space.
    pub fn from_text(text: &str) -> Result<Self, RdataError> {
        let bad = |why: TextError| RdataError::Text {
            rtype: "DNSKEY",
            text: text.to_string(),
            why,
        };
        let mut fields = text.split_whitespace();
        let flags = next_number(&mut fields, "flags").map_err(bad)?;
        let protocol = next_number(&mut fields, "protocol").map_err(bad)?;
        let algorithm = next_number(&mut fields, "algorithm").map_err(bad)?;
        let key_text: String = fields.collect();
        let field = "public key";
        if key_text.is_empty() {
            return Err(bad(TextError::Missing { field }));
        }
        let public_key = BASE64
            .decode(key_text.as_bytes())
            .map_err(|source| bad(TextError::NotBase64 { field, source }))?;
        if public_key.is_empty() {
            return Err(bad(TextError::Empty { field }));
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

    /// `tag/algorithm/digest type`: which key a DS names, and how, in one
    /// word (events, `explain`).
    pub fn short_form(&self) -> String {
        format!("{}/{}/{}", self.key_tag, self.algorithm, self.digest_type)
    }

    /// Wire form of the RDATA.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.digest.len());
        put_u16(&mut out, self.key_tag);
        out.push(self.algorithm);
        out.push(self.digest_type);
        out.extend_from_slice(&self.digest);
        out
    }

    /// Parses wire RDATA.
    pub fn from_wire(data: &[u8]) -> Result<Self, RdataError> {
        let short = RdataError::Wire {
            rtype: "DS",
            why: "shorter than 5 octets",
        };
        if data.len() < 5 {
            return Err(short);
        }
        Ok(Ds {
            key_tag: u16_at(data, 0).ok_or(short)?,
            algorithm: data[2],
            digest_type: data[3],
            digest: data[4..].to_vec(),
        })
    }

    /// Parses presentation text `TAG ALGORITHM DIGESTTYPE HEX...`.
    pub fn from_text(text: &str) -> Result<Self, RdataError> {
        let bad = |why: TextError| RdataError::Text {
            rtype: "DS",
            text: text.to_string(),
            why,
        };
        let mut fields = text.split_whitespace();
        let key_tag = next_number(&mut fields, "key tag").map_err(bad)?;
        let algorithm = next_number(&mut fields, "algorithm").map_err(bad)?;
        let digest_type = next_number(&mut fields, "digest type").map_err(bad)?;
        let hex: String = fields.collect::<String>().to_ascii_uppercase();
        let field = "digest";
        let digest = HEXUPPER
            .decode(hex.as_bytes())
            .map_err(|source| bad(TextError::NotHex { field, source }))?;
        if digest.is_empty() {
            return Err(bad(TextError::Empty { field }));
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

/// NSEC RDATA (RFC 4034 §4.1): next owner name and type bit map.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Nsec {
    /// The next owner name in canonical order (wrapping to the apex).
    pub next: Name,
    /// Types present at the owner.
    pub types: Vec<RecordType>,
}

impl Nsec {
    /// Wire form.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = canonical_wire(&self.next);
        out.extend(bitmap::encode(&self.types));
        out
    }
}

impl fmt::Display for Nsec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", display(&self.next))?;
        let mut types = self.types.clone();
        types.sort_by_key(|t| u16::from(*t));
        for t in types {
            write!(f, " {}", type_mnemonic(t))?;
        }
        Ok(())
    }
}

/// RRSIG RDATA (RFC 4034 §3.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rrsig {
    /// The type the signature covers.
    pub type_covered: RecordType,
    /// Algorithm of the signing key.
    pub algorithm: u8,
    /// Labels of the owner (no root, no leading `*`).
    pub labels: u8,
    /// TTL of the covered RRset.
    pub original_ttl: u32,
    /// Expiration, seconds since the epoch mod 2^32.
    pub expiration: u32,
    /// Inception, seconds since the epoch mod 2^32.
    pub inception: u32,
    /// Tag of the signing key.
    pub key_tag: u16,
    /// The zone that signed (lower case).
    pub signer: Name,
    /// The signature.
    pub signature: Vec<u8>,
}

impl Rrsig {
    /// RDATA without the signature: the first part of the signed data
    /// (RFC 4034 §3.1.8.1).
    pub fn header_wire(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(18 + 64);
        put_u16(&mut out, u16::from(self.type_covered));
        out.push(self.algorithm);
        out.push(self.labels);
        put_u32(&mut out, self.original_ttl);
        put_u32(&mut out, self.expiration);
        put_u32(&mut out, self.inception);
        put_u16(&mut out, self.key_tag);
        out.extend(canonical_wire(&self.signer));
        out
    }

    /// Wire form.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = self.header_wire();
        out.extend_from_slice(&self.signature);
        out
    }

    /// Parses wire RDATA (signer name uncompressed, as RFC 4034 §3.1.7 requires).
    pub fn from_wire(data: &[u8]) -> Option<Self> {
        let fixed = data.get(..18)?;
        let at = signer_end(data)?;
        let mut labels = Vec::new();
        let mut label = 18;
        while label + 1 < at {
            let len = usize::from(data[label]);
            labels.push(&data[label + 1..label + 1 + len]);
            label += 1 + len;
        }
        let mut signer = Name::from_labels(labels).ok()?;
        signer.set_fqdn(true);
        Some(Rrsig {
            type_covered: RecordType::from(u16_at(fixed, 0)?),
            algorithm: fixed[2],
            labels: fixed[3],
            original_ttl: u32_at(fixed, 4)?,
            expiration: u32_at(fixed, 8)?,
            inception: u32_at(fixed, 12)?,
            key_tag: u16_at(fixed, 16)?,
            signer,
            signature: data[at..].to_vec(),
        })
    }
}

/// Where the signer name of RRSIG RDATA ends (after its root label): every
/// label at most 63 octets, the name at most 255 (RFC 1035 §3.1), in the
/// data.
fn signer_end(data: &[u8]) -> Option<usize> {
    let mut at = 18;
    loop {
        let len = usize::from(*data.get(at)?);
        at += 1;
        if at - 18 > 255 || len > 63 {
            return None;
        }
        if len == 0 {
            return Some(at);
        }
        data.get(at..at + len)?;
        at += len;
    }
}

/// The fixed fields of RRSIG RDATA, read in place with the same checks as
/// [`Rrsig::from_wire`] but without making the signer's `Name` or copying
/// the signature: what the bulk paths need (a zone of a million names
/// loads 3M of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RrsigHeader {
    /// Type covered.
    pub type_covered: u16,
    /// Algorithm.
    pub algorithm: u8,
    /// Expiration (serial number arithmetic).
    pub expiration: u32,
    /// Inception.
    pub inception: u32,
    /// Tag of the signing key.
    pub key_tag: u16,
}

impl RrsigHeader {
    /// Reads wire RDATA; `None` where [`Rrsig::from_wire`] would fail.
    pub fn from_wire(data: &[u8]) -> Option<Self> {
        let fixed = data.get(..18)?;
        signer_end(data)?;
        Some(RrsigHeader {
            type_covered: u16_at(fixed, 0)?,
            algorithm: fixed[2],
            expiration: u32_at(fixed, 8)?,
            inception: u32_at(fixed, 12)?,
            key_tag: u16_at(fixed, 16)?,
        })
    }
}

impl fmt::Display for Rrsig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let time = |t: u32| {
            jiff::Timestamp::from_second(i64::from(t))
                .map(|ts| ts.strftime("%Y%m%d%H%M%S").to_string())
                .unwrap_or_else(|_| t.to_string())
        };
        write!(
            f,
            "{} {} {} {} {} {} {} {} {}",
            type_mnemonic(self.type_covered),
            self.algorithm,
            self.labels,
            self.original_ttl,
            time(self.expiration),
            time(self.inception),
            self.key_tag,
            display(&self.signer),
            BASE64.encode(&self.signature)
        )
    }
}
