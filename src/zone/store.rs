//! A signed zone in the one form both the signer and the server use.
//!
//! Every RRset is kept once, in answer-ready wire form (records without
//! owner names, then their RRSIGs). Names live in two persistent maps
//! (`imbl`): by lower-case wire name for lookups, and by canonical order
//! (RFC 4034 §6.1) for the NSEC chain and denial. Cloning a zone is O(1) and
//! a change copies only the paths it touches, so the server answers from one
//! version while the signer builds the next, and one change among a million
//! names stays cheap.
//!
//! Signing (SPEC §5): KSKs/CSKs sign the apex DNSKEY, CDS and CDNSKEY (RFC
//! 7344 §4.1), ZSKs/CSKs the rest; inception is backdated; expirations are
//! spread by a stable per-RRset jitter; a change re-signs only the RRsets it
//! touches, the NSEC records next to it and the SOA, on all cores when there
//! are many. NSEC TTL = min(SOA MINIMUM, SOA TTL) (RFC 9077).

use std::{
    collections::{BTreeMap, BTreeSet},
    ops::Bound,
    sync::Arc,
};

use hickory_proto::rr::{Name, RecordType};
use jiff::Timestamp;

use super::{
    content::{RrsetData, ZoneContent},
    signer::{SignError, SignJob, Signatures, ZoneSigner, sign_jobs},
};
use crate::{
    config::ZoneOptions,
    dns::{
        Nsec, Rrsig,
        name::{canonical_key, canonical_wire, display},
    },
};

/// A shared byte string: a wire name or a canonical key.
pub type Bytes = Arc<[u8]>;

/// One RRset with its signatures, in wire form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rrset {
    /// Type code.
    pub rtype: u16,
    /// TTL.
    pub ttl: u32,
    /// The records: `type class ttl rdlength rdata` each, no owner.
    pub records: Box<[u8]>,
    /// The RRSIGs, same layout.
    pub sigs: Box<[u8]>,
    /// Earliest signature expiration (0 when unsigned).
    pub expires: u32,
    /// (algorithm, key tag) of every signature.
    pub signers: Box<[(u8, u16)]>,
}

impl Rrset {
    /// An unsigned RRset from its data.
    pub fn unsigned(data: &RrsetData) -> Self {
        let rtype = u16::from(data.rtype);
        let mut records = Vec::new();
        for rdata in &data.rdatas {
            push_record(&mut records, rtype, data.ttl, rdata);
        }
        Rrset {
            rtype,
            ttl: data.ttl,
            records: records.into(),
            sigs: Box::default(),
            expires: 0,
            signers: Box::default(),
        }
    }

    /// The RDATA of each record.
    pub fn rdatas(&self) -> Vec<&[u8]> {
        records(&self.records).map(|r| &r[10..]).collect()
    }

    /// The RRSIGs, decoded.
    pub fn rrsigs(&self) -> Vec<Rrsig> {
        records(&self.sigs)
            .filter_map(|r| Rrsig::from_wire(&r[10..]))
            .collect()
    }

    fn set_sigs(&mut self, sigs: Signatures) {
        self.sigs = sigs.blob;
        self.expires = sigs.expires;
        self.signers = sigs.signers;
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        records(&self.records).count()
    }

    /// True when the RRset has no records.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// Appends one record (`type class ttl rdlength rdata`, no owner).
pub(crate) fn push_record(out: &mut Vec<u8>, rtype: u16, ttl: u32, rdata: &[u8]) {
    out.extend_from_slice(&rtype.to_be_bytes());
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&ttl.to_be_bytes());
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(rdata);
}

/// The records of a blob, each `type class ttl rdlength rdata`.
pub fn records(blob: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let head = blob.get(at..at + 10)?;
        let end = at + 10 + usize::from(u16::from_be_bytes([head[8], head[9]]));
        let record = blob.get(at..end)?;
        at = end;
        Some(record)
    })
}

/// A name with data: its RRsets, NSEC included, by type code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Lower-case wire owner name.
    pub wire: Bytes,
    /// RRsets ordered by type code.
    pub rrsets: Box<[Rrset]>,
}

impl Node {
    /// True when the node holds exactly `rrsets` (NSEC aside; an SOA's
    /// serial does not count: the zone sets it).
    pub fn holds(&self, rrsets: &[RrsetData]) -> bool {
        let nsec = u16::from(RecordType::NSEC);
        let have = self.rrsets.iter().filter(|r| r.rtype != nsec).count();
        let want: Vec<&RrsetData> = rrsets.iter().filter(|r| !r.rdatas.is_empty()).collect();
        have == want.len()
            && want.iter().all(|w| {
                let fresh = Rrset::unsigned(w);
                self.rrsets.iter().any(|h| {
                    h.rtype == fresh.rtype && h.ttl == fresh.ttl && same_records(h, &fresh)
                })
            })
    }

    /// The RRset of `rtype`.
    pub fn rrset(&self, rtype: RecordType) -> Option<&Rrset> {
        let code = u16::from(rtype);
        self.rrsets.iter().find(|r| r.rtype == code)
    }
}

/// What is known at a name.
#[derive(Debug, Clone)]
pub enum Entry {
    /// Data, with the number of data names below it.
    Node(Arc<Node>, u32),
    /// An empty non-terminal over this many data names.
    Ent(u32),
}

impl Entry {
    fn below(&self) -> u32 {
        match self {
            Entry::Node(_, below) | Entry::Ent(below) => *below,
        }
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpdateStats {
    /// Names with data in the zone.
    pub names: usize,
    /// Owners added, changed or removed.
    pub changed_names: usize,
    /// RRsets (re-)signed.
    pub rrsets_signed: usize,
    /// RRSIGs made.
    pub signatures: usize,
}

/// A signed zone.
#[derive(Debug, Clone)]
pub struct ZoneStore {
    apex: Name,
    apex_wire: Bytes,
    serial: u32,
    negative_ttl: u32,
    names: imbl::HashMap<Bytes, Entry>,
    order: imbl::OrdMap<Bytes, Bytes>,
    /// Wire names the update that made this version may have changed.
    touched: Arc<[Bytes]>,
}

impl ZoneStore {
    /// An empty zone.
    pub fn new(apex: Name) -> Self {
        ZoneStore {
            apex_wire: canonical_wire(&apex).into(),
            apex,
            serial: 0,
            negative_ttl: 0,
            names: imbl::HashMap::new(),
            order: imbl::OrdMap::new(),
            touched: Arc::new([]),
        }
    }

    /// The wire names the update that made this version may have changed
    /// (for the IXFR journal: see `journal::Diff::between`).
    pub fn touched(&self) -> &[Bytes] {
        &self.touched
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
        let apex_len = zone.apex_wire.len();
        for node in nodes {
            let wire = node.wire.clone();
            if wire.len() < apex_len || wire[wire.len() - apex_len..] != zone.apex_wire[..] {
                return None;
            }
            let name = name_of(&wire)?;
            let below = zone.names.get(&wire).map_or(0, Entry::below);
            zone.names
                .insert(wire.clone(), Entry::Node(Arc::new(node), below));
            zone.order.insert(canonical_key(&name).into(), wire.clone());
            zone.adjust_ancestors(&wire, 1);
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

    /// What is at a lower-case wire name.
    pub fn entry(&self, wire: &[u8]) -> Option<&Entry> {
        self.names.get(wire)
    }

    /// The data at a lower-case wire name.
    pub fn node(&self, wire: &[u8]) -> Option<&Node> {
        match self.names.get(wire)? {
            Entry::Node(node, _) => Some(node),
            Entry::Ent(_) => None,
        }
    }

    /// The apex node.
    pub fn apex_node(&self) -> Option<&Node> {
        self.node(&self.apex_wire)
    }

    /// The data name before canonical key `key` (exclusive).
    pub fn predecessor(&self, key: &[u8]) -> Option<&Node> {
        let (_, wire) = self
            .order
            .range::<_, [u8]>((Bound::Unbounded, Bound::Excluded(key)))
            .next_back()?;
        self.node(wire)
    }

    /// The data name after canonical key `key` (the first one for `None`):
    /// its key and wire name; for walking the zone in pieces.
    pub fn next_after(&self, key: Option<&[u8]>) -> Option<(Bytes, Bytes)> {
        let (k, w) = match key {
            None => self.order.iter().next()?,
            Some(key) => self
                .order
                .range::<_, [u8]>((Bound::Excluded(key), Bound::Unbounded))
                .next()?,
        };
        Some((k.clone(), w.clone()))
    }

    /// Names with data, in canonical order.
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.order.values().filter_map(|wire| self.node(wire))
    }

    /// The earliest signature expiration in the zone (a full scan).
    pub fn earliest_expiration(&self) -> Option<u32> {
        self.nodes()
            .flat_map(|n| n.rrsets.iter())
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
        for wire in self.order.values() {
            if !wanted.contains(wire) {
                if let Some(owner) = name_of(wire) {
                    changes.push(Change {
                        owner,
                        rrsets: None,
                    });
                }
            }
        }
        self.apply(&changes, signer, serial, now, options)
    }

    /// Applies `changes`, gives the zone serial `serial`, and signs what the
    /// changes touched: their RRsets, the NSEC records at and before them,
    /// the SOA. On error the zone is left as it was.
    pub fn apply(
        &mut self,
        changes: &[Change],
        signer: &ZoneSigner,
        serial: u32,
        now: Timestamp,
        options: &ZoneOptions,
    ) -> Result<UpdateStats, SignError> {
        self.update(changes, false, signer, serial, now, options)
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
        self.order.values().any(|wire| {
            self.node(wire).is_some_and(|node| {
                node.rrsets.iter().any(|r| {
                    let keys = if self.by_ksk(wire, r.rtype) {
                        &signer.ksks
                    } else {
                        &signer.zsks
                    };
                    needs_signing(r, keys, now_secs, options)
                })
            })
        })
    }

    /// Re-signs every RRset that is due (see [`Self::needs_refresh`]), with
    /// a new serial.
    pub fn refresh(
        &mut self,
        signer: &ZoneSigner,
        serial: u32,
        now: Timestamp,
        options: &ZoneOptions,
    ) -> Result<UpdateStats, SignError> {
        self.update(&[], true, signer, serial, now, options)
    }

    /// True when `rtype` at `wire` is signed by the KSKs: the apex DNSKEY,
    /// CDS and CDNSKEY (RFC 7344 §4.1).
    fn by_ksk(&self, wire: &[u8], rtype: u16) -> bool {
        [RecordType::DNSKEY, RecordType::CDS, RecordType::CDNSKEY]
            .iter()
            .any(|t| u16::from(*t) == rtype)
            && *wire == *self.apex_wire
    }

    fn update(
        &mut self,
        changes: &[Change],
        check_all: bool,
        signer: &ZoneSigner,
        serial: u32,
        now: Timestamp,
        options: &ZoneOptions,
    ) -> Result<UpdateStats, SignError> {
        let zone_name = display(&self.apex);
        if signer.ksks.is_empty() || signer.zsks.is_empty() {
            return Err(SignError::NoKey {
                zone: zone_name,
                role: if signer.ksks.is_empty() { "KSK" } else { "ZSK" },
                what: "the zone".into(),
            });
        }
        if self.is_empty() {
            return self.build(changes, signer, serial, now, options);
        }
        let mut next = self.clone();
        let mut touched: BTreeSet<Bytes> = BTreeSet::new(); // canonical keys
        let mut touched_wires: BTreeSet<Bytes> = BTreeSet::new();
        let mut changed_names = 0;
        for change in changes {
            if next.apply_one(change, &mut touched) {
                changed_names += 1;
                touched_wires.insert(canonical_wire(&change.owner).into());
            }
        }
        // The SOA carries the new serial.
        let apex_key: Bytes = canonical_key(&self.apex).into();
        let Some(Entry::Node(apex, below)) = next.names.get(&next.apex_wire).cloned() else {
            return Err(SignError::NoSoa(zone_name));
        };
        let mut node = (*apex).clone();
        let Some(soa) = node
            .rrsets
            .iter_mut()
            .find(|r| r.rtype == u16::from(RecordType::SOA))
        else {
            return Err(SignError::NoSoa(zone_name));
        };
        let rdatas: Vec<Vec<u8>> = soa
            .rdatas()
            .iter()
            .map(|r| with_serial(r, serial))
            .collect();
        let minimum = rdatas.first().and_then(|r| soa_minimum(r)).unwrap_or(0);
        next.negative_ttl = soa.ttl.min(minimum);
        *soa = Rrset::unsigned(&RrsetData::new(RecordType::SOA, soa.ttl, rdatas));
        next.names
            .insert(next.apex_wire.clone(), Entry::Node(Arc::new(node), below));
        touched.insert(apex_key);
        next.serial = serial;

        // NSEC records at and before every touched name.
        let mut nsec_owners: BTreeSet<Bytes> = BTreeSet::new();
        for key in &touched {
            if next.order.contains_key(&key[..]) {
                nsec_owners.insert(key.clone());
            }
            if let Some((prev, _)) = next
                .order
                .range::<_, [u8]>((Bound::Unbounded, Bound::Excluded(&key[..])))
                .next_back()
            {
                nsec_owners.insert(prev.clone());
            }
        }
        for key in &nsec_owners {
            next.set_nsec(key);
        }

        // Sign what needs it.
        let now_secs = now.as_second().clamp(0, i64::from(u32::MAX)) as u32;
        let candidates: Vec<Bytes> = if check_all {
            next.order.keys().cloned().collect()
        } else {
            touched.union(&nsec_owners).cloned().collect()
        };
        touched_wires.extend(
            candidates
                .iter()
                .filter_map(|key| next.order.get(&key[..]).cloned()),
        );
        let mut jobs = Vec::new();
        for key in candidates {
            let Some(wire) = next.order.get(&key[..]).cloned() else {
                continue;
            };
            let Some(node) = next.node(&wire) else {
                continue;
            };
            for (index, rrset) in node.rrsets.iter().enumerate() {
                let by_ksk = next.by_ksk(&wire, rrset.rtype);
                let keys = if by_ksk { &signer.ksks } else { &signer.zsks };
                if needs_signing(rrset, keys, now_secs, options) {
                    jobs.push(SignJob {
                        wire: wire.clone(),
                        index,
                        rtype: RecordType::from(rrset.rtype),
                        ttl: rrset.ttl,
                        records: rrset.records.clone(),
                        by_ksk,
                    });
                }
            }
        }
        let stats = next
            .sign(jobs, signer, now_secs, options)
            .map_err(|source| SignError::Signer {
                zone: display(&self.apex),
                source,
            })?;
        next.touched = touched_wires.into_iter().collect::<Vec<_>>().into();
        *self = next;
        Ok(UpdateStats {
            names: self.len(),
            changed_names,
            ..stats
        })
    }

    /// Applies one owner's change; returns whether anything changed.
    fn apply_one(&mut self, change: &Change, touched: &mut BTreeSet<Bytes>) -> bool {
        let wire: Bytes = canonical_wire(&change.owner).into();
        let key: Bytes = canonical_key(&change.owner).into();
        let existing = self.names.get(&wire).cloned();
        let wanted = change
            .rrsets
            .as_ref()
            .filter(|r| r.iter().any(|s| !s.rdatas.is_empty()));
        match (existing, wanted) {
            (Some(Entry::Node(node, below)), Some(rrsets)) => {
                if same_data(&node, rrsets) {
                    return false;
                }
                let merged = merge(&node, rrsets);
                self.names.insert(
                    wire.clone(),
                    Entry::Node(
                        Arc::new(Node {
                            wire,
                            rrsets: merged,
                        }),
                        below,
                    ),
                );
            }
            (existing, Some(rrsets)) => {
                let below = existing.as_ref().map_or(0, Entry::below);
                let node = Node {
                    wire: wire.clone(),
                    rrsets: merge(
                        &Node {
                            wire: wire.clone(),
                            rrsets: Box::default(),
                        },
                        rrsets,
                    ),
                };
                self.names
                    .insert(wire.clone(), Entry::Node(Arc::new(node), below));
                self.order.insert(key.clone(), wire.clone());
                self.adjust_ancestors(&wire, 1);
            }
            (Some(Entry::Node(_, below)), None) => {
                if below > 0 {
                    self.names.insert(wire.clone(), Entry::Ent(below));
                } else {
                    self.names.remove(&wire);
                }
                self.order.remove(&key[..]);
                self.adjust_ancestors(&wire, -1);
            }
            (_, None) => return false,
        }
        touched.insert(key);
        true
    }

    /// Adds `delta` to the count of data names below every ancestor of
    /// `wire` inside the zone, creating and removing empty non-terminals.
    fn adjust_ancestors(&mut self, wire: &[u8], delta: i64) {
        let apex_len = self.apex_wire.len();
        let mut at = 0;
        while wire.len() - at > apex_len {
            at += 1 + usize::from(wire[at]);
            let ancestor = &wire[at..];
            let updated = match self.names.get(ancestor) {
                Some(Entry::Node(node, below)) => Some(Entry::Node(
                    node.clone(),
                    (i64::from(*below) + delta).max(0) as u32,
                )),
                Some(Entry::Ent(below)) => {
                    let below = (i64::from(*below) + delta).max(0) as u32;
                    (below > 0).then_some(Entry::Ent(below))
                }
                None if delta > 0 => Some(Entry::Ent(delta as u32)),
                None => None,
            };
            match updated {
                Some(entry) => {
                    self.names.insert(ancestor.into(), entry);
                }
                None => {
                    self.names.remove(ancestor);
                }
            }
        }
    }

    /// Recomputes the NSEC record at the data name with canonical key `key`.
    fn set_nsec(&mut self, key: &Bytes) {
        let Some(wire) = self.order.get(&key[..]).cloned() else {
            return;
        };
        let next_wire = self
            .order
            .range::<_, [u8]>((Bound::Excluded(&key[..]), Bound::Unbounded))
            .next()
            .or_else(|| self.order.iter().next())
            .map(|(_, w)| w.clone());
        let (Some(next_wire), Some(Entry::Node(node, below))) =
            (next_wire, self.names.get(&wire).cloned())
        else {
            return;
        };
        let Some(next) = name_of(&next_wire) else {
            return;
        };
        let mut types: Vec<RecordType> = node
            .rrsets
            .iter()
            .filter(|r| r.rtype != u16::from(RecordType::NSEC))
            .map(|r| RecordType::from(r.rtype))
            .collect();
        types.extend([RecordType::RRSIG, RecordType::NSEC]);
        let data = RrsetData::new(
            RecordType::NSEC,
            self.negative_ttl,
            vec![Nsec { next, types }.to_wire()],
        );
        let fresh = Rrset::unsigned(&data);
        if node
            .rrset(RecordType::NSEC)
            .is_some_and(|old| old.records == fresh.records && old.ttl == fresh.ttl)
        {
            return;
        }
        let mut rrsets: Vec<Rrset> = node
            .rrsets
            .iter()
            .filter(|r| r.rtype != u16::from(RecordType::NSEC))
            .cloned()
            .collect();
        rrsets.push(fresh);
        rrsets.sort_by_key(|r| r.rtype);
        self.names.insert(
            wire.clone(),
            Entry::Node(
                Arc::new(Node {
                    wire,
                    rrsets: rrsets.into(),
                }),
                below,
            ),
        );
    }

    /// Signs the jobs (in parallel when many) and stores the signatures.
    fn sign(
        &mut self,
        jobs: Vec<SignJob>,
        signer: &ZoneSigner,
        now: u32,
        options: &ZoneOptions,
    ) -> Result<UpdateStats, crate::dnssec::signer::SignerError> {
        let results = sign_jobs(&display(&self.apex), &jobs, signer, now, options)?;
        let mut stats = UpdateStats {
            rrsets_signed: jobs.len(),
            ..UpdateStats::default()
        };
        let mut by_name: BTreeMap<Bytes, Vec<(usize, Signatures)>> = BTreeMap::new();
        for (job, sigs) in jobs.into_iter().zip(results) {
            stats.signatures += sigs.len();
            by_name.entry(job.wire).or_default().push((job.index, sigs));
        }
        for (wire, updates) in by_name {
            let Some(Entry::Node(node, below)) = self.names.get(&wire).cloned() else {
                continue;
            };
            let mut node = (*node).clone();
            let mut rrsets: Vec<Rrset> = node.rrsets.into_vec();
            for (index, sigs) in updates {
                if let Some(rrset) = rrsets.get_mut(index) {
                    rrset.set_sigs(sigs);
                }
            }
            node.rrsets = rrsets.into();
            self.names.insert(wire, Entry::Node(Arc::new(node), below));
        }
        Ok(stats)
    }
}

/// True when the node holds exactly `rrsets` (NSEC aside; an SOA's serial
/// does not count: the zone sets it).
fn same_data(node: &Node, rrsets: &[RrsetData]) -> bool {
    node.holds(rrsets)
}

/// Equal records; for an SOA, equal but for the serial.
fn same_records(a: &Rrset, b: &Rrset) -> bool {
    if a.rtype != u16::from(RecordType::SOA) {
        return a.records == b.records;
    }
    let (ra, rb) = (a.rdatas(), b.rdatas());
    ra.len() == rb.len()
        && ra
            .iter()
            .zip(rb.iter())
            .all(|(x, y)| with_serial(x, 0) == with_serial(y, 0))
}

/// The node's RRsets replaced by `rrsets`, keeping signatures (and the NSEC)
/// where the data did not change.
fn merge(node: &Node, rrsets: &[RrsetData]) -> Box<[Rrset]> {
    let mut out: Vec<Rrset> = Vec::with_capacity(rrsets.len() + 1);
    for data in rrsets.iter().filter(|r| !r.rdatas.is_empty()) {
        let fresh = Rrset::unsigned(data);
        let kept = node
            .rrsets
            .iter()
            .find(|r| r.rtype == fresh.rtype && r.ttl == fresh.ttl && r.records == fresh.records);
        out.push(kept.cloned().unwrap_or(fresh));
    }
    if let Some(nsec) = node.rrset(RecordType::NSEC) {
        out.push(nsec.clone());
    }
    out.sort_by_key(|r| r.rtype);
    out.dedup_by_key(|r| r.rtype);
    out.into()
}

fn needs_signing(
    rrset: &Rrset,
    keys: &[Arc<crate::dnssec::signer::SigningKey>],
    now: u32,
    options: &ZoneOptions,
) -> bool {
    if rrset.sigs.is_empty() || rrset.signers.len() != keys.len() {
        return true;
    }
    let same_keys = keys
        .iter()
        .all(|k| rrset.signers.contains(&(k.algorithm.number(), k.tag)));
    let left = rrset.expires.wrapping_sub(now);
    !(same_keys && left > options.signature_refresh && left < 0x8000_0000)
}

/// A `Name` from a lower-case wire name.
pub fn name_of(wire: &[u8]) -> Option<Name> {
    crate::dns::name::from_wire(wire).map(|(name, _)| name)
}

/// SOA wire RDATA with another serial (the serial is 20 octets from the end).
fn with_serial(rdata: &[u8], serial: u32) -> Vec<u8> {
    let mut out = rdata.to_vec();
    if let Some(at) = out.len().checked_sub(20) {
        out[at..at + 4].copy_from_slice(&serial.to_be_bytes());
    }
    out
}

fn soa_minimum(rdata: &[u8]) -> Option<u32> {
    let m = rdata.get(rdata.len().checked_sub(4)?..)?;
    Some(u32::from_be_bytes([m[0], m[1], m[2], m[3]]))
}

/// The serial in SOA wire RDATA.
pub fn soa_serial_of(rdata: &[u8]) -> Option<u32> {
    let at = rdata.len().checked_sub(20)?;
    Some(u32::from_be_bytes([
        rdata[at],
        rdata[at + 1],
        rdata[at + 2],
        rdata[at + 3],
    ]))
}

mod build;
#[cfg(test)]
mod tests;
