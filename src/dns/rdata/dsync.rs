//! DSYNC (type 66, RFC 9859 §2): where a parent wants to be told that a
//! child's CDS/CDNSKEY or CSYNC changed.
//!
//! ```text
//! RDATA: RRtype (u16) | Scheme (u8) | Port (u16) | Target (uncompressed name)
//! Text:  CDS NOTIFY 5359 cds-scanner.example.net.
//! ```
//! Scheme 1 is NOTIFY; scheme 0 and port 0 mean "ignore this record" (§2.1).
//! Schemes without a mnemonic print as decimals (BIND and Knot know only
//! `NOTIFY`). The target keeps its case in canonical form (RFC 3597 §7: a
//! post-3597 type); signalbox only reads DSYNC, never signs it, and names
//! parsed from text are lower-cased like every name it handles.

use std::fmt;

use hickory_proto::rr::{Name, RecordType};

use super::{RdataError, TextError, next_number};
use crate::dns::{
    name::{display, parse_name, wire_len},
    type_mnemonic,
    wire::{put_u16, u16_at},
};

/// DSYNC RDATA.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Dsync {
    /// The type whose changes are announced (CDS or CSYNC).
    pub rrtype: RecordType,
    /// How to announce: 1 = NOTIFY.
    pub scheme: u8,
    /// Port at the target.
    pub port: u16,
    /// Host to announce to.
    pub target: Name,
}

impl Dsync {
    /// The NOTIFY scheme (RFC 9859 §2.1).
    pub const SCHEME_NOTIFY: u8 = 1;

    /// True when consumers must ignore the record: scheme 0 or port 0.
    pub fn is_null(&self) -> bool {
        self.scheme == 0 || self.port == 0
    }

    /// Wire form (target uncompressed, case kept).
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(5 + wire_len(&self.target));
        put_u16(&mut out, u16::from(self.rrtype));
        out.push(self.scheme);
        put_u16(&mut out, self.port);
        for label in self.target.iter() {
            out.push(label.len() as u8);
            out.extend_from_slice(label);
        }
        out.push(0);
        out
    }

    /// Parses wire RDATA (the target must not be compressed, RFC 9859 §2).
    pub fn from_wire(data: &[u8]) -> Result<Self, RdataError> {
        let wire = |why| RdataError::Wire {
            rtype: "DSYNC",
            why,
        };
        let short = || wire("shorter than 6 octets");
        if data.len() < 6 {
            return Err(short());
        }
        let rrtype = RecordType::from(u16_at(data, 0).ok_or_else(short)?);
        let scheme = data[2];
        let port = u16_at(data, 3).ok_or_else(short)?;
        let (target, len) = crate::dns::name::from_wire(&data[5..])
            .ok_or_else(|| wire("target is not an uncompressed name"))?;
        if 5 + len != data.len() {
            return Err(wire("trailing octets after the target"));
        }
        Ok(Dsync {
            rrtype,
            scheme,
            port,
            target,
        })
    }

    /// Parses presentation text: `CDS NOTIFY 5359 target.`, numbers allowed
    /// for type (`TYPE59`) and scheme, or the generic `\# 26 003b...`.
    pub fn from_text(text: &str) -> Result<Self, RdataError> {
        let bad = |why: TextError| RdataError::Text {
            rtype: "DSYNC",
            text: text.to_string(),
            why,
        };
        if let Some(generic) = super::generic_from_text(text) {
            return Self::from_wire(&generic.map_err(|e| bad(e.into()))?);
        }
        let mut fields = text.split_whitespace();
        let missing = |field| bad(TextError::Missing { field });
        let rrtype = match fields.next() {
            None => return Err(missing("RRtype")),
            Some(t) => parse_type(t).ok_or_else(|| {
                bad(TextError::UnknownType {
                    text: t.to_string(),
                })
            })?,
        };
        let scheme = match fields.next() {
            None => return Err(missing("scheme")),
            Some(s) if s.eq_ignore_ascii_case("NOTIFY") => Self::SCHEME_NOTIFY,
            Some(s) => s.parse::<u8>().map_err(|_| {
                bad(TextError::Scheme {
                    text: s.to_string(),
                })
            })?,
        };
        let port = next_number(&mut fields, "port").map_err(bad)?;
        let target = match fields.next() {
            None => return Err(missing("target")),
            Some(t) => parse_name(t).map_err(|e| bad(TextError::Target(e)))?,
        };
        if let Some(extra) = fields.next() {
            return Err(bad(TextError::Trailing {
                extra: extra.to_string(),
            }));
        }
        Ok(Dsync {
            rrtype,
            scheme,
            port,
            target,
        })
    }
}

/// A type mnemonic or `TYPEnnn` (RFC 3597 §5).
fn parse_type(text: &str) -> Option<RecordType> {
    let upper = text.to_ascii_uppercase();
    if let Some(code) = upper.strip_prefix("TYPE") {
        return code.parse::<u16>().ok().map(RecordType::from);
    }
    upper.parse::<RecordType>().ok()
}

impl fmt::Display for Dsync {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", type_mnemonic(self.rrtype))?;
        if self.scheme == Self::SCHEME_NOTIFY {
            f.write_str("NOTIFY")?;
        } else {
            write!(f, "{}", self.scheme)?;
        }
        write!(f, " {} {}", self.port, display(&self.target))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_example_wire_and_text() {
        // child._dsync.example. DSYNC CDS NOTIFY 5300 rr-endpoint.example. (RFC 9859 §2)
        let d = Dsync::from_text("CDS NOTIFY 5300 rr-endpoint.example.").expect("valid");
        let hex = data_encoding::HEXLOWER.encode(&d.to_wire());
        assert_eq!(hex, "003b0114b40b72722d656e64706f696e74076578616d706c6500");
        assert_eq!(Dsync::from_wire(&d.to_wire()).expect("valid"), d);
        assert_eq!(d.to_string(), "CDS NOTIFY 5300 rr-endpoint.example.");
        assert!(!d.is_null());
    }

    #[test]
    fn unknown_schemes_print_as_numbers_and_null_records_are_flagged() {
        let d = Dsync::from_text("csync 2 53 target.example.").expect("valid");
        assert_eq!(d.to_string(), "CSYNC 2 53 target.example.");
        assert_eq!(d.rrtype, RecordType::CSYNC);
        assert!(Dsync::from_text("CDS 0 53 t.").expect("valid").is_null());
        assert!(
            Dsync::from_text("CDS NOTIFY 0 t.")
                .expect("valid")
                .is_null()
        );
        assert_eq!(
            Dsync::from_text("TYPE59 1 5359 t.").expect("valid").rrtype,
            RecordType::CDS
        );
    }

    #[test]
    fn bad_input_is_an_error() {
        for text in [
            "",
            "CDS",
            "CDS NOTIFY",
            "CDS NOTIFY 70000 t.",
            "CDS BOGUS 1 t.",
            "NOPE 1 1 t.",
            "CDS 1 1 t. extra",
        ] {
            assert!(Dsync::from_text(text).is_err(), "{text:?}");
        }
        assert!(Dsync::from_wire(&[0, 59, 1, 0]).is_err());
        assert!(Dsync::from_wire(&[0, 59, 1, 0, 53, 0xc0, 0x0c]).is_err());
        assert!(Dsync::from_wire(&[0, 59, 1, 0, 53, 0, 7]).is_err());
    }
}
