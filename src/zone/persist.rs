//! Saving a signed zone to the state directory and loading it back, so a
//! restart serves at once what was served before (signatures included) and
//! the safety brake compares against what was really published.
//!
//! Format (all integers big-endian): `SBZONE1\n`, apex (u8 length + wire),
//! serial u32, negative TTL u32, name count u32, then per name: wire (u8
//! length + wire), RRset count u16, per RRset: type u16, TTL u32, records
//! (u32 length + bytes), RRSIGs (u32 length + bytes); finally the SHA-256 of
//! everything before it. Written atomically; a file that fails the checksum
//! is reported as damaged and never half-used: the zone starts cold, its
//! serial continuing past the high-water mark (`crate::state::ZoneState`).

use std::path::Path;

use super::{
    blob::records,
    store::{Node, Rrset, ZoneStore, name_of},
};
use crate::{
    dns::{Rrsig, wire},
    state::StateError,
};

const MAGIC: &[u8] = b"SBZONE1\n";

/// Serialises a zone.
pub fn encode(zone: &ZoneStore) -> Vec<u8> {
    let mut out = Vec::with_capacity(zone.len() * 600 + 64);
    out.extend_from_slice(MAGIC);
    put_name(&mut out, zone.apex_wire());
    wire::put_u32(&mut out, zone.serial());
    wire::put_u32(&mut out, zone.negative_ttl());
    wire::put_u32(&mut out, zone.len() as u32);
    for node in zone.nodes() {
        put_name(&mut out, &node.wire);
        wire::put_u16(&mut out, node.rrsets.len() as u16);
        for rrset in node.rrsets.iter() {
            wire::put_u16(&mut out, rrset.rtype);
            wire::put_u32(&mut out, rrset.ttl);
            wire::put_u32(&mut out, rrset.records.len() as u32);
            out.extend_from_slice(&rrset.records);
            wire::put_u32(&mut out, rrset.sigs.len() as u32);
            out.extend_from_slice(&rrset.sigs);
        }
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, &out);
    out.extend_from_slice(digest.as_ref());
    out
}

fn put_name(out: &mut Vec<u8>, wire: &[u8]) {
    out.push(wire.len() as u8);
    out.extend_from_slice(wire);
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let slice = self.data.get(self.at..self.at + n)?;
        self.at += n;
        Some(slice)
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).and_then(|b| wire::u16_at(b, 0))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4).and_then(|b| wire::u32_at(b, 0))
    }
    fn name(&mut self) -> Option<&'a [u8]> {
        let len = usize::from(*self.take(1)?.first()?);
        self.take(len)
    }
}

/// Parses a saved zone; `None` when the data is not a complete, intact file.
pub fn decode(data: &[u8]) -> Option<ZoneStore> {
    let body_len = data.len().checked_sub(32)?;
    let (body, digest) = data.split_at(body_len);
    if ring::digest::digest(&ring::digest::SHA256, body).as_ref() != digest
        || !body.starts_with(MAGIC)
    {
        return None;
    }
    let mut r = Reader {
        data: body,
        at: MAGIC.len(),
    };
    let apex = name_of(r.name()?)?;
    let serial = r.u32()?;
    let negative_ttl = r.u32()?;
    let count = r.u32()?;
    let mut nodes = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let wire = r.name()?;
        let sets = r.u16()?;
        let mut rrsets = Vec::with_capacity(usize::from(sets));
        for _ in 0..sets {
            let rtype = r.u16()?;
            let ttl = r.u32()?;
            let len = r.u32()? as usize;
            let recs = r.take(len)?;
            let len = r.u32()? as usize;
            let sigs = r.take(len)?;
            let decoded: Vec<Rrsig> = records(sigs)
                .filter_map(|s| Rrsig::from_wire(&s[10..]))
                .collect();
            rrsets.push(Rrset {
                rtype,
                ttl,
                records: recs.into(),
                sigs: sigs.into(),
                expires: decoded.iter().map(|s| s.expiration).min().unwrap_or(0),
                signers: decoded.iter().map(|s| (s.algorithm, s.key_tag)).collect(),
            });
        }
        nodes.push(Node {
            wire: wire.into(),
            rrsets: rrsets.into(),
        });
    }
    (r.at == body.len()).then(|| ZoneStore::from_parts(apex, serial, negative_ttl, nodes))?
}

/// Loads a zone saved at `path`; `Ok(None)` when there is none,
/// [`StateError::Damaged`] when it fails its checksum or does not parse (the
/// caller starts that zone cold, its serial continuing from the high-water
/// mark; docs/ARCHITECTURE.md, "State on disk").
pub fn load(path: &Path) -> Result<Option<ZoneStore>, StateError> {
    match std::fs::read(path) {
        Ok(data) => decode(&data).map(Some).ok_or_else(|| StateError::Damaged {
            path: path.to_path_buf(),
            what: "it fails its SHA-256 checksum or does not parse as a saved zone",
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StateError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Saves a zone atomically.
pub fn save(path: &Path, zone: &ZoneStore) -> Result<(), StateError> {
    crate::state::write_atomically(path, &encode(zone))
}
