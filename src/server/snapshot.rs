//! What the server answers from: an immutable snapshot of every served zone,
//! swapped as a whole when the daemon publishes a new version (readers load
//! it without locks, `arc-swap`). A served zone is a signed version of its
//! store, the IXFR journal (RFC 1995) that leads to it and the transfer ACL
//! (RFC 5936 §6), or the reason it cannot be served (SERVFAIL).
//!
//! `answer` (queries) and `xfr` (AXFR/IXFR) both read these types; neither
//! owns them.

use std::{collections::HashMap, sync::Arc};

use hickory_proto::rr::Name;

use crate::{
    config::AclEntry,
    dns::name::display,
    tsig,
    zone::{ZoneStore, journal::Journal},
};

/// One served zone: a version of its store, or why it cannot be served.
#[derive(Debug, Clone)]
pub struct ServedZone {
    pub(super) store: ZoneStore,
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
    zones: HashMap<Box<[u8]>, Arc<ServedZone>>,
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
        Snapshot {
            zones: zones
                .into_iter()
                .map(|z| (z.store.apex_wire().into(), z))
                .collect(),
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
            if let Some(zone) = self.zones.get(&lower[at..]) {
                return Some(zone);
            }
            let len = usize::from(*lower.get(at)?);
            if len == 0 {
                return None;
            }
            at += 1 + len;
        }
    }
}
