//! Signing a zone one RRset at a time and keeping it signed (SPEC §5).
//!
//! - KSKs/CSKs sign the apex DNSKEY, CDS and CDNSKEY RRsets (RFC 7344 §4.1:
//!   the CDS must be signed by a key the parent's DS points to); ZSKs/CSKs
//!   sign everything else.
//! - Inception is backdated; expiration is spread by a per-RRset jitter so a
//!   large zone does not expire at one instant.
//! - An update keeps every signature whose RRset, signing keys and validity
//!   still hold, and re-signs only the rest, on all cores.
//! - Denial: a full NSEC chain in canonical order (RFC 4034 §4), so the zone
//!   can be walked; NSEC TTL = min(SOA MINIMUM, SOA TTL) (RFC 9077).

use std::{collections::BTreeMap, sync::Arc};

use hickory_proto::rr::{Name, RecordType};
use jiff::Timestamp;

use super::content::{RrsetData, ZoneContent};
use crate::{
    config::ZoneOptions,
    dns::{Nsec, Rrsig, name::display},
    dnssec::signer::{SignerError, SigningKey},
    keys::Key,
    policy::Lifecycle,
};

/// Why a zone could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// No active key for a role.
    #[error("zone {zone}: no active {role} with a usable private key: cannot sign {what}")]
    NoKey {
        /// The zone.
        zone: String,
        /// "KSK" or "ZSK".
        role: &'static str,
        /// What needed signing.
        what: String,
    },
    /// A key failed to sign.
    #[error("zone {zone}: {source}")]
    Signer {
        /// The zone.
        zone: String,
        /// The error.
        source: SignerError,
    },
    /// The content has no SOA at the apex.
    #[error("zone {0}: no SOA at the apex")]
    NoSoa(String),
}

/// The keys a zone is signed with at one moment.
#[derive(Debug, Default)]
pub struct ZoneSigner {
    /// Active KSKs and CSKs: sign DNSKEY, CDS, CDNSKEY.
    pub ksks: Vec<Arc<SigningKey>>,
    /// Active ZSKs and CSKs: sign everything else.
    pub zsks: Vec<Arc<SigningKey>>,
    /// Keys that should sign but cannot (no private key...).
    pub problems: Vec<String>,
}

impl ZoneSigner {
    /// The active keys among `keys` at `now` (published, activated, not
    /// inactive, revoked or deleted), loaded for signing. When only one kind
    /// is active, it plays both parts.
    pub fn from_keys(keys: &[Arc<Key>], now: Timestamp) -> Self {
        let mut signer = ZoneSigner::default();
        for key in keys {
            let life = Lifecycle::of(key, now, None);
            if !(life.published && life.activated) || life.inactive || life.revoked || life.deleted
            {
                continue;
            }
            match SigningKey::from_key(key) {
                Ok(signing) => {
                    let signing = Arc::new(signing);
                    let role = key.role();
                    if role.signs_keys() {
                        signer.ksks.push(signing.clone());
                    }
                    if role != crate::keys::Role::Ksk {
                        signer.zsks.push(signing);
                    }
                }
                Err(e) => signer.problems.push(e.to_string()),
            }
        }
        // A zone with keys of one kind only (a lone SEP key made by
        // `dnssec-keygen -f KSK`, no .state to call it a CSK) signs
        // everything with them, as dnssec-signzone does.
        if signer.zsks.is_empty() {
            signer.zsks = signer.ksks.clone();
        } else if signer.ksks.is_empty() {
            signer.ksks = signer.zsks.clone();
        }
        signer
    }
}

/// An RRset with its signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRrset {
    /// The data.
    pub data: RrsetData,
    /// Its RRSIGs, one per signing key.
    pub sigs: Vec<Rrsig>,
}

/// One owner name with its signed RRsets, NSEC included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedNode {
    /// The owner (lower case).
    pub name: Name,
    /// RRsets ordered by type code.
    pub rrsets: Vec<SignedRrset>,
}

impl SignedNode {
    /// The RRset of `rtype`, if present.
    pub fn rrset(&self, rtype: RecordType) -> Option<&SignedRrset> {
        self.rrsets.iter().find(|r| r.data.rtype == rtype)
    }
}

/// What an update did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpdateStats {
    /// Names in the zone.
    pub names: usize,
    /// RRsets (re-)signed.
    pub rrsets_signed: usize,
    /// RRSIGs made.
    pub signatures: usize,
    /// RRsets whose signatures were kept.
    pub rrsets_kept: usize,
}

/// A signed zone, kept signed across updates.
#[derive(Debug, Clone)]
pub struct SignedZone {
    /// The apex.
    pub apex: Name,
    /// The SOA serial of this version.
    pub serial: u32,
    /// TTL of NSEC records and negative answers: min(SOA MINIMUM, SOA TTL).
    pub negative_ttl: u32,
    /// Names in canonical order.
    pub nodes: BTreeMap<Vec<u8>, SignedNode>,
}

impl SignedZone {
    /// A zone with no content yet.
    pub fn new(apex: Name) -> Self {
        SignedZone {
            apex,
            serial: 0,
            negative_ttl: 0,
            nodes: BTreeMap::new(),
        }
    }

    /// The apex node.
    pub fn apex_node(&self) -> Option<&SignedNode> {
        self.nodes.get(&crate::dns::name::canonical_key(&self.apex))
    }

    /// The earliest signature expiration in the zone.
    pub fn earliest_expiration(&self) -> Option<u32> {
        self.nodes
            .values()
            .flat_map(|n| n.rrsets.iter())
            .flat_map(|r| r.sigs.iter().map(|s| s.expiration))
            .min()
    }

    /// Makes the zone equal to `content` with SOA serial `serial`, signed by
    /// `signer` at `now`; keeps every signature still good. On error the zone
    /// is left as it was.
    pub fn update(
        &mut self,
        content: &ZoneContent,
        signer: &ZoneSigner,
        serial: u32,
        now: Timestamp,
        options: &ZoneOptions,
    ) -> Result<UpdateStats, SignError> {
        let zone_name = display(&self.apex);
        let now_secs = now.as_second().clamp(0, i64::from(u32::MAX)) as u32;
        let (soa_ttl, minimum) =
            apex_soa(content).ok_or_else(|| SignError::NoSoa(zone_name.clone()))?;
        let negative_ttl = soa_ttl.min(minimum);

        if signer.ksks.is_empty() || signer.zsks.is_empty() {
            return Err(SignError::NoKey {
                zone: zone_name,
                role: if signer.ksks.is_empty() { "KSK" } else { "ZSK" },
                what: "the zone".into(),
            });
        }

        // 1. The new data, keeping the signatures of unchanged RRsets. Built
        //    beside the current version, which stays intact on error.
        let old_nodes = &self.nodes;
        let mut nodes: BTreeMap<Vec<u8>, SignedNode> = BTreeMap::new();
        let mut old_nsec: BTreeMap<Vec<u8>, SignedRrset> = BTreeMap::new();
        for (key, node) in &content.nodes {
            let old = old_nodes.get(key);
            let mut rrsets = Vec::with_capacity(node.rrsets.len() + 1);
            for data in &node.rrsets {
                let mut data = data.clone();
                if data.rtype == RecordType::SOA {
                    data.rdatas = data.rdatas.iter().map(|r| with_serial(r, serial)).collect();
                }
                let kept = old
                    .as_ref()
                    .and_then(|o| o.rrset(data.rtype))
                    .filter(|o| o.data == data)
                    .map(|o| o.sigs.clone())
                    .unwrap_or_default();
                rrsets.push(SignedRrset { data, sigs: kept });
            }
            if let Some(nsec) = old.and_then(|o| o.rrset(RecordType::NSEC)) {
                old_nsec.insert(key.clone(), nsec.clone());
            }
            nodes.insert(
                key.clone(),
                SignedNode {
                    name: node.name.clone(),
                    rrsets,
                },
            );
        }

        // 2. The NSEC chain: next name in canonical order, wrapping to the apex.
        let names: Vec<Name> = nodes.values().map(|n| n.name.clone()).collect();
        for (i, node) in nodes.values_mut().enumerate() {
            let next = names[(i + 1) % names.len()].clone();
            let mut types: Vec<RecordType> = node.rrsets.iter().map(|r| r.data.rtype).collect();
            types.extend([RecordType::RRSIG, RecordType::NSEC]);
            let nsec = Nsec { next, types };
            let data = RrsetData::new(RecordType::NSEC, negative_ttl, vec![nsec.to_wire()]);
            let key = crate::dns::name::canonical_key(&node.name);
            let sigs = old_nsec
                .remove(&key)
                .filter(|o| o.data == data)
                .map(|o| o.sigs)
                .unwrap_or_default();
            node.rrsets.push(SignedRrset { data, sigs });
            node.rrsets.sort_by_key(|r| u16::from(r.data.rtype));
        }

        // 3. What needs (re-)signing.
        let apex_key = crate::dns::name::canonical_key(&self.apex);
        let mut jobs: Vec<Job<'_>> = Vec::new();
        let mut kept = 0;
        for (key, node) in &nodes {
            for (index, rrset) in node.rrsets.iter().enumerate() {
                let by_ksk = *key == apex_key
                    && matches!(
                        rrset.data.rtype,
                        RecordType::DNSKEY | RecordType::CDS | RecordType::CDNSKEY
                    );
                let keys = if by_ksk { &signer.ksks } else { &signer.zsks };
                if keys.is_empty() {
                    return Err(SignError::NoKey {
                        zone: zone_name,
                        role: if by_ksk { "KSK" } else { "ZSK" },
                        what: format!(
                            "{} {}",
                            display(&node.name),
                            crate::dns::type_mnemonic(rrset.data.rtype)
                        ),
                    });
                }
                if needs_signing(rrset, keys, now_secs, options) {
                    jobs.push(Job {
                        key: key.clone(),
                        index,
                        owner: &node.name,
                        data: &rrset.data,
                        keys,
                    });
                } else {
                    kept += 1;
                }
            }
        }

        // 4. Sign on all cores.
        let inception = now_secs.saturating_sub(options.signature_inception_offset);
        let results =
            sign_all(&jobs, inception, now_secs, options).map_err(|source| SignError::Signer {
                zone: zone_name.clone(),
                source,
            })?;
        let stats = UpdateStats {
            names: nodes.len(),
            rrsets_signed: jobs.len(),
            signatures: results.iter().map(Vec::len).sum(),
            rrsets_kept: kept,
        };
        let placements: Vec<(Vec<u8>, usize)> =
            jobs.iter().map(|j| (j.key.clone(), j.index)).collect();
        drop(jobs);
        for ((key, index), sigs) in placements.into_iter().zip(results) {
            if let Some(node) = nodes.get_mut(&key) {
                node.rrsets[index].sigs = sigs;
            }
        }
        self.nodes = nodes;
        self.serial = serial;
        self.negative_ttl = negative_ttl;
        Ok(stats)
    }
}

struct Job<'a> {
    key: Vec<u8>,
    index: usize,
    owner: &'a Name,
    data: &'a RrsetData,
    keys: &'a [Arc<SigningKey>],
}

fn needs_signing(
    rrset: &SignedRrset,
    keys: &[Arc<SigningKey>],
    now: u32,
    options: &ZoneOptions,
) -> bool {
    if rrset.sigs.len() != keys.len() {
        return true;
    }
    let same_keys = keys.iter().all(|k| {
        rrset
            .sigs
            .iter()
            .any(|s| s.key_tag == k.tag && s.algorithm == k.algorithm.number())
    });
    let fresh = rrset.sigs.iter().all(|s| {
        s.expiration.wrapping_sub(now) > options.signature_refresh
            && s.expiration.wrapping_sub(now) < 0x8000_0000
    });
    !(same_keys && fresh)
}

/// Signs every job, spreading the work over the machine's cores.
fn sign_all(
    jobs: &[Job<'_>],
    inception: u32,
    now: u32,
    options: &ZoneOptions,
) -> Result<Vec<Vec<Rrsig>>, SignerError> {
    let sign_one = |job: &Job<'_>| -> Result<Vec<Rrsig>, SignerError> {
        let jitter = if options.signature_jitter == 0 {
            0
        } else {
            jitter_hash(&job.key, job.data.rtype) % options.signature_jitter
        };
        let expiration = now.wrapping_add(options.signature_validity - jitter);
        job.keys
            .iter()
            .map(|k| {
                k.sign_rrset(
                    job.owner,
                    job.data.rtype,
                    job.data.ttl,
                    &job.data.rdatas,
                    inception,
                    expiration,
                )
            })
            .collect()
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(jobs.len().max(1));
    if threads <= 1 || jobs.len() < 64 {
        return jobs.iter().map(sign_one).collect();
    }
    let chunk = jobs.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || part.iter().map(sign_one).collect::<Result<Vec<_>, _>>())
            })
            .collect();
        let mut out = Vec::with_capacity(jobs.len());
        for handle in handles {
            match handle.join() {
                Ok(part) => out.extend(part?),
                Err(_) => {
                    return Err(SignerError::Failed {
                        key: "signing thread panicked".into(),
                    });
                }
            }
        }
        Ok(out)
    })
}

/// FNV-1a of owner key and type: a stable per-RRset jitter, so expirations
/// stay spread across restarts.
fn jitter_hash(key: &[u8], rtype: RecordType) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in key.iter().chain(u16::from(rtype).to_be_bytes().iter()) {
        hash ^= u32::from(*byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// (SOA TTL, SOA MINIMUM) of the content's apex.
fn apex_soa(content: &ZoneContent) -> Option<(u32, u32)> {
    let node = content
        .nodes
        .get(&crate::dns::name::canonical_key(&content.apex))?;
    let soa = node.rrsets.iter().find(|r| r.rtype == RecordType::SOA)?;
    let rdata = soa.rdatas.first()?;
    let minimum = rdata.get(rdata.len().checked_sub(4)?..)?;
    Some((
        soa.ttl,
        u32::from_be_bytes([minimum[0], minimum[1], minimum[2], minimum[3]]),
    ))
}

/// SOA wire RDATA with another serial (serial = the 20 octets before the end).
fn with_serial(rdata: &[u8], serial: u32) -> Vec<u8> {
    let mut out = rdata.to_vec();
    if let Some(at) = out.len().checked_sub(20) {
        out[at..at + 4].copy_from_slice(&serial.to_be_bytes());
    }
    out
}

/// The SOA of a signed zone, decoded (for logs and tests).
pub fn soa_serial_of(rdata: &[u8]) -> Option<u32> {
    let at = rdata.len().checked_sub(20)?;
    Some(u32::from_be_bytes([
        rdata[at],
        rdata[at + 1],
        rdata[at + 2],
        rdata[at + 3],
    ]))
}

#[cfg(test)]
mod tests;
