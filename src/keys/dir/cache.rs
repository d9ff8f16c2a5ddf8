//! The key cache: what a key directory's scans learnt, saved in the state
//! directory (`keys/<hash>.cache`) so that a warm start does not read a
//! million key files again (issue 15). It is written at shutdown when any
//! key changed since it was taken, and after a full round only when at
//! least [`RESAVE_SHARE`] of the keys did: encoding a million keys costs
//! about 1.7 s of the round, while a cache behind by a few keys costs the
//! next warm start those few reads. Restored into an empty
//! [`KeyDirectory`], it makes the first listing a `stat` per file: only
//! files whose stamp (size, mtime, ctime, inode) differs from the cached
//! one are read, exactly as on any later rescan.
//!
//! A cached view is only as good as its stamp, which is the one taken
//! *before* the file was read: a file rewritten after it was read has
//! another stamp and is read again. The cache is never more than a head
//! start: the first round after a warm start still recomputes every child
//! from the restored keys, so a stale cache costs reads, never a wrong
//! signal.
//!
//! Not cached: keys with a problem, in flux or holding their zone (read
//! again at start), and private key material, ever. A key with a `.private`
//! file is restored as [`PrivatePart::NotLoaded`] (its format is kept for
//! BIND's v1.2 rule) only when its zone is not one signalbox signs; a
//! signing key is always read from its files.
//!
//! Format: `SBKEYS1\n`; the directory's path (u16 length, octets), device
//! and inode (u64 each); the number of keys (u32); per key its file mask
//! (u8: `.key`, `.private`, `.state`), per file present its name (u16
//! length, octets) and stamp (48 octets), then the zone (wire form, u8
//! length), DNSKEY (flags u16, protocol, algorithm, u16 length and public
//! key), TTL (u8 flag, u32), timing (u16 mask of the events set, i64 each),
//! `.state` key states (u8 flag, seven u8) and the private part (u8: 0
//! absent, 1 not loaded, then its format as two u8); finally the SHA-256 of
//! everything before it. Any damage (length, checksum, a value that does
//! not parse, a key whose file name and DNSKEY disagree) rejects the whole
//! cache: the directory is then scanned from nothing.

use std::{collections::BTreeSet, path::Path, sync::Arc};

use hickory_proto::rr::Name;

use super::{KeyDirectory, Seen, Slot, Slots, listing::Stamp};
use crate::{
    dns::{Dnskey, name, wire},
    dnssec::{Algorithm, key_tag},
    keys::{
        KaspState, Key, KeyFiles, KeyState, PrivatePart, Timing, TimingEvent,
        bind::{self, FileKind},
    },
};

const MAGIC: &[u8] = b"SBKEYS1\n";
const DIGEST_LEN: usize = 32;

/// After a full round a key cache is written again once this share of
/// its keys changed (1/64: at a million keys, 15,625).
pub const RESAVE_SHARE: usize = 64;

/// Why a key cache was not restored (the directory is scanned from
/// nothing instead).
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The file is cut short, damaged or not a key cache.
    #[error("damaged key cache: {0}")]
    Damaged(&'static str),
    /// The cache was saved for another directory path.
    #[error("the key cache is of another directory ({0})")]
    OtherPath(String),
    /// The directory at the path is not the one the cache was made of (a
    /// remount, a replaced directory): inode numbers mean nothing.
    #[error("the key directory was replaced since the key cache was saved")]
    Replaced,
    /// The directory cannot be looked at now.
    #[error("{0}")]
    Listing(#[from] super::ListError),
    /// The directory was scanned already: a cache only seeds a fresh one.
    #[error("the key directory was scanned already")]
    NotFresh,
}

/// What a restore took from the cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Restored {
    /// Keys restored (their files are not read unless their stamps changed).
    pub keys: usize,
    /// Keys left out: their zone is signed here, so their `.private` files
    /// are read.
    pub left_out: usize,
}

impl KeyDirectory {
    /// True when the keys known differ from the last [`Self::cache`] taken.
    pub fn cache_stale(&self) -> bool {
        self.uncached > 0
    }

    /// True when so many keys changed since the last [`Self::cache`] taken
    /// (at least one in [`RESAVE_SHARE`], and at least one) that writing it
    /// again is worth encoding every key.
    pub fn cache_due(&self) -> bool {
        self.uncached > 0 && self.uncached >= (self.slots.len() / RESAVE_SHARE).max(1)
    }

    /// This directory's key cache (the format above), `None` while it has
    /// never been listed completely or is held. Marks the cache as taken.
    pub fn cache(&mut self) -> Option<Vec<u8>> {
        let listed = self.listed.filter(|_| self.hold.is_none())?;
        let path = self.path.as_os_str().as_encoded_bytes();
        let path_len = u16::try_from(path.len()).ok()?;
        let mut out = Vec::with_capacity(64 + self.slots.len() * 192);
        out.extend_from_slice(MAGIC);
        wire::put_u16(&mut out, path_len);
        out.extend_from_slice(path);
        let (dev, ino) = listed.parts();
        wire::put_u64(&mut out, dev);
        wire::put_u64(&mut out, ino);
        let count_at = out.len();
        wire::put_u32(&mut out, 0);
        let mut count: u32 = 0;
        // In zone order, so a restore need not sort a million names.
        for key in self.zones.all_keys() {
            let stem = key.files.stem();
            let Some(slot) = self.slots.get(stem) else {
                continue;
            };
            let good = slot.good.as_ref().is_some_and(|g| Arc::ptr_eq(g, key));
            if !good
                || self.troubled.contains(&**stem)
                || encode_slot(&mut out, stem, slot).is_none()
            {
                continue;
            }
            count += 1;
        }
        wire::set_u32(&mut out, count_at, count);
        let digest = ring::digest::digest(&ring::digest::SHA256, &out);
        out.extend_from_slice(digest.as_ref());
        self.uncached = 0;
        self.cache_digest = digest.as_ref().try_into().ok();
        Some(out)
    }

    /// Seeds this fresh directory from a key cache. Keys of zones for which
    /// `signs` is true that have a `.private` file are left out (read from
    /// their files). All or nothing: on any error nothing is taken.
    pub fn restore(
        &mut self,
        data: &[u8],
        signs: impl Fn(&Name) -> bool,
    ) -> Result<Restored, CacheError> {
        if !self.slots.is_empty() {
            return Err(CacheError::NotFresh);
        }
        let body = data
            .len()
            .checked_sub(DIGEST_LEN)
            .and_then(|n| data.get(..n))
            .ok_or(CacheError::Damaged("too short"))?;
        if ring::digest::digest(&ring::digest::SHA256, body).as_ref() != &data[body.len()..] {
            return Err(CacheError::Damaged("checksum mismatch"));
        }
        let mut r = Reader { data: body, at: 0 };
        if r.take(MAGIC.len())? != MAGIC {
            return Err(CacheError::Damaged("not a key cache"));
        }
        let path_len = r.u16()? as usize;
        let path = r.take(path_len)?;
        if path != self.path.as_os_str().as_encoded_bytes() {
            return Err(CacheError::OtherPath(
                String::from_utf8_lossy(path).into_owned(),
            ));
        }
        let saved_id = (r.u64()?, r.u64()?);
        let id = super::listing::identity(&self.path)?;
        if id.parts() != saved_id {
            return Err(CacheError::Replaced);
        }
        let count = r.u32()?;
        let mut restored = Restored::default();
        // Sized by the count, which is only trusted as far as the octets
        // left could hold that many keys (at least 64 octets each).
        let expected = (count as usize).min(body.len() / 64);
        // Built apart and put in only when the whole cache decoded.
        let mut slots: Slots = Slots::with_capacity_and_hasher(expected, Default::default());
        let mut zones: Vec<Arc<Key>> = Vec::with_capacity(expected);
        let mut left_out: rustc_hash::FxHashSet<Box<str>> = Default::default();
        let listing = self.generation;
        for _ in 0..count {
            let entry = decode_entry(&mut r, &self.dir)?;
            let stem = Arc::clone(entry.key.files.stem());
            if slots.contains_key(&stem) || left_out.contains(&*stem) {
                return Err(CacheError::Damaged("a key twice"));
            }
            let key = entry.key;
            if key.files.has(FileKind::Private) && signs(&key.zone) {
                restored.left_out += 1;
                left_out.insert(stem.as_ref().into());
                continue;
            }
            restored.keys += 1;
            let mut slot = Slot::default();
            slot.good = Some(Arc::clone(&key));
            slot.restored = true;
            for (kind, (file, stamp)) in FileKind::ALL.into_iter().zip(entry.files) {
                if let (Some(file), Some(stamp)) = (file, stamp) {
                    slot.put_file(&stem, kind, &file, Seen { stamp, listing });
                }
            }
            zones.push(key);
            slots.insert(stem, slot);
        }
        if r.at != body.len() {
            return Err(CacheError::Damaged("trailing octets"));
        }
        self.left_out.extend(left_out);
        self.slots = slots;
        self.zones = zones.into_iter().collect();
        // What is in memory is what is on disk.
        self.uncached = 0;
        // The same directory as the one the cache's stamps were taken of:
        // a file named by the watch can be looked at alone, and one not
        // found there is gone (`scan_files`).
        self.listed = Some(id);
        self.cache_digest = data[body.len()..].try_into().ok();
        Ok(restored)
    }

    /// The checksum (SHA-256) of the last cache taken or restored: what
    /// the cache file holds if its write succeeded.
    pub fn cache_digest(&self) -> Option<[u8; 32]> {
        self.cache_digest
    }

    /// The zones (file-name text, lower case) with a key that a cache
    /// taken now leaves out (a problem, flux); `None` when no cache can be
    /// taken (the directory was never listed, or is held).
    pub fn uncached_zones(&self) -> Option<BTreeSet<String>> {
        self.listed.filter(|_| self.hold.is_none())?;
        let zone_of = |stem: &str| {
            let (rest, _tag) = stem.strip_prefix('k')?.rsplit_once('+')?;
            Some(rest.rsplit_once('+')?.0.to_string())
        };
        Some(self.troubled.iter().filter_map(|s| zone_of(s)).collect())
    }

    /// True when a key with this stem (lower-case `K<zone>+<alg>+<tag>`)
    /// is known, good or troubled.
    pub fn knows(&self, stem: &str) -> bool {
        self.slots.contains_key(stem)
    }

    /// The file names of the known keys of the zone named `zone_text` (a
    /// key file name's zone part).
    pub fn files_of(&self, zone_text: &str) -> Vec<String> {
        let Ok(zone) = crate::dns::parse_name(zone_text) else {
            return Vec::new();
        };
        let keys = self.zones.get(&zone).unwrap_or_default();
        keys.iter()
            .flat_map(|key| key.files.by_kind())
            .flatten()
            .collect()
    }
}

/// Appends one key's entry; `None` (and nothing usable appended: the
/// caller drops the key) when it has no good view or is not cacheable.
fn encode_slot(out: &mut Vec<u8>, stem: &str, slot: &Slot) -> Option<()> {
    let key = slot.good.as_deref()?;
    // A key with two spellings of a file is read again at a restart.
    if slot.held().is_some() || slot.in_flux() || !slot.issues().is_empty() || slot.has_spares() {
        return None;
    }
    let private = match &key.private {
        PrivatePart::Absent => None,
        PrivatePart::Present(file) => Some(file.format),
        PrivatePart::NotLoaded { format } => Some(*format),
        PrivatePart::Unreadable => return None,
    };
    // The files as read must be the files as listed.
    let files = key.files.by_kind();
    let mut entry = Vec::with_capacity(192);
    let mut mask = 0u8;
    for (i, file) in files.iter().enumerate() {
        if *file != slot.file_name(stem, FileKind::ALL[i]) {
            return None;
        }
        if file.is_some() {
            mask |= 1 << i;
        }
    }
    entry.push(mask);
    for (kind, file) in FileKind::ALL.into_iter().zip(files) {
        let Some(file) = file else {
            continue;
        };
        // A stamp forgotten to read the file again: not known.
        let stamp = slot.seen(kind)?.stamp;
        if stamp == Stamp::FORGOTTEN {
            return None;
        }
        wire::put_u16(&mut entry, u16::try_from(file.len()).ok()?);
        entry.extend_from_slice(file.as_bytes());
        stamp.encode_into(&mut entry);
    }
    let zone = name::canonical_wire(&key.zone);
    entry.push(u8::try_from(zone.len()).ok()?);
    entry.extend_from_slice(&zone);
    wire::put_u16(&mut entry, key.dnskey.flags);
    entry.push(key.dnskey.protocol);
    entry.push(key.dnskey.algorithm);
    wire::put_u16(&mut entry, u16::try_from(key.dnskey.public_key.len()).ok()?);
    entry.extend_from_slice(&key.dnskey.public_key);
    entry.push(u8::from(key.ttl.is_some()));
    wire::put_u32(&mut entry, key.ttl.unwrap_or(0));
    let mut events = 0u16;
    for (i, event) in TimingEvent::ALL.into_iter().enumerate() {
        if key.timing.seconds(event).is_some() {
            events |= 1 << i;
        }
    }
    wire::put_u16(&mut entry, events);
    for event in TimingEvent::ALL {
        if let Some(seconds) = key.timing.seconds(event) {
            wire::put_u64(&mut entry, seconds as u64);
        }
    }
    match &key.state {
        None => entry.push(0),
        Some(state) => {
            entry.push(1);
            entry.extend(encode_kasp(state));
        }
    }
    match private {
        None => entry.push(0),
        Some((major, minor)) => entry.extend([1, major, minor]),
    }
    out.extend_from_slice(&entry);
    Some(())
}

/// One key read back: its files' names and stamps by kind, and the key.
struct Entry {
    files: [(Option<Box<str>>, Option<Stamp>); 3],
    key: Arc<Key>,
}

fn decode_entry(r: &mut Reader<'_>, dir: &Arc<Path>) -> Result<Entry, CacheError> {
    let damaged = CacheError::Damaged;
    let mask = r.u8()?;
    if mask & 1 == 0 || mask > 0b111 {
        return Err(damaged("a key without its .key file"));
    }
    let mut files: [(Option<Box<str>>, Option<Stamp>); 3] = Default::default();
    let mut stem: Option<String> = None;
    let mut key_name = None;
    for (i, kind) in [FileKind::Key, FileKind::Private, FileKind::State]
        .into_iter()
        .enumerate()
    {
        if mask & (1 << i) == 0 {
            continue;
        }
        let len = r.u16()? as usize;
        let file = std::str::from_utf8(r.take(len)?).map_err(|_| damaged("a file name"))?;
        let parsed = bind::filename::parse(file).ok_or(damaged("a file name"))?;
        if parsed.kind != kind || stem.as_ref().is_some_and(|s| *s != parsed.stem) {
            return Err(damaged("a key's file names"));
        }
        stem.get_or_insert_with(|| parsed.stem.clone());
        if kind == FileKind::Key {
            key_name = Some(parsed);
        }
        let stamp = Stamp::decode(r.take(Stamp::ENCODED_LEN)?).ok_or(damaged("a stamp"))?;
        files[i] = (Some(file.into()), Some(stamp));
    }
    let (Some(stem), Some(key_name)) = (stem, key_name) else {
        return Err(damaged("a key without its .key file"));
    };
    let zone_len = r.u8()? as usize;
    let zone = match name::from_wire(r.take(zone_len)?) {
        Some((zone, used)) if used == zone_len => zone,
        _ => return Err(damaged("a zone name")),
    };
    // The zone its file is named for (a fresh read checks the same): the
    // presentation forms compared first, the file's text parsed only when
    // they differ (a name can be escaped more than one way). Parsing a
    // million names took seconds of a warm start.
    let same_zone = name::display(&zone).eq_ignore_ascii_case(&key_name.zone_text)
        || crate::dns::parse_name(&key_name.zone_text).ok().as_ref() == Some(&zone);
    if !same_zone {
        return Err(damaged("a zone that is not its file's"));
    }
    let flags = r.u16()?;
    let protocol = r.u8()?;
    let algorithm_number = r.u8()?;
    let key_len = r.u16()? as usize;
    let dnskey = Dnskey {
        flags,
        protocol,
        algorithm: algorithm_number,
        public_key: r.take(key_len)?.to_vec(),
    };
    let algorithm = Algorithm::from_number(algorithm_number).ok_or(damaged("an algorithm"))?;
    let tag = key_tag(&dnskey);
    if key_name.tag != tag || key_name.algorithm != algorithm_number {
        return Err(damaged("a DNSKEY that is not its file's"));
    }
    let has_ttl = r.u8()?;
    let ttl = r.u32()?;
    let ttl = match has_ttl {
        0 => None,
        1 => Some(ttl),
        _ => return Err(damaged("a TTL")),
    };
    let events = r.u16()?;
    if events >> TimingEvent::ALL.len() != 0 {
        return Err(damaged("timing"));
    }
    let mut timing = Timing::default();
    for (i, event) in TimingEvent::ALL.into_iter().enumerate() {
        if events & (1 << i) != 0 {
            // Written from 32 bits (older caches: from 64, clamped alike).
            let value = r.u64()? as i64;
            if value == i64::MIN {
                return Err(damaged("timing"));
            }
            timing.set_seconds(event, value);
        }
    }
    let state = match r.u8()? {
        0 => None,
        1 => Some(decode_kasp(r.take(7)?).ok_or(damaged("key states"))?),
        _ => return Err(damaged("key states")),
    };
    let private = match (r.u8()?, files[1].0.is_some()) {
        (0, false) => PrivatePart::Absent,
        (1, true) => {
            let format = (r.u8()?, r.u8()?);
            PrivatePart::NotLoaded { format }
        }
        _ => return Err(damaged("the private part")),
    };
    let names = [0, 1, 2].map(|i| files[i].0.as_deref());
    let key_files = KeyFiles::new(Arc::clone(dir), stem.into(), names);
    Ok(Entry {
        files,
        key: Arc::new(Key {
            zone,
            dnskey,
            tag,
            algorithm,
            ttl,
            timing,
            state,
            private,
            files: key_files,
        }),
    })
}

fn encode_kasp(state: &KaspState) -> [u8; 7] {
    let flag = |b: Option<bool>| match b {
        None => 0,
        Some(false) => 1,
        Some(true) => 2,
    };
    let key_state = |s: Option<KeyState>| match s {
        None => 0,
        Some(KeyState::Hidden) => 1,
        Some(KeyState::Rumoured) => 2,
        Some(KeyState::Omnipresent) => 3,
        Some(KeyState::Unretentive) => 4,
    };
    [
        flag(state.ksk),
        flag(state.zsk),
        key_state(state.dnskey),
        key_state(state.krrsig),
        key_state(state.zrrsig),
        key_state(state.ds),
        key_state(state.goal),
    ]
}

fn decode_kasp(data: &[u8]) -> Option<KaspState> {
    let flag = |b: u8| match b {
        0 => Some(None),
        1 => Some(Some(false)),
        2 => Some(Some(true)),
        _ => None,
    };
    let key_state = |s: u8| match s {
        0 => Some(None),
        1 => Some(Some(KeyState::Hidden)),
        2 => Some(Some(KeyState::Rumoured)),
        3 => Some(Some(KeyState::Omnipresent)),
        4 => Some(Some(KeyState::Unretentive)),
        _ => None,
    };
    Some(KaspState {
        ksk: flag(*data.first()?)?,
        zsk: flag(*data.get(1)?)?,
        dnskey: key_state(*data.get(2)?)?,
        krrsig: key_state(*data.get(3)?)?,
        zrrsig: key_state(*data.get(4)?)?,
        ds: key_state(*data.get(5)?)?,
        goal: key_state(*data.get(6)?)?,
    })
}

/// Reads the cache front to back; running out is damage.
struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CacheError> {
        let end = self
            .at
            .checked_add(n)
            .ok_or(CacheError::Damaged("a length"))?;
        let part = self
            .data
            .get(self.at..end)
            .ok_or(CacheError::Damaged("cut short"))?;
        self.at = end;
        Ok(part)
    }

    fn u8(&mut self) -> Result<u8, CacheError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, CacheError> {
        wire::u16_at(self.take(2)?, 0).ok_or(CacheError::Damaged("cut short"))
    }

    fn u32(&mut self) -> Result<u32, CacheError> {
        wire::u32_at(self.take(4)?, 0).ok_or(CacheError::Damaged("cut short"))
    }

    fn u64(&mut self) -> Result<u64, CacheError> {
        wire::u64_at(self.take(8)?, 0).ok_or(CacheError::Damaged("cut short"))
    }
}

impl KeyDirectory {
    /// Makes the next listing read again the files of every restored key
    /// without its private material whose zone `signs` is now true (a
    /// reload made it a zone signalbox signs); returns how many.
    pub fn reread_not_loaded(&mut self, signs: impl Fn(&Name) -> bool) -> usize {
        let mut count = 0;
        for slot in self.slots.values_mut() {
            let Some(key) = slot.good.as_deref() else {
                continue;
            };
            if matches!(key.private, PrivatePart::NotLoaded { .. }) && signs(&key.zone) {
                slot.forget_stamps();
                count += 1;
            }
        }
        count
    }
}

#[cfg(test)]
mod tests;
