//! The options of a served signalling zone: SOA fields and TTLs, RRSIG
//! validity (RFC 4034 §3.1.5), how SOA serials move (RFC 1982), who may
//! transfer it (RFC 5936 §6) and how much IXFR history (RFC 1995) it keeps.
//!
//! These are settings, so they live in `config`; `zone` and `server` read
//! them and `config` needs nothing from either.

use std::{net::SocketAddr, time::Duration};

use hickory_proto::rr::Name;

/// How a new serial is chosen (like BIND's `serial-update-method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SerialPolicy {
    /// The old serial plus one.
    #[default]
    Increment,
    /// Seconds since the epoch, or old + 1 when that is not larger.
    Unixtime,
    /// `YYYYMMDDnn`, or old + 1 when that is not larger.
    Dateserial,
}

/// Bounds of a zone's IXFR journal (RFC 1995): versions, octets and age
/// kept, like BIND's `max-journal-size` and Knot's `journal-max-usage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalLimits {
    /// Most versions kept.
    pub versions: usize,
    /// Most octets kept.
    pub bytes: usize,
    /// Oldest entry kept.
    pub age: Duration,
}

impl Default for JournalLimits {
    fn default() -> Self {
        JournalLimits {
            versions: 1000,
            bytes: 64 << 20,
            age: Duration::from_secs(7 * 86_400),
        }
    }
}

/// One entry of an `allow_transfer` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AclEntry {
    /// An address prefix: `127.0.0.0/8`, `::1/128`, `192.0.2.1`.
    Prefix(std::net::IpAddr, u8),
    /// Requests signed with this TSIG key: `key:NAME`.
    Key(Name),
}

impl AclEntry {
    /// True when a request from `peer`, signed with `key` (if any), matches.
    pub fn matches(&self, peer: std::net::IpAddr, key: Option<&Name>) -> bool {
        match self {
            AclEntry::Key(name) => key == Some(name),
            AclEntry::Prefix(net, len) => prefix_contains(*net, *len, peer),
        }
    }
}

fn prefix_contains(net: std::net::IpAddr, len: u8, addr: std::net::IpAddr) -> bool {
    let (net, addr, bits): (u128, u128, u8) = match (net, addr) {
        (std::net::IpAddr::V4(n), std::net::IpAddr::V4(a)) => {
            (u32::from(n).into(), u32::from(a).into(), 32)
        }
        (std::net::IpAddr::V6(n), std::net::IpAddr::V6(a)) => (u128::from(n), u128::from(a), 128),
        (std::net::IpAddr::V6(n), std::net::IpAddr::V4(a)) => {
            (u128::from(n), u128::from(a.to_ipv6_mapped()), 128)
        }
        _ => return false,
    };
    if len == 0 {
        return true;
    }
    let shift = u32::from(bits - len.min(bits));
    (net >> shift) == (addr >> shift)
}

/// SOA, TTL and signing options of a served zone (BIND-like defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneOptions {
    /// TTL of SOA and NS (and DNSKEY unless `dnskey_ttl`): 1h.
    pub ttl: u32,
    /// DNSKEY TTL; default: the keys' `.key` TTL, else `ttl`.
    pub dnskey_ttl: Option<u32>,
    /// SOA MNAME; default: the first NS.
    pub soa_mname: Option<Name>,
    /// SOA RNAME; default: `hostmaster.<apex>`.
    pub soa_rname: Option<Name>,
    /// SOA refresh: 1h.
    pub soa_refresh: u32,
    /// SOA retry: 10m.
    pub soa_retry: u32,
    /// SOA expire: 14d.
    pub soa_expire: u32,
    /// SOA minimum (negative TTL, RFC 2308): 5m.
    pub soa_minimum: u32,
    /// RRSIG validity: 14d.
    pub signature_validity: u32,
    /// Re-sign when less than this remains: 5d.
    pub signature_refresh: u32,
    /// Expirations are spread over this much (less validity): 12h.
    pub signature_jitter: u32,
    /// Inception is backdated by this: 1h.
    pub signature_inception_offset: u32,
    /// How serials move.
    pub serial_policy: SerialPolicy,
    /// Secondaries to NOTIFY on every new serial.
    pub secondaries: Vec<SocketAddr>,
    /// Who may transfer the zone (default: nobody).
    pub allow_transfer: Vec<AclEntry>,
    /// TSIG key to sign NOTIFYs with.
    pub notify_key: Option<Name>,
    /// IXFR journal bounds.
    pub journal: JournalLimits,
}

impl Default for ZoneOptions {
    fn default() -> Self {
        ZoneOptions {
            ttl: 3600,
            dnskey_ttl: None,
            soa_mname: None,
            soa_rname: None,
            soa_refresh: 3600,
            soa_retry: 600,
            soa_expire: 14 * 86_400,
            soa_minimum: 300,
            signature_validity: 14 * 86_400,
            signature_refresh: 5 * 86_400,
            signature_jitter: 12 * 3600,
            signature_inception_offset: 3600,
            serial_policy: SerialPolicy::Increment,
            secondaries: Vec::new(),
            allow_transfer: Vec::new(),
            notify_key: None,
            journal: JournalLimits::default(),
        }
    }
}

#[cfg(test)]
mod acl_tests {
    use super::*;

    #[test]
    fn prefixes() {
        let net = |s: &str| s.parse::<std::net::IpAddr>().expect("ip");
        assert!(prefix_contains(net("127.0.0.0"), 8, net("127.1.2.3")));
        assert!(!prefix_contains(net("127.0.0.0"), 8, net("128.0.0.1")));
        assert!(prefix_contains(net("::1"), 128, net("::1")));
        assert!(!prefix_contains(net("::1"), 128, net("::2")));
        assert!(prefix_contains(net("0.0.0.0"), 0, net("192.0.2.1")));
        assert!(prefix_contains(
            net("::ffff:127.0.0.0"),
            104,
            net("127.0.0.9")
        ));
    }
}

/// Why an `allow_transfer` entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclEntryError {
    /// Neither an address (prefix) nor `key:NAME`.
    #[error("{text:?} is neither an address prefix (\"127.0.0.0/8\") nor \"key:NAME\"")]
    NotAnEntry {
        /// The entry as written.
        text: String,
    },
    /// A prefix length beyond the address family's bits.
    #[error("{text:?}: prefix length must be 0..={max}")]
    PrefixLength {
        /// The entry as written.
        text: String,
        /// 32 or 128.
        max: u8,
    },
    /// `key:NAME` with a name that does not parse.
    #[error(transparent)]
    KeyName(#[from] crate::dns::NameError),
}

/// `127.0.0.0/8`, `::1/128` or a bare address.
pub(super) fn parse_prefix(text: &str) -> Result<AclEntry, AclEntryError> {
    let (addr, len) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text, None),
    };
    let addr: std::net::IpAddr = addr.parse().map_err(|_| AclEntryError::NotAnEntry {
        text: text.to_string(),
    })?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = match len {
        None => max,
        Some(l) => l.parse::<u8>().ok().filter(|l| *l <= max).ok_or_else(|| {
            AclEntryError::PrefixLength {
                text: text.to_string(),
                max,
            }
        })?,
    };
    Ok(AclEntry::Prefix(addr, len))
}
