//! What each parent checks and how long it waits: one table, each entry
//! with its source. `generic` is what the RFCs ask of every parent (RFC
//! 7344 §4.1, RFC 8078, RFC 9615 §4.2, RFC 9975 §3); the registry profiles
//! add their published acceptance rules on top, as recorded in
//! docs/INTEROP.md ("Parents and registries"):
//! check each registry's current policy page before relying on a date.

use std::time::Duration;

/// Which of the two RRsets a parent reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reads {
    /// CDS and CDNSKEY (both must agree when both are there).
    Both,
    /// CDS only.
    Cds,
    /// CDNSKEY only.
    Cdnskey,
}

/// One parent's acceptance rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Profile {
    /// `--profile` name.
    pub name: &'static str,
    /// Who runs it.
    pub parent: &'static str,
    /// The RRsets it reads.
    pub reads: Reads,
    /// The most CDS records it takes (`None`: no published limit).
    pub max_cds: Option<usize>,
    /// DS digest types it accepts (IANA numbers).
    pub digest_types: &'static [u8],
    /// DNSSEC algorithms it accepts (IANA numbers).
    pub algorithms: &'static [u8],
    /// How long an unauthenticated bootstrap must stay unchanged before it
    /// is accepted (`None`: not accepted without RFC 9615 signals).
    #[serde(serialize_with = "seconds")]
    pub unauthenticated_wait: Option<Duration>,
    /// RFC 9615 signals skip the wait.
    pub authenticated_bootstrap: bool,
    /// How often it scans.
    #[serde(serialize_with = "seconds")]
    pub scan_every: Option<Duration>,
    /// Where the rules come from.
    pub source: &'static str,
}

fn seconds<S: serde::Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(d) => s.serialize_some(&d.as_secs()),
        None => s.serialize_none(),
    }
}

const DAY: Duration = Duration::from_secs(86_400);

/// SHA-256 and SHA-384: what RFC 8624 §3.3 says to implement (SHA-1 MUST
/// NOT be used for new DS records; GOST is deprecated).
const DIGESTS: &[u8] = &[2, 4];
/// RSASHA256, RSASHA512, ECDSAP256SHA256, ECDSAP384SHA384, ED25519, ED448
/// (RFC 8624 §3.1: the algorithms recommended or allowed for signing).
const ALGORITHMS: &[u8] = &[8, 10, 13, 14, 15, 16];

/// Every profile.
pub const PROFILES: &[Profile] = &[
    Profile {
        name: "generic",
        parent: "any parent following the RFCs",
        reads: Reads::Both,
        max_cds: None,
        digest_types: DIGESTS,
        algorithms: ALGORITHMS,
        unauthenticated_wait: None,
        authenticated_bootstrap: true,
        scan_every: None,
        source: "RFC 7344 §4.1, RFC 8078 §3-4, RFC 9615 §4.2, RFC 9975 §3, RFC 8624 §3",
    },
    Profile {
        name: "ch",
        parent: "SWITCH (.ch, .li)",
        reads: Reads::Cds,
        max_cds: None,
        digest_types: DIGESTS,
        algorithms: ALGORITHMS,
        unauthenticated_wait: Some(Duration::from_secs(3 * 86_400)),
        authenticated_bootstrap: true,
        scan_every: Some(DAY),
        source: "SWITCH CDS policy as recorded in docs/INTEROP.md: CDS only, daily over TCP from several locations, 3 days unchanged before an unauthenticated bootstrap, RFC 9615 signals skip the wait, CDS signed by a key in both DNSKEY and DS",
    },
    Profile {
        name: "se",
        parent: "Internetstiftelsen (.se, .nu)",
        reads: Reads::Cds,
        max_cds: Some(6),
        digest_types: DIGESTS,
        algorithms: ALGORITHMS,
        unauthenticated_wait: Some(Duration::from_secs(72 * 3600)),
        authenticated_bootstrap: false,
        scan_every: Some(DAY),
        source: "Internetstiftelsen CDS policy as recorded in docs/INTEROP.md: CDS only, daily from three locations over TCP, at most 6 CDS, CDNSKEY if present must match, 72 h for bootstrap",
    },
    Profile {
        name: "cz",
        parent: "CZ.NIC (.cz, FRED AKM)",
        reads: Reads::Cdnskey,
        max_cds: None,
        digest_types: DIGESTS,
        algorithms: ALGORITHMS,
        unauthenticated_wait: Some(Duration::from_secs(7 * 86_400)),
        authenticated_bootstrap: false,
        scan_every: Some(DAY),
        source: "CZ.NIC FRED AKM as recorded in docs/INTEROP.md: CDNSKEY only, daily, 7 days unchanged on all NS over TCP",
    },
];

/// What the RFCs ask of every parent: the default.
pub const GENERIC: &Profile = &PROFILES[0];

/// The profile named `name`.
pub fn find(name: &str) -> Option<&'static Profile> {
    PROFILES.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

/// The profile names, for usage messages.
pub fn names() -> Vec<&'static str> {
    PROFILES.iter().map(|p| p.name).collect()
}
