//! Our thin layer over `hickory-proto`: domain names, record types, and the
//! RDATA of the record types signalbox publishes.
//!
//! Names and type codes come from hickory. The RDATA of DS/CDS, DNSKEY/CDNSKEY
//! (RFC 4034 §2, §5; RFC 7344 §3) and CSYNC (RFC 7477 §2.1) are small
//! byte-exact structs of our own: RFC 9615 requires the signalling RRsets to be
//! *byte-identical* to the apex RRsets, and BIND key files may carry algorithms
//! hickory normalises away, so we keep the octets exactly as read.
//!
//! [`wire`] holds the header constants, big-endian helpers, the clock and
//! message IDs; [`message`] builds and parses whole messages on top of it.

pub mod bitmap;
pub mod message;
pub mod name;
pub mod rdata;
pub mod record;
pub mod wire;

pub use hickory_proto::rr::{Name, RecordType};
pub use name::{NameError, parse_name};
pub use rdata::{Csync, Dnskey, Ds, Dsync, Nsec, Rdata, RdataError, Rrsig, RrsigHeader, Soa};
pub use record::{Record, RecordSet};

/// Presentation mnemonic of a record type: `CDS`, `NS`, or `TYPE66` when
/// there is no mnemonic we trust (RFC 3597 §5).
pub fn type_mnemonic(rtype: RecordType) -> String {
    match rtype {
        RecordType::Unknown(code) => format!("TYPE{code}"),
        other => {
            let text = other.to_string();
            if text.chars().all(|c| c.is_ascii_alphanumeric()) {
                text
            } else {
                format!("TYPE{}", u16::from(other))
            }
        }
    }
}
