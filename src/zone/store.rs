//! A signed zone in the one form both the signer and the server use.
//!
//! Every RRset is kept once, in answer-ready wire form (records without
//! owner names, then their RRSIGs), and a name with all its RRsets in one
//! shared allocation ([`node`]: read in place as [`RrsetRef`]s, built from
//! owned [`Rrset`]s). Data names live in two persistent maps (`imbl`): the
//! nodes by a 64-bit hash of their lower-case wire owners for lookups (a
//! query compares its name with the node it then answers from, no separate
//! key), and the names' keys in canonical order (RFC 4034 §6.1) for the
//! NSEC chain and denial. Empty non-terminals are in neither: a name
//! without data exists when the next data name in canonical order lies
//! below it, and the data names on either side of a missing name give its
//! closest encloser (RFC 4035 §3.1.3.2) too. Cloning a zone is O(1) and
//! a change copies only the paths it touches, so the server answers from one
//! version while the signer builds the next, and one change among a million
//! names stays cheap.
//!
//! Signing: KSKs/CSKs sign the apex DNSKEY, CDS and CDNSKEY (RFC
//! 7344 §4.1), ZSKs/CSKs the rest; inception is backdated; expirations are
//! spread by a stable per-RRset jitter; a change re-signs only the RRsets it
//! touches, the NSEC records next to it and the SOA, on all cores when there
//! are many. NSEC TTL = min(SOA MINIMUM, SOA TTL) (RFC 9077).

use std::{collections::BTreeSet, ops::Bound};

use hickory_proto::rr::{Name, RecordType};
use jiff::Timestamp;

use super::blob::Bytes;
use super::{
    content::{RrsetData, ZoneContent},
    signer::{SignError, SignJob, Signatures, ZoneSigner, sign_jobs},
};
use crate::{
    config::ZoneOptions,
    dns::wire,
    dns::{
        Nsec,
        name::{
            WireBuf, canonical_key, canonical_key_of_wire, canonical_wire, common_ancestor_key_len,
            display, wire_of_canonical_key,
        },
    },
};

impl Node {
    /// True when the node holds exactly `rrsets` (NSEC aside; an SOA's
    /// serial does not count: the zone sets it).
    pub fn holds(&self, rrsets: &[RrsetData]) -> bool {
        let nsec = u16::from(RecordType::NSEC);
        let have = self.rrsets().filter(|r| r.rtype != nsec).count();
        let want: Vec<&RrsetData> = rrsets.iter().filter(|r| !r.rdatas.is_empty()).collect();
        have == want.len()
            && want.iter().all(|w| {
                let fresh = Rrset::unsigned(w);
                self.rrsets().any(|h| {
                    h.rtype == fresh.rtype && h.ttl == fresh.ttl && same_records(h, &fresh)
                })
            })
    }
}

/// What is at a name of the zone.
#[derive(Debug, Clone, Copy)]
pub enum Entry<'z> {
    /// Data.
    Node(&'z Node),
    /// An empty non-terminal: no data, but data names below it (RFC 4592
    /// §2.2.2; it exists, so a query for it gets NODATA, not NXDOMAIN).
    Ent,
}

/// The data names next to a name without data in canonical order (RFC
/// 4034 §6.1). Together they tell whether the name is an empty
/// non-terminal (the one after it is below it) and which name is its
/// closest encloser (the deepest ancestor shared with either); the one
/// before it holds the NSEC that covers it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Neighbours<'z> {
    /// The data name before.
    pub before: Option<&'z Node>,
    /// Its order key (the canonical key after the apex's).
    before_key: Option<&'z [u8]>,
    /// The order key (the canonical key after the apex's) of the data name
    /// after.
    after: Option<&'z [u8]>,
    /// The apex's canonical key.
    apex_key: &'z [u8],
}

impl Neighbours<'_> {
    /// True when the name with canonical key `key` (these are its
    /// neighbours) is an empty non-terminal: the data names below a name
    /// follow it directly in canonical order, and their keys begin with
    /// its key.
    pub fn show_an_empty_non_terminal(&self, key: &[u8]) -> bool {
        let key = key.strip_prefix(self.apex_key);
        self.after
            .zip(key)
            .is_some_and(|(after, key)| after.starts_with(key))
    }

    /// The length of the canonical key of the closest encloser (RFC 4035
    /// §3.1.3.2) of the missing name with canonical key `key` (these are
    /// its neighbours): the deepest ancestor it shares with the data name
    /// before or after it (every existing name is one of theirs or an
    /// ancestor), the apex at least.
    pub fn closest_encloser_len(&self, key: &[u8]) -> usize {
        let Some(own) = key.strip_prefix(self.apex_key) else {
            debug_assert!(false, "neighbours of a name outside the zone");
            return key.len();
        };
        let shared = |other: Option<&[u8]>| other.map_or(0, |o| common_ancestor_key_len(own, o));
        self.apex_key.len() + shared(self.before_key).max(shared(self.after))
    }
}

/// One owner's new RRsets (`None`: the name goes away). NSEC and RRSIG are
/// the store's business; an SOA's serial is replaced by the zone's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The owner.
    pub owner: Name,
    /// Its RRsets, or `None` to remove it.
    pub rrsets: Option<Vec<RrsetData>>,
}

/// What an update did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpdateStats {
    /// Names with data in the zone.
    pub names: usize,
    /// Owners added, changed or removed.
    pub changed_names: usize,
    /// RRsets (re-)signed.
    pub rrsets_signed: usize,
    /// RRSIGs made.
    pub signatures: usize,
    /// Wire names the update may have changed, for the IXFR diff from the
    /// version before (`journal::Diff::between`); empty for a zone built
    /// from nothing, which has no version before. Handed back rather than
    /// kept in the new version: every snapshot would hold it until the
    /// next update, after a cold start or a re-signing round a wire name
    /// of every owner (~90 octets a name at a million, issue 15).
    pub touched: Vec<Bytes>,
}

/// A signed zone.
#[derive(Debug, Clone)]
pub struct ZoneStore {
    apex: Name,
    apex_wire: Bytes,
    /// The apex's canonical key: every key in `order` is the rest after it.
    apex_key: Bytes,
    serial: u32,
    negative_ttl: u32,
    names: Names,
    /// The canonical keys of the data names (RFC 4034 §6.1 order), without
    /// the apex's key they all begin with ("order keys": the apex's is
    /// empty). Every name is at or below the apex, so cutting that common
    /// prefix keeps the order, and it is half of a signal name's key
    /// (`_signal.<ns>`): ~32 octets less per child at a million. Only the
    /// keys: a name's wire form follows from its key
    /// ([`wire_of_canonical_key`]) and its node from the name index, so a
    /// second copy of every owner name is not kept here.
    order: imbl::OrdSet<Bytes>,
}

impl ZoneStore {
    /// An empty zone.
    pub fn new(apex: Name) -> Self {
        ZoneStore {
            apex_wire: canonical_wire(&apex).into(),
            apex_key: canonical_key(&apex).into(),
            apex,
            serial: 0,
            negative_ttl: 0,
            names: Names::default(),
            order: imbl::OrdSet::new(),
        }
    }

    /// A zone from saved parts (see `persist`); `None` if they do not hold
    /// an apex.
    pub fn from_parts(
        apex: Name,
        serial: u32,
        negative_ttl: u32,
        nodes: Vec<Node>,
    ) -> Option<Self> {
        let mut zone = ZoneStore::new(apex);
        zone.serial = serial;
        zone.negative_ttl = negative_ttl;
        let mut key = [0u8; 512];
        for node in nodes {
            let wire = node.wire();
            // Exactly the lower-case wire of one name at or below the apex,
            // once: ending in the apex's octets is not enough (`\0\xff` and
            // the apex parses as the root, and walking its labels up to the
            // apex, as the counts of names below each ancestor once did, ran
            // off the end), and a second node with the same name
            // would replace the first. Checked on the wire (a million
            // `Name`s cost a warm start seconds).
            if !canonical_below(wire, &zone.apex_wire) {
                return None;
            }
            let key_len = canonical_key_of_wire(wire, &mut key)?;
            let order_key: Bytes = zone.order_key(&key[..key_len])?.into();
            if zone.put(node) {
                return None;
            }
            zone.order.insert(order_key);
        }
        zone.apex_node()?;
        Some(zone)
    }

    /// The apex.
    pub fn apex(&self) -> &Name {
        &self.apex
    }

    /// The apex in lower-case wire form.
    pub fn apex_wire(&self) -> &[u8] {
        &self.apex_wire
    }

    /// The SOA serial of this version.
    pub fn serial(&self) -> u32 {
        self.serial
    }

    /// TTL of NSEC records and negative answers.
    pub fn negative_ttl(&self) -> u32 {
        self.negative_ttl
    }

    /// Number of names with data.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True when the zone holds nothing.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// What is at a lower-case wire name at or below the apex: its data, an
    /// empty non-terminal, or nothing (`None`, also for a name not at or
    /// below the apex). A name without data exists when a
    /// data name lies below it: in canonical order (RFC 4034 §6.1) the
    /// names below one follow it directly and their keys begin with its
    /// key, so one look at the next data name tells.
    pub fn entry(&self, wire: &[u8]) -> Option<Entry<'_>> {
        if let Some(node) = self.node(wire) {
            return Some(Entry::Node(node));
        }
        let mut key = [0u8; 512];
        let len = canonical_key_of_wire(wire, &mut key)?;
        let key = &key[..len];
        self.neighbours(key)
            .show_an_empty_non_terminal(key)
            .then_some(Entry::Ent)
    }

    /// Puts `node` in the name index, in place of what was at its owner;
    /// true when a node of that name was there.
    fn put(&mut self, node: Node) -> bool {
        put_named(&mut self.names, node)
    }

    /// Takes the name `wire` out of the name index.
    fn take_out(&mut self, wire: &[u8]) {
        take_named_at(&mut self.names, name_hash(wire), wire);
    }

    /// The data at a lower-case wire name.
    pub fn node(&self, wire: &[u8]) -> Option<&Node> {
        self.names.get(&name_hash(wire))?.find(wire)
    }

    /// The apex node.
    pub fn apex_node(&self) -> Option<&Node> {
        self.node(&self.apex_wire)
    }

    /// The keys that signed this version, as [`ZoneSigner::fingerprint`]
    /// gives them: the signers of the apex DNSKEY RRset as KSKs, those of
    /// the SOA as ZSKs (empty for an empty zone). A warm start compares it
    /// with the keys it reads, so its first version checks every signature
    /// only when the keys changed since the zone was saved.
    pub fn apex_signers(&self) -> Vec<(bool, u8, u16)> {
        let Some(apex) = self.apex_node() else {
            return Vec::new();
        };
        let signers = |rtype: RecordType, ksk: bool| {
            apex.rrset(rtype)
                .into_iter()
                .flat_map(|rrset| rrset.signers().collect::<Vec<_>>())
                .map(move |(algorithm, tag)| (ksk, algorithm, tag))
        };
        let mut out: Vec<(bool, u8, u16)> = signers(RecordType::DNSKEY, true)
            .chain(signers(RecordType::SOA, false))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The order key (see `order`) of canonical key `key`: `None` when the
    /// name is not at or below the apex.
    fn order_key<'k>(&self, key: &'k [u8]) -> Option<&'k [u8]> {
        key.strip_prefix(&self.apex_key[..])
    }

    /// The data names around canonical key `key` (a name without data, at
    /// or below the apex; none for another).
    pub fn neighbours(&self, key: &[u8]) -> Neighbours<'_> {
        let Some(key) = self.order_key(key) else {
            return Neighbours::default();
        };
        let before = self.before(key);
        let after = self
            .order
            .range::<_, [u8]>((Bound::Excluded(key), Bound::Unbounded))
            .next()
            .map(|k| &k[..]);
        Neighbours {
            before: before.map(|(_, node)| node),
            before_key: before.map(|(k, _)| k),
            after,
            apex_key: &self.apex_key,
        }
    }

    /// The data name before canonical key `key` (exclusive; at or below
    /// the apex).
    pub fn predecessor(&self, key: &[u8]) -> Option<&Node> {
        self.before(self.order_key(key)?).map(|(_, node)| node)
    }

    /// The data name before order key `key` (exclusive), with its order
    /// key.
    fn before(&self, key: &[u8]) -> Option<(&[u8], &Node)> {
        let k = self
            .order
            .range::<_, [u8]>((Bound::Unbounded, Bound::Excluded(key)))
            .next_back()?;
        Some((&k[..], self.node_at_key(k)?))
    }

    /// The lower-case wire name of the data name with order key `key`.
    fn wire_at_key(&self, key: &[u8]) -> Option<WireBuf> {
        let mut full = [0u8; 512];
        let apex = self.apex_key.len();
        full.get_mut(..apex)?.copy_from_slice(&self.apex_key);
        full.get_mut(apex..apex + key.len())?.copy_from_slice(key);
        wire_of_canonical_key(&full[..apex + key.len()])
    }

    /// The node of the data name with order key `key`.
    fn node_at_key(&self, key: &[u8]) -> Option<&Node> {
        self.node(&self.wire_at_key(key)?)
    }

    /// The data name after position `key` (the first one for `None`): its
    /// position and node; for walking the zone in pieces. A position is
    /// only for handing back to this method.
    pub fn next_after(&self, key: Option<&[u8]>) -> Option<(Bytes, &Node)> {
        let k = match key {
            None => self.order.iter().next()?,
            Some(key) => self
                .order
                .range::<_, [u8]>((Bound::Excluded(key), Bound::Unbounded))
                .next()?,
        };
        Some((k.clone(), self.node_at_key(k)?))
    }

    /// The wire owner names of every node (not empty non-terminals), in
    /// no particular order: a pass over a million names without a look-up
    /// each.
    pub fn owner_wires(&self) -> impl Iterator<Item = &[u8]> {
        self.any_order_nodes().map(Node::wire)
    }

    /// Every node, in no particular order (the name index's): for whole
    /// passes that need no order, without a key-to-name conversion and a
    /// look-up per name.
    fn any_order_nodes(&self) -> impl Iterator<Item = &Node> {
        self.names.values().flat_map(Named::nodes)
    }

    /// Names with data, in canonical order.
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.order.iter().filter_map(|key| self.node_at_key(key))
    }

    /// The earliest signature expiration in the zone (a full scan).
    pub fn earliest_expiration(&self) -> Option<u32> {
        self.any_order_nodes()
            .flat_map(Node::rrsets)
            .map(|r| r.expires)
            .min()
    }

    /// Makes the zone equal to `content` (a full diff) with serial `serial`.
    pub fn sync(
        &mut self,
        content: &ZoneContent,
        signer: &ZoneSigner,
        serial: u32,
        now: Timestamp,
        options: &ZoneOptions,
    ) -> Result<UpdateStats, SignError> {
        let changes = self.changes_to(content);
        self.apply(changes, false, signer, serial, now, options)
    }

    /// The changes that make the zone hold exactly `content`: every owner
    /// whose data differs, and the removal of every owner `content` lacks.
    pub fn changes_to(&self, content: &ZoneContent) -> Vec<Change> {
        let mut changes = Vec::new();
        let mut wanted: BTreeSet<Bytes> = BTreeSet::new();
        for node in content.nodes.values() {
            let wire: Bytes = canonical_wire(&node.name).into();
            let same = self
                .node(&wire)
                .is_some_and(|have| same_data(have, &node.rrsets));
            wanted.insert(wire);
            if !same {
                changes.push(Change {
                    owner: node.name.clone(),
                    rrsets: Some(node.rrsets.clone()),
                });
            }
        }
        for node in self.any_order_nodes() {
            if !wanted.contains(node.wire()) {
                if let Some(owner) = name_of(node.wire()) {
                    changes.push(Change {
                        owner,
                        rrsets: None,
                    });
                }
            }
        }
        changes
    }

    /// True when some RRset is due for re-signing: less than the refresh
    /// window left, or signed by other keys than `signer`'s (a full scan).
    pub fn needs_refresh(
        &self,
        signer: &ZoneSigner,
        now: Timestamp,
        options: &ZoneOptions,
    ) -> bool {
        let now_secs = now.as_second().clamp(0, i64::from(u32::MAX)) as u32;
        self.any_order_nodes().any(|node| {
            node.rrsets().any(|r| {
                let keys = if self.by_ksk(node.wire(), r.rtype) {
                    &signer.ksks
                } else {
                    &signer.zsks
                };
                needs_signing(r, keys, now_secs, options)
            })
        })
    }

    /// Re-signs every RRset that is due (see [`Self::needs_refresh`]), with
    /// a new serial.
    #[cfg(test)]
    pub fn refresh(
        &mut self,
        signer: &ZoneSigner,
        serial: u32,
        now: Timestamp,
        options: &ZoneOptions,
    ) -> Result<UpdateStats, SignError> {
        self.apply(Vec::new(), true, signer, serial, now, options)
    }

    /// True when `rtype` at `wire` is signed by the KSKs: the apex DNSKEY,
    /// CDS and CDNSKEY (RFC 7344 §4.1).
    fn by_ksk(&self, wire: &[u8], rtype: u16) -> bool {
        [RecordType::DNSKEY, RecordType::CDS, RecordType::CDNSKEY]
            .iter()
            .any(|t| u16::from(*t) == rtype)
            && *wire == *self.apex_wire
    }
}

/// True when `wire` is a well-formed uncompressed name in lower case (the
/// form [`canonical_wire`] makes) at or below the name whose wire form is
/// `apex` (which must end the name on a label boundary).
fn canonical_below(wire: &[u8], apex: &[u8]) -> bool {
    if wire.len() > 255 || wire.len() < apex.len() {
        return false;
    }
    let boundary = wire.len() - apex.len();
    let mut at = 0;
    let mut on_boundary = false;
    loop {
        let Some(&len) = wire.get(at) else {
            return false;
        };
        on_boundary |= at == boundary;
        if len == 0 {
            return at + 1 == wire.len() && on_boundary && wire[boundary..] == *apex;
        }
        let len = usize::from(len);
        let Some(label) = wire.get(at + 1..at + 1 + len) else {
            return false;
        };
        if len > 63 || label.iter().any(u8::is_ascii_uppercase) {
            return false;
        }
        at += 1 + len;
    }
}

/// A `Name` from a lower-case wire name.
pub fn name_of(wire: &[u8]) -> Option<Name> {
    crate::dns::name::from_wire(wire).map(|(name, _)| name)
}

/// SOA wire RDATA with another serial (the serial is 20 octets from the end).
fn with_serial(rdata: &[u8], serial: u32) -> Vec<u8> {
    let mut out = rdata.to_vec();
    if let Some(at) = out.len().checked_sub(20) {
        wire::set_u32(&mut out, at, serial);
    }
    out
}

fn soa_minimum(rdata: &[u8]) -> Option<u32> {
    wire::u32_at(rdata, rdata.len().checked_sub(4)?)
}

/// The serial in SOA wire RDATA.
pub fn soa_serial_of(rdata: &[u8]) -> Option<u32> {
    wire::u32_at(rdata, rdata.len().checked_sub(20)?)
}

mod build;
mod names;
mod node;
mod update;

use names::{Named, Names, name_hash, put_named, take_named_at};

pub use node::{Node, NodePacker, Rrset, RrsetRef, Rrsets, SigRecord, Sigs};

use update::{needs_signing, same_data, same_records};
#[cfg(test)]
mod tests;
