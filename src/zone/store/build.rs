//! The cold-start path of the zone store: an empty zone built in one pass
//! (sort, chain, sign on all cores, fill the maps) instead of inserting every
//! name through the incremental path, which would touch each name twice
//! (data, NSEC of the predecessor) and re-sign its predecessor's NSEC.

use hickory_proto::rr::RecordType;
use jiff::Timestamp;

use super::{
    Bytes, Change, Names, Node, Rrset, UpdateStats, ZoneStore, put_named, soa_minimum, with_serial,
};
use crate::{
    config::ZoneOptions,
    dns::name::{canonical_key, canonical_wire, display},
    zone::{
        content::RrsetData,
        signer::{SignError, SignJob, Signatures, ZoneSigner, sign_jobs},
    },
};

/// One owner of the zone being built: canonical key, wire name, RRsets.
type Owner = (Bytes, Bytes, Vec<Rrset>);

/// Owners signed at a time: their jobs, each with a copy of its RRset's
/// records, live for one part instead of the whole build (at a million
/// children 3M jobs, ~370 MB at the cold start's peak). A part is still
/// ~200,000 RRsets for the signing threads to share. The unit tests sign
/// two owners at a time, so that every cold build of theirs is in parts.
const SIGN_PART: usize = if cfg!(test) { 2 } else { 1 << 16 };

impl ZoneStore {
    /// Builds an empty zone from `changes` in one pass: sort, chain, sign
    /// everything on all cores, then fill the maps (a cold start of a large
    /// zone; the general path would re-insert every name three times).
    pub(super) fn build(
        &mut self,
        changes: Vec<Change>,
        signer: &ZoneSigner,
        serial: u32,
        now: Timestamp,
        options: &ZoneOptions,
    ) -> Result<UpdateStats, SignError> {
        let zone_name = display(&self.apex);
        let started = std::time::Instant::now();
        let phase = |phase: &str| {
            tracing::debug!(zone = %zone_name, phase, elapsed_ms = started.elapsed().as_millis() as u64, "zone build progress");
        };
        let mut owners = sorted_owners(changes, serial);
        // Not in this zone: the content never holds such a name; it is
        // neither chained, signed nor stored.
        owners.retain(|(key, _, _)| {
            let inside = key.starts_with(&self.apex_key);
            if !inside {
                tracing::error!(zone = %zone_name, key = ?key, "a name outside the zone is left out");
            }
            inside
        });
        let negative_ttl = self.negative_ttl_of(&owners)?;
        chain(&mut owners, negative_ttl);
        phase("sorted and chained");
        let (rrsets_signed, signatures) = self.sign_all(&mut owners, signer, now, options)?;
        phase("signed");
        let count = owners.len();
        self.index(owners);
        phase("indexed");
        self.serial = serial;
        self.negative_ttl = negative_ttl;
        Ok(UpdateStats {
            names: count,
            changed_names: count,
            rrsets_signed,
            signatures,
            // No version before this one to diff against.
            touched: Vec::new(),
        })
    }

    /// The TTL of negative answers: min(SOA TTL, SOA MINIMUM) (RFC 2308 §3).
    fn negative_ttl_of(&self, owners: &[Owner]) -> Result<u32, SignError> {
        let no_soa = || SignError::NoSoa(display(&self.apex));
        let apex = owners
            .iter()
            .find(|e| e.1 == self.apex_wire)
            .ok_or_else(no_soa)?;
        let soa = apex
            .2
            .iter()
            .find(|r| r.rtype == u16::from(RecordType::SOA))
            .ok_or_else(no_soa)?;
        let minimum = soa
            .rdatas()
            .first()
            .and_then(|r| soa_minimum(r))
            .unwrap_or(0);
        Ok(soa.ttl.min(minimum))
    }

    /// Signs every RRset (NSEC included) on all cores, [`SIGN_PART`]
    /// owners at a time, counted as one signing run; returns how many
    /// RRsets were signed and how many signatures made.
    fn sign_all(
        &self,
        owners: &mut [Owner],
        signer: &ZoneSigner,
        now: Timestamp,
        options: &ZoneOptions,
    ) -> Result<(usize, usize), SignError> {
        let zone_name = display(&self.apex);
        let total: usize = owners.iter().map(|(_, _, sets)| sets.len()).sum();
        let zone = zone_name.as_str();
        let mut sign = || {
            let mut signatures = 0;
            for part in owners.chunks_mut(SIGN_PART) {
                signatures += self.sign_part(zone, part, signer, now, options)?;
            }
            Ok((total, signatures))
        };
        match signer.progress.as_deref() {
            Some(board) => board.run(&zone_name, total, sign),
            None => sign(),
        }
    }

    /// Signs every RRset of `owners`; returns how many signatures made.
    fn sign_part(
        &self,
        zone_name: &str,
        owners: &mut [Owner],
        signer: &ZoneSigner,
        now: Timestamp,
        options: &ZoneOptions,
    ) -> Result<usize, SignError> {
        let now_secs = now.as_second().clamp(0, i64::from(u32::MAX)) as u32;
        let mut jobs = Vec::with_capacity(owners.iter().map(|(_, _, sets)| sets.len()).sum());
        for (_, wire, sets) in owners.iter() {
            for (index, rrset) in sets.iter().enumerate() {
                jobs.push(SignJob {
                    wire: wire.clone(),
                    index,
                    rtype: RecordType::from(rrset.rtype),
                    ttl: rrset.ttl,
                    records: rrset.records.clone(),
                    by_ksk: self.by_ksk(wire, rrset.rtype),
                });
            }
        }
        let results = sign_jobs(zone_name, &jobs, signer, now_secs, options).map_err(|source| {
            SignError::Signer {
                zone: zone_name.to_string(),
                source,
            }
        })?;
        let signatures = results.iter().map(Signatures::len).sum();
        let mut results = results.into_iter();
        for (_, _, sets) in owners.iter_mut() {
            for rrset in sets.iter_mut() {
                if let Some(sigs) = results.next() {
                    rrset.set_sigs(sigs);
                }
            }
        }
        Ok(signatures)
    }

    /// Fills the maps.
    fn index(&mut self, owners: Vec<Owner>) {
        let mut names = Names::default();
        let mut order: imbl::OrdSet<Bytes> = imbl::OrdSet::new();
        for (key, wire, sets) in owners {
            let Some(order_key) = self.order_key(&key) else {
                continue; // outside the zone: not chained or signed either
            };
            order.insert(order_key.into());
            put_named(&mut names, Node::new(&wire, &sets));
        }
        self.names = names;
        self.order = order;
    }
}

/// The owners with data in canonical order, each with its RRsets sorted by
/// type (the SOA with `serial`); a later change of the same owner wins.
/// Each change is dropped once it is in the owners' form (at a million
/// children the changes' records are ~250 MB of the cold start's peak).
fn sorted_owners(changes: Vec<Change>, serial: u32) -> Vec<Owner> {
    let mut owners: Vec<Owner> = changes
        .into_iter()
        .filter_map(|change| {
            let rrsets = change.rrsets.as_ref()?;
            let mut sets: Vec<Rrset> = rrsets
                .iter()
                .filter(|r| !r.rdatas.is_empty())
                .map(|r| {
                    if r.rtype == RecordType::SOA {
                        let rdatas = r.rdatas.iter().map(|d| with_serial(d, serial)).collect();
                        Rrset::unsigned(&RrsetData::new(RecordType::SOA, r.ttl, rdatas))
                    } else {
                        Rrset::unsigned(r)
                    }
                })
                .collect();
            if sets.is_empty() {
                return None;
            }
            sets.sort_by_key(|r| r.rtype);
            sets.dedup_by_key(|r| r.rtype);
            Some((
                canonical_key(&change.owner).into(),
                canonical_wire(&change.owner).into(),
                sets,
            ))
        })
        .collect();
    owners.reverse();
    owners.sort_by(|a, b| a.0.cmp(&b.0));
    owners.dedup_by(|a, b| a.0 == b.0);
    owners
}

/// The NSEC chain (RFC 4034 §4): each name points at the next in canonical
/// order, the last at the apex; the type bitmap lists its types plus RRSIG
/// and NSEC.
fn chain(owners: &mut [Owner], negative_ttl: u32) {
    let count = owners.len();
    let nexts: Vec<Bytes> = (0..count)
        .map(|i| owners[(i + 1) % count].1.clone())
        .collect();
    for ((_, _, sets), next) in owners.iter_mut().zip(nexts) {
        let mut types: Vec<RecordType> = sets.iter().map(|r| RecordType::from(r.rtype)).collect();
        types.extend([RecordType::RRSIG, RecordType::NSEC]);
        let mut rdata = next.to_vec();
        rdata.extend(crate::dns::bitmap::encode(&types));
        sets.push(Rrset::unsigned(&RrsetData::new(
            RecordType::NSEC,
            negative_ttl,
            vec![rdata],
        )));
        sets.sort_by_key(|r| r.rtype);
    }
}
