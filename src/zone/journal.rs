//! The IXFR journal (RFC 1995): the difference between consecutive versions
//! of a zone, kept in memory and in the state directory, bounded in number,
//! size and age. A secondary whose serial is in the journal gets only the
//! differences; an older one gets the whole zone (AXFR fallback).

use std::{collections::VecDeque, path::Path, sync::Arc};

use super::{
    blob::{Bytes, records},
    store::{Node, ZoneStore},
};
use crate::{
    config::JournalLimits,
    dns::wire::{self, unix_now as now_secs},
    state::StateError,
};

/// One resource record in wire form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rr {
    /// Owner (lower-case wire).
    pub owner: Bytes,
    /// `type class ttl rdlength rdata`.
    pub record: Box<[u8]>,
}

impl Rr {
    /// The record type.
    pub fn rtype(&self) -> u16 {
        wire::u16_at(&self.record, 0).unwrap_or(0)
    }
}

/// The change from one serial to the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diff {
    /// Serial before.
    pub from: u32,
    /// Serial after.
    pub to: u32,
    /// The SOA record before (`type class ttl rdlength rdata`).
    pub old_soa: Box<[u8]>,
    /// The SOA record after.
    pub new_soa: Box<[u8]>,
    /// Records removed (SOA aside).
    pub removed: Vec<Rr>,
    /// Records added (SOA aside).
    pub added: Vec<Rr>,
    /// When it was made (Unix seconds).
    pub made: u64,
}

impl Diff {
    /// Approximate size in octets.
    pub fn size(&self) -> usize {
        self.removed
            .iter()
            .chain(self.added.iter())
            .map(|r| r.owner.len() + r.record.len())
            .sum::<usize>()
            + self.old_soa.len()
            + self.new_soa.len()
    }

    /// The difference between two versions, looking only at the names in
    /// `wires` (the ones an update touched). `None` when either version has
    /// no SOA.
    pub fn between<'a>(
        old: &ZoneStore,
        new: &ZoneStore,
        wires: impl Iterator<Item = &'a [u8]>,
    ) -> Option<Diff> {
        let soa_of = |zone: &ZoneStore| -> Option<Box<[u8]>> {
            let soa = zone
                .apex_node()?
                .rrset(hickory_proto::rr::RecordType::SOA)?;
            records(soa.records).next().map(Box::from)
        };
        let (old_soa, new_soa) = (soa_of(old)?, soa_of(new)?);
        let mut removed = Vec::new();
        let mut added = Vec::new();
        for wire in wires {
            let before = flatten(old.node(wire));
            let after = flatten(new.node(wire));
            let owner: Bytes = wire.into();
            for record in before.iter().filter(|r| !after.contains(r)) {
                removed.push(Rr {
                    owner: owner.clone(),
                    record: record.clone(),
                });
            }
            for record in after.iter().filter(|r| !before.contains(r)) {
                added.push(Rr {
                    owner: owner.clone(),
                    record: record.clone(),
                });
            }
        }
        // The SOA itself travels in the sequence's header records.
        let soa = u16::from(hickory_proto::rr::RecordType::SOA);
        removed.retain(|r| r.rtype() != soa);
        added.retain(|r| r.rtype() != soa);
        Some(Diff {
            from: old.serial(),
            to: new.serial(),
            old_soa,
            new_soa,
            removed,
            added,
            made: now_secs(),
        })
    }
}

impl Diff {
    /// Appends this diff's encoding (the journal's and the change log's
    /// record format).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        wire::put_u32(out, self.from);
        wire::put_u32(out, self.to);
        wire::put_u64(out, self.made);
        put_blob(out, &self.old_soa);
        put_blob(out, &self.new_soa);
        for list in [&self.removed, &self.added] {
            wire::put_u32(out, list.len() as u32);
            for rr in list {
                put_blob(out, &rr.owner);
                put_blob(out, &rr.record);
            }
        }
    }

    /// Reads one diff through `take` (which hands out the next `n` octets);
    /// `None` when they run out or do not parse.
    pub fn decode_from<'a>(take: &mut impl FnMut(usize) -> Option<&'a [u8]>) -> Option<Diff> {
        let from = wire::u32_at(take(4)?, 0)?;
        let to = wire::u32_at(take(4)?, 0)?;
        let made = wire::u64_at(take(8)?, 0)?;
        let mut blob = || -> Option<Box<[u8]>> {
            let len = wire::u32_at(take(4)?, 0)? as usize;
            take(len).map(Box::from)
        };
        let old_soa = blob()?;
        let new_soa = blob()?;
        let mut lists: [Vec<Rr>; 2] = [Vec::new(), Vec::new()];
        for list in &mut lists {
            let n = wire::u32_at(take(4)?, 0)?;
            for _ in 0..n {
                let len = wire::u32_at(take(4)?, 0)? as usize;
                let owner: Bytes = take(len)?.into();
                let len = wire::u32_at(take(4)?, 0)? as usize;
                let record: Box<[u8]> = take(len)?.into();
                list.push(Rr { owner, record });
            }
        }
        let [removed, added] = lists;
        Some(Diff {
            from,
            to,
            old_soa,
            new_soa,
            removed,
            added,
            made,
        })
    }
}

/// Every record of a node (signatures included), one by one.
fn flatten(node: Option<&Node>) -> Vec<Box<[u8]>> {
    let Some(node) = node else { return Vec::new() };
    let mut flat = Vec::new();
    for rrset in node.rrsets() {
        flat.extend(records(rrset.records).map(Box::from));
        flat.extend(rrset.sigs.iter().map(|sig| {
            let mut record = Vec::with_capacity(10 + sig.rdlength());
            sig.put_body(&mut record);
            record.into_boxed_slice()
        }));
    }
    flat
}

/// The journal of one zone: diffs in serial order, each `to` the next `from`.
#[derive(Debug, Clone, Default)]
pub struct Journal {
    diffs: VecDeque<Arc<Diff>>,
    bytes: usize,
}

impl Journal {
    /// Appends a diff; a diff that does not follow the last one starts the
    /// journal afresh. Then drops the oldest entries beyond `limits`.
    pub fn push(&mut self, diff: Diff, limits: &JournalLimits) {
        if self.diffs.back().is_some_and(|last| last.to != diff.from) {
            self.diffs.clear();
            self.bytes = 0;
        }
        self.bytes += diff.size();
        self.diffs.push_back(Arc::new(diff));
        let oldest = now_secs().saturating_sub(limits.age.as_secs());
        while let Some(first) = self.diffs.front() {
            let over = self.diffs.len() > limits.versions
                || self.bytes > limits.bytes
                || first.made < oldest;
            if !over || self.diffs.len() == 1 {
                break;
            }
            self.bytes -= first.size();
            self.diffs.pop_front();
        }
    }

    /// The diffs from `serial` to the newest, if the journal reaches back
    /// that far.
    pub fn since(&self, serial: u32) -> Option<Vec<Arc<Diff>>> {
        let start = self.diffs.iter().position(|d| d.from == serial)?;
        Some(self.diffs.iter().skip(start).cloned().collect())
    }

    /// The newest serial the journal leads to.
    pub fn last_serial(&self) -> Option<u32> {
        self.diffs.back().map(|d| d.to)
    }

    /// Number of diffs.
    pub fn len(&self) -> usize {
        self.diffs.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.diffs.is_empty()
    }

    /// Drops every diff that leads past `serial` (after a crash the saved
    /// zone may be older than the journal).
    pub fn truncate_to(&mut self, serial: u32) {
        while self.diffs.back().is_some_and(|d| d.to != serial) {
            if let Some(last) = self.diffs.pop_back() {
                self.bytes -= last.size();
            }
        }
    }

    /// Serialises the journal (the state directory's copy).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = b"SBJRNL1\n".to_vec();
        wire::put_u32(&mut out, self.diffs.len() as u32);
        for d in &self.diffs {
            d.encode_into(&mut out);
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, &out);
        out.extend_from_slice(digest.as_ref());
        out
    }

    /// Parses a saved journal; `None` when damaged.
    pub fn decode(data: &[u8]) -> Option<Journal> {
        let body_len = data.len().checked_sub(32)?;
        let (body, digest) = data.split_at(body_len);
        if ring::digest::digest(&ring::digest::SHA256, body).as_ref() != digest
            || !body.starts_with(b"SBJRNL1\n")
        {
            return None;
        }
        let mut at = 8;
        let mut take = |n: usize| -> Option<&[u8]> {
            let s = body.get(at..at + n)?;
            at += n;
            Some(s)
        };
        let count = wire::u32_at(take(4)?, 0)?;
        let mut journal = Journal::default();
        for _ in 0..count {
            let diff = Diff::decode_from(&mut take)?;
            journal.bytes += diff.size();
            journal.diffs.push_back(Arc::new(diff));
        }
        Some(journal)
    }

    /// Loads a saved journal (`Ok(None)` when none, `Damaged` when it fails
    /// its checksum or does not parse).
    pub fn load(path: &Path) -> Result<Option<Journal>, StateError> {
        match std::fs::read(path) {
            Ok(data) => Journal::decode(&data)
                .map(Some)
                .ok_or_else(|| StateError::Damaged {
                    path: path.to_path_buf(),
                    what: "it fails its SHA-256 checksum or does not parse as a journal",
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StateError::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }
}

fn put_blob(out: &mut Vec<u8>, blob: &[u8]) {
    wire::put_u32(out, blob.len() as u32);
    out.extend_from_slice(blob);
}

#[cfg(test)]
pub(crate) mod tests;
