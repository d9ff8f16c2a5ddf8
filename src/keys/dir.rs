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
//! published for that zone until the key can be read.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs, io,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use hickory_proto::rr::Name;
use rustc_hash::FxHashMap;

use super::{
    Key, KeyFiles,
    bind::{self, AssembleError, FileKind, KeyFileName},
};
use crate::dns::parse_name;

mod issue;
mod read;

pub use issue::{Effect, KeyIssue, Severity};
use read::{Content, IssueReport, Parts, read_all};

/// How long a key's files may disagree before that is an error.
pub const DEFAULT_FLUX_GRACE: Duration = Duration::from_secs(5);

/// The result of one scan: the keys of every zone found, and the problems.
#[derive(Debug, Clone, Default)]
pub struct ScanReport {
    /// Keys per zone (good views, some possibly stale: see `issues`); a
    /// persistent map shared with the directory, so a report costs nothing
    /// to make however many zones there are.
    pub zones: imbl::OrdMap<Name, Vec<Arc<Key>>>,
    /// Zones with a key that has no good view: publish nothing new for them.
    pub held: BTreeMap<Name, Vec<String>>,
    /// Every problem found.
    pub issues: Vec<KeyIssue>,
    /// Set when the directory itself could not be read; `zones` then holds
    /// the last good views.
    pub directory_error: Option<String>,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    ino: u64,
}

impl Stamp {
    fn of(meta: &fs::Metadata) -> Self {
        Stamp {
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
            ino: meta.ino(),
        }
    }
}

/// What is known about one key (one stem).
#[derive(Debug, Default)]
struct Slot {
    /// The key's files present, by kind (`.key`, `.private`, `.state`).
    files: [Option<Box<str>>; 3],
    good: Option<Arc<Key>>,
    flux_since: Option<Instant>,
    /// Problems found the last time the key was read.
    issues: Vec<KeyIssue>,
    /// No good view and a problem: the zone is held (boxed: rare, and
    /// a slot per key adds up at a million children).
    held: Option<Box<(Name, String)>>,
}

impl Slot {
    /// The parsed name of the key's file of `kind`.
    fn file_name(&self, kind: FileKind) -> Option<KeyFileName> {
        self.files[kind as usize]
            .as_deref()
            .and_then(bind::filename::parse)
    }

    /// The key's files.
    fn key_files(&self, dir: &Arc<Path>) -> KeyFiles {
        KeyFiles {
            dir: dir.clone(),
            key: self.files[FileKind::Key as usize]
                .clone()
                .unwrap_or_default(),
            private: self.files[FileKind::Private as usize].clone(),
            state: self.files[FileKind::State as usize].clone(),
        }
    }

    /// A `.private` or `.state` file without its `.key`: no key, a warning.
    fn leftovers(&mut self, dir: &Path) {
        self.good = None;
        self.flux_since = None;
        if let Some(kind) = [FileKind::Private, FileKind::State]
            .into_iter()
            .find(|k| self.files[*k as usize].is_some())
        {
            let name = self.file_name(kind);
            self.issues.push(KeyIssue {
                zone: name.as_ref().and_then(zone_of),
                tag: name.as_ref().map(|n| n.tag),
                file: self.files[kind as usize]
                    .as_deref()
                    .map(|f| dir.join(f))
                    .unwrap_or_default(),
                line: 0,
                message: "no matching .key file: ignored".to_string(),
                severity: Severity::Warning,
                effect: Effect::None,
            });
        }
    }

    /// Takes the assembled key as the good view, or judges why it could not
    /// be assembled: files that disagree are in flux (BIND mid-rewrite)
    /// until the grace period is over, then an error.
    fn take(
        &mut self,
        assembled: Option<Result<Key, AssembleError>>,
        at: Instant,
        grace: Duration,
        report: &IssueReport<'_>,
    ) -> Option<KeyIssue> {
        match assembled {
            Some(Ok(key)) => {
                self.flux_since = None;
                if self.good.as_deref() != Some(&key) {
                    self.good = Some(Arc::new(key));
                }
                None
            }
            Some(Err(AssembleError::InFlux(why))) => {
                let since = *self.flux_since.get_or_insert(at);
                let lasted = at.saturating_duration_since(since);
                Some(if lasted > grace {
                    report.issue(
                        FileKind::Key,
                        0,
                        format!("key files disagree for {}s: {why}", lasted.as_secs()),
                        Severity::Error,
                    )
                } else {
                    report.issue(
                        FileKind::Key,
                        0,
                        format!("key files disagree (being rewritten?), re-reading: {why}"),
                        Severity::InFlux,
                    )
                })
            }
            Some(Err(AssembleError::Unusable(why))) => {
                self.flux_since = None;
                Some(report.issue(FileKind::Key, 0, why.to_string(), Severity::Error))
            }
            None => {
                self.flux_since = None;
                None
            }
        }
    }

    /// Records `problems` with what each means for the key (its last good
    /// view is used, or its zone is held), and the hold itself.
    fn record(&mut self, problems: Vec<KeyIssue>, zone: Option<Name>, tag: u16) {
        let blocking = problems.iter().any(|p| p.severity != Severity::Warning);
        for mut problem in problems {
            if problem.severity != Severity::Warning {
                problem.effect = if self.good.is_some() {
                    Effect::UsingLastGood
                } else {
                    Effect::Held
                };
            }
            self.issues.push(problem);
        }
        if blocking && self.good.is_none() {
            if let Some(zone) = zone {
                self.held = Some(Box::new((zone, format!("key {tag} cannot be read"))));
            }
        }
    }
}

/// One BIND key directory, scanned incrementally.
#[derive(Debug)]
pub struct KeyDirectory {
    path: PathBuf,
    dir: Arc<Path>,
    grace: Duration,
    /// Every key file seen: its stamp and the scan that last saw it.
    stamps: FxHashMap<Box<str>, (Stamp, u64)>,
    /// Keys by stem (lower-case `K<zone>+<alg>+<tag>`).
    slots: FxHashMap<Box<str>, Slot>,
    /// Stems with problems or in flux: looked at again every scan.
    troubled: BTreeSet<Box<str>>,
    /// Good keys per zone, maintained as keys change.
    zones: imbl::OrdMap<Name, Vec<Arc<Key>>>,
    generation: u64,
}

impl KeyDirectory {
    /// A directory not scanned yet.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        KeyDirectory {
            dir: Arc::from(path.as_path()),
            path,
            grace: DEFAULT_FLUX_GRACE,
            stamps: FxHashMap::default(),
            slots: FxHashMap::default(),
            troubled: BTreeSet::new(),
            zones: imbl::OrdMap::new(),
            generation: 0,
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

    /// Scans the directory; `at` is the monotonic time of the scan (a
    /// parameter so tests can drive the grace period).
    pub fn scan(&mut self, at: Instant) -> ScanReport {
        let stamps = self.refresh_stamps();
        self.scan_with(stamps, at)
    }

    /// Rescans only the files named `files` (what inotify reported): a
    /// change among a million keys stats one file, not the directory. A
    /// name that is not a key file is ignored; one that is gone is removed.
    pub fn scan_files<'a>(
        &mut self,
        files: impl IntoIterator<Item = &'a str>,
        at: Instant,
    ) -> ScanReport {
        let mut changed: BTreeSet<Box<str>> = BTreeSet::new();
        for file_name in files {
            let Some(name) = bind::filename::parse(file_name) else {
                continue;
            };
            let stamp = match fs::metadata(self.path.join(file_name)) {
                Ok(meta) if meta.is_file() => Some(Stamp::of(&meta)),
                _ => None,
            };
            let generation = self.generation;
            match (stamp, self.stamps.get_mut(file_name)) {
                (Some(stamp), Some((old, _))) => {
                    if *old != stamp {
                        *old = stamp;
                        changed.insert(name.stem.into());
                    }
                }
                (Some(stamp), None) => {
                    let file: Box<str> = file_name.into();
                    self.stamps.insert(file.clone(), (stamp, generation));
                    let slot = self.slots.entry(name.stem.clone().into()).or_default();
                    slot.files[name.kind as usize] = Some(file);
                    changed.insert(name.stem.into());
                }
                (None, Some(_)) => {
                    self.stamps.remove(file_name);
                    if let Some(slot) = self.slots.get_mut(name.stem.as_str()) {
                        slot.files[name.kind as usize] = None;
                    }
                    changed.insert(name.stem.into());
                }
                (None, None) => {}
            }
        }
        self.scan_with(Ok(changed), at)
    }

    fn scan_with(&mut self, stamps: io::Result<BTreeSet<Box<str>>>, at: Instant) -> ScanReport {
        let mut report = ScanReport::default();
        let changed_stems = match stamps {
            Ok(stems) => stems,
            Err(e) => {
                let message = format!("cannot read key directory: {e}");
                report.issues.push(KeyIssue {
                    zone: None,
                    tag: None,
                    file: self.path.clone(),
                    line: 0,
                    message: message.clone(),
                    severity: Severity::Error,
                    effect: Effect::UsingLastGood,
                });
                report.directory_error = Some(message);
                report.zones = self.zones.clone();
                return report;
            }
        };
        // Changed keys, and every troubled one again (flux may have ended,
        // or lasted too long).
        let mut work: BTreeSet<Box<str>> = changed_stems;
        work.extend(self.troubled.iter().cloned());
        let jobs: Vec<(Box<str>, [Option<PathBuf>; 3])> = work
            .into_iter()
            .map(|stem| {
                let paths = match self.slots.get(&stem) {
                    Some(slot) => slot.files.clone().map(|f| f.map(|f| self.path.join(&*f))),
                    None => [None, None, None],
                };
                (stem, paths)
            })
            .collect();
        report.files_read = jobs.iter().map(|(_, p)| p.iter().flatten().count()).sum();
        let parsed = read_all(&jobs);
        for ((stem, _), contents) in jobs.into_iter().zip(parsed) {
            self.settle(&stem, contents, at, &mut report.changed);
        }
        for stem in &self.troubled {
            if let Some(slot) = self.slots.get(stem) {
                report.issues.extend(slot.issues.iter().cloned());
                if let Some((zone, why)) = slot.held.as_deref() {
                    report
                        .held
                        .entry(zone.clone())
                        .or_default()
                        .push(why.clone());
                }
            }
        }
        report.zones = self.zones.clone();
        report
    }

    /// Re-stats the directory; returns the stems with a file added, removed
    /// or changed.
    fn refresh_stamps(&mut self) -> io::Result<BTreeSet<Box<str>>> {
        self.generation += 1;
        let generation = self.generation;
        let mut changed: BTreeSet<Box<str>> = BTreeSet::new();
        for entry in fs::read_dir(&self.path)? {
            let entry = entry?;
            let Ok(file_name) = entry.file_name().into_string() else {
                continue;
            };
            let Some(name) = bind::filename::parse(&file_name) else {
                continue;
            };
            // fstatat on the directory's fd, not a lookup of the whole path
            // (a million of these on a cold start); a symlink is followed.
            let meta = match entry.metadata() {
                Ok(meta) if meta.is_symlink() => fs::metadata(entry.path()),
                other => other,
            };
            let meta = match meta {
                Ok(meta) if meta.is_file() => meta,
                // Vanished between readdir and stat, or not a file: skip.
                _ => continue,
            };
            let stamp = Stamp::of(&meta);
            match self.stamps.get_mut(file_name.as_str()) {
                Some((old, seen)) => {
                    *seen = generation;
                    if *old != stamp {
                        *old = stamp;
                        changed.insert(name.stem.into());
                    }
                }
                None => {
                    let file: Box<str> = file_name.into();
                    self.stamps.insert(file.clone(), (stamp, generation));
                    let slot = self.slots.entry(name.stem.clone().into()).or_default();
                    slot.files[name.kind as usize] = Some(file);
                    changed.insert(name.stem.into());
                }
            }
        }
        let gone: Vec<Box<str>> = self
            .stamps
            .iter()
            .filter(|(_, (_, seen))| *seen != generation)
            .map(|(f, _)| f.clone())
            .collect();
        for file in gone {
            self.stamps.remove(&file);
            if let Some(name) = bind::filename::parse(&file) {
                if let Some(slot) = self.slots.get_mut(name.stem.as_str()) {
                    slot.files[name.kind as usize] = None;
                }
                changed.insert(name.stem.into());
            }
        }
        Ok(changed)
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
        let Some(slot) = self.slots.get_mut(stem) else {
            return;
        };
        let old = slot.good.clone();
        slot.issues.clear();
        slot.held = None;
        let Some(key_name) = slot.file_name(FileKind::Key) else {
            // BIND renames files into place, so a `.key` never vanishes
            // mid-rewrite: without it there is no key, only leftovers.
            slot.leftovers(&dir);
            self.finish(stem, old, changed);
            return;
        };
        let zone = zone_of(&key_name);
        let files = slot.key_files(&dir);
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
        } = Parts::of(contents, &report);
        let unreadable = problems.iter().any(|p| p.severity == Severity::Error);
        let assembled = match (&public, unreadable) {
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
        slot.record(problems, zone, key_name.tag);
        self.finish(stem, old, changed);
    }

    /// Updates the per-zone map after a key's view changed (or not).
    fn finish(&mut self, stem: &str, old: Option<Arc<Key>>, changed: &mut BTreeSet<Name>) {
        let Some(slot) = self.slots.get(stem) else {
            return;
        };
        let new = slot.good.clone();
        let troubled = !slot.issues.is_empty() || slot.flux_since.is_some();
        let empty = slot.files.iter().all(Option::is_none);
        if troubled {
            self.troubled.insert(stem.into());
        } else {
            self.troubled.remove(stem);
        }
        if empty {
            self.slots.remove(stem);
        }
        let same = match (&old, &new) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if same {
            return;
        }
        if let Some(old) = old {
            changed.insert(old.zone.clone());
            if let Some(keys) = self.zones.get_mut(&old.zone) {
                keys.retain(|k| !Arc::ptr_eq(k, &old));
                if keys.is_empty() {
                    self.zones.remove(&old.zone);
                }
            }
        }
        if let Some(new) = new {
            changed.insert(new.zone.clone());
            let keys = self.zones.entry(new.zone.clone()).or_default();
            keys.push(new);
            keys.sort_by_key(|k| (k.algorithm, k.tag));
        }
    }
}

fn zone_of(name: &KeyFileName) -> Option<Name> {
    parse_name(&name.zone_text).ok()
}
