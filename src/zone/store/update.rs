//! The incremental path of the zone store: apply changes name by name,
//! keep the NSEC chain right, and re-sign only
//! what changed (the RRsets touched, the NSEC records next to them, the
//! SOA).

use std::{
    collections::{BTreeMap, BTreeSet},
    ops::Bound,
    sync::Arc,
};

use hickory_proto::rr::RecordType;
use jiff::Timestamp;

use super::*;

impl ZoneStore {
    /// Applies `changes`, gives the zone serial `serial`, and signs what the
    /// changes touched: their RRsets, the NSEC records at and before them,
    /// the SOA; with `resign_due`, also every other RRset whose signatures
    /// are due for refresh or made by other keys (RFC 4034 §3.1.5). One new
    /// version: [`UpdateStats::touched`] names every owner it changed, so
    /// the IXFR diff to it is complete. On error the zone is left as it was.
    /// The changes are taken, so that a cold build can drop each as it
    /// turns it into the zone's form, before it signs.
    pub fn apply(
        &mut self,
        changes: Vec<Change>,
        resign_due: bool,
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
        let mut touched: BTreeSet<Bytes> = BTreeSet::new(); // order keys
        let mut touched_wires: BTreeSet<Bytes> = BTreeSet::new();
        let mut changed_names = 0;
        for change in &changes {
            if next.apply_one(change, &mut touched) {
                changed_names += 1;
                touched_wires.insert(canonical_wire(&change.owner).into());
            }
        }
        next.stamp_serial(serial)?;
        touched.insert(Bytes::from(&[][..])); // the apex's order key
        let nsec_owners = next.rechain(&touched);

        // Sign what needs it.
        let now_secs = now.as_second().clamp(0, i64::from(u32::MAX)) as u32;
        let candidates: Vec<Bytes> = if resign_due {
            next.order.iter().cloned().collect()
        } else {
            touched.union(&nsec_owners).cloned().collect()
        };
        touched_wires.extend(
            candidates
                .iter()
                .filter(|key| next.order.contains(&key[..]))
                .filter_map(|key| Some(Bytes::from(&*next.wire_at_key(key)?))),
        );
        let jobs = next.jobs_due(candidates, signer, now_secs, options);
        let stats = next
            .sign(jobs, signer, now_secs, options)
            .map_err(|source| SignError::Signer {
                zone: display(&self.apex),
                source,
            })?;
        *self = next;
        Ok(UpdateStats {
            names: self.len(),
            changed_names,
            touched: touched_wires.into_iter().collect(),
            ..stats
        })
    }

    /// Gives the apex SOA `serial` (unsigned until the SOA is re-signed)
    /// and takes the negative TTL from it (RFC 2308 §3).
    fn stamp_serial(&mut self, serial: u32) -> Result<(), SignError> {
        let no_soa = || SignError::NoSoa(display(&self.apex));
        let Some(apex) = self.apex_node().cloned() else {
            return Err(no_soa());
        };
        let mut rrsets = apex.to_rrsets();
        let Some(soa) = rrsets
            .iter_mut()
            .find(|r| r.rtype == u16::from(RecordType::SOA))
        else {
            return Err(no_soa());
        };
        let rdatas: Vec<Vec<u8>> = soa
            .rdatas()
            .iter()
            .map(|r| with_serial(r, serial))
            .collect();
        let minimum = rdatas.first().and_then(|r| soa_minimum(r)).unwrap_or(0);
        self.negative_ttl = soa.ttl.min(minimum);
        *soa = Rrset::unsigned(&RrsetData::new(RecordType::SOA, soa.ttl, rdatas));
        self.put(Node::new(apex.wire(), &rrsets));
        self.serial = serial;
        Ok(())
    }

    /// Re-links the NSEC records at and before every touched name (RFC 4034
    /// §4.1.1); returns their owners' order keys.
    fn rechain(&mut self, touched: &BTreeSet<Bytes>) -> BTreeSet<Bytes> {
        let mut nsec_owners: BTreeSet<Bytes> = BTreeSet::new();
        for key in touched {
            if self.order.contains(&key[..]) {
                nsec_owners.insert(key.clone());
            }
            if let Some(prev) = self
                .order
                .range::<_, [u8]>((Bound::Unbounded, Bound::Excluded(&key[..])))
                .next_back()
            {
                nsec_owners.insert(prev.clone());
            }
        }
        for key in &nsec_owners {
            self.set_nsec(key);
        }
        nsec_owners
    }

    /// The RRsets among `candidates` (order keys) whose signatures are
    /// missing, by other keys, or due for refresh.
    fn jobs_due(
        &self,
        candidates: Vec<Bytes>,
        signer: &ZoneSigner,
        now_secs: u32,
        options: &ZoneOptions,
    ) -> Vec<SignJob> {
        let mut jobs = Vec::new();
        for key in candidates {
            let Some(node) = self.node_at_key(&key) else {
                continue;
            };
            // Copied once per name with a job, not per candidate.
            let mut wire: Option<Bytes> = None;
            for (index, rrset) in node.rrsets().enumerate() {
                let by_ksk = self.by_ksk(node.wire(), rrset.rtype);
                let keys = if by_ksk { &signer.ksks } else { &signer.zsks };
                if needs_signing(rrset, keys, now_secs, options) {
                    jobs.push(SignJob {
                        wire: wire.get_or_insert_with(|| node.wire().into()).clone(),
                        index,
                        rtype: RecordType::from(rrset.rtype),
                        ttl: rrset.ttl,
                        records: rrset.records.into(),
                        by_ksk,
                    });
                }
            }
        }
        jobs
    }

    /// Applies one owner's change; returns whether anything changed.
    fn apply_one(&mut self, change: &Change, touched: &mut BTreeSet<Bytes>) -> bool {
        let wire: Bytes = canonical_wire(&change.owner).into();
        let Some(key) = self
            .order_key(&canonical_key(&change.owner))
            .map(Bytes::from)
        else {
            // Not in this zone: the content never holds such a name.
            tracing::error!(zone = %display(&self.apex), owner = %display(&change.owner), "a name outside the zone is left out");
            return false;
        };
        let wanted = change
            .rrsets
            .as_ref()
            .filter(|r| r.iter().any(|s| !s.rdatas.is_empty()));
        let node = match (self.node(&wire), wanted) {
            (Some(node), Some(rrsets)) if same_data(node, rrsets) => return false,
            (Some(node), Some(rrsets)) => Some(merge(node, rrsets)),
            (_, Some(rrsets)) => Some(merge(&Node::new(&wire, &[]), rrsets)),
            (_, None) => None,
        };
        let node = node.map(|rrsets| Node::new(&wire, &rrsets));
        if !self.set_node(wire, key.clone(), node) {
            return false;
        }
        touched.insert(key);
        true
    }

    /// Gives the name `wire` (order key `key`) the data `node`, or
    /// removes its data (`None`), keeping the order index right (empty
    /// non-terminals follow from it); false when there was nothing to
    /// remove.
    fn set_node(&mut self, wire: Bytes, key: Bytes, node: Option<Node>) -> bool {
        debug_assert!(node.as_ref().is_none_or(|n| n.wire() == &wire[..]));
        match (self.node(&wire).is_some(), node) {
            (true, Some(node)) => {
                self.put(node);
            }
            (false, Some(node)) => {
                self.put(node);
                self.order.insert(key);
            }
            (true, None) => {
                self.take_out(&wire);
                self.order.remove(&key[..]);
            }
            (false, None) => return false,
        }
        true
    }

    /// Puts whole nodes in place as they were saved (a change log's replay,
    /// `zone::changes`): each `(wire, node)` replaces the name's data, or
    /// removes it (`None`), keeping the order index right; nothing is
    /// signed or chained here, the nodes
    /// carry their NSEC and RRSIGs. Then the zone has serial `serial`.
    /// `None` (and the zone half-changed: the caller drops it) when a name
    /// is not the lower-case wire form of a name at or below the apex.
    pub fn put_nodes(&mut self, nodes: Vec<(Bytes, Option<Node>)>, serial: u32) -> Option<()> {
        for (wire, node) in nodes {
            let name = name_of(&wire)?;
            if canonical_wire(&name)[..] != wire[..] || !self.apex.zone_of(&name) {
                return None;
            }
            let key: Bytes = self.order_key(&canonical_key(&name))?.into();
            self.set_node(wire, key, node);
        }
        let soa = self.apex_node()?.rrset(RecordType::SOA)?;
        let minimum = soa.rdatas().first().and_then(|r| soa_minimum(r))?;
        self.negative_ttl = soa.ttl.min(minimum);
        self.serial = serial;
        Some(())
    }

    /// Recomputes the NSEC record at the data name with order key `key`.
    fn set_nsec(&mut self, key: &Bytes) {
        let Some(node) = self.node_at_key(key).cloned() else {
            return;
        };
        let next_wire = self
            .order
            .range::<_, [u8]>((Bound::Excluded(&key[..]), Bound::Unbounded))
            .next()
            .or_else(|| self.order.iter().next())
            .and_then(|k| self.wire_at_key(k));
        let Some(next_wire) = next_wire else {
            return;
        };
        let Some(next) = name_of(&next_wire) else {
            return;
        };
        let mut types: Vec<RecordType> = node
            .rrsets()
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
            .is_some_and(|old| *old.records == *fresh.records && old.ttl == fresh.ttl)
        {
            return;
        }
        let mut rrsets: Vec<Rrset> = node
            .rrsets()
            .filter(|r| r.rtype != u16::from(RecordType::NSEC))
            .map(|r| r.to_rrset())
            .collect();
        rrsets.push(fresh);
        rrsets.sort_by_key(|r| r.rtype);
        self.put(Node::new(node.wire(), &rrsets));
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
            let Some(node) = self.node(&wire).cloned() else {
                continue;
            };
            let mut rrsets = node.to_rrsets();
            for (index, sigs) in updates {
                if let Some(rrset) = rrsets.get_mut(index) {
                    rrset.set_sigs(sigs);
                }
            }
            self.put(Node::new(&wire, &rrsets));
        }
        Ok(stats)
    }
}

/// True when the node holds exactly `rrsets` (NSEC aside; an SOA's serial
/// does not count: the zone sets it).
pub(super) fn same_data(node: &Node, rrsets: &[RrsetData]) -> bool {
    node.holds(rrsets)
}

/// Equal records; for an SOA, equal but for the serial.
pub(super) fn same_records(a: RrsetRef<'_>, b: &Rrset) -> bool {
    if a.rtype != u16::from(RecordType::SOA) {
        return *a.records == *b.records;
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
pub(super) fn merge(node: &Node, rrsets: &[RrsetData]) -> Vec<Rrset> {
    let mut out: Vec<Rrset> = Vec::with_capacity(rrsets.len() + 1);
    for data in rrsets.iter().filter(|r| !r.rdatas.is_empty()) {
        let fresh = Rrset::unsigned(data);
        let kept = node
            .rrsets()
            .find(|r| r.rtype == fresh.rtype && r.ttl == fresh.ttl && *r.records == *fresh.records);
        out.push(kept.map_or(fresh, |r| r.to_rrset()));
    }
    if let Some(nsec) = node.rrset(RecordType::NSEC) {
        out.push(nsec.to_rrset());
    }
    out.sort_by_key(|r| r.rtype);
    out.dedup_by_key(|r| r.rtype);
    out
}

pub(super) fn needs_signing(
    rrset: RrsetRef<'_>,
    keys: &[Arc<crate::dnssec::signer::SigningKey>],
    now: u32,
    options: &ZoneOptions,
) -> bool {
    if rrset.sigs.is_empty() || rrset.signer_count() != keys.len() {
        return true;
    }
    let same_keys = keys
        .iter()
        .all(|k| rrset.signers().any(|s| s == (k.algorithm.number(), k.tag)));
    let left = rrset.expires.wrapping_sub(now);
    !(same_keys && left > options.signature_refresh && left < 0x8000_0000)
}
