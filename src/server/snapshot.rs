//! What the server answers from: an immutable snapshot of every served zone,
//! swapped as a whole when the daemon publishes a new version (readers load
//! it without locks, `arc-swap`). A served zone is a signed version of its
//! store, the IXFR journal (RFC 1995) that leads to it and the transfer ACL
//! (RFC 5936 §6), or the reason it cannot be served (SERVFAIL).
//!
//! `answer` (queries) and `xfr` (AXFR/IXFR) both read these types; neither
//! owns them.

use std::sync::Arc;

use hickory_proto::rr::Name;
use rustc_hash::FxHashMap;

use crate::{
    config::AclEntry,
    dns::name::display,
    tsig,
    zone::{Node, ZoneStore, journal::Journal},
};

/// One served zone: a version of its store, or why it cannot be served.
#[derive(Debug, Clone)]
pub struct ServedZone {
    pub(super) store: ZoneStore,
    /// The store's apex node (SOA, NS, DNSKEY), kept beside it: every
    /// answer needs the SOA or the apex's own name, and looking it up
    /// again per query was a second hash lookup.
    pub(super) apex: Option<Node>,
    /// Why it cannot be served (SERVFAIL), if so.
    pub(super) broken: Option<String>,
    /// Recent differences, for IXFR.
    pub(super) journal: Arc<Journal>,
    /// Who may transfer it.
    pub(super) acl: Arc<[AclEntry]>,
}

impl ServedZone {
    /// A zone to answer from.
    pub fn new(store: ZoneStore) -> Self {
        ServedZone {
            apex: store.apex_node().cloned(),
            store,
            broken: None,
            journal: Arc::default(),
            acl: Arc::new([]),
        }
    }

    /// A zone that cannot be served (it could not be signed): SERVFAIL.
    pub fn broken(apex: &Name, why: String) -> Self {
        ServedZone {
            broken: Some(why),
            ..ServedZone::new(ZoneStore::new(apex.clone()))
        }
    }

    /// The same zone, transferable with `journal` to whom `acl` allows.
    pub fn with_transfers(mut self, journal: Arc<Journal>, acl: Arc<[AclEntry]>) -> Self {
        self.journal = journal;
        self.acl = acl;
        self
    }

    /// The zone's data.
    pub fn store(&self) -> &ZoneStore {
        &self.store
    }
}

impl std::fmt::Display for ServedZone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let apex = display(self.store.apex());
        match &self.broken {
            Some(why) => write!(f, "{apex} (not served: {why})"),
            None => write!(
                f,
                "{apex} serial {} ({} names)",
                self.store.serial(),
                self.store.len()
            ),
        }
    }
}

/// Everything `serve` answers from: every zone, swapped as a whole.
#[derive(Debug, Default)]
pub struct Snapshot {
    zones: FxHashMap<Box<[u8]>, Arc<ServedZone>>,
    /// Which wire lengths an apex has (bit `n`: some apex is `n` octets
    /// long): a query name is looked up only at the suffixes that could be
    /// an apex, not at every label (six hash lookups for a `_dsboot`
    /// name, ~8% of a query's CPU).
    apex_lengths: ApexLengths,
    /// Our EDNS UDP payload size.
    pub edns_udp_size: u16,
    /// TSIG keys.
    pub keyring: Arc<tsig::Keyring>,
    /// Followed zones whose primaries may NOTIFY.
    pub inbox: Option<Arc<super::inbound::FollowInbox>>,
    /// The RFC 9567 monitoring agent (`[report] agent`).
    pub report_agent: Option<Arc<super::report::ReportAgent>>,
}

impl Snapshot {
    /// A snapshot of `zones`.
    pub fn new(zones: Vec<Arc<ServedZone>>, edns_udp_size: u16) -> Self {
        let zones: FxHashMap<Box<[u8]>, Arc<ServedZone>> = zones
            .into_iter()
            .map(|z| (z.store.apex_wire().into(), z))
            .collect();
        let mut apex_lengths = ApexLengths::default();
        for apex in zones.keys() {
            apex_lengths.insert(apex.len());
        }
        Snapshot {
            zones,
            apex_lengths,
            edns_udp_size,
            keyring: Arc::default(),
            inbox: None,
            report_agent: None,
        }
    }

    /// The same, answering error reports for `agent`.
    pub fn with_report_agent(mut self, agent: Option<Arc<super::report::ReportAgent>>) -> Self {
        self.report_agent = agent;
        self
    }

    /// The same, accepting NOTIFY for followed zones.
    pub fn with_inbox(mut self, inbox: Option<Arc<super::inbound::FollowInbox>>) -> Self {
        self.inbox = inbox;
        self
    }

    /// The same, with TSIG keys.
    pub fn with_keyring(mut self, keyring: Arc<tsig::Keyring>) -> Self {
        self.keyring = keyring;
        self
    }

    /// The zones, for status and logs.
    pub fn zones(&self) -> impl Iterator<Item = &Arc<ServedZone>> {
        self.zones.values()
    }

    /// The zone holding `lower` (a lower-case wire name): longest apex match.
    pub(super) fn zone_arc_for(&self, lower: &[u8]) -> Option<&Arc<ServedZone>> {
        let mut at = 0;
        loop {
            let rest = lower.get(at..)?;
            if self.apex_lengths.may_hold(rest.len()) {
                if let Some(zone) = self.zones.get(rest) {
                    return Some(zone);
                }
            }
            let len = usize::from(*rest.first()?);
            if len == 0 {
                return None;
            }
            at += 1 + len;
        }
    }
}

/// A set of wire-name lengths, one bit each (a wire name is at most 255
/// octets, RFC 1035 §3.1; a longer length shares the last word's bits,
/// which only costs a look-up).
#[derive(Debug, Default, Clone, Copy)]
struct ApexLengths([u64; 4]);

impl ApexLengths {
    fn bit(len: usize) -> (usize, u64) {
        ((len / 64).min(3), 1 << (len % 64))
    }

    fn insert(&mut self, len: usize) {
        let (word, bit) = Self::bit(len);
        self.0[word] |= bit;
    }

    /// False when no apex is `len` octets long.
    fn may_hold(&self, len: usize) -> bool {
        let (word, bit) = Self::bit(len);
        self.0[word] & bit != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::name::canonical_wire;

    fn wire(name: &str) -> Vec<u8> {
        canonical_wire(&Name::from_ascii(name).expect("a name"))
    }

    /// The longest apex wins, also when apexes of other lengths lie between
    /// (only suffixes as long as some apex are looked up).
    #[test]
    fn a_name_is_served_from_the_longest_apex_above_it() {
        // Apex wire lengths 9, 13, 27, 1 and 84 (past the bitmap's first
        // 64 bits).
        let long = format!("{}.{}.example.", "a".repeat(63), "b".repeat(10));
        let zones = [
            "example.",
            "sub.example.",
            "_signal.ns1.operator.test.",
            ".",
            &long,
        ]
        .map(|apex| {
            let apex = Name::from_ascii(apex).expect("a name");
            Arc::new(ServedZone::new(ZoneStore::new(apex)))
        });
        let snapshot = Snapshot::new(zones.to_vec(), 1232);
        let apex_of = |name: &str| {
            snapshot
                .zone_arc_for(&wire(name))
                .map(|z| display(z.store.apex()).to_string())
        };
        assert_eq!(apex_of("a.b.sub.example.").as_deref(), Some("sub.example."));
        assert_eq!(apex_of("sub.example.").as_deref(), Some("sub.example."));
        assert_eq!(apex_of("xsub.example.").as_deref(), Some("example."));
        assert_eq!(
            apex_of("_dsboot.child.example._signal.ns1.operator.test.").as_deref(),
            Some("_signal.ns1.operator.test.")
        );
        assert_eq!(apex_of("other.test.").as_deref(), Some("."));
        assert_eq!(apex_of(&format!("x.{long}")), Some(long.clone()));
        assert_eq!(apex_of(&long), Some(long.clone()));
        assert_eq!(apex_of(&long[2..]).as_deref(), Some("example."));
        let without_root = Snapshot::new(zones[..3].to_vec(), 1232);
        assert!(without_root.zone_arc_for(&wire("other.test.")).is_none());
        assert!(without_root.zone_arc_for(&[]).is_none());
    }
}
