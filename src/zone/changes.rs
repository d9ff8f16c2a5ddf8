//! The change log of a saved zone (issue 15: tiny writes): instead of
//! rewriting the whole signed zone after every change (about 650 MB at a
//! million children), the saver appends each version's difference to
//! `zones/<apex>.changes` and rewrites the whole image (`zone::persist`)
//! only now and then, when the log has grown past a share of the image
//! (compaction, bounded replay time). A warm start loads the image and
//! replays the log on top of it.
//!
//! The differences are the IXFR journal's own ([`Diff`], RFC 1995 §4: the
//! records removed and added between two serials, signatures included), so
//! a version replayed from the log is the version that was served, record
//! for record.
//!
//! Format: a header `SBCHNG1\n`, the serial of the image it continues (u32)
//! and the SHA-256 of both; then records, each `u32 length`, one encoded
//! [`Diff`], and the SHA-256 of that encoding. Appends are written and
//! `fdatasync`ed; a record cut short by a crash (kill -9, power loss) or
//! damaged fails its length or checksum and ends the replay there: every
//! version before it is kept. The header is written atomically, so a log
//! always names the image it belongs to; a log whose image was replaced by
//! a newer one (a crash between the two writes of a compaction) replays
//! only the differences that start at the image's serial: none.

use std::{
    collections::BTreeMap,
    fs::OpenOptions,
    io::{self, Write},
    path::Path,
    sync::Arc,
};

use super::{
    blob::{Bytes, records},
    journal::Diff,
    store::{Node, Rrset, ZoneStore},
};
use crate::{
    dns::{Rrsig, wire},
    state::{StateError, write_atomically},
};

const MAGIC: &[u8] = b"SBCHNG1\n";
const HEADER_LEN: usize = MAGIC.len() + 4 + 32;

/// Starts a log for the image with serial `base` (replacing any).
pub fn create(path: &Path, base: u32) -> Result<(), StateError> {
    let mut header = MAGIC.to_vec();
    wire::put_u32(&mut header, base);
    let digest = ring::digest::digest(&ring::digest::SHA256, &header);
    header.extend_from_slice(digest.as_ref());
    write_atomically(path, &header)
}

/// Appends `diffs` and waits until they are on disk; returns the octets
/// written.
pub fn append(path: &Path, diffs: &[Arc<Diff>]) -> Result<usize, StateError> {
    let mut out = Vec::new();
    for diff in diffs {
        let mut record = Vec::new();
        diff.encode_into(&mut record);
        wire::put_u32(&mut out, record.len() as u32);
        let digest = ring::digest::digest(&ring::digest::SHA256, &record);
        out.extend_from_slice(&record);
        out.extend_from_slice(digest.as_ref());
    }
    let io = |source: io::Error| StateError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = OpenOptions::new().append(true).open(path).map_err(io)?;
    file.write_all(&out).map_err(io)?;
    file.sync_data().map_err(io)?;
    Ok(out.len())
}

/// A log as read: the image serial it continues and its whole records.
#[derive(Debug, Default)]
pub struct ChangeLog {
    /// The serial of the image the log continues.
    pub base: u32,
    /// The differences, oldest first.
    pub diffs: Vec<Diff>,
    /// Octets after the last whole record (a cut-short or damaged tail).
    pub dropped_tail: usize,
    /// The log's size in octets.
    pub bytes: u64,
}

/// Reads the log at `path`: `Ok(None)` when there is none, `Damaged` when
/// its header is; a damaged record ends the log (see the module doc).
pub fn read(path: &Path) -> Result<Option<ChangeLog>, StateError> {
    let data = match std::fs::read(path) {
        Ok(data) => data,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    parse(&data).map(Some).ok_or_else(|| StateError::Damaged {
        path: path.to_path_buf(),
        what: "its header fails its SHA-256 checksum or is not a change log",
    })
}

/// Parses a change log; `None` when its header is damaged (a damaged record
/// ends the log, see the module doc).
pub fn parse(data: &[u8]) -> Option<ChangeLog> {
    let header = data.get(..HEADER_LEN)?;
    let (fields, digest) = header.split_at(MAGIC.len() + 4);
    if !fields.starts_with(MAGIC)
        || ring::digest::digest(&ring::digest::SHA256, fields).as_ref() != digest
    {
        return None;
    }
    let mut log = ChangeLog {
        base: wire::u32_at(fields, MAGIC.len())?,
        bytes: data.len() as u64,
        ..ChangeLog::default()
    };
    let mut at = HEADER_LEN;
    while at < data.len() {
        let Some(diff) = record_at(data, at).map(|(diff, len)| {
            at += len;
            diff
        }) else {
            log.dropped_tail = data.len() - at;
            break;
        };
        log.diffs.push(diff);
    }
    Some(log)
}

/// The record at `at`: the diff and the octets it took.
fn record_at(data: &[u8], at: usize) -> Option<(Diff, usize)> {
    let len = wire::u32_at(data, at)? as usize;
    let body = data.get(at + 4..at + 4 + len)?;
    let digest = data.get(at + 4 + len..at + 4 + len + 32)?;
    if ring::digest::digest(&ring::digest::SHA256, body).as_ref() != digest {
        return None;
    }
    let mut offset = 0;
    let mut take = |n: usize| -> Option<&[u8]> {
        let s = body.get(offset..offset + n)?;
        offset += n;
        Some(s)
    };
    let diff = Diff::decode_from(&mut take)?;
    (offset == body.len()).then_some((diff, 4 + len + 32))
}

/// `base` with every diff of `diffs` that continues it applied in order
/// (a diff whose `from` is not the serial reached so far is skipped), and
/// the diffs applied. Only the names a diff touches are rebuilt: replaying a
/// few changes onto a million-name image costs what the changes cost. `None`
/// when a diff does not fit the zone (it removes a record the zone does not
/// hold, or names an owner outside it): the log is not this image's.
pub fn replay(base: &ZoneStore, diffs: Vec<Diff>) -> Option<(ZoneStore, Vec<Diff>)> {
    let mut store = base.clone();
    let apex: Bytes = base.apex_wire().into();
    let soa = u16::from(hickory_proto::rr::RecordType::SOA);
    let mut applied = Vec::new();
    for diff in diffs {
        if diff.from != store.serial() {
            continue;
        }
        let mut touched: BTreeMap<Bytes, Vec<Rrset>> = BTreeMap::new();
        let sets_of = |owner: &Bytes, store: &ZoneStore| -> Vec<Rrset> {
            store.node(owner).map(Node::to_rrsets).unwrap_or_default()
        };
        // The SOA is replaced whole (its RRSIGs travel in the lists).
        let mut apex_sets = sets_of(&apex, &store);
        let soa_set = apex_sets.iter_mut().find(|r| r.rtype == soa)?;
        soa_set.ttl = wire::u32_at(&diff.new_soa, 4)?;
        soa_set.records = diff.new_soa.clone();
        touched.insert(apex.clone(), apex_sets);
        if !diff
            .removed
            .iter()
            .chain(&diff.added)
            .all(|rr| whole_record(&rr.record))
        {
            return None;
        }
        for rr in &diff.removed {
            if !touched.contains_key(&rr.owner) {
                let sets = sets_of(&rr.owner, &store);
                touched.insert(rr.owner.clone(), sets);
            }
            let sets = touched.get_mut(&rr.owner)?;
            if !remove(sets, &rr.record) {
                return None;
            }
        }
        for rr in &diff.added {
            if !touched.contains_key(&rr.owner) {
                let sets = sets_of(&rr.owner, &store);
                touched.insert(rr.owner.clone(), sets);
            }
            add(touched.get_mut(&rr.owner)?, &rr.record);
        }
        let nodes = touched
            .into_iter()
            .map(|(wire, mut rrsets)| {
                rrsets.sort_by_key(|r| r.rtype);
                let node = (!rrsets.is_empty()).then(|| Node::new(&wire, &rrsets));
                (wire, node)
            })
            .collect();
        store.put_nodes(nodes, diff.to)?;
        applied.push(diff);
    }
    Some((store, applied))
}

/// `record` is one whole record, `type class ttl rdlength rdata`, its
/// RDATA as long as it says (and an RRSIG long enough to name the type it
/// covers).
fn whole_record(record: &[u8]) -> bool {
    let rdlength = wire::u16_at(record, 8).map(usize::from);
    let sig = wire::u16_at(record, 0) == Some(u16::from(hickory_proto::rr::RecordType::RRSIG));
    rdlength.is_some_and(|len| record.len() == 10 + len && (!sig || len >= 2))
}

/// The RRset a record belongs to (an RRSIG to the set of the type it
/// covers) and whether it is a signature.
fn set_of(record: &[u8]) -> Option<(u16, bool)> {
    let rtype = wire::u16_at(record, 0)?;
    if rtype == u16::from(hickory_proto::rr::RecordType::RRSIG) {
        Some((wire::u16_at(record, 10)?, true))
    } else {
        Some((rtype, false))
    }
}

/// Removes `record` from its RRset in `sets`; false when it is not there.
fn remove(sets: &mut Vec<Rrset>, record: &[u8]) -> bool {
    let Some((rtype, sig)) = set_of(record) else {
        return false;
    };
    let Some(at) = sets.iter().position(|r| r.rtype == rtype) else {
        return false;
    };
    let set = &mut sets[at];
    let blob = if sig { &set.sigs } else { &set.records };
    let before = records(blob).count();
    let kept: Vec<u8> = records(blob)
        .filter(|r| *r != record)
        .flatten()
        .copied()
        .collect();
    if records(&kept).count() + 1 != before {
        return false;
    }
    if sig {
        set.sigs = kept.into();
        refresh_signers(set);
    } else {
        set.records = kept.into();
    }
    if set.records.is_empty() && set.sigs.is_empty() {
        sets.remove(at);
    }
    true
}

/// Adds `record` to its RRset in `sets` (records in canonical order, RFC
/// 4034 §6.3: by RDATA).
fn add(sets: &mut Vec<Rrset>, record: &[u8]) {
    let Some((rtype, sig)) = set_of(record) else {
        return;
    };
    let at = match sets.iter().position(|r| r.rtype == rtype) {
        Some(at) => at,
        None => {
            sets.push(Rrset {
                rtype,
                ttl: 0,
                records: Box::default(),
                sigs: Box::default(),
                expires: 0,
                signers: Box::default(),
            });
            sets.len() - 1
        }
    };
    let set = &mut sets[at];
    if sig {
        let mut blob = set.sigs.to_vec();
        blob.extend_from_slice(record);
        set.sigs = blob.into();
        refresh_signers(set);
    } else {
        let mut all: Vec<&[u8]> = records(&set.records).collect();
        all.push(record);
        all.sort_by(|a, b| a[10..].cmp(&b[10..]));
        set.records = all.concat().into();
        set.ttl = wire::u32_at(record, 4).unwrap_or(set.ttl);
    }
}

/// The RRset's earliest expiry and signers, from its signatures.
fn refresh_signers(set: &mut Rrset) {
    let sigs: Vec<Rrsig> = records(&set.sigs)
        .filter_map(|s| Rrsig::from_wire(&s[10..]))
        .collect();
    set.expires = sigs.iter().map(|s| s.expiration).min().unwrap_or(0);
    set.signers = sigs.iter().map(|s| (s.algorithm, s.key_tag)).collect();
}

#[cfg(test)]
mod tests;
