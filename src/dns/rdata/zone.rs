//! Zone-maintenance RDATA: SOA (RFC 1035 §3.3.13) and CSYNC (RFC 7477 §2.1).

use std::fmt;

use hickory_proto::rr::{Name, RecordType};

use super::RdataError;
use crate::dns::{
    bitmap,
    name::{canonical_wire, display},
    type_mnemonic,
    wire::{put_u16, put_u32, u16_at, u32_at},
};

/// SOA RDATA (RFC 1035 §3.3.13).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Soa {
    /// Primary server.
    pub mname: Name,
    /// Responsible mailbox.
    pub rname: Name,
    /// Serial (RFC 1982 arithmetic).
    pub serial: u32,
    /// Refresh interval.
    pub refresh: u32,
    /// Retry interval.
    pub retry: u32,
    /// Expire time.
    pub expire: u32,
    /// Negative-caching TTL (RFC 2308).
    pub minimum: u32,
}

impl Soa {
    /// Wire form (names uncompressed, lower case: canonical, RFC 4034 §6.2).
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = canonical_wire(&self.mname);
        out.extend(canonical_wire(&self.rname));
        for v in [
            self.serial,
            self.refresh,
            self.retry,
            self.expire,
            self.minimum,
        ] {
            put_u32(&mut out, v);
        }
        out
    }
}

impl fmt::Display for Soa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {} {} {} {}",
            display(&self.mname),
            display(&self.rname),
            self.serial,
            self.refresh,
            self.retry,
            self.expire,
            self.minimum
        )
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
        put_u32(&mut out, self.serial);
        put_u16(&mut out, self.flags);
        out.extend(bitmap::encode(&self.types));
        out
    }

    /// Parses wire RDATA.
    pub fn from_wire(data: &[u8]) -> Result<Self, RdataError> {
        let wire = |why| RdataError::Wire {
            rtype: "CSYNC",
            why,
        };
        let short = || wire("shorter than 6 octets");
        if data.len() < 6 {
            return Err(short());
        }
        Ok(Csync {
            serial: u32_at(data, 0).ok_or_else(short)?,
            flags: u16_at(data, 4).ok_or_else(short)?,
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
