//! What a signalling zone contains, before signing: SOA, NS, DNSKEY, its own
//! apex CDS/CDNSKEY, and the `_dsboot` RRsets of every child zone that lists
//! its NS host (RFC 9615 §2: one signalling domain per NS host).

use std::{collections::BTreeMap, sync::Arc};

use hickory_proto::rr::{Name, RecordType};
use jiff::Timestamp;

use crate::{
    config::SignalingZoneConfig,
    dns::{
        RecordSet, Soa,
        name::{canonical_key, canonical_wire, display},
    },
    keys::Key,
    policy::{Lifecycle, ZoneSignals},
};

/// One RRset in wire form: RDATA in canonical order, no duplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RrsetData {
    /// The type.
    pub rtype: RecordType,
    /// The TTL.
    pub ttl: u32,
    /// Canonical wire RDATA of each record, sorted.
    pub rdatas: Vec<Vec<u8>>,
}

impl RrsetData {
    /// An RRset from wire RDATA (sorted and de-duplicated here).
    pub fn new(rtype: RecordType, ttl: u32, mut rdatas: Vec<Vec<u8>>) -> Self {
        rdatas.sort();
        rdatas.dedup();
        RrsetData { rtype, ttl, rdatas }
    }

    /// The wire form of a policy RRset.
    pub fn from_set(set: &RecordSet) -> Self {
        RrsetData::new(set.rtype(), set.ttl(), set.wire_rdatas())
    }
}

/// The RRsets at one owner name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentNode {
    /// The owner (lower case).
    pub name: Name,
    /// RRsets, ordered by type code.
    pub rrsets: Vec<RrsetData>,
}

/// A zone's unsigned content, names in canonical order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneContent {
    /// The apex.
    pub apex: Name,
    /// Names with data, keyed by [`canonical_key`].
    pub nodes: BTreeMap<Vec<u8>, ContentNode>,
}

impl ZoneContent {
    /// An empty zone.
    pub fn new(apex: Name) -> Self {
        ZoneContent {
            apex,
            nodes: BTreeMap::new(),
        }
    }

    /// Adds (or replaces) an RRset; empty RRsets are ignored.
    pub fn add(&mut self, owner: &Name, rrset: RrsetData) {
        if rrset.rdatas.is_empty() {
            return;
        }
        let node = self
            .nodes
            .entry(canonical_key(owner))
            .or_insert_with(|| ContentNode {
                name: owner.clone(),
                rrsets: Vec::new(),
            });
        node.rrsets.retain(|r| r.rtype != rrset.rtype);
        node.rrsets.push(rrset);
        node.rrsets.sort_by_key(|r| u16::from(r.rtype));
    }

    /// Number of names with data.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when the zone has no names at all.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
}

/// The apex RRsets of a signalling zone: SOA (serial 0: the signer sets
/// it), NS, DNSKEY (its published keys), and its own CDS/CDNSKEY (`own`).
pub fn apex_rrsets(
    config: &SignalingZoneConfig,
    keys: &[Arc<Key>],
    own: &ZoneSignals,
    now: Timestamp,
) -> Vec<RrsetData> {
    let apex = &config.apex;
    let options = &config.options;
    let mname = options
        .soa_mname
        .clone()
        .or_else(|| config.nameservers.first().cloned())
        .unwrap_or_else(|| apex.clone());
    let rname = options.soa_rname.clone().unwrap_or_else(|| {
        apex.prepend_label("hostmaster")
            .unwrap_or_else(|_| apex.clone())
    });
    let soa = Soa {
        mname,
        rname,
        serial: 0,
        refresh: options.soa_refresh,
        retry: options.soa_retry,
        expire: options.soa_expire,
        minimum: options.soa_minimum,
    };
    let published: Vec<&Arc<Key>> = keys
        .iter()
        .filter(|k| Lifecycle::of(k, now, None).published)
        .collect();
    let dnskey_ttl = options
        .dnskey_ttl
        .or_else(|| published.iter().filter_map(|k| k.ttl).min())
        .unwrap_or(options.ttl);
    let mut rrsets = vec![
        RrsetData::new(RecordType::SOA, options.ttl, vec![soa.to_wire()]),
        RrsetData::new(
            RecordType::NS,
            options.ttl,
            config.nameservers.iter().map(canonical_wire).collect(),
        ),
        RrsetData::new(
            RecordType::DNSKEY,
            dnskey_ttl,
            published.iter().map(|k| k.dnskey.to_wire()).collect(),
        ),
        RrsetData::from_set(&own.cds),
        RrsetData::from_set(&own.cdnskey),
    ];
    rrsets.retain(|r| !r.rdatas.is_empty());
    rrsets
}

/// A child's RFC 9615 signal for NS host `ns_host`: the owner and its
/// CDS/CDNSKEY RRsets (`None` when the policy publishes none there).
pub fn dsboot_rrsets(signals: &ZoneSignals, ns_host: &Name) -> Option<(Name, Vec<RrsetData>)> {
    let boot = signals.dsboot.iter().find(|b| &b.ns == ns_host)?;
    let rrsets: Vec<RrsetData> = [&boot.cds, &boot.cdnskey]
        .into_iter()
        .filter(|set| !set.is_empty())
        .map(RrsetData::from_set)
        .collect();
    (!rrsets.is_empty()).then(|| (boot.owner.clone(), rrsets))
}

/// Builds the whole unsigned content of one signalling zone: `keys` are its
/// own keys, `own` the policy's signals for its own apex, `children` every
/// child zone's signals (only those for this zone's NS host are taken).
pub fn signaling_zone(
    config: &SignalingZoneConfig,
    keys: &[Arc<Key>],
    own: &ZoneSignals,
    children: &[ZoneSignals],
    now: Timestamp,
) -> ZoneContent {
    let mut content = ZoneContent::new(config.apex.clone());
    for rrset in apex_rrsets(config, keys, own, now) {
        content.add(&config.apex, rrset);
    }
    let ns_host = config.ns_host();
    for signals in children {
        if let Some((owner, rrsets)) = dsboot_rrsets(signals, &ns_host) {
            for rrset in rrsets {
                content.add(&owner, rrset);
            }
        }
    }
    let zone = display(&config.apex);
    tracing::debug!(zone, names = content.len(), "signalling zone content built");
    content
}

/// The apex of the signalling zone `_signal.ns1.example.net.` the unit tests
/// and the fuzz targets sign: SOA, NS and `dnskey`.
#[cfg(any(test, fuzzing))]
pub(crate) fn test_signalling_apex(dnskey: &crate::dns::Dnskey) -> ZoneContent {
    use crate::dns::{Soa, name::canonical_wire, parse_name};
    let name = |text: &str| parse_name(text).expect("valid");
    let apex = name("_signal.ns1.example.net.");
    let mut content = ZoneContent::new(apex.clone());
    let soa = Soa {
        mname: name("ns1.example.net."),
        rname: name("hostmaster.example.net."),
        serial: 0,
        refresh: 3600,
        retry: 600,
        expire: 1_209_600,
        minimum: 300,
    };
    content.add(
        &apex,
        RrsetData::new(RecordType::SOA, 3600, vec![soa.to_wire()]),
    );
    content.add(
        &apex,
        RrsetData::new(
            RecordType::NS,
            3600,
            vec![canonical_wire(&name("ns1.example.net."))],
        ),
    );
    content.add(
        &apex,
        RrsetData::new(RecordType::DNSKEY, 3600, vec![dnskey.to_wire()]),
    );
    content
}

/// That zone signed with the RFC 8080 key, and for each child a `_dsboot`
/// owner with a CDS (and the key's CDNSKEY when `cdnskey`).
#[cfg(test)]
pub(crate) fn test_signalling_zone(children: &[&str], cdnskey: bool) -> ZoneContent {
    use crate::dns::{Ds, parse_name};
    let name = |text: &str| parse_name(text).expect("valid");
    let dnskey = crate::dnssec::rfc8080::dnskey();
    let mut content = test_signalling_apex(&dnskey);
    let ds = Ds::from_text(
        "35217 15 2 28525601C55CE99A840AD171CE8A295DED91CC18D2EBB902B542A5148A277C3D",
    )
    .expect("valid");
    for child in children {
        let owner = name(&format!("_dsboot.{child}._signal.ns1.example.net."));
        content.add(
            &owner,
            RrsetData::new(RecordType::CDS, 3600, vec![ds.to_wire()]),
        );
        if cdnskey {
            content.add(
                &owner,
                RrsetData::new(RecordType::CDNSKEY, 3600, vec![dnskey.to_wire()]),
            );
        }
    }
    content
}
