//! Talking to the parent: find where it wants to be told (DSYNC discovery,
//! RFC 9859 §4.1), wait until every server agrees (the consistency gate,
//! RFC 9975), tell it (generalized NOTIFY, RFC 9859 §4.2), and watch it act
//! (the parent observer, whose view feeds the policy as a fact).
//!
//! Effects live here and in [`agent`], the daemon's task for all of it; the
//! policy stays pure and only ever sees a [`crate::policy::ParentView`].
//! [`plan`] turns one child's desired signals into what the agent needs:
//! fingerprints (did anything change?) and the gate's server groups.

pub mod agent;
pub mod counters;
pub mod discovery;
pub mod gate;
pub mod job;
pub mod ledger;
pub mod observer;
pub mod recent;
pub mod resolver;
pub mod scan;
mod timers;

use std::hash::{Hash, Hasher};

use hickory_proto::rr::{Name, RecordType};

use crate::{
    dns::{Dnskey, RecordSet, name::display},
    policy::{ParentView, ZoneSignals},
};
use gate::{ExpectedRrset, ServerGroup};

/// A signalling zone as the gate sees it.
#[derive(Debug, Clone)]
pub struct SignalingTarget {
    /// Its apex.
    pub apex: Name,
    /// The NS host whose signals it carries.
    pub ns_host: Name,
    /// The servers that serve it (its `nameservers`).
    pub hosts: Vec<Name>,
    /// Its DNSKEYs, to check the `_dsboot` signatures.
    pub dnskeys: Vec<Dnskey>,
}

/// What the agent needs to know about one child after a round.
#[derive(Debug, Clone)]
pub struct ChildReport {
    /// The child zone.
    pub zone: Name,
    /// Fingerprint of the desired apex CDS + CDNSKEY (0 = none).
    pub cds: u64,
    /// Fingerprint of the desired apex CSYNC (0 = none).
    pub csync: u64,
    /// The nameservers the gate asks (the parent's NS set, else the
    /// configured `nameservers`), for the parent's-eye check.
    pub nameservers: Vec<Name>,
    /// Servers that must agree before NOTIFY(CDS).
    pub cds_groups: Vec<ServerGroup>,
    /// Servers that must agree before NOTIFY(CSYNC).
    pub csync_groups: Vec<ServerGroup>,
}

/// A stable fingerprint of RRsets' RDATA (0 only when all are empty).
pub fn fingerprint(sets: &[&RecordSet]) -> u64 {
    let mut data: Vec<(u16, Vec<u8>)> = sets
        .iter()
        .flat_map(|s| {
            let rtype = u16::from(s.rtype());
            s.rdatas()
                .iter()
                .map(move |r| (rtype, r.to_wire()))
                .collect::<Vec<_>>()
        })
        .collect();
    if data.is_empty() {
        return 0;
    }
    data.sort();
    // FNV-1a over the sorted records: stable across runs and builds (the
    // ledger stores it), unlike std's randomised hasher.
    let mut hasher = Fnv(0xcbf2_9ce4_8422_2325);
    data.hash(&mut hasher);
    hasher.finish().max(1)
}

struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

fn expected(owner: &Name, set: &RecordSet, rtype: RecordType) -> ExpectedRrset {
    let mut rdatas: Vec<Vec<u8>> = set.rdatas().iter().map(|r| r.to_wire()).collect();
    rdatas.sort();
    rdatas.dedup();
    ExpectedRrset {
        owner: owner.clone(),
        rtype,
        rdatas,
    }
}

/// The agent's view of one child: `nameservers` are the configured NS
/// hosts, used when the parent's delegation has not been observed.
pub fn plan(
    signals: &ZoneSignals,
    nameservers: &[Name],
    view: Option<&ParentView>,
    signaling: &[SignalingTarget],
) -> ChildReport {
    let zone = &signals.zone;
    // RFC 9975: the parent asks the servers of its own delegation.
    let hosts: Vec<Name> = view
        .and_then(|v| v.ns.clone())
        .filter(|ns| !ns.is_empty())
        .unwrap_or_else(|| nameservers.to_vec());
    let apex = ServerGroup {
        label: format!("child {}", display(zone)),
        hosts: hosts.clone(),
        expected: vec![
            expected(zone, &signals.cds, RecordType::CDS),
            expected(zone, &signals.cdnskey, RecordType::CDNSKEY),
        ],
        signed_by: None,
    };
    let mut cds_groups = vec![apex];
    for target in signaling {
        let Some(boot) = signals.dsboot.iter().find(|b| b.ns == target.ns_host) else {
            continue;
        };
        cds_groups.push(ServerGroup {
            label: format!("signalling zone {}", display(&target.apex)),
            hosts: target.hosts.clone(),
            expected: vec![
                expected(&boot.owner, &boot.cds, RecordType::CDS),
                expected(&boot.owner, &boot.cdnskey, RecordType::CDNSKEY),
            ],
            signed_by: Some((target.apex.clone(), target.dnskeys.clone())),
        });
    }
    let csync_groups = match &signals.csync {
        Some(set) => vec![ServerGroup {
            label: format!("child {}", display(zone)),
            hosts: hosts.clone(),
            expected: vec![expected(zone, set, RecordType::CSYNC)],
            signed_by: None,
        }],
        None => Vec::new(),
    };
    ChildReport {
        zone: zone.clone(),
        cds: fingerprint(&[&signals.cds, &signals.cdnskey]),
        csync: signals.csync.as_ref().map_or(0, |s| fingerprint(&[s])),
        nameservers: hosts,
        cds_groups,
        csync_groups,
    }
}
