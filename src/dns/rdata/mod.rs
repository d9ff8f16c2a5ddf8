//! RDATA of the record types signalbox publishes, kept byte-exact.
//!
//! - DS (RFC 4034 §5.1) and CDS (RFC 7344 §3.1): key tag, algorithm, digest
//!   type, digest. Presentation: `35217 15 2 2852…` with the digest in hex.
//! - DNSKEY (RFC 4034 §2.1) and CDNSKEY (RFC 7344 §3.2): flags, protocol (3),
//!   algorithm, public key. Presentation: `257 3 15 zPnZ…` with base64.
//! - CSYNC (RFC 7477 §2.1): SOA serial, flags, type bit map.
//! - DSYNC (RFC 9859 §2): RRtype, scheme, port, target.
//!
//! Any RDATA can also be written in the generic form of RFC 3597 §5,
//! `\# <length> <hex>`, which is how zone files for servers that do not know
//! a type yet carry it (e.g. DSYNC as `TYPE66 \# 26 003b01...`).
//!
//! The delete signal (RFC 8078 §4, errata 5049) is `CDS 0 0 0 00` and
//! `CDNSKEY 0 3 0 AA==`: one zero octet of digest or key, never empty.

use std::fmt;

mod dnssec;
mod dsync;
mod error;
mod zone;

use hickory_proto::rr::{Name, RecordType};

pub use dnssec::{Dnskey, Ds, Nsec, Rrsig, RrsigHeader};
pub use dsync::Dsync;
pub use error::{GenericError, NumberError, RdataError, TextError};
pub use zone::{Csync, Soa};

use super::name::{canonical_wire, display};

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
    /// SOA (type 6).
    Soa(Soa),
    /// NS (type 2).
    Ns(Name),
    /// NSEC (type 47).
    Nsec(Nsec),
    /// RRSIG (type 46).
    Rrsig(Rrsig),
    /// DSYNC (type 66).
    Dsync(Dsync),
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
            Rdata::Soa(_) => RecordType::SOA,
            Rdata::Ns(_) => RecordType::NS,
            Rdata::Nsec(_) => RecordType::NSEC,
            Rdata::Rrsig(_) => RecordType::RRSIG,
            Rdata::Dsync(_) => RecordType::Unknown(DSYNC_TYPE),
        }
    }

    /// Wire form of the RDATA.
    pub fn to_wire(&self) -> Vec<u8> {
        match self {
            Rdata::Cds(ds) | Rdata::Ds(ds) => ds.to_wire(),
            Rdata::Cdnskey(key) | Rdata::Dnskey(key) => key.to_wire(),
            Rdata::Csync(csync) => csync.to_wire(),
            Rdata::Soa(soa) => soa.to_wire(),
            Rdata::Ns(name) => canonical_wire(name),
            Rdata::Nsec(nsec) => nsec.to_wire(),
            Rdata::Rrsig(rrsig) => rrsig.to_wire(),
            Rdata::Dsync(dsync) => dsync.to_wire(),
        }
    }
}

impl fmt::Display for Rdata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rdata::Cds(ds) | Rdata::Ds(ds) => ds.fmt(f),
            Rdata::Cdnskey(key) | Rdata::Dnskey(key) => key.fmt(f),
            Rdata::Csync(csync) => csync.fmt(f),
            Rdata::Soa(soa) => soa.fmt(f),
            Rdata::Ns(name) => f.write_str(&display(name)),
            Rdata::Nsec(nsec) => nsec.fmt(f),
            Rdata::Rrsig(rrsig) => rrsig.fmt(f),
            Rdata::Dsync(dsync) => dsync.fmt(f),
        }
    }
}

/// The DSYNC type code (RFC 9859 §6); hickory has no variant for it.
pub const DSYNC_TYPE: u16 = 66;

/// RDATA in the generic form of RFC 3597 §5: `\# <length> <hex>`.
pub fn generic_to_text(rdata: &[u8]) -> String {
    if rdata.is_empty() {
        return "\\# 0".into();
    }
    format!(
        "\\# {} {}",
        rdata.len(),
        data_encoding::HEXUPPER.encode(rdata)
    )
}

/// Parses the generic form `\# <length> <hex>` (hex may be split by
/// spaces); `None` when `text` does not start with `\#`.
pub fn generic_from_text(text: &str) -> Option<Result<Vec<u8>, GenericError>> {
    let rest = text.trim_start().strip_prefix("\\#")?;
    Some(generic_data(rest))
}

/// The octets after `\#`: the length, then hex that must hold that many.
fn generic_data(rest: &str) -> Result<Vec<u8>, GenericError> {
    let mut fields = rest.split_whitespace();
    let len = fields.next().ok_or(GenericError::NoLength)?;
    let length = len.parse::<usize>().map_err(|_| GenericError::BadLength {
        text: len.to_string(),
    })?;
    let hex: String = fields.collect::<String>().to_ascii_uppercase();
    let data = data_encoding::HEXUPPER
        .decode(hex.as_bytes())
        .map_err(GenericError::BadHex)?;
    if data.len() != length {
        return Err(GenericError::LengthMismatch {
            length,
            octets: data.len(),
        });
    }
    Ok(data)
}

/// The next white-space separated field, `field` of the RDATA, as a number
/// of type `T`.
pub(crate) fn next_number<'a, T: std::str::FromStr>(
    fields: &mut impl Iterator<Item = &'a str>,
    field: &'static str,
) -> Result<T, TextError> {
    let number = match fields.next() {
        None => Err(NumberError::Missing),
        Some(text) => text.parse::<T>().map_err(|_| NumberError::NotANumber {
            text: text.to_string(),
        }),
    };
    number.map_err(|source| TextError::Number { field, source })
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
        assert_eq!(
            Dnskey::from_text("257 3").expect_err("short").to_string(),
            "bad DNSKEY rdata \"257 3\": algorithm: missing"
        );
        assert!(matches!(
            Dnskey::from_text("257 3 13 !!!"),
            Err(RdataError::Text {
                why: TextError::NotBase64 { .. },
                ..
            })
        ));
        assert_eq!(
            Dnskey::from_text("70000 3 13 AA==")
                .expect_err("flags > 65535")
                .to_string(),
            "bad DNSKEY rdata \"70000 3 13 AA==\": flags: \"70000\" is not a number in range"
        );
    }

    #[test]
    fn generic_rfc3597_form() {
        let dsync = Dsync::from_text("CDS NOTIFY 5300 rr-endpoint.example.").expect("valid");
        let text = generic_to_text(&dsync.to_wire());
        assert_eq!(
            text,
            "\\# 26 003B0114B40B72722D656E64706F696E74076578616D706C6500"
        );
        assert_eq!(Dsync::from_text(&text).expect("valid"), dsync);
        assert_eq!(
            generic_from_text("\\# 2 00 3b").expect("generic"),
            Ok(vec![0, 0x3b])
        );
        assert_eq!(
            generic_from_text("\\# 3 003b").expect("generic"),
            Err(GenericError::LengthMismatch {
                length: 3,
                octets: 2
            })
        );
        assert_eq!(
            generic_from_text("\\# x 00").expect("generic"),
            Err(GenericError::BadLength { text: "x".into() })
        );
        assert_eq!(
            generic_from_text("\\#").expect("generic"),
            Err(GenericError::NoLength)
        );
        assert!(generic_from_text("CDS NOTIFY 1 t.").is_none());
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

    #[test]
    fn an_rrsig_header_is_read_where_and_only_where_the_whole_rrsig_is() {
        let rrsig = Rrsig {
            type_covered: hickory_proto::rr::RecordType::CDS,
            algorithm: 13,
            labels: 3,
            original_ttl: 3600,
            expiration: 1_800_086_400,
            inception: 1_800_000_000,
            key_tag: 4711,
            signer: crate::dns::parse_name("_signal.ns1.example.net.").expect("valid"),
            signature: vec![7; 64],
        };
        let wire = rrsig.to_wire();
        let header = RrsigHeader::from_wire(&wire).expect("valid");
        assert_eq!(
            (header.type_covered, header.algorithm, header.key_tag),
            (59, 13, 4711)
        );
        assert_eq!(
            (header.expiration, header.inception),
            (1_800_086_400, 1_800_000_000)
        );
        // Every cut, and every octet of the signer name changed: the two
        // parsers agree.
        for end in 0..wire.len() {
            assert_eq!(
                RrsigHeader::from_wire(&wire[..end]).is_some(),
                Rrsig::from_wire(&wire[..end]).is_some(),
                "cut at {end}"
            );
        }
        for at in 18..wire.len() - 64 {
            for value in [0, 1, 63, 64, 0xc0, 0xff] {
                let mut bad = wire.clone();
                bad[at] = value;
                assert_eq!(
                    RrsigHeader::from_wire(&bad).is_some(),
                    Rrsig::from_wire(&bad).is_some(),
                    "octet {at} = {value}"
                );
            }
        }
        // Signer names of exactly 255 octets (the most RFC 1035 §3.1 allows)
        // and of 256: labels of 63, 63, 63 and 62 or 63 octets, plus the
        // length octets and the root.
        let signer_of = |last: usize| {
            let mut out = wire[..18].to_vec();
            for len in [63, 63, 63, last] {
                out.push(len as u8);
                out.extend(std::iter::repeat_n(b'a', len));
            }
            out.push(0);
            out.extend_from_slice(&[7; 64]);
            out
        };
        let longest = signer_of(61);
        assert_eq!(longest.len() - 18 - 64, 255);
        assert!(RrsigHeader::from_wire(&longest).is_some(), "255 octets");
        assert!(Rrsig::from_wire(&longest).is_some(), "255 octets (hickory)");
        let too_long = signer_of(62);
        assert!(RrsigHeader::from_wire(&too_long).is_none(), "256 octets");
        assert!(
            Rrsig::from_wire(&too_long).is_none(),
            "256 octets (hickory)"
        );
    }
}
