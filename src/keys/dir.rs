//! Scanning a BIND key directory, incrementally and tolerant of BIND's
//! one-file-at-a-time rewrites.
//!
//! A [`KeyDirectory`] remembers every key file it has read (size, mtime,
//! ctime, inode) and re-reads only files whose stamp changed, so a rescan of a
//! directory of 100k child keys costs a `readdir` and a `stat` per file.
//!
//! Each key keeps its *last good view*. When its files disagree (BIND is
//! between two renames), are malformed or cannot be read, the last good view
//! stays in use and the problem is reported; a disagreement is only an error
//! once it has lasted longer than the grace period (5 s by default). A key
//! with a problem and no earlier good view *holds* its zone: nothing new may be
//! published for that zone until the key can be read. A key file that cannot
//! be read at all (an I/O error or permission denied, not "not found") holds
//! its zone even with a good view: the key is kept, never dropped, since a
//! zone that loses one key can get a wrong CDS set.
//!
//! Partial reads are not deletions ([`listing`]): only "not found" removes
//! a file. When the directory cannot be listed completely (gone, replaced,
//! not a directory, `readdir` or a `stat` failing), the scan changes nothing
//! (no stamp is taken from a partial listing, so no later change can hide
//! behind one) and the directory is *held* ([`DirectoryHold`]): its zones
//! keep their last good keys, the daemon publishes nothing new for them and
//! withdraws nothing, until a listing succeeds again; then every zone of the
//! directory counts as changed and is recomputed. The hold is logged once
//! when it starts, when its cause changes and when it ends.

use std::{
    collections::{BTreeMap, BTreeSet},
    num::NonZeroU32,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use hickory_proto::rr::Name;

use super::{
    Key, KeysByZone,
    bind::{self, FileKind, KeyFileName},
};
use crate::dns::parse_name;

mod cache;
mod hold;
mod issue;
mod listing;
mod read;
mod slot;
#[cfg(test)]
mod tests;

pub use cache::{CacheError, RESAVE_SHARE, Restored};
pub use hold::DirectoryHold;
pub use issue::{Effect, KeyIssue, Severity};
pub use listing::ListError;
use listing::{DirId, Listed, Stamp};
use read::{Content, IssueReport, KeyFileReader, Parts, ReadJob};
use slot::Seen;
use slot::Slot;

/// How long a key's files may disagree before that is an error.
pub const DEFAULT_FLUX_GRACE: Duration = Duration::from_secs(5);

/// Keys read and settled at a time by a scan: enough to keep the reading
/// threads busy, few enough that a batch's parsed files stay small (a
/// cold start reads a million keys). Two in unit tests, so that their
/// scans cross batches.
const READ_BATCH: usize = if cfg!(test) { 2 } else { 16_384 };

/// The result of one scan: the keys of every zone found, and the problems.
#[derive(Debug, Clone, Default)]
pub struct ScanReport {
    /// Keys per zone (good views, some possibly stale: see `issues`); a
    /// persistent map shared with the directory, so a report costs nothing
    /// to make however many zones there are.
    pub zones: KeysByZone,
    /// Zones with a key that has no good view: publish nothing new for them.
    pub held: BTreeMap<Name, Vec<String>>,
    /// Every problem found.
    pub issues: Vec<KeyIssue>,
    /// Set when the directory itself could not be read; `zones` then holds
    /// the last good views.
    pub directory_error: Option<String>,
    /// The directory's hold while it cannot be listed (since when, why).
    pub hold: Option<DirectoryHold>,
    /// Number of files (re-)read in this scan.
    pub files_read: usize,
    /// Zones whose keys (as used: the good views) changed in this scan:
    /// a key added, removed or different.
    pub changed: BTreeSet<Name>,
}

impl ScanReport {
    /// True when some key is still being rewritten (within its grace period)
    /// and has no earlier view: a rescan shortly may resolve it.
    pub fn has_pending_flux(&self) -> bool {
        self.issues
            .iter()
            .any(|i| i.severity == Severity::InFlux && i.effect == Effect::Held)
    }

    /// The problems that concern `zone` (or the directory as a whole).
    pub fn issues_for<'a>(&'a self, zone: &'a Name) -> impl Iterator<Item = &'a KeyIssue> + 'a {
        self.issues
            .iter()
            .filter(move |i| i.zone.as_ref().is_none_or(|z| z == zone))
    }
}

/// A key directory's listing (`readdir` and a `stat` per key file), read
/// apart from its [`KeyDirectory`]: on another thread while a full round
/// lets key changes cut in (`daemon::key_changes`). Its stamps are taken
/// by [`KeyDirectory::scan_listing`] only if the directory is still the
/// one listed.
#[derive(Debug)]
pub struct Listing {
    /// The directory listed, before the listing.
    before: Result<DirId, ListError>,
    /// What it held.
    entries: Result<listing::Entries, ListError>,
}

impl Listing {
    /// Lists the directory at `path`.
    pub fn read(path: &Path) -> Listing {
        let before = listing::identity(path);
        let entries = match &before {
            Ok(_) => listing::entries(path),
            // Not read: `before` says why.
            Err(_) => Ok(Vec::new()),
        };
        Listing { before, entries }
    }
}

/// What is known about each key, its files' stamps included, by stem
/// (shared with the key's [`super::KeyFiles`]).
type Slots = DenseMap<Arc<str>, Slot>;

/// The maps with an entry per key file or key: a million of each at a
/// million children. An `IndexMap` keeps its entries in one vector and
/// only 8-octet positions in the hash table, where a `HashMap` keeps whole
/// entries in a table that is half empty right after it doubles (1M
/// entries sit in 2^21 buckets): at 1M that was ~300 octets per child in
/// the two tables the directory then had (stamps by file name, slots). Entries are taken out with `swap_remove` (no order is
/// kept or needed). Keyed by file names read from a directory, not by
/// anything from the network: FxHash, as elsewhere.
type DenseMap<K, V> = indexmap::IndexMap<K, V, rustc_hash::FxBuildHasher>;

/// One BIND key directory, scanned incrementally.
#[derive(Debug)]
pub struct KeyDirectory {
    path: PathBuf,
    dir: Arc<Path>,
    grace: Duration,
    /// Keys by stem (lower-case `K<zone>+<alg>+<tag>`), with the stamps of
    /// their files.
    slots: Slots,
    /// Stems with problems or in flux: looked at again every scan.
    troubled: BTreeSet<Box<str>>,
    /// Good keys per zone, maintained as keys change.
    zones: KeysByZone,
    /// The current listing's number; a file not seen by it is gone.
    generation: NonZeroU32,
    /// The directory the last complete listing read.
    listed: Option<DirId>,
    /// Set while the directory cannot be listed.
    hold: Option<DirectoryHold>,
    /// About how many keys changed since the last key cache was taken
    /// ([`cache`]; a key can count twice: its stamp, then its view).
    uncached: usize,
    /// Stems a restore left out (keys of zones signed here, always read
    /// from their files): their reading does not make the cache stale.
    left_out: rustc_hash::FxHashSet<Box<str>>,
    /// The checksum of the last cache taken or restored ([`cache`]).
    cache_digest: Option<[u8; 32]>,
}

impl KeyDirectory {
    /// A directory not scanned yet.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        KeyDirectory {
            dir: Arc::from(path.as_path()),
            path,
            grace: DEFAULT_FLUX_GRACE,
            slots: Slots::default(),
            troubled: BTreeSet::new(),
            zones: KeysByZone::default(),
            generation: NonZeroU32::MIN,
            listed: None,
            hold: None,
            uncached: 0,
            left_out: rustc_hash::FxHashSet::default(),
            cache_digest: None,
        }
    }

    /// Sets how long files may disagree before it is an error.
    pub fn with_flux_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True until it was scanned or restored.
    pub fn is_fresh(&self) -> bool {
        self.slots.is_empty() && self.listed.is_none()
    }

    /// The directory's hold, while it cannot be listed.
    pub fn hold(&self) -> Option<&DirectoryHold> {
        self.hold.as_ref()
    }

    /// Scans the directory; `at` is the monotonic time of the scan (a
    /// parameter so tests can drive the grace period).
    pub fn scan(&mut self, at: Instant) -> ScanReport {
        let listing = Listing::read(&self.path);
        self.scan_listing(listing, at)
    }

    /// Scans the directory from a listing read apart (see [`Listing`]).
    pub fn scan_listing(&mut self, listing: Listing, at: Instant) -> ScanReport {
        let stamps = self.take(listing);
        self.scan_with(stamps, at)
    }

    /// Rescans only the files named `files` (what inotify reported): a
    /// change among a million keys stats one file, not the directory. A
    /// name that is not a key file is ignored; one that is gone is removed.
    /// A held directory, one never listed or no longer the one listed (a
    /// rename, a remount), or a `stat` failing other than "not found" is
    /// listed whole instead: only a complete listing decides.
    pub fn scan_files<'a>(
        &mut self,
        files: impl IntoIterator<Item = &'a str>,
        at: Instant,
    ) -> ScanReport {
        match self.stat_files(files) {
            Some(changed) => self.scan_with(Ok(changed), at),
            None => self.scan(at),
        }
    }

    /// Takes the stamps of the named files; `None` when the directory must
    /// be listed whole instead (see [`Self::scan_files`]).
    fn stat_files<'a>(
        &mut self,
        files: impl IntoIterator<Item = &'a str>,
    ) -> Option<BTreeSet<Box<str>>> {
        let listed = self.listed.filter(|_| self.hold.is_none())?;
        let same = |path: &Path| listing::identity(path).is_ok_and(|id| id == listed);
        if !same(&self.path) {
            return None;
        }
        let mut found = Vec::new();
        for file in files {
            let Some(name) = bind::filename::parse(file) else {
                continue;
            };
            let stamp = listing::stat(&self.path.join(file)).ok()?;
            found.push((file, name, stamp));
        }
        // Files "not found" because the directory went away are not gone.
        if !same(&self.path) {
            return None;
        }
        let mut changed = BTreeSet::new();
        for (file, name, stamp) in found {
            match stamp {
                Some(stamp) => self.note_stamp(file, &name, stamp, &mut changed),
                None => self.forget(file, &name, &mut changed),
            }
        }
        Some(changed)
    }

    fn scan_with(
        &mut self,
        stamps: Result<BTreeSet<Box<str>>, ListError>,
        at: Instant,
    ) -> ScanReport {
        let changed_stems = match stamps {
            Ok(stems) => stems,
            Err(e) => return self.held_report(&e),
        };
        let recovered = self
            .hold
            .take()
            .inspect(|hold| hold.log_released(&self.path));
        let mut report = ScanReport::default();
        self.uncached += changed_stems
            .iter()
            .filter(|s| !self.left_out.contains(s.as_ref()))
            .count();
        // Changed keys, and every troubled one again (flux may have ended,
        // or lasted too long).
        let mut work: BTreeSet<Box<str>> = changed_stems;
        work.extend(self.troubled.iter().cloned());
        // Read and settled a batch at a time: what a batch read is dropped
        // before the next is read, so a cold start's million keys never
        // sit parsed in memory twice (and the allocator reuses the pages).
        let mut work = work.into_iter().peekable();
        let mut reader = KeyFileReader::open(Arc::clone(&self.dir));
        while work.peek().is_some() {
            let jobs: Vec<ReadJob> = work
                .by_ref()
                .take(READ_BATCH)
                .map(|stem| {
                    let files = self
                        .slots
                        .get(&*stem)
                        .map_or([None, None, None], |slot| slot.file_names(&stem));
                    (stem, files)
                })
                .collect();
            report.files_read += jobs
                .iter()
                .map(|(_, f)| f.iter().flatten().count())
                .sum::<usize>();
            let parsed = reader.read(&jobs);
            for ((stem, _), contents) in jobs.into_iter().zip(parsed) {
                self.settle(&stem, contents, at, &mut report.changed);
            }
        }
        reader.finish();
        self.report_troubled(&mut report);
        if recovered.is_some() {
            // Nothing was recomputed while held: everything is, now.
            report.changed.extend(self.zones.keys().cloned());
        }
        report.zones = self.zones.clone();
        report
    }

    /// Takes the new stamps of a listing, all or nothing; returns the stems
    /// with a file added, removed or changed.
    fn take(&mut self, listing: Listing) -> Result<BTreeSet<Box<str>>, ListError> {
        let before = listing.before?;
        let entries = listing.entries?;
        let path = self.path.clone();
        self.take_listing(entries.into_iter(), move || {
            match listing::identity(&path)? {
                id if id == before => Ok(id),
                _ => Err(ListError::Replaced),
            }
        })
    }

    /// Takes a listing: its stamps are taken only once every entry was read
    /// and `unchanged` confirms the directory is still the one listed; on
    /// any failure the stamps stay as they were, so a change seen by a
    /// failed listing is seen again by the next one. (The seam the unit
    /// tests drive with a listing that fails part-way.)
    fn take_listing(
        &mut self,
        entries: impl Iterator<Item = Result<Listed, ListError>>,
        unchanged: impl FnOnce() -> Result<DirId, ListError>,
    ) -> Result<BTreeSet<Box<str>>, ListError> {
        self.generation = self.generation.checked_add(1).unwrap_or(NonZeroU32::MIN);
        // A first listing goes straight into the empty map (staging a
        // million files would double a cold start's memory); a failure
        // empties it again.
        let cold = self.slots.is_empty();
        let mut changed: BTreeSet<Box<str>> = BTreeSet::new();
        let staged = self
            .stage(entries, cold, &mut changed)
            .and_then(|staged| Ok((staged, unchanged()?)));
        let staged = match staged {
            Ok((staged, id)) => {
                self.listed = Some(id);
                staged
            }
            Err(e) => {
                if cold {
                    self.slots.clear();
                }
                return Err(e);
            }
        };
        for entry in staged {
            self.note_stamp(&entry.file, &entry.name, entry.stamp, &mut changed);
        }
        let generation = self.generation;
        for (stem, slot) in &mut self.slots {
            slot.drop_unseen_spares(generation);
            for kind in FileKind::ALL {
                if slot
                    .seen(kind)
                    .is_some_and(|seen| seen.listing != generation)
                {
                    slot.drop_file(stem, kind);
                    changed.insert(stem.as_ref().into());
                }
            }
        }
        Ok(changed)
    }

    /// Reads a listing through: marks the files it still holds as seen
    /// (harmless when it then fails: the next listing marks anew) and
    /// returns the new and changed files, taken at once when `cold`.
    fn stage(
        &mut self,
        entries: impl Iterator<Item = Result<Listed, ListError>>,
        cold: bool,
        changed: &mut BTreeSet<Box<str>>,
    ) -> Result<Vec<Listed>, ListError> {
        let generation = self.generation;
        let mut staged = Vec::new();
        for entry in entries {
            let entry = entry?;
            let (stem, kind) = (entry.name.stem.as_str(), entry.name.kind);
            match self.slots.get_mut(stem).filter(|slot| slot.has_file(kind)) {
                // Another spelling of a file the key has: noted as its spare.
                Some(slot) if !slot.names(stem, kind, &entry.file) => staged.push(entry),
                Some(slot) => {
                    let unchanged = slot.seen(kind).is_some_and(|s| s.stamp == entry.stamp);
                    if unchanged {
                        slot.see_file(kind, entry.stamp, generation);
                    } else {
                        staged.push(entry);
                    }
                }
                None if cold => self.note_stamp(&entry.file, &entry.name, entry.stamp, changed),
                None => staged.push(entry),
            }
        }
        Ok(staged)
    }

    /// Takes `file`'s stamp, as seen by the current listing.
    fn note_stamp(
        &mut self,
        file: &str,
        name: &KeyFileName,
        stamp: Stamp,
        changed: &mut BTreeSet<Box<str>>,
    ) {
        let generation = self.generation;
        let (stem, kind) = (name.stem.as_str(), name.kind);
        let slot = match self.slots.get_mut(stem) {
            Some(slot) => slot,
            None => {
                let at = self.slots.insert_full(stem.into(), Slot::default()).0;
                &mut self.slots[at]
            }
        };
        if !slot.has_file(kind) {
            let seen = Seen {
                stamp,
                listing: generation,
            };
            slot.put_file(stem, kind, file, seen);
        } else if !slot.names(stem, kind, file) {
            // Another spelling of a file the key has (names that differ in
            // case only): the one taken first is read until it is gone.
            let seen = Seen {
                stamp,
                listing: generation,
            };
            slot.put_spare(kind, file, seen);
            tracing::debug!(
                file,
                "another spelling of a key file: not read while the first is there"
            );
            return;
        } else if !slot.see_file(kind, stamp, generation) {
            return;
        }
        changed.insert(stem.into());
    }

    /// Forgets `file`: it is not there any more.
    fn forget(&mut self, file: &str, name: &KeyFileName, changed: &mut BTreeSet<Box<str>>) {
        let (stem, kind) = (name.stem.as_str(), name.kind);
        let Some(slot) = self.slots.get_mut(stem) else {
            return;
        };
        if !slot.has_file(kind) || !slot.names(stem, kind, file) {
            slot.drop_spare(file);
            return;
        }
        slot.drop_file(stem, kind);
        changed.insert(stem.into());
    }

    /// Combines a key's freshly read files into its new state.
    fn settle(
        &mut self,
        stem: &str,
        contents: [Option<Content>; 3],
        at: Instant,
        changed: &mut BTreeSet<Name>,
    ) {
        let grace = self.grace;
        let dir = self.dir.clone();
        let Some((_, shared_stem, slot)) = self.slots.get_full_mut(stem) else {
            return;
        };
        let shared_stem = Arc::clone(shared_stem);
        let old = slot.good.clone();
        if std::mem::take(&mut slot.restored) {
            slot.good = None;
        }
        let was_unreadable = slot.clear_problems().is_some_and(|h| h.unreadable);
        let Some(key_name) = slot.parsed_name(stem, FileKind::Key) else {
            // BIND renames files into place, so a `.key` never vanishes
            // mid-rewrite: without it there is no key, only leftovers.
            slot.leftovers(stem, &dir);
            self.finish(stem, old, changed);
            return;
        };
        let zone = zone_of(&key_name);
        let files = slot.key_files(&shared_stem, &dir);
        let report = IssueReport {
            zone: zone.clone(),
            tag: key_name.tag,
            files: &files,
        };
        let Parts {
            public,
            private,
            state,
            mut problems,
            unreadable,
        } = Parts::of(contents, &report);
        let failed = problems.iter().any(|p| p.severity == Severity::Error);
        let assembled = match (&public, failed) {
            (Some(public), false) => Some(bind::assemble(
                &key_name,
                public,
                private,
                state.as_ref(),
                files.clone(),
            )),
            _ => None,
        };
        if let Some(problem) = slot.take(assembled, at, grace, &report) {
            problems.push(problem);
        }
        slot.record(problems, zone.clone(), key_name.tag, unreadable);
        hold::note_key(
            was_unreadable,
            unreadable,
            zone.as_ref(),
            key_name.tag,
            slot.issues(),
        );
        if was_unreadable && !unreadable {
            // Held, so not recomputed: recompute it now.
            changed.extend(zone);
        }
        self.finish(stem, old, changed);
    }

    /// Updates the per-zone map after a key's view changed (or not).
    fn finish(&mut self, stem: &str, old: Option<Arc<Key>>, changed: &mut BTreeSet<Name>) {
        let Some(slot) = self.slots.get(stem) else {
            return;
        };
        let new = slot.good.clone();
        let troubled = slot.troubled();
        let empty = !slot.has_files();
        if troubled {
            self.troubled.insert(stem.into());
        } else if self.troubled.remove(stem) && !self.left_out.contains(stem) {
            // Recovered with the same view: it is cacheable again.
            self.uncached += 1;
        }
        if empty {
            self.slots.swap_remove(stem);
        }
        let same = match (&old, &new) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if same {
            return;
        }
        self.uncached += usize::from(!self.left_out.contains(stem));
        match (old, new) {
            (Some(old), Some(new)) => {
                changed.insert(old.zone.clone());
                changed.insert(new.zone.clone());
                self.zones.replace(&old, new);
            }
            (Some(old), None) => {
                changed.insert(old.zone.clone());
                self.zones.take_out(&old);
            }
            (None, Some(new)) => {
                changed.insert(new.zone.clone());
                self.zones.add(new);
            }
            (None, None) => {}
        }
    }
}

impl KeyDirectory {
    /// The stamp last taken of `file` (a key file's name), if any.
    #[cfg(test)]
    fn stamp_of(&self, file: &str) -> Option<Stamp> {
        let name = bind::filename::parse(file)?;
        let (stem, kind) = (name.stem.as_str(), name.kind);
        let slot = self.slots.get(stem)?;
        slot.names(stem, kind, file)
            .then(|| slot.seen(kind).map(|seen| seen.stamp))
            .flatten()
    }
}

fn zone_of(name: &KeyFileName) -> Option<Name> {
    parse_name(&name.zone_text).ok()
}
